// Cost of the active health checks: 1,000 backends probed every second
// (TCP connect) from the one event loop, as CPU time of the probing thread
// over a run, as a share of one core. Target: under 2%.
//
// Baseline in the same run: the same connects done back to back, blocking,
// with nothing around them (the kernel's own cost of a probe); the ratio
// says what the event loop adds.
//
// Runs in a network namespace of its own (root): the 1,000 backends are
// 127.0.x.y there, answered by one listener; nothing leaves the namespace.
//   build/tollgate_bench_health [--backends 1000] [--seconds 5] [--runs 3]
#include <arpa/inet.h>
#include <fcntl.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sched.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <atomic>
#include <cstring>
#include <thread>
#include <vector>

#include "health_check.h"

using namespace tollgate;
using namespace std::chrono_literals;

namespace {

constexpr uint16_t kPort = 8080;

double thread_cpu_seconds() {
  timespec now{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &now);
  return static_cast<double>(now.tv_sec) + static_cast<double>(now.tv_nsec) / 1e9;
}

bool private_loopback() {
  if (unshare(CLONE_NEWNET) != 0) {
    std::fprintf(stderr, "unshare(CLONE_NEWNET): %s (run as root)\n", std::strerror(errno));
    return false;
  }
  int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  ifreq request{};
  std::strncpy(request.ifr_name, "lo", IFNAMSIZ - 1);
  request.ifr_flags = IFF_UP | IFF_LOOPBACK | IFF_RUNNING;
  bool up = ioctl(fd, SIOCSIFFLAGS, &request) == 0;
  close(fd);
  if (!up) std::fprintf(stderr, "cannot bring lo up: %s\n", std::strerror(errno));
  return up;
}

// Accepts and closes every connection until stopped.
class Listener {
 public:
  Listener() {
    fd_ = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_port = htons(kPort);  // any 127.x.y.z: the namespace has only lo
    if (bind(fd_, reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0 || listen(fd_, 4096) != 0)
      std::fprintf(stderr, "listener: %s\n", std::strerror(errno));
    thread_ = std::thread([this] {
      int epoll = epoll_create1(EPOLL_CLOEXEC);
      epoll_event event{};
      event.events = EPOLLIN;
      epoll_ctl(epoll, EPOLL_CTL_ADD, fd_, &event);
      while (!stop_) {
        epoll_event ready;
        if (epoll_wait(epoll, &ready, 1, 50) <= 0) continue;
        for (int client; (client = accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC)) >= 0;) close(client);
      }
      close(epoll);
    });
  }
  ~Listener() {
    stop_ = true;
    thread_.join();
    close(fd_);
  }

 private:
  int fd_ = -1;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

Endpoint backend(size_t i) { return *Endpoint::parse(fmt::format("127.0.{}.{}:{}", 1 + i / 250, 1 + i % 250, kPort)); }

struct Run {
  double cpu_share;     // of one core, probing thread
  double us_per_probe;  // probing thread CPU per probe
  double floor_us;      // blocking connect+close, back to back
  uint64_t probes;
  uint64_t failures;
};

Run measure(size_t backends, std::chrono::seconds seconds) {
  std::map<BackendKey, CheckTarget> targets;
  HealthCheckSpec spec;
  spec.type = CheckType::tcp;
  spec.interval = 1000ms;
  spec.timeout = 500ms;
  const auto service = *ServiceAddress::parse("198.18.100.1:80/tcp");
  for (size_t i = 0; i < backends; ++i) targets[{service, backend(i)}] = {backend(i), spec};

  Run run{};
  std::thread prober([&] {
    HealthChecker checker;
    checker.sync(targets, Clock::now());
    checker.run_until(Clock::now() + 1s);  // the first round spreads over one interval
    const double cpu_start = thread_cpu_seconds();
    uint64_t probes_start = 0;
    for (const auto& [key, target] : targets) probes_start += checker.status(key)->probes;
    const auto start = Clock::now();
    checker.run_until(start + seconds);
    const double wall = std::chrono::duration<double>(Clock::now() - start).count();
    const double cpu = thread_cpu_seconds() - cpu_start;
    for (const auto& [key, target] : targets) {
      run.probes += checker.status(key)->probes;
      run.failures += checker.status(key)->probe_failures;
    }
    run.probes -= probes_start;
    run.cpu_share = cpu / wall;
    run.us_per_probe = run.probes ? cpu / static_cast<double>(run.probes) * 1e6 : 0;
  });
  prober.join();

  std::thread floor([&] {
    const size_t count = std::min<size_t>(backends, 1000);
    const double cpu_start = thread_cpu_seconds();
    for (size_t i = 0; i < count; ++i) {
      int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
      linger abort{1, 0};
      setsockopt(fd, SOL_SOCKET, SO_LINGER, &abort, sizeof(abort));
      sockaddr_in address{};
      address.sin_family = AF_INET;
      address.sin_port = htons(kPort);
      std::memcpy(&address.sin_addr, backend(i).address.bytes.data(), 4);
      connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address));
      close(fd);
    }
    run.floor_us = (thread_cpu_seconds() - cpu_start) / static_cast<double>(count) * 1e6;
  });
  floor.join();
  return run;
}

double median(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  return values[values.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"tollgate benchmark: CPU cost of active health checks (needs root: private network namespace)"};
  size_t backends = 1000;
  int seconds = 5, runs = 3;
  app.add_option("--backends", backends, "backends probed")->check(CLI::Range(1, 60000));
  app.add_option("--seconds", seconds, "length of one run")->check(CLI::Range(1, 120));
  app.add_option("--runs", runs, "runs (the median is reported)")->check(CLI::Range(1, 20));
  CLI11_PARSE(app, argc, argv);
  if (!private_loopback()) return 1;
  Listener listener;

  std::vector<double> shares, per_probe, floors;
  uint64_t failures = 0;
  std::printf("%zu backends, TCP check every 1 s, %d runs of %d s\n", backends, runs, seconds);
  std::printf("%-5s %10s %12s %14s %12s %9s\n", "run", "probes", "cpu % core", "us/probe", "floor us", "ratio");
  for (int i = 0; i < runs; ++i) {
    Run run = measure(backends, std::chrono::seconds(seconds));
    shares.push_back(run.cpu_share * 100);
    per_probe.push_back(run.us_per_probe);
    floors.push_back(run.floor_us);
    failures += run.failures;
    std::printf("%-5d %10lu %12.2f %14.1f %12.1f %9.2f\n", i + 1, static_cast<unsigned long>(run.probes),
                run.cpu_share * 100, run.us_per_probe, run.floor_us, run.us_per_probe / run.floor_us);
  }
  const double share = median(shares);
  std::printf(
      "median: %.2f%% of one core (min %.2f, max %.2f; target < 2%%), %.1f us per probe = %.2fx a bare "
      "blocking connect (%.1f us); %lu probes failed\n",
      share, *std::min_element(shares.begin(), shares.end()), *std::max_element(shares.begin(), shares.end()),
      median(per_probe), median(per_probe) / median(floors), median(floors), static_cast<unsigned long>(failures));
  return share < 2.0 && failures == 0 ? 0 : 3;
}
