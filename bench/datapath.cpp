// Data-path and control-plane figures, measured on the real programs and
// the real agent code in a private network namespace (tests/bpf/netns.h):
//
//   cost     nanoseconds per packet through BPF_PROG_TEST_RUN for each path
//            of the data path, next to a floor program (XDP_PASS, or TC_ACT_OK
//            for the reply path) measured in the same round;
//   scale    the same cost with 1 / 100 / 10,000 services, 10 / 1,000
//            backends and 1 thousand / 1 million tracked flows;
//   control  Maglev table build times (M = 65537), the time from an HTTP API
//            call that drains one backend of a service with 1,000 backends to
//            the data path steering by the new table, and the map entries
//            that call wrote;
//   memory   the kernel memory of every map at the default sizes;
//   walk     a walk of tg_flows holding 100k and 262k flows, key by key
//            (bpf_map_get_next_key, then a lookup per key) and batched
//            (bpf_map_lookup_batch, userspace/datapath/flow_walk.h), in
//            the same run.
//
// Every counted iteration is one BPF_PROG_TEST_RUN with repeat=1, so each
// sees the packet as built (a repeated run would see the packet the
// previous run rewrote); its verdict and its output are checked, and a
// round whose proof fails (a drop counter, a flow count) aborts the run.
// The figure per round is the sum of the kernel's own per-run durations
// over the iterations; rounds alternate program and floor.
//
//   build/tollgate_bench_datapath [--rounds 7] [--iterations 20000] [--only cost,scale,control,memory,walk]
//
// Prints one JSON document on stdout (bench/run makes tables of it),
// progress on stderr. Root only.
//
// The sections: packet_cost.cpp (cost, scale), control_plane.cpp
// (control, memory), walk.cpp (walk), on what fixture.h makes.
#include <bpf/libbpf.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cstdio>

#include "control_plane.h"
#include "fixture.h"
#include "packet_cost.h"
#include "walk.h"

using namespace tollgate::datapath_bench;

int main(int argc, char** argv) {
  CLI::App app{"tollgate data-path and control-plane benchmarks (root; prints JSON)"};
  int rounds = 7;
  size_t iterations = 20000;
  std::vector<std::string> only{"cost", "scale", "control", "memory", "walk"};
  app.add_option("--rounds", rounds, "rounds per figure (median, min, max)")->check(CLI::Range(1, 50));
  app.add_option("--iterations", iterations, "BPF_PROG_TEST_RUN calls per round")->check(CLI::Range(100, 60000));
  app.add_option("--only", only, "sections: cost, scale, control, memory, walk")
      ->delimiter(',')
      ->check(CLI::IsMember({"cost", "scale", "control", "memory", "walk"}));
  CLI11_PARSE(app, argc, argv);
  if (geteuid() != 0) fail("run as root: it loads BPF programs and makes a network namespace");
  libbpf_set_print([](libbpf_print_level level, const char* format, va_list args) {
    return level == LIBBPF_WARN ? std::vfprintf(stderr, format, args) : 0;
  });

  TestNetwork network;
  if (auto failure = network.create(); !failure.empty()) fail(failure);
  auto wanted = [&](const char* section) { return std::find(only.begin(), only.end(), section) != only.end(); };
  json out = {{"rounds", rounds}, {"iterations", iterations}};
  if (wanted("cost")) out["cost"] = cost(network, rounds, iterations);
  if (wanted("scale")) out["scale"] = scale(network, rounds, iterations);
  if (wanted("control")) {
    std::fprintf(stderr, "control plane:\n");
    out["maglev_build"] = maglev_builds(rounds);
    out["api_change"] = api_to_datapath(network, rounds);
  }
  if (wanted("memory")) out["memory"] = memory(network);
  if (wanted("walk")) out["walk"] = walks(network, rounds);
  std::printf("%s\n", out.dump(2).c_str());
  return 0;
}
