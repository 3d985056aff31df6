#include "metrics.h"

#include <fmt/format.h>

#include "flows.h"
#include "maglev.h"
#include "stats.h"

namespace tollgate {
namespace {

// A label value with \, " and newline escaped.
std::string escape(std::string_view text) {
  std::string out;
  for (char c : text) {
    if (c == '\\' || c == '"') out += '\\';
    if (c == '\n') {
      out += "\\n";
      continue;
    }
    out += c;
  }
  return out;
}

struct MetricFamily {
  const char* name;
  const char* type;
  const char* help;
  std::string samples;
};

}  // namespace

Result<std::string> prometheus_metrics(const Controller& controller, const HealthMonitor* health,
                                       const EventMonitor* events) {
  const auto state = controller.snapshot();
  auto active = active_flow_counts(controller.maps());
  if (!active) return active.error();
  const auto snapshot = health ? health->snapshot() : std::map<BackendKey, BackendHealth>{};

  MetricFamily families[] = {
      {"tollgate_backend_packets_total", "counter", "Packets steered to the backend.", {}},
      {"tollgate_backend_bytes_total", "counter", "Bytes steered to the backend.", {}},
      {"tollgate_backend_new_flows_total", "counter", "Flows that got the backend as new.", {}},
      {"tollgate_backend_active_flows", "gauge", "Flows neither closing nor idle past their timeout.", {}},
      {"tollgate_backend_selectable", "gauge", "1 when the backend takes new flows.", {}},
      {"tollgate_backend_health_check_up", "gauge", "Active health check: 1 healthy, 0 unhealthy (checked only).", {}},
      {"tollgate_backend_health_probes_total", "counter", "Active health check probes.", {}},
      {"tollgate_backend_health_probe_failures_total", "counter", "Active health check probes that failed.", {}},
      {"tollgate_backend_circuit_state", "gauge", "Passive ejection: 1 for the circuit's state.", {}},
      {"tollgate_backend_ejections_total", "counter", "Times passive ejection opened the circuit.", {}},
      {"tollgate_backend_handshakes_total", "counter", "Connection attempts the backend answered.", {}},
      {"tollgate_backend_syn_retransmits_total", "counter", "SYNs sent again: the backend did not answer.", {}},
      {"tollgate_backend_syn_resets_total", "counter", "SYNs the backend answered with RST.", {}},
      {"tollgate_backend_retried_total", "counter", "Retransmitted SYNs steered to another backend.", {}},
      {"tollgate_backend_udp_replies_total", "counter", "UDP datagrams the backend sent back.", {}},
      {"tollgate_backend_udp_unreachable_total", "counter", "ICMP port unreachable from the backend (UDP).", {}},
      {"tollgate_service_table_info",
       "gauge",
       "The service's scheduler and the digest of its table: equal on gateways that hold the same backends.",
       {}},
  };
  auto add = [&](size_t family, const std::string& labels, auto value) {
    families[family].samples += fmt::format("{}{{{}}} {}\n", families[family].name, labels, value);
  };

  for (const auto& entry : state->services.entries()) {
    const ServiceSpec& service = entry->desired;
    if (entry->slots)
      add(16,
          fmt::format(R"(service="{}",scheduler="{}",digest="{}")", escape(service.address.to_string()),
                      scheduler_name(service.scheduler), maglev_digest_text(entry->slots->table_digest)),
          1);
    for (const auto& backend : service.backends) {
      const BackendKey key{service.address, backend.endpoint};
      const std::string labels = fmt::format(R"(service="{}",backend="{}")", escape(service.address.to_string()),
                                             escape(backend.endpoint.to_string()));
      auto index = state->backend_index(service.address, backend.endpoint);
      tg_counters traffic{};
      if (index)
        if (auto counters = read_counters(controller.maps().backend_stats, *index)) traffic = *counters;
      auto count = index ? active->find(*index) : active->end();
      add(0, labels, traffic.packets);
      add(1, labels, traffic.bytes);
      add(2, labels, traffic.new_flows);
      add(3, labels, count == active->end() ? 0 : count->second);
      add(4, labels, state->selectable(service.address, backend) ? 1 : 0);
      auto found = snapshot.find(key);
      if (found == snapshot.end()) continue;
      const BackendHealth& status = found->second;
      if (status.check == "healthy" || status.check == "unhealthy") add(5, labels, status.check == "healthy" ? 1 : 0);
      if (status.check != "none") {
        add(6, labels, status.probes);
        add(7, labels, status.probe_failures);
      }
      for (Circuit circuit : {Circuit::closed, Circuit::open, Circuit::half_open})
        add(8, fmt::format(R"({},state="{}")", labels, circuit_name(circuit)), status.circuit == circuit ? 1 : 0);
      add(9, labels, status.ejections);
      add(10, labels, status.counters.handshakes);
      add(11, labels, status.counters.syn_retransmits);
      add(12, labels, status.counters.syn_resets);
      add(13, labels, status.counters.retried);
      add(14, labels, status.counters.udp_replies);
      add(15, labels, status.counters.udp_unreachable);
    }
  }

  std::string out;
  for (const auto& family : families) {
    if (family.samples.empty()) continue;
    out += fmt::format("# HELP {} {}\n# TYPE {} {}\n{}", family.name, family.help, family.name, family.type,
                       family.samples);
  }
  auto drops = read_drops(controller.maps().drops);
  if (!drops) return drops.error();
  out +=
      "# HELP tollgate_drops_total Packets dropped by the data path, by reason.\n"
      "# TYPE tollgate_drops_total counter\n";
  for (uint32_t reason = 0; reason < TG_DROP_REASON_COUNT; ++reason)
    out += fmt::format("tollgate_drops_total{{reason=\"{}\"}} {}\n",
                       drop_reason_name(static_cast<tg_drop_reason>(reason)), (*drops)[reason]);

  auto event_stats = read_event_stats(controller.maps().event_stats);
  if (!event_stats) return event_stats.error();
  std::string occurrences, unreported, received;
  const auto got = events ? events->received() : std::array<uint64_t, TG_EVENT_KIND_COUNT>{};
  for (uint32_t kind = 0; kind < TG_EVENT_KIND_COUNT; ++kind) {
    const auto name = event_kind_name(static_cast<tg_event_kind>(kind));
    const auto& stats = (*event_stats)[kind];
    occurrences += fmt::format("tollgate_event_occurrences_total{{kind=\"{}\"}} {}\n", name, stats.occurrences);
    unreported += fmt::format("tollgate_event_unreported_total{{kind=\"{}\"}} {}\n", name,
                              stats.occurrences - std::min(stats.occurrences, stats.reported));
    received += fmt::format("tollgate_events_total{{kind=\"{}\"}} {}\n", name, got[kind]);
  }
  out +=
      "# HELP tollgate_event_occurrences_total Occurrences of each event kind in the data path.\n"
      "# TYPE tollgate_event_occurrences_total counter\n" +
      occurrences +
      "# HELP tollgate_event_unreported_total Occurrences no event reported (aggregated, over budget, or lost).\n"
      "# TYPE tollgate_event_unreported_total counter\n" +
      unreported +
      "# HELP tollgate_events_total Events the agent read from the ring buffer.\n"
      "# TYPE tollgate_events_total counter\n" +
      received;
  auto occupancy = flow_occupancy(controller.maps());
  if (!occupancy) return occupancy.error();
  out += fmt::format(
      "# HELP tollgate_flow_table_entries Entries in the connection table (flows) and its overflow (new flows that "
      "found it full).\n"
      "# TYPE tollgate_flow_table_entries gauge\n"
      "tollgate_flow_table_entries{{table=\"flows\"}} {}\n"
      "tollgate_flow_table_entries{{table=\"overflow\"}} {}\n"
      "# HELP tollgate_flow_table_capacity Entries each flow table holds at most.\n"
      "# TYPE tollgate_flow_table_capacity gauge\n"
      "tollgate_flow_table_capacity{{table=\"flows\"}} {}\n"
      "tollgate_flow_table_capacity{{table=\"overflow\"}} {}\n",
      occupancy->flows, occupancy->overflow, occupancy->flows_capacity, occupancy->overflow_capacity);
  return out;
}

std::string swept_flows_metric(uint64_t swept) {
  return fmt::format(
      "# HELP tollgate_flows_swept_total Idle flows the agent deleted from the flow tables (they evict nothing).\n"
      "# TYPE tollgate_flows_swept_total counter\n"
      "tollgate_flows_swept_total {}\n",
      swept);
}

std::string api_connection_metrics(const HttpServerCounters& counters) {
  auto read = [](const std::atomic<uint64_t>& counter) { return counter.load(std::memory_order_relaxed); };
  return fmt::format(
      "# HELP tollgate_api_connections_open API connections being served.\n"
      "# TYPE tollgate_api_connections_open gauge\n"
      "tollgate_api_connections_open {}\n"
      "# HELP tollgate_api_connections_total API connections admitted.\n"
      "# TYPE tollgate_api_connections_total counter\n"
      "tollgate_api_connections_total {}\n"
      "# HELP tollgate_api_connections_refused_total API connections refused at once (503), by reason.\n"
      "# TYPE tollgate_api_connections_refused_total counter\n"
      "tollgate_api_connections_refused_total{{reason=\"uid_limit\"}} {}\n"
      "tollgate_api_connections_refused_total{{reason=\"capacity\"}} {}\n"
      "# HELP tollgate_api_deadlines_total API connections closed at a deadline: request not whole, answer not taken.\n"
      "# TYPE tollgate_api_deadlines_total counter\n"
      "tollgate_api_deadlines_total{{phase=\"read\"}} {}\n"
      "tollgate_api_deadlines_total{{phase=\"write\"}} {}\n"
      "# HELP tollgate_api_memory_trims_total Times the API gave freed memory back after large requests.\n"
      "# TYPE tollgate_api_memory_trims_total counter\n"
      "tollgate_api_memory_trims_total {}\n",
      read(counters.open), read(counters.accepted), read(counters.refused_uid_limit), read(counters.refused_capacity),
      read(counters.read_deadlines), read(counters.write_deadlines), read(counters.memory_trims));
}

std::string build_info_metric(std::string_view version) {
  return fmt::format(
      "# HELP tollgate_build_info The agent's build: its version, value 1.\n"
      "# TYPE tollgate_build_info gauge\n"
      "tollgate_build_info{{version=\"{}\"}} 1\n",
      escape(version));
}

}  // namespace tollgate
