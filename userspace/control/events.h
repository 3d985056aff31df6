// Events from the data path (the tg_events ring buffer): policy drops,
// caps hit, flows moved off a backend, flows found untracked. One thread
// reads them, names their service, source and backend, writes each to the
// audit log and keeps the latest for GET /v1/events and `tollgate events`.
#pragma once

#include <array>
#include <atomic>
#include <deque>
#include <mutex>
#include <nlohmann/json.hpp>
#include <thread>

#include "audit.h"
#include "controller.h"

struct ring_buffer;

namespace tollgate {

class EventMonitor {
 public:
  static constexpr size_t kKept = 4096;  // the latest events kept for the API

  EventMonitor(Controller& controller, AuditLog& audit);
  ~EventMonitor();
  EventMonitor(const EventMonitor&) = delete;
  EventMonitor& operator=(const EventMonitor&) = delete;

  Status start();
  void stop();

  // Events with a sequence number above `after` (they count from 1), at
  // most `limit`: {"events": [...], "next": the last number handed out}.
  nlohmann::json since(uint64_t after, size_t limit) const;
  // Events read, per kind.
  std::array<uint64_t, TG_EVENT_KIND_COUNT> received() const;

 private:
  static int on_event(void* context, void* data, size_t size);
  void handle(const tg_event& event);
  void run();

  Controller& controller_;
  AuditLog& audit_;
  ring_buffer* ring_ = nullptr;
  std::thread thread_;
  std::atomic<bool> stopping_{false};
  mutable std::mutex mutex_;
  std::deque<nlohmann::json> kept_;
  uint64_t sequence_ = 0;
  std::array<uint64_t, TG_EVENT_KIND_COUNT> received_{};
};

}  // namespace tollgate
