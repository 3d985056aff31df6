// The lab benchmark's XDP reference programs (bench/bench.bpf.c), attached
// in the network namespace it runs in (nsenter --net=...):
//
//   tollgate_bench_xdp count --interface IF --warmup W --seconds S
//       count and drop every frame arriving on IF; after W seconds, count
//       for S seconds and print {"packets", "seconds", "pps"}
//   tollgate_bench_xdp redirect --from IF --to IF --seconds S
//       bpf_redirect() every frame arriving on one interface to the other
//       for S seconds: the ceiling of an XDP balancer between them
//   tollgate_bench_xdp pass --interface IF --seconds S
//       XDP_PASS on IF for S seconds: a veth with a program has NAPI, so
//       frames sent to it with XDP_TX are taken in
//   tollgate_bench_xdp send --interface IF --frame HEX --flows N --seconds S --max-packets M
//       send the IPv4 UDP frame HEX out of IF as fast as the kernel takes
//       it (packet socket, qdisc bypassed), source ports cycling over N
//       flows, for S seconds and at most M frames; prints {"packets", "seconds"}
//
// Each prints {"attached": ...} once attached, and detaches when done, on
// SIGINT or SIGTERM, and on every error after attaching.
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/if_link.h>
#include <linux/if_packet.h>
#include <net/if.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <functional>
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

// Sends `frame` (Ethernet, IPv4, UDP; UDP checksum 0) out of `ifindex`
// through a packet socket that bypasses the qdisc, 64 frames per
// sendmmsg(2), source ports cycling over `flows`, until `seconds` or
// `max_packets` or a stop signal. On a veth, each frame is carried through
// the receiving side (the gateway and on) on this CPU before its send
// returns: the rate is what the sender and the path behind it sustain.
int send_frames(int ifindex, const std::vector<uint8_t>& frame, uint32_t flows, double seconds, uint64_t max_packets) {
  const int fd = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, 0);
  const int one = 1;
  sockaddr_ll address{};
  address.sll_family = AF_PACKET;
  address.sll_ifindex = ifindex;
  if (fd < 0 || setsockopt(fd, SOL_PACKET, PACKET_QDISC_BYPASS, &one, sizeof(one)) != 0 ||
      bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0) {
    std::fprintf(stderr, "tollgate_bench_xdp: packet socket: %s\n", std::strerror(errno));
    if (fd >= 0) close(fd);
    return 1;
  }
  // One frame per flow: the UDP source port (after 14 + 20 bytes) differs.
  std::vector<std::vector<uint8_t>> frames(flows, frame);
  for (uint32_t i = 0; i < flows; ++i) {
    const auto port = static_cast<uint16_t>(10000 + i);
    frames[i][34] = static_cast<uint8_t>(port >> 8);
    frames[i][35] = static_cast<uint8_t>(port);
    frames[i][40] = frames[i][41] = 0;
  }
  constexpr size_t kBatch = 64;
  std::vector<iovec> vectors(kBatch);
  std::vector<mmsghdr> messages(kBatch);
  const auto started = std::chrono::steady_clock::now();
  const auto deadline = started + std::chrono::duration<double>(seconds);
  uint64_t sent = 0, failed_calls = 0;
  sigset_t pending;
  for (size_t turn = 0; sent < max_packets; ++turn) {
    if (turn % 16 == 0) {
      if (std::chrono::steady_clock::now() >= deadline) break;
      if (sigpending(&pending) == 0 && (sigismember(&pending, SIGINT) || sigismember(&pending, SIGTERM))) break;
    }
    const auto want = static_cast<unsigned>(std::min<uint64_t>(kBatch, max_packets - sent));
    for (unsigned i = 0; i < want; ++i) {
      auto& chosen = frames[(sent + i) % flows];
      vectors[i] = {chosen.data(), chosen.size()};
      messages[i].msg_hdr = {};
      messages[i].msg_hdr.msg_iov = &vectors[i];
      messages[i].msg_hdr.msg_iovlen = 1;
    }
    const int done = sendmmsg(fd, messages.data(), want, 0);
    if (done > 0)
      sent += static_cast<uint64_t>(done);
    else
      ++failed_calls;  // ENOBUFS and the like: the path is full; go on
  }
  const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  close(fd);
  std::printf("%s\n", json{{"packets", sent}, {"seconds", elapsed}, {"failed_calls", failed_calls}}.dump().c_str());
  return 0;
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
  std::string frame_hex;
  uint32_t flows = 1024;
  uint64_t max_packets = 100'000'000;
  auto* pass = app.add_subcommand("pass", "attach an XDP program that passes every frame (gives a veth NAPI)");
  pass->add_option("--interface", interface, "interface")->required();
  pass->add_option("--seconds", seconds, "seconds attached")->check(CLI::Range(0.1, 600.0));
  auto* send = app.add_subcommand("send", "send a UDP frame out of an interface, as fast as it goes");
  send->add_option("--interface", interface, "interface")->required();
  send->add_option("--frame", frame_hex, "Ethernet + IPv4 + UDP frame, in hex")->required();
  send->add_option("--flows", flows, "source ports to cycle over")->check(CLI::Range(1, 60000));
  send->add_option("--seconds", seconds, "seconds at most")->check(CLI::Range(0.1, 60.0));
  send->add_option("--max-packets", max_packets, "frames at most")->check(CLI::Range(1, 1'000'000'000));
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
      std::printf("%s\n",
                  json{{"packets", packets}, {"seconds", elapsed}, {"pps", static_cast<double>(packets) / elapsed}}
                      .dump()
                      .c_str());
      return 0;
    });
  }
  if (*pass) {
    const int ifindex = interface_index(interface);
    if (!ifindex || bench__load(skeleton) != 0) return 1;
    return attached(skeleton, skeleton->progs.floor_xdp, ifindex, [&] { return wait_or_stop(seconds) ? 0 : 1; });
  }
  if (*send) {
    const int ifindex = interface_index(interface);
    std::vector<uint8_t> frame;
    for (size_t i = 0; i + 1 < frame_hex.size(); i += 2)
      frame.push_back(static_cast<uint8_t>(std::stoul(frame_hex.substr(i, 2), nullptr, 16)));
    if (!ifindex || frame.size() < 42) {
      std::fprintf(stderr, "tollgate_bench_xdp: need an interface and a frame of 42 bytes or more\n");
      return 1;
    }
    bench__destroy(skeleton);
    return send_frames(ifindex, frame, flows, seconds, max_packets);
  }
  const int ingress = interface_index(from), egress = interface_index(to);
  if (!ingress || !egress) return 1;
  skeleton->rodata->redirect_ifindex = static_cast<uint32_t>(egress);
  if (bench__load(skeleton) != 0) return 1;
  return attached(skeleton, skeleton->progs.redirect, ingress, [&] { return wait_or_stop(seconds) ? 0 : 1; });
}
