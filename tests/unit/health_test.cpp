// Health: the service's health settings as configured, the circuit breaker
// on a controlled clock, and the active checker against real sockets on
// loopback (listening, closed, answering HTTP, silent, UDP echo).
#include "health.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <optional>
#include <thread>

#include "config.h"
#include "health_check.h"
#include "outlier.h"

using namespace tollgate;
using namespace std::chrono_literals;

namespace {

// --- configuration -----------------------------------------------------------

TEST(HealthConfig, RoundTripsAndDefaults) {
  auto config = parse_config(R"({"services": [{"address": "198.18.100.1:80/tcp",
      "health_check": {"type": "http", "path": "/healthz", "expect_status": [200, "300-302"], "interval_ms": 2000,
                       "timeout_ms": 300, "rise": 1, "fall": 2, "port": 8081},
      "outlier_detection": {"failure_percent": 30, "consecutive_failures": 4, "ejection_ms": 1000}}]})");
  ASSERT_TRUE(config) << config.error().message;
  const ServiceSpec& service = config->services[0];
  ASSERT_TRUE(service.health_check);
  EXPECT_EQ(service.health_check->type, CheckType::http);
  EXPECT_EQ(service.health_check->path, "/healthz");
  EXPECT_EQ(service.health_check->expect_status, (std::vector<std::pair<uint16_t, uint16_t>>{{200, 200}, {300, 302}}));
  EXPECT_EQ(service.health_check->interval, 2000ms);
  EXPECT_EQ(service.health_check->port, 8081);
  EXPECT_EQ(service.outlier_detection.failure_percent, 30u);
  EXPECT_EQ(service.outlier_detection.consecutive_failures, 4u);
  EXPECT_EQ(service.outlier_detection.min_failures, OutlierSpec{}.min_failures);
  EXPECT_TRUE(service.outlier_detection.enabled);
  auto again = parse_config_json(config_to_json(*config));
  ASSERT_TRUE(again) << again.error().message;
  EXPECT_EQ(*again, *config);

  auto plain = parse_config(R"({"services": [{"address": "198.18.100.1:80/tcp"}]})");
  ASSERT_TRUE(plain);
  EXPECT_FALSE(plain->services[0].health_check) << "no check unless asked for";
  EXPECT_TRUE(plain->services[0].outlier_detection.enabled) << "passive ejection is on by default";
}

TEST(HealthConfig, BadInputNamesTheField) {
  const std::pair<const char*, const char*> cases[] = {
      {R"({"type": "icmp"})", "health_check.type: unknown type 'icmp'"},
      {R"({"interval_ms": 1000})", "health_check.type: missing"},
      {R"({"type": "tcp", "interval_ms": 50})", "health_check.interval_ms: 50 is out of range"},
      {R"({"type": "tcp", "interval_ms": 1000, "timeout_ms": 2000})", "health_check.timeout_ms: 2000 ms is longer"},
      {R"({"type": "tcp", "fall": 0})", "health_check.fall: 0 is out of range"},
      {R"({"type": "tcp", "path": "/x"})", "health_check.path: not used by a tcp check"},
      {R"({"type": "http", "path": "no-slash"})", "health_check.path: expected an absolute path"},
      {R"({"type": "http", "path": "/a b"})", "health_check.path: expected an absolute path"},
      {R"({"type": "http", "expect_status": []})", "health_check.expect_status: expected a non-empty array"},
      {R"({"type": "http", "expect_status": ["299-200"]})", "health_check.expect_status[0]: expected a status code"},
      {R"({"type": "http", "expect_status": [700]})", "health_check.expect_status[0]: 700 is out of range"},
      {R"({"type": "udp", "payload": ""})", "health_check.payload: must not be empty"},
      {R"({"type": "udp", "port": 0})", "health_check.port: 0 is out of range"},
      {R"({"type": "tcp", "retries": 3})", "health_check.retries: unknown field"},
  };
  for (const auto& [check, error] : cases) {
    auto config = parse_config(
        fmt::format(R"({{"services": [{{"address": "198.18.100.1:80/tcp", "health_check": {}}}]}})", check));
    ASSERT_FALSE(config) << check;
    EXPECT_NE(config.error().message.find(std::string("services[0].") + error), std::string::npos)
        << check << " -> " << config.error().message;
  }
  const std::pair<const char*, const char*> outlier_cases[] = {
      {R"({"enabled": "yes"})", "outlier_detection.enabled: expected true or false"},
      {R"({"failure_percent": 0})", "outlier_detection.failure_percent: 0 is out of range"},
      {R"({"ejection_ms": 5000, "max_ejection_ms": 1000})", "outlier_detection.max_ejection_ms: 1000 ms is shorter"},
      {R"({"threshold": 1})", "outlier_detection.threshold: unknown field"},
  };
  for (const auto& [outlier, error] : outlier_cases) {
    auto config = parse_config(
        fmt::format(R"({{"services": [{{"address": "198.18.100.1:80/tcp", "outlier_detection": {}}}]}})", outlier));
    ASSERT_FALSE(config) << outlier;
    EXPECT_NE(config.error().message.find(std::string("services[0].") + error), std::string::npos)
        << outlier << " -> " << config.error().message;
  }
}

// --- the circuit breaker -------------------------------------------------------

class Breaker : public ::testing::Test {
 protected:
  Breaker() {
    service_ = *ServiceAddress::parse("198.18.100.1:80/tcp");
    for (int i = 0; i < 3; ++i) backends_.push_back(*Endpoint::parse(fmt::format("198.18.1.{}:8080", 11 + i)));
    totals_.resize(3);
    spec_.ejection = 1000ms;
    spec_.max_ejection = 3000ms;
  }

  // Advances the clock by `step` and feeds the current totals.
  std::vector<OutlierChange> tick(std::chrono::milliseconds step = 100ms) {
    now_ += step;
    std::vector<OutlierSample> samples;
    for (size_t i = 0; i < backends_.size(); ++i) samples.push_back({backends_[i], totals_[i], true});
    return detector_.update(service_, spec_, samples, now_);
  }
  Circuit circuit(int i) { return detector_.status({service_, backends_[i]})->circuit; }
  // A probe of backend `i` finishes now.
  std::optional<OutlierChange> probe(int i, bool ok) {
    return detector_.note_probe({service_, backends_[i]}, spec_, ok, ok ? "ok" : "connect: Connection refused", now_);
  }

  ServiceAddress service_;
  std::vector<Endpoint> backends_;
  std::vector<tg_backend_health> totals_;
  OutlierSpec spec_;
  OutlierDetector detector_;
  Clock::time_point now_{};
};

TEST_F(Breaker, OpensOnFailuresInARowHalfOpensAfterTheEjectionAndClosesOnSuccesses) {
  tick();
  totals_[0].handshakes = 100;  // a long healthy past
  tick();
  totals_[0].syn_resets = spec_.consecutive_failures - 1;
  EXPECT_TRUE(tick().empty()) << "opened before consecutive_failures";
  totals_[0].syn_retransmits = 1;
  auto changes = tick();
  ASSERT_EQ(changes.size(), 1u);
  EXPECT_EQ(changes[0].after, Circuit::open);
  EXPECT_NE(changes[0].reason.find("in a row"), std::string::npos) << changes[0].reason;

  EXPECT_TRUE(tick(900ms).empty()) << "half-open before the ejection time";
  changes = tick(100ms);
  ASSERT_EQ(changes.size(), 1u);
  EXPECT_EQ(changes[0].after, Circuit::half_open);

  EXPECT_FALSE(circuit_selectable(Circuit::half_open)) << "half-open takes no client flows";
  EXPECT_FALSE(circuit_selectable(Circuit::open));
  EXPECT_TRUE(circuit_selectable(Circuit::closed));

  // Handshakes do not close it (a client flow there is not the proof asked for): probes do.
  totals_[0].handshakes += 10 * spec_.half_open_successes;
  EXPECT_TRUE(tick().empty());
  EXPECT_EQ(circuit(0), Circuit::half_open);
  for (uint32_t i = 1; i < spec_.half_open_successes; ++i) EXPECT_FALSE(probe(0, true)) << "closed after " << i;
  auto closed = probe(0, true);
  ASSERT_TRUE(closed);
  EXPECT_EQ(closed->before, Circuit::half_open);
  EXPECT_EQ(closed->after, Circuit::closed);
  EXPECT_EQ(circuit(0), Circuit::closed);
  EXPECT_FALSE(probe(0, false)) << "a closed circuit ignores probes";
  EXPECT_EQ(circuit(0), Circuit::closed);
}

// UDP has no handshake: the data path counts the backend's datagrams back
// as successes and its ICMP port unreachables as failures, so a dead UDP
// server is ejected without an active check.
TEST_F(Breaker, UdpPortUnreachablesEjectAndUdpRepliesAreSuccesses) {
  service_ = *ServiceAddress::parse("198.18.100.1:53/udp");
  tick();
  totals_[0].udp_replies = 100;
  tick();
  totals_[0].udp_unreachable = spec_.consecutive_failures - 1;
  EXPECT_TRUE(tick().empty()) << "opened before consecutive_failures";
  totals_[0].udp_replies += 1;  // an answer in between: no longer in a row
  tick();
  totals_[0].udp_unreachable += spec_.consecutive_failures - 1;
  EXPECT_TRUE(tick().empty()) << "the reply broke the row";
  totals_[0].udp_unreachable += 1;
  auto changes = tick();
  ASSERT_EQ(changes.size(), 1u);
  EXPECT_EQ(changes[0].after, Circuit::open);
}

TEST_F(Breaker, AFailedProbeReopensAtOnceForTwiceAsLongAndSuccessesMustBeInARow) {
  tick();
  totals_[0].syn_resets = spec_.consecutive_failures;
  ASSERT_EQ(tick().size(), 1u);
  EXPECT_FALSE(probe(0, false)) << "an open circuit ignores probes";
  tick(1000ms);
  ASSERT_EQ(circuit(0), Circuit::half_open);
  EXPECT_FALSE(probe(0, true));
  auto reopened = probe(0, false);
  ASSERT_TRUE(reopened);
  EXPECT_EQ(reopened->after, Circuit::open);
  EXPECT_NE(reopened->reason.find("probe failed while half-open (connect: Connection refused); ejected for 2000 ms"),
            std::string::npos)
      << reopened->reason;
  EXPECT_EQ(circuit(0), Circuit::open) << "open at once, not at the next tick";
  tick(1900ms);
  EXPECT_EQ(circuit(0), Circuit::open);
  tick(100ms);
  ASSERT_EQ(circuit(0), Circuit::half_open);
  // The success before the failure does not count: half_open_successes again.
  for (uint32_t i = 1; i < spec_.half_open_successes; ++i) EXPECT_FALSE(probe(0, true));
  EXPECT_EQ(circuit(0), Circuit::half_open);
  ASSERT_TRUE(probe(0, true));
  EXPECT_EQ(circuit(0), Circuit::closed);
  EXPECT_EQ(detector_.status({service_, backends_[0]})->ejections, 2u);
}

TEST_F(Breaker, ADeadServerNeverBecomesSelectableAgain) {
  // Clients fail on backend 0 whenever it is selectable; while half-open
  // the agent probes it every 500 ms and the probe fails. Over two minutes
  // it is never let in again, and its ejection time keeps doubling.
  spec_.max_ejection = 60000ms;
  tick();
  totals_[0].handshakes = 100;
  bool ejected = false;
  int selectable_after_ejection = 0, trials = 0;
  std::chrono::milliseconds longest{0};
  auto opened = now_;
  for (int step = 0; step < 1200; ++step) {
    if (circuit_selectable(circuit(0))) {
      totals_[0].syn_resets += 5;  // a tick's worth of new clients, all refused
      if (ejected) ++selectable_after_ejection;
    }
    for (const auto& change : tick()) {
      if (change.after == Circuit::open) {
        ejected = true;
        opened = now_;
      }
      if (change.after == Circuit::half_open)
        longest = std::max(longest, std::chrono::duration_cast<std::chrono::milliseconds>(now_ - opened));
    }
    if (circuit(0) == Circuit::half_open && step % 5 == 0) {
      ASSERT_TRUE(probe(0, false)) << "a failed probe must open it again";
      ++trials;
      opened = now_;
    }
  }
  EXPECT_TRUE(ejected);
  EXPECT_EQ(selectable_after_ejection, 0) << "clients were sent to the dead backend again";
  EXPECT_EQ(circuit(0) == Circuit::closed, false);
  EXPECT_GE(trials, 5) << "half-open after 1, 2, 4, 8, 16 and 32 s of ejection";
  EXPECT_GE(longest, 32000ms) << "the ejection time doubles";
  EXPECT_EQ(circuit(1), Circuit::closed);
}

TEST_F(Breaker, AHalfOpenBackendCountsAsEjected) {
  spec_.max_ejected_percent = 100;
  tick();
  totals_[0].syn_resets = spec_.consecutive_failures;
  ASSERT_EQ(tick().size(), 1u);
  tick(1000ms);
  ASSERT_EQ(circuit(0), Circuit::half_open);
  totals_[1].syn_resets = spec_.consecutive_failures;
  ASSERT_EQ(tick().size(), 1u);
  EXPECT_EQ(circuit(1), Circuit::open);
  totals_[2].syn_resets = spec_.consecutive_failures;
  EXPECT_TRUE(tick().empty()) << "backend 2 is the last one in selection: 0 is half-open, 1 open";
  EXPECT_EQ(circuit(2), Circuit::closed);
}

TEST_F(Breaker, RatioInTheWindowAndItsMinimum) {
  spec_.consecutive_failures = 1000;  // only the ratio here
  tick();
  totals_[2].handshakes = 10;
  totals_[2].syn_resets = 4;
  tick();  // within one tick a success counts last: no run of failures
  EXPECT_EQ(circuit(2), Circuit::closed) << "4 of 14 is under 50%";
  totals_[2].syn_resets = 10;
  auto changes = tick();
  ASSERT_EQ(changes.size(), 1u) << "10 of 20 is 50%";
  EXPECT_NE(changes[0].reason.find("10 of 20"), std::string::npos) << changes[0].reason;

  // Failures older than the window do not count.
  Breaker::SetUp();
  totals_[0].syn_resets = 4;
  tick();
  tick(spec_.window);
  totals_[0].syn_resets = 8;
  tick();
  EXPECT_EQ(circuit(0), Circuit::closed) << "4 failures in the window are under min_failures";
}

TEST_F(Breaker, NeverEjectsTheLastSelectableBackendOrMoreThanTheServiceAllows) {
  tick();
  for (auto& totals : totals_) totals.syn_resets = 100;
  auto changes = tick();
  ASSERT_EQ(changes.size(), 1u) << "max_ejected_percent 50 of 3 backends: one";
  spec_.max_ejected_percent = 100;
  for (auto& totals : totals_) totals.syn_resets += 100;
  changes = tick();
  ASSERT_EQ(changes.size(), 1u) << "the last selectable backend stays in";
  EXPECT_EQ(circuit(0) == Circuit::closed || circuit(1) == Circuit::closed || circuit(2) == Circuit::closed, true);
}

TEST_F(Breaker, DisabledClosesEverything) {
  tick();
  totals_[0].syn_resets = 50;
  ASSERT_EQ(tick().size(), 1u);
  spec_.enabled = false;
  auto changes = tick();
  ASSERT_EQ(changes.size(), 1u);
  EXPECT_EQ(changes[0].after, Circuit::closed);
}

// --- the active checker on loopback ------------------------------------------

class Socket {
 public:
  explicit Socket(int type) : fd_(socket(AF_INET, type | SOCK_CLOEXEC, 0)) {
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(bind(fd_, reinterpret_cast<sockaddr*>(&address), sizeof(address)), 0);
    socklen_t length = sizeof(address);
    getsockname(fd_, reinterpret_cast<sockaddr*>(&address), &length);
    port_ = ntohs(address.sin_port);
    if (type == SOCK_STREAM) listen(fd_, 64);
  }
  ~Socket() { close(fd_); }
  int fd() const { return fd_; }
  Endpoint endpoint() const { return *Endpoint::parse(fmt::format("127.0.0.1:{}", port_)); }

 private:
  int fd_;
  uint16_t port_ = 0;
};

// Answers each connection with `response` (or holds it open, silent).
class Server {
 public:
  Server(std::string response) : listener_(SOCK_STREAM), response_(std::move(response)) {
    thread_ = std::thread([this] {
      while (!stop_) {
        int fd = accept4(listener_.fd(), nullptr, nullptr, SOCK_CLOEXEC);
        if (fd < 0) return;
        if (stop_) {
          close(fd);
          return;
        }
        char buffer[1024];
        ssize_t got = recv(fd, buffer, sizeof(buffer), 0);
        (void)got;
        if (!response_.empty()) {
          ssize_t sent = send(fd, response_.data(), response_.size(), MSG_NOSIGNAL);
          (void)sent;
          close(fd);
        } else {
          held_.push_back(fd);
        }
      }
    });
  }
  ~Server() {
    stop_ = true;
    shutdown(listener_.fd(), SHUT_RDWR);
    thread_.join();
    for (int fd : held_) close(fd);
  }
  Endpoint endpoint() const { return listener_.endpoint(); }

 private:
  Socket listener_;
  std::string response_;
  std::atomic<bool> stop_{false};
  std::vector<int> held_;
  std::thread thread_;
};

// Runs the checker until `key` has had `probes` probes (bounded).
const CheckStatus& probe(HealthChecker& checker, const BackendKey& key, uint64_t probes) {
  const auto deadline = Clock::now() + 10s;
  while (Clock::now() < deadline && checker.status(key)->probes < probes) checker.run_until(Clock::now() + 50ms);
  return *checker.status(key);
}

BackendKey key_for(const Endpoint& endpoint) { return {*ServiceAddress::parse("198.18.100.1:80/tcp"), endpoint}; }

HealthCheckSpec fast(CheckType type) {
  HealthCheckSpec spec;
  spec.type = type;
  spec.interval = 100ms;
  spec.timeout = 80ms;
  spec.rise = 2;
  spec.fall = 2;
  return spec;
}

TEST(HealthChecker, TcpListeningIsHealthyClosedPortFallsAfterFall) {
  Socket listening(SOCK_STREAM);
  Endpoint closed;
  {
    Socket gone(SOCK_STREAM);
    closed = gone.endpoint();
  }
  HealthChecker checker;
  std::map<BackendKey, CheckTarget> targets{
      {key_for(listening.endpoint()), {listening.endpoint(), fast(CheckType::tcp)}},
      {key_for(closed), {closed, fast(CheckType::tcp)}}};
  checker.sync(targets, Clock::now());
  const CheckStatus& good = probe(checker, key_for(listening.endpoint()), 3);
  EXPECT_TRUE(good.healthy);
  EXPECT_EQ(good.probe_failures, 0u) << good.last;
  EXPECT_EQ(good.last, "ok");
  const CheckStatus& bad = probe(checker, key_for(closed), 2);
  EXPECT_FALSE(bad.healthy);
  EXPECT_NE(bad.last.find("refused"), std::string::npos) << bad.last;
}

TEST(HealthChecker, HttpStatusDecidesAndSilenceTimesOut) {
  Server ok("HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n");
  Server failing("HTTP/1.0 503 Service Unavailable\r\n\r\n");
  Server garbage("SSH-2.0-OpenSSH\r\n");
  Server silent("");
  HealthChecker checker;
  std::map<BackendKey, CheckTarget> targets;
  for (const Server* server : {&ok, &failing, &garbage, &silent})
    targets[key_for(server->endpoint())] = {server->endpoint(), fast(CheckType::http)};
  checker.sync(targets, Clock::now());
  EXPECT_TRUE(probe(checker, key_for(ok.endpoint()), 3).healthy);
  EXPECT_EQ(checker.status(key_for(ok.endpoint()))->last, "HTTP 204");
  const CheckStatus& unavailable = probe(checker, key_for(failing.endpoint()), 2);
  EXPECT_FALSE(unavailable.healthy);
  EXPECT_EQ(unavailable.last, "HTTP 503");
  EXPECT_EQ(probe(checker, key_for(garbage.endpoint()), 2).last, "not an HTTP response");
  const CheckStatus& timed_out = probe(checker, key_for(silent.endpoint()), 2);
  EXPECT_FALSE(timed_out.healthy);
  EXPECT_EQ(timed_out.last, "timeout after 80 ms");
}

TEST(HealthChecker, UdpAnswerOrRefusal) {
  Socket echo(SOCK_DGRAM);
  std::atomic<bool> stop{false};
  std::thread responder([&] {
    timeval wait{0, 20000};
    setsockopt(echo.fd(), SOL_SOCKET, SO_RCVTIMEO, &wait, sizeof(wait));
    while (!stop) {
      char buffer[256];
      sockaddr_storage from{};
      socklen_t length = sizeof(from);
      ssize_t got = recvfrom(echo.fd(), buffer, sizeof(buffer), 0, reinterpret_cast<sockaddr*>(&from), &length);
      if (got <= 0) continue;
      const std::string answer = "pong " + std::string(buffer, static_cast<size_t>(got));
      sendto(echo.fd(), answer.data(), answer.size(), 0, reinterpret_cast<sockaddr*>(&from), length);
    }
  });
  Endpoint closed;
  {
    Socket gone(SOCK_DGRAM);
    closed = gone.endpoint();
  }
  HealthCheckSpec wrong_answer = fast(CheckType::udp);
  wrong_answer.expect = "hello";
  auto other_key = key_for(*Endpoint::parse(fmt::format("127.0.0.1:{}", echo.endpoint().port)));
  other_key.first = *ServiceAddress::parse("198.18.100.2:53/udp");
  HealthChecker checker;
  checker.sync({{key_for(echo.endpoint()), {echo.endpoint(), fast(CheckType::udp)}},
                {other_key, {echo.endpoint(), wrong_answer}},
                {key_for(closed), {closed, fast(CheckType::udp)}}},
               Clock::now());
  const CheckStatus& answered = probe(checker, key_for(echo.endpoint()), 3);
  const CheckStatus& unexpected = probe(checker, other_key, 2);
  const CheckStatus& refused = probe(checker, key_for(closed), 2);
  stop = true;
  responder.join();
  EXPECT_TRUE(answered.healthy) << answered.last;
  EXPECT_EQ(answered.probe_failures, 0u) << answered.last;
  EXPECT_FALSE(unexpected.healthy);
  EXPECT_EQ(unexpected.last, "answer without 'hello'");
  EXPECT_FALSE(refused.healthy);
  EXPECT_NE(refused.last.find("refused"), std::string::npos) << refused.last;
}

// The trial probe of a half-open UDP backend (no active check configured):
// a datagram that is not refused passes, as a UDP server need not answer
// an unknown request; a refusal (ICMP port unreachable) fails.
TEST(HealthChecker, UdpTrialProbePassesOnSilenceFailsOnRefusal) {
  Socket silent(SOCK_DGRAM);  // bound, never answers
  Endpoint closed;
  {
    Socket gone(SOCK_DGRAM);
    closed = gone.endpoint();
  }
  HealthCheckSpec trial = HealthMonitor::trial_probe(Protocol::udp);
  ASSERT_TRUE(trial.silence_passes);
  EXPECT_FALSE(HealthMonitor::trial_probe(Protocol::tcp).silence_passes);
  trial.interval = 100ms;
  trial.timeout = 80ms;
  HealthCheckSpec strict = fast(CheckType::udp);  // an active check: silence is a failure
  auto strict_key = key_for(silent.endpoint());
  strict_key.first = *ServiceAddress::parse("198.18.100.2:53/udp");
  HealthChecker checker;
  checker.sync({{key_for(silent.endpoint()), {silent.endpoint(), trial}},
                {strict_key, {silent.endpoint(), strict}},
                {key_for(closed), {closed, trial}}},
               Clock::now());
  const CheckStatus& quiet = probe(checker, key_for(silent.endpoint()), 2);
  const CheckStatus& timed_out = probe(checker, strict_key, 2);
  const CheckStatus& refused = probe(checker, key_for(closed), 2);
  EXPECT_TRUE(quiet.healthy) << quiet.last;
  EXPECT_EQ(quiet.probe_failures, 0u) << quiet.last;
  EXPECT_FALSE(timed_out.healthy) << timed_out.last;
  EXPECT_FALSE(refused.healthy);
  EXPECT_NE(refused.last.find("refused"), std::string::npos) << refused.last;
}

TEST(HealthChecker, ComesBackAfterRiseAndSyncKeepsOrResets) {
  Socket listening(SOCK_STREAM);
  Endpoint endpoint = listening.endpoint();
  HealthChecker checker;
  HealthCheckSpec spec = fast(CheckType::http);  // a TCP listener that never answers HTTP: times out
  checker.sync({{key_for(endpoint), {endpoint, spec}}}, Clock::now());
  ASSERT_FALSE(probe(checker, key_for(endpoint), 2).healthy);
  // The same target again: health and counts kept.
  checker.sync({{key_for(endpoint), {endpoint, spec}}}, Clock::now());
  EXPECT_EQ(checker.status(key_for(endpoint))->probes, 2u);
  // Now a TCP check: a changed spec starts afresh, and it passes.
  checker.sync({{key_for(endpoint), {endpoint, fast(CheckType::tcp)}}}, Clock::now());
  EXPECT_EQ(checker.status(key_for(endpoint))->probes, 0u);
  EXPECT_TRUE(probe(checker, key_for(endpoint), 2).healthy);
  checker.sync({}, Clock::now());
  EXPECT_EQ(checker.size(), 0u);
  EXPECT_EQ(checker.status(key_for(endpoint)), nullptr);
}

TEST(HealthChecker, UnhealthyComesBackOnlyAfterRiseSuccesses) {
  // A port with nothing behind it, then a listener on the same port.
  uint16_t port;
  {
    Socket gone(SOCK_STREAM);
    port = gone.endpoint().port;
  }
  Endpoint endpoint = *Endpoint::parse(fmt::format("127.0.0.1:{}", port));
  HealthCheckSpec spec = fast(CheckType::tcp);
  spec.rise = 3;
  HealthChecker checker;
  auto key = key_for(endpoint);
  checker.sync({{key, {endpoint, spec}}}, Clock::now());
  ASSERT_FALSE(probe(checker, key, 2).healthy);

  int listener = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int reuse = 1;
  setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &reuse, sizeof(reuse));
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  address.sin_port = htons(port);
  ASSERT_EQ(bind(listener, reinterpret_cast<sockaddr*>(&address), sizeof(address)), 0) << std::strerror(errno);
  listen(listener, 64);
  const uint64_t before = checker.status(key)->probes;
  const CheckStatus& one = probe(checker, key, before + 1);
  EXPECT_EQ(one.last, "ok");
  EXPECT_FALSE(one.healthy) << "back after one success; rise is 3";
  EXPECT_FALSE(probe(checker, key, before + 2).healthy);
  EXPECT_TRUE(probe(checker, key, before + 3).healthy);
  close(listener);
}

}  // namespace
