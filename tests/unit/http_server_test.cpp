// The API's HTTP layer on a real Unix socket: requests reach the handler
// with the caller's credentials; malformed, oversized and slow ones are
// refused with the right status before it, and reported. Connections are
// served at once: silent ones and slow handlers hold up only themselves; a
// uid beyond its share is refused at once, and root keeps its own; a caller
// that does not read its answer is cut at the write deadline.
#include "http_server.h"

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <unistd.h>

#include <condition_variable>
#include <cstdio>
#include <filesystem>
#include <future>
#include <mutex>
#include <thread>

using namespace tollgate;

namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

double milliseconds_since(Clock::time_point start) {
  return std::chrono::duration<double, std::milli>(Clock::now() - start).count();
}

// Client sockets, closed when the test ends however it ends.
struct OpenConnections {
  std::vector<int> fds;
  ~OpenConnections() {
    for (int fd : fds) close(fd);
  }
};

class HttpServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char pattern[] = "/tmp/tollgate-http-test-XXXXXX";
    ASSERT_NE(mkdtemp(pattern), nullptr);
    dir_ = pattern;
    path_ = dir_ + "/api.sock";
    HttpLimits limits;
    limits.max_body_bytes = 1000;
    limits.max_header_bytes = 2000;
    limits.read_deadline = milliseconds(300);
    start(limits, [this](const HttpRequest& request) {
      ++handled_;
      nlohmann::json echo = {{"method", request.method}, {"path", request.path},      {"query", request.query},
                             {"body", request.body},     {"uid", request.caller.uid}, {"pid", request.caller.pid}};
      return HttpResponse{200, echo.dump()};
    });
  }
  void TearDown() override {
    stop_server();
    std::filesystem::remove_all(dir_);
  }

  void start(HttpLimits limits, HttpServer::Handler handler) {
    auto server = HttpServer::listen(
        path_, access_, std::move(handler),
        [this](const Caller&, const HttpResponse& response) {
          std::lock_guard lock(rejected_mutex_);
          rejected_.push_back(response.status);
          rejected_bodies_.push_back(response.body);
        },
        limits);
    ASSERT_TRUE(server) << server.error().message;
    server_ = std::move(*server);
    served_ = std::async(std::launch::async, [this] { server_->serve(); });
  }
  void stop_server() {
    if (!server_) return;
    server_->stop();
    served_.wait();
    server_.reset();
  }
  // The server the fixture started, replaced by one with these limits and handler.
  void restart(HttpLimits limits, HttpServer::Handler handler) {
    stop_server();
    start(limits, std::move(handler));
  }

  // A client connection (-1 on failure). Its timeouts make a server that
  // does not answer fail the test rather than hang it; connect's is the
  // send timeout, for a full backlog.
  int connect_client() {
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    timeval receive_timeout{5, 0}, send_timeout{1, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &receive_timeout, sizeof(receive_timeout));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &send_timeout, sizeof(send_timeout));
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    std::strncpy(address.sun_path, path_.c_str(), sizeof(address.sun_path) - 1);
    if (connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0) {
      ADD_FAILURE() << "connect: " << std::strerror(errno);
      close(fd);
      return -1;
    }
    return fd;
  }
  static void send_text(int fd, const std::string& text) {
    size_t sent = 0;
    while (sent < text.size()) {
      ssize_t n = send(fd, text.data() + sent, text.size() - sent, MSG_NOSIGNAL);
      if (n <= 0) break;
      sent += static_cast<size_t>(n);
    }
  }
  // Everything until the server closes (or the receive timeout).
  static std::string read_answer(int fd) {
    std::string answer;
    char buffer[4096];
    for (ssize_t n; (n = recv(fd, buffer, sizeof(buffer), 0)) > 0;) answer.append(buffer, static_cast<size_t>(n));
    return answer;
  }

  // A client connection from `uid`. When the test runs as root, this
  // thread takes that effective uid for the connect alone: the raw syscall
  // changes the calling thread only, where setresuid(3) changes them all.
  // The socket's peer credentials are the connecting thread's.
  int connect_as(uid_t uid) {
    if (geteuid() != 0 || uid == 0) return connect_client();
    if (syscall(SYS_setresuid, -1, uid, -1) != 0) {
      ADD_FAILURE() << "setresuid: " << std::strerror(errno);
      return -1;
    }
    int fd = connect_client();
    if (syscall(SYS_setresuid, -1, 0, -1) != 0) std::abort();  // the rest of the tests must not run as `uid`
    return fd;
  }
  // The socket and its directory open to every uid, for connect_as.
  void open_to_everyone() {
    access_ = {0666};
    ASSERT_EQ(chmod(dir_.c_str(), 0755), 0);
  }

  // Sends `request` (then half-closes unless `keep_open`); returns the whole answer.
  std::string exchange(const std::string& request, bool keep_open = false) {
    return exchange_as(getuid(), request, keep_open);
  }
  std::string exchange_as(uid_t uid, const std::string& request, bool keep_open = false) {
    int fd = connect_as(uid);
    if (fd < 0) return "";
    send_text(fd, request);
    if (!keep_open) shutdown(fd, SHUT_WR);
    std::string answer = read_answer(fd);
    close(fd);
    return answer;
  }
  static int status_of(const std::string& answer) {
    if (answer.rfind("HTTP/1.1 ", 0) != 0) return -1;
    return std::stoi(answer.substr(9, 3));
  }
  static nlohmann::json body_of(const std::string& answer) {
    return nlohmann::json::parse(answer.substr(answer.find("\r\n\r\n") + 4));
  }
  std::vector<int> rejected() {
    std::lock_guard lock(rejected_mutex_);
    return rejected_;
  }
  std::vector<std::string> rejected_bodies() {
    std::lock_guard lock(rejected_mutex_);
    return rejected_bodies_;
  }

  std::string dir_, path_;
  SocketAccess access_{0600};
  std::unique_ptr<HttpServer> server_;
  std::future<void> served_;  // ready when serve() returned
  std::atomic<int> handled_{0};
  std::mutex rejected_mutex_;  // the server reports from its connections' threads
  std::vector<int> rejected_;
  std::vector<std::string> rejected_bodies_;
};

TEST_F(HttpServerTest, ARequestReachesTheHandlerWithTheCaller) {
  std::string answer = exchange(
      "POST /v1/services/198.18.100.1%3A80%2Ftcp?limit=3 HTTP/1.1\r\nHost: x\r\nContent-Length: 7\r\n\r\n{\"a\":1}");
  ASSERT_EQ(status_of(answer), 200) << answer;
  auto echo = body_of(answer);
  EXPECT_EQ(echo["method"], "POST");
  EXPECT_EQ(echo["path"], "/v1/services/198.18.100.1%3A80%2Ftcp");
  EXPECT_EQ(echo["query"], "limit=3");
  EXPECT_EQ(echo["body"], "{\"a\":1}");
  EXPECT_EQ(echo["uid"], getuid());
  EXPECT_EQ(echo["pid"], getpid());
  EXPECT_NE(answer.find("Content-Type: application/json"), std::string::npos);
}

TEST_F(HttpServerTest, BadRequestsAreRefusedBeforeTheHandler) {
  struct Case {
    std::string request;
    int status;
    std::string error;
  };
  const Case cases[] = {
      {"GARBAGE\r\n\r\n", 400, "malformed request line"},
      {"GET /v1/status HTTP/2.0\r\n\r\n", 400, "unsupported HTTP version"},
      {"GET v1/status HTTP/1.1\r\n\r\n", 400, "must start with '/'"},
      {"get /v1/status HTTP/1.1\r\n\r\n", 400, "malformed method"},
      {"GET /v1/status HTTP/1.1\r\nno colon here\r\n\r\n", 400, "malformed header line"},
      {"POST /v1/services HTTP/1.1\r\nContent-Length: -5\r\n\r\n", 400, "malformed Content-Length"},
      {"POST /v1/services HTTP/1.1\r\nContent-Length: 1001\r\n\r\n", 413, "exceeds the limit of 1000 bytes"},
      {"POST /v1/services HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", 501, "Transfer-Encoding"},
      {"GET /v1/status HTTP/1.1\r\nX-Big: " + std::string(3000, 'a') + "\r\n\r\n", 431, "exceed 2000 bytes"},
  };
  for (const auto& test_case : cases) {
    std::string answer = exchange(test_case.request);
    EXPECT_EQ(status_of(answer), test_case.status) << test_case.request.substr(0, 60) << "\n" << answer;
    EXPECT_NE(answer.find(test_case.error), std::string::npos) << answer;
  }
  EXPECT_EQ(handled_, 0);
  EXPECT_EQ(rejected().size(), std::size(cases));
}

// Whatever a handler throws, the caller gets a 500 in JSON, the server goes
// on, and the agent does not abort.
TEST_F(HttpServerTest, AHandlerThatThrowsIsA500AndTheNextIsServed) {
  // The fixture's echo handler dumps the body: invalid UTF-8 makes nlohmann throw.
  std::string answer = exchange("POST /v1/services HTTP/1.1\r\nContent-Length: 2\r\n\r\n\xff\xfe");
  EXPECT_EQ(status_of(answer), 500) << answer;
  EXPECT_NE(body_of(answer)["error"].get<std::string>().find("internal error: POST /v1/services"), std::string::npos)
      << answer;
  EXPECT_EQ(status_of(exchange("GET /v1/status HTTP/1.1\r\n\r\n")), 200);

  restart(HttpLimits{}, [](const HttpRequest& request) -> HttpResponse {
    if (request.path == "/v1/int") throw 42;
    throw std::runtime_error("bad bytes \xff in " + request.path);
  });
  answer = exchange("GET /v1/\xc0 HTTP/1.1\r\n\r\n");
  EXPECT_EQ(status_of(answer), 500) << answer;
  EXPECT_NE(body_of(answer)["error"].get<std::string>().find("bad bytes"), std::string::npos) << answer;
  answer = exchange("GET /v1/int HTTP/1.1\r\n\r\n");
  EXPECT_EQ(status_of(answer), 500) << answer;
  EXPECT_NE(body_of(answer)["error"].get<std::string>().find("internal error: GET /v1/int"), std::string::npos)
      << answer;
}

TEST_F(HttpServerTest, ASlowRequestIsCutOffAndTheNextIsServed) {
  // Headers never finish: the deadline answers 408, and the server goes on.
  std::string answer = exchange("GET /v1/status HTTP/1.1\r\nHost: x\r\n", /*keep_open=*/true);
  EXPECT_EQ(status_of(answer), 408) << answer;
  answer = exchange("POST /v1/x HTTP/1.1\r\nContent-Length: 10\r\n\r\nabc", /*keep_open=*/true);
  EXPECT_EQ(status_of(answer), 408) << answer;
  EXPECT_EQ(status_of(exchange("GET /v1/status HTTP/1.1\r\n\r\n")), 200);
}

TEST_F(HttpServerTest, ASecondServerOnALiveSocketIsRefused) {
  auto second = HttpServer::listen(path_, {0600}, nullptr, nullptr);
  ASSERT_FALSE(second);
  EXPECT_NE(second.error().message.find("another process serves"), std::string::npos) << second.error().message;
}

// What a handler in a test shares with it: the handler may outlive the
// test's locals when the test fails early.
struct Gate {
  std::mutex mutex;
  std::condition_variable changed;
  int inside = 0;
  int most_inside = 0;
  bool released = false;
};

HttpResponse empty_ok(const HttpRequest&) { return {200, "{}"}; }

TEST_F(HttpServerTest, SilentConnectionsCostThemselvesNotTheApi) {
  constexpr int kSilent = 100;
  HttpLimits limits;
  limits.read_deadline = milliseconds(2000);
  limits.connections.per_uid = kSilent + 1;  // all from the test's uid, which need not be root
  restart(limits, empty_ok);
  OpenConnections silent;
  const auto opened = Clock::now();
  for (int i = 0; i < kSilent; ++i) {
    int fd = connect_client();
    ASSERT_GE(fd, 0) << "connection " << i;
    silent.fds.push_back(fd);
    if (i % 2) send_text(fd, "GET /v1/status HTTP/1.1\r\nHost: x\r\n");  // half a request, never finished
  }

  const auto asked = Clock::now();
  std::string answer = exchange("GET /v1/status HTTP/1.1\r\n\r\n");
  const double latency = milliseconds_since(asked);
  std::printf("a request with %d silent connections open: answered in %.2f ms\n", kSilent, latency);
  EXPECT_EQ(status_of(answer), 200) << answer;
  EXPECT_LT(latency, 100.0);

  // Each silent one is answered 408 at its own deadline, not before (the
  // first one's began after `opened`; the others' later still).
  for (size_t i = 0; i < silent.fds.size(); ++i) {
    std::string late = read_answer(silent.fds[i]);
    if (i == 0) {
      EXPECT_GE(milliseconds_since(opened), 2000.0 - 50.0);
    }
    EXPECT_EQ(status_of(late), 408) << "connection " << i << ": " << late;
    EXPECT_NE(late.find("read deadline"), std::string::npos) << late;
  }
  std::printf("their 408s: all within %.0f ms of opening them (deadline 2000 ms)\n", milliseconds_since(opened));
  EXPECT_EQ(rejected(), std::vector<int>(kSilent, 408));
}

TEST_F(HttpServerTest, SlowHandlersRunAtOnce) {
  constexpr int kRequests = 8;
  auto gate = std::make_shared<Gate>();
  restart(HttpLimits{}, [gate](const HttpRequest&) {
    std::unique_lock lock(gate->mutex);
    gate->most_inside = std::max(gate->most_inside, ++gate->inside);
    gate->changed.notify_all();
    // Served one at a time, they would never all be in: give up rather than hang.
    bool all_in = gate->changed.wait_for(lock, std::chrono::seconds(3), [&] { return gate->most_inside >= kRequests; });
    --gate->inside;
    return HttpResponse{all_in ? 200 : 500, "{}"};
  });
  std::vector<std::future<std::string>> answers;
  for (int i = 0; i < kRequests; ++i)
    answers.push_back(std::async(std::launch::async, [this] { return exchange("GET /v1/status HTTP/1.1\r\n\r\n"); }));
  for (auto& answer : answers) {
    std::string text = answer.get();
    EXPECT_EQ(status_of(text), 200) << text;
  }
  std::lock_guard lock(gate->mutex);
  EXPECT_EQ(gate->most_inside, kRequests);
}

TEST_F(HttpServerTest, BeyondTheCapAConnectionIsRefusedAtOnce) {
  HttpLimits limits;
  limits.connections = {.total = 4, .reserved_for_root = 0, .per_uid = 5};  // the total binds, whoever runs it
  limits.read_deadline = milliseconds(5000);
  restart(limits, empty_ok);
  OpenConnections silent;
  for (size_t i = 0; i < limits.connections.total; ++i) {
    int fd = connect_client();
    ASSERT_GE(fd, 0);
    silent.fds.push_back(fd);
  }

  // Accepted after the silent ones (the backlog is in order), so over the cap.
  const auto asked = Clock::now();
  std::string answer = exchange("GET /v1/status HTTP/1.1\r\n\r\n");
  const double latency = milliseconds_since(asked);
  std::printf("over the cap of %zu connections: refused in %.2f ms\n", limits.connections.total, latency);
  ASSERT_EQ(status_of(answer), 503) << answer;
  EXPECT_NE(body_of(answer).value("error", "").find("4 connections"), std::string::npos) << answer;
  EXPECT_LT(latency, 1000.0);  // far below the read deadline that would free a slot
  EXPECT_EQ(rejected(), std::vector<int>{503});

  // A connection that ends frees its slot (once its thread has seen it go).
  close(silent.fds.back());
  silent.fds.pop_back();
  int status = 0;
  for (auto until = Clock::now() + std::chrono::seconds(2); status != 200 && Clock::now() < until;)
    status = status_of(exchange("GET /v1/status HTTP/1.1\r\n\r\n"));
  EXPECT_EQ(status, 200);
}

TEST_F(HttpServerTest, StopAnswersWhatIsReadingAndWaitsForWhatIsHandled) {
  HttpLimits limits;
  limits.read_deadline = milliseconds(10000);
  auto gate = std::make_shared<Gate>();
  restart(limits, [gate](const HttpRequest&) {
    std::unique_lock lock(gate->mutex);
    ++gate->inside;
    gate->changed.notify_all();
    gate->changed.wait_for(lock, std::chrono::seconds(5), [&] { return gate->released; });
    return HttpResponse{200, "{}"};
  });
  OpenConnections silent;
  for (int i = 0; i < 10; ++i) {
    int fd = connect_client();
    ASSERT_GE(fd, 0);
    silent.fds.push_back(fd);
    if (i % 2) send_text(fd, "GET /v1/status HTTP/1.1\r\n");
  }
  // Last in line: once it is in the handler, the silent ones are being read.
  auto handled = std::async(std::launch::async, [this] { return exchange("GET /v1/status HTTP/1.1\r\n\r\n"); });
  {
    std::unique_lock lock(gate->mutex);
    ASSERT_TRUE(gate->changed.wait_for(lock, std::chrono::seconds(5), [&] { return gate->inside == 1; }));
  }

  const auto stopped = Clock::now();
  server_->stop();
  for (int fd : silent.fds) {
    std::string answer = read_answer(fd);
    EXPECT_EQ(status_of(answer), 503) << answer;
    EXPECT_NE(answer.find("shutting down"), std::string::npos) << answer;
  }
  std::printf("stop: %zu reading connections answered in %.2f ms\n", silent.fds.size(), milliseconds_since(stopped));
  // serve() still waits for the handler, which then answers.
  EXPECT_EQ(served_.wait_for(milliseconds(0)), std::future_status::timeout);
  {
    std::lock_guard lock(gate->mutex);
    gate->released = true;
    gate->changed.notify_all();
  }
  EXPECT_EQ(status_of(handled.get()), 200);
  ASSERT_EQ(served_.wait_for(std::chrono::seconds(5)), std::future_status::ready);
  server_.reset();
  EXPECT_FALSE(std::filesystem::exists(path_));
  EXPECT_EQ(rejected(), std::vector<int>(10, 503));
}

// Waits (a bounded while) until `done` holds; whether it did.
template <typename Condition>
bool eventually(Condition done, milliseconds within = milliseconds(5000)) {
  for (auto until = Clock::now() + within; Clock::now() < until;) {
    if (done()) return true;
    std::this_thread::sleep_for(milliseconds(5));
  }
  return done();
}

TEST_F(HttpServerTest, AUidBeyondItsLimitIsRefusedAtOnceAndRootKeepsItsShare) {
  const bool root = geteuid() == 0;
  const uid_t first = root ? 65534 : geteuid();
  HttpLimits limits;
  limits.connections = {.total = 8, .reserved_for_root = 2, .per_uid = 3};
  limits.read_deadline = milliseconds(5000);
  open_to_everyone();
  restart(limits, empty_ok);
  OpenConnections silent;
  for (int i = 0; i < 3; ++i) {
    int fd = connect_as(first);
    ASSERT_GE(fd, 0) << "connection " << i;
    silent.fds.push_back(fd);
  }

  // Accepted after the silent ones (the backlog is in order): one too many for its uid.
  auto asked = Clock::now();
  std::string answer = exchange_as(first, "GET /v1/status HTTP/1.1\r\n\r\n");
  double latency = milliseconds_since(asked);
  std::printf("uid %u's 4th connection (limit 3): refused in %.2f ms\n", first, latency);
  ASSERT_EQ(status_of(answer), 503) << answer;
  EXPECT_NE(answer.find(fmt::format("uid {} has 3 API connections open", first)), std::string::npos) << answer;
  EXPECT_LT(latency, 1000.0);  // far below the read deadline that would free one
  EXPECT_EQ(server_->counters().refused_uid_limit, 1u);
  if (!root) GTEST_SKIP() << "the rest needs root: connections from two more uids, and root's own";

  // A second uid takes the 3 left of the 6 not kept for root; a third finds none.
  for (int i = 0; i < 3; ++i) {
    int fd = connect_as(65533);
    ASSERT_GE(fd, 0) << "connection " << i;
    silent.fds.push_back(fd);
  }
  answer = exchange_as(65532, "GET /v1/status HTTP/1.1\r\n\r\n");
  ASSERT_EQ(status_of(answer), 503) << answer;
  EXPECT_NE(answer.find("2 of them kept for root"), std::string::npos) << answer;
  EXPECT_EQ(server_->counters().refused_capacity, 1u);

  // Root gets its 2, the second while the first stays open.
  int root_silent = connect_as(0);
  ASSERT_GE(root_silent, 0);
  silent.fds.push_back(root_silent);
  asked = Clock::now();
  answer = exchange_as(0, "GET /v1/status HTTP/1.1\r\n\r\n");
  latency = milliseconds_since(asked);
  std::printf("root with 6 connections of two other uids and 1 of its own open: answered in %.2f ms\n", latency);
  EXPECT_EQ(status_of(answer), 200) << answer;
}

// A caller that reconnects in a loop is refused each time, counted each
// time, and reported (audited) once a second.
TEST_F(HttpServerTest, RefusalsAtAcceptAreReportedOnceASecondPerUid) {
  HttpLimits limits;
  limits.connections = {.total = 1, .reserved_for_root = 0, .per_uid = 1};
  limits.read_deadline = milliseconds(10000);
  restart(limits, empty_ok);
  OpenConnections silent;
  int fd = connect_client();
  ASSERT_GE(fd, 0);
  silent.fds.push_back(fd);

  constexpr int kAttempts = 50;
  const auto started = Clock::now();
  for (int i = 0; i < kAttempts; ++i)
    ASSERT_EQ(status_of(exchange("GET /v1/status HTTP/1.1\r\n\r\n")), 503) << "attempt " << i;
  const double seconds = milliseconds_since(started) / 1000.0;
  const auto& counters = server_->counters();
  EXPECT_EQ(counters.refused_uid_limit + counters.refused_capacity, uint64_t{kAttempts});
  const size_t reported = rejected().size();
  std::printf("%d refused connections in %.3f s: %zu reported\n", kAttempts, seconds, reported);
  EXPECT_GE(reported, 1u);
  EXPECT_LE(reported, 1 + static_cast<size_t>(seconds));  // one a second, whatever the machine's speed

  // The next report, a second on, says how many were not.
  ASSERT_TRUE(eventually(
      [&] { return status_of(exchange("GET /v1/status HTTP/1.1\r\n\r\n")) == 503 && rejected().size() > reported; },
      milliseconds(3000)));
  const std::string last = rejected_bodies().back();
  EXPECT_NE(last.find("more connections of uid"), std::string::npos) << last;
}

TEST_F(HttpServerTest, ACallerThatDoesNotReadItsAnswerIsCutAtTheWriteDeadline) {
  HttpLimits limits;
  limits.write_deadline = milliseconds(300);
  limits.connections = {.total = 1, .reserved_for_root = 0, .per_uid = 1};
  // Far more than a Unix socket buffers: the send blocks until the caller reads.
  restart(limits, [](const HttpRequest&) { return HttpResponse{200, std::string(8 << 20, 'x')}; });
  OpenConnections reader;
  int fd = connect_client();
  ASSERT_GE(fd, 0);
  reader.fds.push_back(fd);
  const auto asked = Clock::now();
  send_text(fd, "GET /v1/conntrack?limit=100000 HTTP/1.1\r\n\r\n");  // and never read
  ASSERT_TRUE(eventually([this] { return server_->counters().write_deadlines == 1; }));
  const double cut = milliseconds_since(asked);
  std::printf("an answer not read: connection cut after %.0f ms (write deadline 300 ms)\n", cut);
  EXPECT_GE(cut, 300.0 - 50.0);

  // Its one slot is free again (once its thread has been joined).
  int status = 0;
  for (auto until = Clock::now() + std::chrono::seconds(2); status != 200 && Clock::now() < until;)
    status = status_of(exchange("GET /v1/status HTTP/1.1\r\n\r\n"));
  EXPECT_EQ(status, 200);
}

TEST_F(HttpServerTest, MemoryIsGivenBackAfterALargeRequest) {
  HttpLimits limits;
  limits.max_body_bytes = 1 << 20;
  restart(limits, empty_ok);
  EXPECT_EQ(status_of(exchange("GET /v1/status HTTP/1.1\r\n\r\n")), 200);
  ASSERT_TRUE(eventually([this] { return server_->counters().open == 0; }));
  EXPECT_EQ(server_->counters().memory_trims, 0u);  // a small request leaves nothing worth it

  const std::string body(512 * 1024, 'x');
  EXPECT_EQ(status_of(exchange(fmt::format("POST /v1/x HTTP/1.1\r\nContent-Length: {}\r\n\r\n{}", body.size(), body))),
            200);
  EXPECT_TRUE(eventually([this] { return server_->counters().memory_trims == 1; }));
}

TEST_F(HttpServerTest, TheSocketHasTheModeAndGroupAsked) {
  const gid_t group = geteuid() == 0 ? 65534 : getegid();
  access_ = {0660, group};
  restart(HttpLimits{}, empty_ok);
  struct stat info {};
  ASSERT_EQ(stat(path_.c_str(), &info), 0);
  EXPECT_TRUE(S_ISSOCK(info.st_mode));
  EXPECT_EQ(info.st_mode & 07777, 0660u);
  EXPECT_EQ(info.st_gid, group);
  EXPECT_EQ(status_of(exchange("GET /v1/status HTTP/1.1\r\n\r\n")), 200);
}

TEST_F(HttpServerTest, LimitsThatMakeNoSenseAreRefused) {
  HttpLimits limits;
  limits.connections = {.total = 4, .reserved_for_root = 5, .per_uid = 1};
  auto server = HttpServer::listen(dir_ + "/other.sock", {0600}, empty_ok, nullptr, limits);
  ASSERT_FALSE(server);
  EXPECT_NE(server.error().message.find("5 connections reserved for root"), std::string::npos)
      << server.error().message;
  EXPECT_FALSE(std::filesystem::exists(dir_ + "/other.sock"));
}

TEST(GroupByName, NamesAndNumbersResolveAndUnknownNamesAreErrors) {
  EXPECT_EQ(*group_by_name("root"), 0u);
  EXPECT_EQ(*group_by_name("0"), 0u);
  EXPECT_EQ(*group_by_name("4242"), 4242u);  // a number need not be in the database
  auto unknown = group_by_name("no-such-group-for-tollgate");
  ASSERT_FALSE(unknown);
  EXPECT_NE(unknown.error().message.find("unknown group 'no-such-group-for-tollgate'"), std::string::npos)
      << unknown.error().message;
  EXPECT_FALSE(group_by_name(""));
  EXPECT_FALSE(group_by_name("99999999999"));
}

TEST(PercentDecode, DecodesAndRefusesBadEscapes) {
  EXPECT_EQ(*percent_decode("198.18.100.1%3A80%2Ftcp"), "198.18.100.1:80/tcp");
  EXPECT_EQ(*percent_decode("%5b2001%3adb8%3a%3a1%5d"), "[2001:db8::1]");
  EXPECT_FALSE(percent_decode("abc%"));
  EXPECT_FALSE(percent_decode("abc%4"));
  EXPECT_FALSE(percent_decode("abc%zz"));
}

}  // namespace
