// The lab benchmark's XDP reference programs (bench/bench.bpf.c), attached
// in the network namespace it runs in (nsenter --net=...):
//
//   tollgate_bench_xdp count --interface IF --warmup W --seconds S
//       count and drop every frame arriving on IF; after W seconds, count
//       for S seconds and print {"packets", "seconds", "pps"}
//   tollgate_bench_xdp redirect --from IF --to IF --seconds S
//       bpf_redirect() every frame arriving on one interface to the other
//       for S seconds: the ceiling of an XDP balancer between them
//
// Each prints {"attached": ...} once attached, and detaches when done, on
// SIGINT or SIGTERM, and on every error after attaching.
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/if_link.h>
#include <net/if.h>
#include <signal.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <vector>

#include "bench.skel.h"

namespace {

using json = nlohmann::json;

// Waits `seconds`; false if a signal to stop came first.
bool wait_or_stop(double seconds) {
  sigset_t stop;
  sigemptyset(&stop);
  sigaddset(&stop, SIGINT);
  sigaddset(&stop, SIGTERM);
  timespec timeout{static_cast<time_t>(seconds), static_cast<long>((seconds - static_cast<time_t>(seconds)) * 1e9)};
  return sigtimedwait(&stop, nullptr, &timeout) < 0 && errno == EAGAIN;
}

int interface_index(const std::string& name) {
  const int index = static_cast<int>(if_nametoindex(name.c_str()));
  if (index == 0) std::fprintf(stderr, "tollgate_bench_xdp: no interface %s here\n", name.c_str());
  return index;
}

uint64_t frames(bench* skeleton) {
  const int cpus = libbpf_num_possible_cpus();
  std::vector<uint64_t> values(static_cast<size_t>(cpus));
  uint32_t zero = 0;
  if (bpf_map_lookup_elem(bpf_map__fd(skeleton->maps.bench_frames), &zero, values.data()) != 0) return 0;
  uint64_t total = 0;
  for (uint64_t value : values) total += value;
  return total;
}

// Attaches `program` (native XDP) on `ifindex`, runs `body`, detaches.
int attached(bench* skeleton, bpf_program* program, int ifindex, const std::function<int()>& body) {
  if (bpf_xdp_attach(ifindex, bpf_program__fd(program), XDP_FLAGS_DRV_MODE, nullptr) != 0) {
    std::fprintf(stderr, "tollgate_bench_xdp: attach to ifindex %d: %s\n", ifindex, std::strerror(errno));
    bench__destroy(skeleton);
    return 1;
  }
  std::printf("%s\n", json{{"attached", ifindex}}.dump().c_str());
  std::fflush(stdout);
  const int status = body();
  bpf_xdp_detach(ifindex, XDP_FLAGS_DRV_MODE, nullptr);
  bench__destroy(skeleton);
  return status;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"tollgate_bench_xdp: reference XDP programs for the lab benchmark"};
  app.require_subcommand(1);
  std::string interface, from, to;
  double warmup = 1, seconds = 3;
  auto* count = app.add_subcommand("count", "count and drop every frame arriving on an interface");
  count->add_option("--interface", interface, "interface")->required();
  count->add_option("--warmup", warmup, "seconds before counting")->check(CLI::Range(0.0, 30.0));
  count->add_option("--seconds", seconds, "seconds counted")->check(CLI::Range(0.1, 60.0));
  auto* redirect = app.add_subcommand("redirect", "redirect every frame from one interface to another");
  redirect->add_option("--from", from, "ingress interface")->required();
  redirect->add_option("--to", to, "egress interface")->required();
  redirect->add_option("--seconds", seconds, "seconds attached")->check(CLI::Range(0.1, 600.0));
  CLI11_PARSE(app, argc, argv);

  // The stop signals are taken by sigtimedwait, never by default action,
  // so that the program is always detached.
  sigset_t stop;
  sigemptyset(&stop);
  sigaddset(&stop, SIGINT);
  sigaddset(&stop, SIGTERM);
  sigprocmask(SIG_BLOCK, &stop, nullptr);

  bench* skeleton = bench__open();
  if (!skeleton) return 1;
  if (*count) {
    const int ifindex = interface_index(interface);
    if (!ifindex || bench__load(skeleton) != 0) return 1;
    return attached(skeleton, skeleton->progs.count_drop, ifindex, [&] {
      if (!wait_or_stop(warmup)) return 1;
      const uint64_t first = frames(skeleton);
      const auto started = std::chrono::steady_clock::now();
      if (!wait_or_stop(seconds)) return 1;
      const uint64_t last = frames(skeleton);
      const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
      const uint64_t packets = last - first;
      std::printf("%s\n", json{{"packets", packets}, {"seconds", elapsed}, {"pps", static_cast<double>(packets) / elapsed}}
                              .dump()
                              .c_str());
      return 0;
    });
  }
  const int ingress = interface_index(from), egress = interface_index(to);
  if (!ingress || !egress) return 1;
  skeleton->rodata->redirect_ifindex = static_cast<uint32_t>(egress);
  if (bench__load(skeleton) != 0) return 1;
  return attached(skeleton, skeleton->progs.redirect, ingress, [&] { return wait_or_stop(seconds) ? 0 : 1; });
}
