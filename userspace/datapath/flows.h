// The connection table as operators see it: list and flush.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <thread>

#include "active_counts.h"
#include "loader.h"
#include "result.h"
#include "spec.h"

namespace tollgate {

// Up to `limit` flows ({"client", "service", "backend", "state", "table",
// "idle_seconds"}), and how many there are in all. "table" is "flows" for a
// flow of the connection table, "overflow" for one that found it full.
// `backends` names the slots (the controller's snapshot knows them).
Result<nlohmann::json> list_flows(const std::map<uint32_t, BackendKey>& backends, const DataPathMaps& maps,
                                  size_t limit);
// Active flows per backend index: flows that are neither closing nor past
// their idle timeout, and that still hold their backend by the data path's
// own rule (maps/tollgate_flow.h): their next packet would go to it. What
// a drain waits for.
Result<std::map<uint32_t, uint64_t>> active_flow_counts(const DataPathMaps& maps);

// Deletes every flow (both directions); returns how many forward flows went.
// A flow that sends again is steered afresh.
Result<size_t> flush_flows(const DataPathMaps& maps);

// Entries in the connection tables now (a walk of each, batched), and what
// each holds at most.
struct FlowOccupancy {
  size_t flows = 0;
  size_t overflow = 0;
  size_t flows_capacity = 0;
  size_t overflow_capacity = 0;
};
Result<FlowOccupancy> flow_occupancy(const DataPathMaps& maps);

// Deletes the flows idle past their timeout (maps/tollgate_flow.h): the
// connection table evicts nothing, so this is how its entries come free.
// Each key found idle is read once more just before it goes, and kept if
// a packet stamped it meanwhile. With `active`, the least-connections
// counts: each swept counted flow taken back, and the counts reconciled
// with the counted flows the walk found. Returns how many went.
Result<size_t> sweep_flows(const DataPathMaps& maps, ActiveCounts* active = nullptr);

// sweep_flows() in a thread of its own, every `interval`, until stopped.
class FlowSweeper {
 public:
  FlowSweeper(const DataPathMaps& maps, std::chrono::milliseconds interval) : maps_(maps), interval_(interval) {}
  ~FlowSweeper() { stop(); }
  void start();
  void stop();
  // Flows deleted since start().
  uint64_t swept() const { return swept_.load(std::memory_order_relaxed); }

 private:
  void run();
  const DataPathMaps& maps_;
  const std::chrono::milliseconds interval_;
  std::atomic<uint64_t> swept_{0};
  std::optional<ActiveCounts> active_;  // mapped at start()
  std::mutex mutex_;
  std::condition_variable wake_;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace tollgate
