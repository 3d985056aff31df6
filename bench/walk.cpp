#include "walk.h"

#include <cstdio>

#include "flow_walk.h"

namespace tollgate::datapath_bench {
namespace {

// The milliseconds of one walk of tg_flows by `method`; every flow visited.
double walk_ms(Bench& bench, WalkMethod method, size_t flows) {
  uint64_t checksum = 0;
  const auto started = Clock::now();
  auto walked = walk_entries<tg_flow_key, tg_flow>(
      bench.maps().flows,
      [&checksum](const tg_flow_key& key, const tg_flow& flow) {
        checksum += key.src_port + flow.backend_index;  // the values are read, as a conntrack list reads them
      },
      {method});
  const double ms = std::chrono::duration<double, std::milli>(Clock::now() - started).count();
  const size_t visited = must(std::move(walked), "walk tg_flows");
  if (visited != flows || checksum == 0) fail(fmt::format("walk visited {} of {} flows", visited, flows));
  return ms;
}

}  // namespace

json walks(const TestNetwork& network, int rounds) {
  std::fprintf(stderr, "flow table walks (%d rounds):\n", rounds);
  json points = json::array();
  for (size_t flows : {100000, 262144}) {
    LoadOptions options;
    options.flow_capacity = 327680;  // room beside the flows: the LRU evicts none
    Bench bench(network, options);
    apply(bench, service(kService, 80, "tcp", 3));
    fill_flows(bench, flows);
    std::vector<double> key_by_key, batched, speedup;
    // Alternating, so that both see the same machine.
    for (int round = 0; round < rounds; ++round) {
      key_by_key.push_back(walk_ms(bench, WalkMethod::key_by_key, flows));
      batched.push_back(walk_ms(bench, WalkMethod::batched, flows));
      speedup.push_back(key_by_key.back() / batched.back());
    }
    points.push_back({{"flows", flows},
                      {"flow_capacity", options.flow_capacity},
                      {"chunk", kWalkChunk},
                      {"key_by_key_ms", summary(key_by_key)},
                      {"batched_ms", summary(batched)},
                      {"speedup", summary(speedup)}});
    std::fprintf(stderr, "  %7zu flows: key by key %7.1f ms, batched %6.1f ms (x%.1f)\n", flows,
                 points.back()["key_by_key_ms"]["median"].get<double>(),
                 points.back()["batched_ms"]["median"].get<double>(), points.back()["speedup"]["median"].get<double>());
  }
  return points;
}

}  // namespace tollgate::datapath_bench
