#include "health_check.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <functional>

#include "log.h"

namespace tollgate {
namespace {

constexpr size_t kMaxResponse = 4096;
constexpr auto kTimerSlack = std::chrono::milliseconds(10);

socklen_t to_sockaddr(const Endpoint& endpoint, sockaddr_storage& storage) {
  std::memset(&storage, 0, sizeof(storage));
  if (endpoint.address.family == Family::ipv4) {
    auto* in = reinterpret_cast<sockaddr_in*>(&storage);
    in->sin_family = AF_INET;
    in->sin_port = htons(endpoint.port);
    std::memcpy(&in->sin_addr, endpoint.address.bytes.data(), 4);
    return sizeof(*in);
  }
  auto* in6 = reinterpret_cast<sockaddr_in6*>(&storage);
  in6->sin6_family = AF_INET6;
  in6->sin6_port = htons(endpoint.port);
  std::memcpy(&in6->sin6_addr, endpoint.address.bytes.data(), 16);
  return sizeof(*in6);
}

// "HTTP/1.1 200 OK\r\n" -> 200; 0 when not a status line.
int parse_status_line(const std::string& response) {
  unsigned major = 0, minor = 0;
  int status = 0;
  char space = 0;
  if (std::sscanf(response.c_str(), "HTTP/%u.%u %3d%c", &major, &minor, &status, &space) < 3) return 0;
  return status >= 100 && status <= 599 ? status : 0;
}

}  // namespace

struct HealthChecker::Probe {
  enum class Phase { idle, connecting, sending, receiving };

  BackendKey key;
  CheckTarget target;
  CheckStatus status;
  Phase phase = Phase::idle;
  int fd = -1;
  uint64_t sequence = 0;  // of the armed timer
  Clock::time_point next_start;
  std::string out;  // still to send
  std::string in;   // received so far
};

HealthChecker::HealthChecker() : epoll_fd_(epoll_create1(EPOLL_CLOEXEC)) {
  if (epoll_fd_ < 0) log::error("health checks: epoll_create1 failed: {}", std::strerror(errno));
}

HealthChecker::~HealthChecker() {
  for (auto& [id, probe] : probes_) close_socket(probe);
  if (epoll_fd_ >= 0) close(epoll_fd_);
}

void HealthChecker::arm(Probe& probe, Clock::time_point when) {
  const uint64_t id = ids_.at(probe.key);
  timers_.emplace(when, std::pair{id, ++probe.sequence});
}

void HealthChecker::sync(const std::map<BackendKey, CheckTarget>& targets, Clock::time_point now) {
  for (auto it = ids_.begin(); it != ids_.end();) {
    auto wanted = targets.find(it->first);
    if (wanted != targets.end() && wanted->second == probes_.at(it->second).target) {
      ++it;
      continue;
    }
    close_socket(probes_.at(it->second));
    probes_.erase(it->second);  // its timers go stale: the id is gone
    it = ids_.erase(it);
  }
  for (const auto& [key, target] : targets) {
    if (ids_.contains(key)) continue;
    const uint64_t id = next_id_++;
    ids_[key] = id;
    Probe& probe = probes_[id];
    probe.key = key;
    probe.target = target;
    // Spread the first probes over one interval, the same way every time.
    const auto interval = std::chrono::duration_cast<Clock::duration>(target.spec.interval);
    const size_t spread = std::hash<std::string>{}(key.first.to_string() + key.second.to_string());
    probe.next_start = now + Clock::duration(static_cast<Clock::rep>(spread % static_cast<size_t>(interval.count())));
    arm(probe, probe.next_start);
  }
}

const CheckStatus* HealthChecker::status(const BackendKey& key) const {
  auto it = ids_.find(key);
  return it == ids_.end() ? nullptr : &probes_.at(it->second).status;
}

void HealthChecker::close_socket(Probe& probe) {
  if (probe.fd < 0) return;
  close(probe.fd);  // the only reference: epoll forgets it too
  probe.fd = -1;
}

void HealthChecker::start(Probe& probe, Clock::time_point now, std::vector<ProbeOutcome>& out) {
  const auto& spec = probe.target.spec;
  probe.next_start += std::chrono::duration_cast<Clock::duration>(spec.interval);
  if (probe.next_start <= now) probe.next_start = now + spec.interval;  // fell behind: no burst to catch up
  probe.phase = Probe::Phase::connecting;
  probe.in.clear();
  probe.out.clear();
  arm(probe, now + spec.timeout);

  const int family = probe.target.endpoint.address.family == Family::ipv4 ? AF_INET : AF_INET6;
  const int type = spec.type == CheckType::udp ? SOCK_DGRAM : SOCK_STREAM;
  probe.fd = socket(family, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (probe.fd < 0) return finish(probe, false, fmt::format("socket: {}", std::strerror(errno)), out);
  if (spec.type == CheckType::tcp) {
    // Close with RST: a check every second must not leave TIME_WAIT behind.
    linger abort{1, 0};
    setsockopt(probe.fd, SOL_SOCKET, SO_LINGER, &abort, sizeof(abort));
  }
  sockaddr_storage address;
  socklen_t length = to_sockaddr(probe.target.endpoint, address);
  if (connect(probe.fd, reinterpret_cast<sockaddr*>(&address), length) != 0 && errno != EINPROGRESS)
    return finish(probe, false, fmt::format("connect: {}", std::strerror(errno)), out);

  uint32_t events = EPOLLOUT;
  if (spec.type == CheckType::udp) {
    if (send(probe.fd, spec.payload.data(), spec.payload.size(), 0) < 0)
      return finish(probe, false, fmt::format("send: {}", std::strerror(errno)), out);
    probe.phase = Probe::Phase::receiving;
    events = EPOLLIN;
  } else if (spec.type == CheckType::http) {
    probe.out =
        fmt::format("GET {} HTTP/1.0\r\nHost: {}\r\nUser-Agent: tollgate-health-check\r\nConnection: close\r\n\r\n",
                    spec.path, probe.target.endpoint.to_string());
  }
  epoll_event event{};
  event.events = events;
  event.data.u64 = ids_.at(probe.key);
  if (epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, probe.fd, &event) != 0)
    return finish(probe, false, fmt::format("epoll: {}", std::strerror(errno)), out);
}

void HealthChecker::on_event(Probe& probe, uint32_t events, std::vector<ProbeOutcome>& out) {
  const auto& spec = probe.target.spec;
  if (probe.phase == Probe::Phase::connecting) {
    if (events & (EPOLLERR | EPOLLHUP)) {  // only then is there an error to read
      int error = 0;
      socklen_t length = sizeof(error);
      getsockopt(probe.fd, SOL_SOCKET, SO_ERROR, &error, &length);
      return finish(probe, false,
                    error ? fmt::format("connect: {}", std::strerror(error)) : "connect: connection closed", out);
    }
    if (spec.type == CheckType::tcp) return finish(probe, true, "ok", out);
    probe.phase = Probe::Phase::sending;
  }
  if (probe.phase == Probe::Phase::sending) {
    ssize_t sent = send(probe.fd, probe.out.data(), probe.out.size(), MSG_NOSIGNAL);
    if (sent < 0) {
      if (errno == EAGAIN) return;
      return finish(probe, false, fmt::format("send: {}", std::strerror(errno)), out);
    }
    probe.out.erase(0, static_cast<size_t>(sent));
    if (!probe.out.empty()) return;
    probe.phase = Probe::Phase::receiving;
    epoll_event event{};
    event.events = EPOLLIN;
    event.data.u64 = ids_.at(probe.key);
    epoll_ctl(epoll_fd_, EPOLL_CTL_MOD, probe.fd, &event);
    return;
  }
  if (probe.phase != Probe::Phase::receiving) return;
  char buffer[2048];
  ssize_t received = recv(probe.fd, buffer, sizeof(buffer), 0);
  if (received < 0) {
    if (errno == EAGAIN) return;
    // UDP: ECONNREFUSED is the ICMP port unreachable of a closed port.
    return finish(probe, false, fmt::format("receive: {}", std::strerror(errno)), out);
  }
  if (spec.type == CheckType::udp) {
    std::string_view answer(buffer, static_cast<size_t>(received));
    if (!spec.expect.empty() && answer.find(spec.expect) == std::string_view::npos)
      return finish(probe, false, fmt::format("answer without '{}'", spec.expect), out);
    return finish(probe, true, "ok", out);
  }
  probe.in.append(buffer, static_cast<size_t>(received));
  const bool complete = received == 0 || probe.in.find("\r\n") != std::string::npos || probe.in.size() >= kMaxResponse;
  if (!complete) return;
  const int status = parse_status_line(probe.in);
  if (status == 0) return finish(probe, false, "not an HTTP response", out);
  for (auto [low, high] : spec.expect_status)
    if (status >= low && status <= high) return finish(probe, true, fmt::format("HTTP {}", status), out);
  finish(probe, false, fmt::format("HTTP {}", status), out);
}

void HealthChecker::finish(Probe& probe, bool ok, std::string detail, std::vector<ProbeOutcome>& out) {
  close_socket(probe);
  probe.phase = Probe::Phase::idle;
  arm(probe, probe.next_start);

  CheckStatus& status = probe.status;
  const bool was_healthy = status.healthy;
  status.checked = true;
  ++status.probes;
  if (ok) {
    ++status.successes;
    status.failures = 0;
    if (!status.healthy && status.successes >= probe.target.spec.rise) status.healthy = true;
  } else {
    ++status.probe_failures;
    ++status.failures;
    status.successes = 0;
    if (status.healthy && status.failures >= probe.target.spec.fall) status.healthy = false;
  }
  status.last = detail;
  out.push_back({probe.key, ok, status.healthy != was_healthy, status.healthy, std::move(detail)});
}

std::vector<ProbeOutcome> HealthChecker::run_until(Clock::time_point until) {
  std::vector<ProbeOutcome> out;
  for (;;) {
    Clock::time_point now = Clock::now();
    // Due timers: a probe to start, or one in flight past its timeout.
    while (!timers_.empty() && timers_.begin()->first <= now) {
      auto [id, sequence] = timers_.begin()->second;
      timers_.erase(timers_.begin());
      auto it = probes_.find(id);
      if (it == probes_.end() || it->second.sequence != sequence) continue;
      Probe& probe = it->second;
      const HealthCheckSpec& spec = probe.target.spec;
      if (probe.phase == Probe::Phase::idle)
        start(probe, now, out);
      else if (spec.type == CheckType::udp && spec.silence_passes && probe.phase == Probe::Phase::receiving)
        finish(probe, true, fmt::format("no refusal in {} ms", spec.timeout.count()), out);
      else
        finish(probe, false, fmt::format("timeout after {} ms", spec.timeout.count()), out);
    }
    if (now >= until) return out;
    Clock::time_point wake = until;
    // Timers fire in batches (up to kTimerSlack late): probes started
    // together share one wakeup, and their events the next one.
    if (!timers_.empty()) wake = std::min(wake, std::max(timers_.begin()->first, now + kTimerSlack));
    const auto wait = std::chrono::ceil<std::chrono::milliseconds>(wake - now);
    epoll_event events[64];
    int ready = epoll_wait(epoll_fd_, events, 64, static_cast<int>(std::max<int64_t>(wait.count(), 0)));
    if (ready < 0 && errno != EINTR) {
      log::error("health checks: epoll_wait failed: {}", std::strerror(errno));
      return out;
    }
    for (int i = 0; i < ready; ++i) {
      auto it = probes_.find(events[i].data.u64);
      if (it == probes_.end() || it->second.fd < 0) continue;
      on_event(it->second, events[i].events, out);
    }
  }
}

}  // namespace tollgate
