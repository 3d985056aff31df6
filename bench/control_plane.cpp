#include "control_plane.h"

#include <bpf/bpf.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <thread>

#include "api.h"
#include "cli.h"
#include "controller.h"
#include "http_server.h"
#include "maglev.h"
#include "map_keys.h"

namespace tollgate::datapath_bench {
namespace {

using namespace test;

// What the kernel says a map costs (fdinfo's memlock) and holds.
std::pair<uint64_t, uint64_t> map_memory(int fd) {
  std::ifstream info(fmt::format("/proc/self/fdinfo/{}", fd));
  uint64_t memlock = 0, max_entries = 0;
  for (std::string line; std::getline(info, line);) {
    if (line.rfind("memlock:", 0) == 0) memlock = std::stoull(line.substr(8));
    if (line.rfind("max_entries:", 0) == 0) max_entries = std::stoull(line.substr(12));
  }
  return {memlock, max_entries};
}

}  // namespace

json maglev_builds(int rounds) {
  json builds = json::array();
  for (size_t count : {10, 100, 1000}) {
    std::vector<MaglevBackend> list;
    for (const auto& spec : backends(count)) {
      const auto& endpoint = spec.endpoint;
      list.push_back({maglev_key(endpoint), 1});
    }
    std::vector<double> ms;
    for (int round = 0; round < rounds; ++round) {
      const auto started = Clock::now();
      auto table = build_maglev_table(list, TG_MAGLEV_DEFAULT_SIZE);
      ms.push_back(std::chrono::duration<double, std::milli>(Clock::now() - started).count());
      if (table.size() != TG_MAGLEV_DEFAULT_SIZE) fail("maglev table size");
    }
    builds.push_back({{"backends", count}, {"size", TG_MAGLEV_DEFAULT_SIZE}, {"ms", summary(ms)}});
    std::fprintf(stderr, "  maglev build, %4zu backends, M=%u: %.2f ms\n", count, TG_MAGLEV_DEFAULT_SIZE,
                 builds.back()["ms"]["median"].get<double>());
  }
  return builds;
}

// Drain one backend of a service with 1,000 backends, beside 10,000 other
// services, through the HTTP API (the agent's own server and controller,
// in this process, on a Unix socket) and time until a SYN that went to it
// is steered elsewhere. Each
// round drains another backend; the first change (not counted) makes the
// standby table. Also: how many table slots a drain changes at all.
constexpr size_t kOtherServices = 10000;

json api_to_datapath(const TestNetwork& network, int rounds) {
  Bench bench(network, LoadOptions{});
  char pattern[] = "/tmp/tollgate-bench-XXXXXX";
  if (!mkdtemp(pattern)) fail("mkdtemp");
  const std::string dir = pattern;
  auto audit = must(AuditLog::open(dir + "/audit.log"), "audit log");
  Controller controller(bench.dataplane(), bench.maps(), *audit, dir + "/state", AgentState{});
  // The measured service and 10,000 others (small tables, M = 251), applied
  // whole as a config file is, through the controller.
  Config config;
  config.services.push_back(service(kService, 80, "tcp", 1000));
  for (size_t i = 1; i <= kOtherServices; ++i) config.services.push_back(service(scale_service(i), 80, "tcp", 1, 251));
  const auto apply_started = Clock::now();
  must(controller.apply(config, {{"source", "bench"}}), "apply 10,001 services");
  const double apply_seconds = std::chrono::duration<double>(Clock::now() - apply_started).count();
  std::fprintf(stderr, "  %zu services applied whole through the controller: %.2f s\n", config.services.size(),
               apply_seconds);
  Api api(controller, *audit, AccessPolicy{}, AgentInfo{});
  auto server =
      must(HttpServer::listen(
               dir + "/tollgate.sock", {0600}, [&api](const HttpRequest& request) { return api.handle(request); },
               [](const Caller&, const HttpResponse&) {}),
           "API socket");
  std::thread serving([&server] { server->serve(); });
  auto call = cli::unix_socket_transport(dir + "/tollgate.sock");

  // Where a probe SYN from `port` goes now.
  auto probe = [&](uint16_t port) {
    if (!clear_map(bench.maps().flows)) fail("clear tg_flows");
    Bench::Run run = bench.xdp(build_packet(client_packet(false, 6, kService, port, kTcpSyn)));
    if (run.verdict != XDP_REDIRECT) fail("probe not forwarded");
    return destination_of(run.out, false);
  };

  std::vector<double> total_ms, http_ms, switch_ms, agent_ms, table_entries, backend_entries;
  for (int round = 0; round <= rounds; ++round) {
    const auto port = static_cast<uint16_t>(20000 + round);
    const auto target = probe(port);
    const std::string path =
        fmt::format("/v1/services/{}%3A80%2Ftcp/backends/{}:{}", kService, kBackends[target.first], target.second);
    const auto started = Clock::now();
    auto reply = call("PATCH", path, R"({"state": "draining"})");
    const auto answered = Clock::now();
    if (!reply || reply->status != 200) fail("PATCH " + path + ": " + (reply ? reply->body : reply.error().message));
    // Bounded: the write is done when the reply comes; this proves it.
    for (int poll = 0; probe(port) == target; ++poll)
      if (poll > 1000) fail("the data path never used the new table");
    const auto steered = Clock::now();
    if (round == 0) continue;  // made the standby table
    total_ms.push_back(std::chrono::duration<double, std::milli>(steered - started).count());
    http_ms.push_back(std::chrono::duration<double, std::milli>(answered - started).count());
    // The table switch is the kernel's RCU wait; the rest is the agent's.
    switch_ms.push_back(std::chrono::duration<double, std::milli>(bench.dataplane().last_write().table_switch).count());
    agent_ms.push_back(total_ms.back() - switch_ms.back());
    table_entries.push_back(static_cast<double>(bench.dataplane().last_write().table_entries));
    backend_entries.push_back(static_cast<double>(bench.dataplane().last_write().backend_entries));
  }
  server->stop();
  serving.join();
  std::filesystem::remove_all(dir);

  // Slots that one drain moves, from the Maglev tables themselves.
  std::vector<MaglevBackend> list;
  for (const auto& spec : backends(1000)) list.push_back({maglev_key(spec.endpoint), 1});
  const auto before = build_maglev_table(list, TG_MAGLEV_DEFAULT_SIZE);
  list[0].weight = 0;
  const auto after = build_maglev_table(list, TG_MAGLEV_DEFAULT_SIZE);
  size_t moved = 0;
  for (size_t i = 0; i < before.size(); ++i) moved += before[i] != after[i];

  json result = {{"backends", 1000},
                 {"other_services", kOtherServices},
                 {"config_apply_seconds", apply_seconds},
                 {"maglev_size", TG_MAGLEV_DEFAULT_SIZE},
                 {"changes", rounds},
                 {"call_to_datapath_ms", summary(total_ms)},
                 {"http_reply_ms", summary(http_ms)},
                 {"table_switch_ms", summary(switch_ms)},
                 {"without_switch_ms", summary(agent_ms)},
                 {"table_entries_written", summary(table_entries)},
                 {"backend_entries_written", summary(backend_entries)},
                 {"table_slots_one_drain_moves", moved}};
  std::fprintf(stderr,
               "  drain 1 of 1,000 backends via the API -> data path: %.2f ms: %.2f ms and one table switch "
               "(the kernel's RCU wait) of %.2f ms; wrote %g table entries "
               "(a drain moves %zu slots; the standby table is two changes behind) and %g backend entries\n",
               result["call_to_datapath_ms"]["median"].get<double>(),
               result["without_switch_ms"]["median"].get<double>(), result["table_switch_ms"]["median"].get<double>(),
               result["table_entries_written"]["median"].get<double>(), moved,
               result["backend_entries_written"]["median"].get<double>());
  return result;
}

json memory(const TestNetwork& network) {
  Bench bench(network, LoadOptions{});
  const DataPathMaps& m = bench.maps();
  json list = json::array();
  uint64_t total = 0;
  for (const MapHandle& map : m.all()) {
    const auto [bytes, entries] = map_memory(map.fd());
    total += bytes;
    list.push_back({{"map", map.name()}, {"max_entries", entries}, {"bytes", bytes}});
  }
  // One service's Maglev table (an inner map of tg_maglev).
  apply(bench, service(kService, 80, "tcp", 3));
  const auto id = bench.dataplane().service_id(service_address(kService, 80, "tcp"));
  if (!id) fail("service id");
  uint32_t inner_id = 0;
  if (bpf_map_lookup_elem(m.maglev.fd(), &*id, &inner_id) != 0) fail("maglev inner map id");
  const int inner = bpf_map_get_fd_by_id(inner_id);
  if (inner < 0) fail("maglev inner map fd");
  const auto [table_bytes, table_entries] = map_memory(inner);
  close(inner);
  std::fprintf(stderr, "  maps at default sizes: %.1f MiB; one service's Maglev table (M=%llu): %.1f KiB\n",
               static_cast<double>(total) / 1048576.0, static_cast<unsigned long long>(table_entries),
               static_cast<double>(table_bytes) / 1024.0);
  return {{"maps", list},
          {"total_bytes", total},
          {"maglev_table", {{"max_entries", table_entries}, {"bytes", table_bytes}}}};
}

}  // namespace tollgate::datapath_bench
