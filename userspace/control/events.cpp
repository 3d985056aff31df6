#include "events.h"

#include <bpf/libbpf.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "log.h"

namespace tollgate {

EventMonitor::EventMonitor(Controller& controller, AuditLog& audit) : controller_(controller), audit_(audit) {}

EventMonitor::~EventMonitor() {
  stop();
  if (ring_) ring_buffer__free(ring_);
}

Status EventMonitor::start() {
  if (!ring_) {
    ring_ = ring_buffer__new(controller_.maps().events.fd(), &EventMonitor::on_event, this, nullptr);
    if (!ring_) return controller_.maps().events.error("ring buffer open", errno);
  }
  if (thread_.joinable()) return {};
  stopping_ = false;
  thread_ = std::thread([this] { run(); });
  return {};
}

void EventMonitor::stop() {
  stopping_ = true;
  if (thread_.joinable()) thread_.join();
}

void EventMonitor::run() {
  while (!stopping_) {
    int rc = ring_buffer__poll(ring_, 100);
    if (rc < 0 && rc != -EINTR) {
      log::error("reading the event ring buffer: {}", std::strerror(-rc));
      return;
    }
  }
}

int EventMonitor::on_event(void* context, void* data, size_t size) {
  if (size < sizeof(tg_event)) return 0;
  tg_event event;
  std::memcpy(&event, data, sizeof(event));
  static_cast<EventMonitor*>(context)->handle(event);
  return 0;
}

void EventMonitor::handle(const tg_event& event) {
  if (event.kind >= TG_EVENT_KIND_COUNT) return;
  const auto kind = static_cast<tg_event_kind>(event.kind);
  nlohmann::json entry = {{"event", "datapath"}, {"time", utc_now()}, {"kind", event_kind_name(kind)}};
  {
    const auto snapshot = controller_.snapshot();
    auto service = snapshot->service_by_id->find(event.service_id);
    entry["service"] = service != snapshot->service_by_id->end() ? service->second.to_string()
                                                                 : fmt::format("id {}", event.service_id);
    if (kind == TG_EVENT_FLOW_MOVED) {
      auto backend = snapshot->backend_by_index->find(event.detail);
      entry["backend"] = backend != snapshot->backend_by_index->end() ? backend->second.second.to_string()
                                                                      : fmt::format("slot {}", event.detail);
    }
  }
  if (event.family == TG_FAMILY_IPV4 || event.family == TG_FAMILY_IPV6)
    entry["source"] = IpAddress::from_words(event.addr, static_cast<Family>(event.family)).to_string();
  if (kind == TG_EVENT_DENIED)
    entry["reason"] =
        drop_reason_name(static_cast<tg_drop_reason>(std::min<uint32_t>(event.detail, TG_DROP_REASON_COUNT)));
  entry["count"] = event.count;
  audit_.record(entry);

  std::lock_guard lock(mutex_);
  entry["seq"] = ++sequence_;
  ++received_[kind];
  kept_.push_back(std::move(entry));
  if (kept_.size() > kKept) kept_.pop_front();
}

nlohmann::json EventMonitor::since(uint64_t after, size_t limit) const {
  std::lock_guard lock(mutex_);
  nlohmann::json events = nlohmann::json::array();
  for (const auto& entry : kept_) {
    if (events.size() >= limit) break;
    if (entry["seq"].get<uint64_t>() > after) events.push_back(entry);
  }
  // Where to go on from: after the last one handed out, or everything so
  // far when there was nothing (a cursor from an earlier agent included).
  const uint64_t next = events.empty() ? sequence_ : events.back()["seq"].get<uint64_t>();
  return {{"events", events}, {"next", next}};
}

std::array<uint64_t, TG_EVENT_KIND_COUNT> EventMonitor::received() const {
  std::lock_guard lock(mutex_);
  return received_;
}

}  // namespace tollgate
