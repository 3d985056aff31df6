// The API's HTTP layer on a real Unix socket: requests reach the handler
// with the caller's credentials; malformed, oversized and slow ones are
// refused with the right status before it, and reported.
#include "http_server.h"

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <filesystem>
#include <thread>

using namespace tollgate;

namespace {

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
    limits.read_deadline = std::chrono::milliseconds(300);
    auto server = HttpServer::listen(
        path_, 0600,
        [this](const HttpRequest& request) {
          ++handled_;
          nlohmann::json echo = {{"method", request.method}, {"path", request.path},      {"query", request.query},
                                 {"body", request.body},     {"uid", request.caller.uid}, {"pid", request.caller.pid}};
          return HttpResponse{200, echo.dump()};
        },
        [this](const Caller&, const HttpResponse& response) { rejected_.push_back(response.status); }, limits);
    ASSERT_TRUE(server) << server.error().message;
    server_ = std::move(*server);
    thread_ = std::thread([this] { server_->serve(); });
  }
  void TearDown() override {
    if (server_) {
      server_->stop();
      thread_.join();
      server_.reset();
    }
    std::filesystem::remove_all(dir_);
  }

  // Sends `request` (then half-closes unless `keep_open`); returns the whole answer.
  std::string exchange(const std::string& request, bool keep_open = false) {
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    std::strncpy(address.sun_path, path_.c_str(), sizeof(address.sun_path) - 1);
    EXPECT_EQ(connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)), 0);
    size_t sent = 0;
    while (sent < request.size()) {
      ssize_t n = send(fd, request.data() + sent, request.size() - sent, MSG_NOSIGNAL);
      if (n <= 0) break;
      sent += static_cast<size_t>(n);
    }
    if (!keep_open) shutdown(fd, SHUT_WR);
    std::string answer;
    char buffer[4096];
    timeval timeout{5, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
    for (ssize_t n; (n = recv(fd, buffer, sizeof(buffer), 0)) > 0;) answer.append(buffer, static_cast<size_t>(n));
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

  std::string dir_, path_;
  std::unique_ptr<HttpServer> server_;
  std::thread thread_;
  std::atomic<int> handled_{0};
  std::vector<int> rejected_;
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
  EXPECT_EQ(rejected_.size(), std::size(cases));
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
  auto second = HttpServer::listen(path_, 0600, nullptr, nullptr);
  ASSERT_FALSE(second);
  EXPECT_NE(second.error().message.find("another process serves"), std::string::npos) << second.error().message;
}

TEST(PercentDecode, DecodesAndRefusesBadEscapes) {
  EXPECT_EQ(*percent_decode("198.18.100.1%3A80%2Ftcp"), "198.18.100.1:80/tcp");
  EXPECT_EQ(*percent_decode("%5b2001%3adb8%3a%3a1%5d"), "[2001:db8::1]");
  EXPECT_FALSE(percent_decode("abc%"));
  EXPECT_FALSE(percent_decode("abc%4"));
  EXPECT_FALSE(percent_decode("abc%zz"));
}

}  // namespace
