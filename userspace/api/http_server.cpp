#include "http_server.h"

#include <fcntl.h>
#include <grp.h>
#include <malloc.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <system_error>

#include "json_text.h"
#include "log.h"

namespace tollgate {
namespace {

using Clock = std::chrono::steady_clock;

// A request and answer of this many bytes or more leave memory worth giving back.
constexpr size_t kLargeBytes = 64 * 1024;
// How long after a large request its memory is given back while other
// connections are open (at once when the last one ends).
constexpr auto kTrimInterval = std::chrono::seconds(5);
// Refusals at accept reported per uid: at most one in this while.
constexpr auto kRefusalReportInterval = std::chrono::seconds(1);
// Uids whose refusals are remembered; beyond, the memory starts afresh.
constexpr size_t kMaxRefusalReports = 4096;

std::string_view reason_phrase(int status) {
  switch (status) {
    case 200: return "OK";
    case 201: return "Created";
    case 400: return "Bad Request";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 411: return "Length Required";
    case 413: return "Content Too Large";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 503: return "Service Unavailable";
  }
  return "Status";
}

HttpResponse error_response(int status, std::string message) {
  return {status, dump_json(nlohmann::json{{"error", std::move(message)}}) + "\n"};
}

// The handler's answer; whatever it throws (a bug: handlers return errors)
// is logged and answered 500 instead of ending the agent.
HttpResponse handle_guarded(const HttpServer::Handler& handler, const HttpRequest& request) {
  std::string why;
  try {
    return handler(request);
  } catch (const std::exception& error) {
    why = error.what();
  } catch (...) {
    why = "an exception that is not a std::exception";
  }
  const std::string request_name = fmt::format("{} {}", request.method, request.path);
  log::error("API: {} failed: {}", dump_json(request_name), dump_json(why));
  return error_response(500, fmt::format("internal error: {}: {}", request_name, why));
}

int milliseconds_until(Clock::time_point deadline) {
  auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - Clock::now()).count();
  return left > 0 ? static_cast<int>(left) : 0;
}

// Sends before `deadline`: a caller that does not read its answer holds its
// connection (and stop()) only until then.
enum class SendResult { sent, closed, late };
SendResult send_all(int fd, std::string_view data, Clock::time_point deadline) {
  size_t sent = 0;
  while (sent < data.size()) {
    ssize_t n = send(fd, data.data() + sent, data.size() - sent, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n > 0) {
      sent += static_cast<size_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK)) return SendResult::closed;  // nothing to tell
    int left = milliseconds_until(deadline);
    if (left == 0) return SendResult::late;
    pollfd descriptor{fd, POLLOUT, 0};
    if (poll(&descriptor, 1, left) < 0 && errno != EINTR) return SendResult::closed;
  }
  return SendResult::sent;
}

SendResult send_response(int fd, const HttpResponse& response, Clock::time_point deadline) {
  const std::string head =
      fmt::format("HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                  response.status, reason_phrase(response.status), response.content_type, response.body.size());
  // Apart: a large body is not copied once more.
  SendResult result = send_all(fd, head, deadline);
  return result == SendResult::sent ? send_all(fd, response.body, deadline) : result;
}

// The peer's uid, or -1 (nobody's, never root's) when the kernel does not say.
uid_t peer_uid(int fd) {
  struct ucred credentials {};
  socklen_t length = sizeof(credentials);
  if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &credentials, &length) != 0) return static_cast<uid_t>(-1);
  return credentials.uid;
}

std::string lower(std::string_view text) {
  std::string out(text);
  for (auto& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

std::string_view trim(std::string_view text) {
  while (!text.empty() && (text.front() == ' ' || text.front() == '\t')) text.remove_prefix(1);
  while (!text.empty() && (text.back() == ' ' || text.back() == '\t')) text.remove_suffix(1);
  return text;
}

// Reads more bytes into `buffer` before `deadline`, unless `stop_fd` (the
// stop pipe) is readable first.
enum class ReadResult { ok, closed, late, stopping };
ReadResult read_more(int fd, int stop_fd, std::string& buffer, Clock::time_point deadline) {
  int left = milliseconds_until(deadline);
  if (left == 0) return ReadResult::late;
  pollfd descriptors[2] = {{fd, POLLIN, 0}, {stop_fd, POLLIN, 0}};
  int ready = poll(descriptors, 2, left);
  if (ready == 0) return ReadResult::late;
  if (ready < 0) return errno == EINTR ? ReadResult::ok : ReadResult::closed;
  if (descriptors[1].revents) return ReadResult::stopping;
  char chunk[4096];
  ssize_t n = recv(fd, chunk, sizeof(chunk), 0);
  if (n < 0 && errno == EINTR) return ReadResult::ok;
  if (n <= 0) return ReadResult::closed;
  buffer.append(chunk, static_cast<size_t>(n));
  return ReadResult::ok;
}

// Reads (a bounded amount of) what the caller sent already: closing a Unix
// socket with unread data makes the caller's next read fail with
// ECONNRESET, where it should find the answer and then the end.
void discard_pending(int fd) {
  char chunk[4096];
  for (size_t discarded = 0; discarded < 64 * 1024;) {
    ssize_t n = recv(fd, chunk, sizeof(chunk), MSG_DONTWAIT);
    if (n <= 0) return;
    discarded += static_cast<size_t>(n);
  }
}

}  // namespace

Result<gid_t> group_by_name(const std::string& name) {
  if (name.empty()) return make_error(ErrorKind::invalid, "empty group name");
  group entry{};
  group* found = nullptr;
  std::vector<char> buffer(16 * 1024);
  int error;
  // ERANGE: a group with many members; the buffer grows, within reason.
  while ((error = getgrnam_r(name.c_str(), &entry, buffer.data(), buffer.size(), &found)) == ERANGE &&
         buffer.size() < (1u << 24))
    buffer.resize(buffer.size() * 2);
  if (error != 0) return errno_error(ErrorKind::io, error, "cannot look up group '{}': {}", name, std::strerror(error));
  if (found) return found->gr_gid;
  if (name.find_first_not_of("0123456789") == std::string::npos && name.size() <= 9)
    return static_cast<gid_t>(std::stoul(name));
  return make_error(ErrorKind::invalid, "unknown group '{}' (not in the group database; a number is taken as a gid)",
                    name);
}

Result<std::string> percent_decode(std::string_view text) {
  std::string out;
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] != '%') {
      out.push_back(text[i]);
      continue;
    }
    auto hex = [](char c) -> int {
      if (c >= '0' && c <= '9') return c - '0';
      if (c >= 'a' && c <= 'f') return c - 'a' + 10;
      if (c >= 'A' && c <= 'F') return c - 'A' + 10;
      return -1;
    };
    if (i + 2 >= text.size()) return make_error("bad percent escape in '{}'", text);
    int high = hex(text[i + 1]), low = hex(text[i + 2]);
    if (high < 0 || low < 0) return make_error("bad percent escape in '{}'", text);
    out.push_back(static_cast<char>(high * 16 + low));
    i += 2;
  }
  return out;
}

Result<std::unique_ptr<HttpServer>> HttpServer::listen(const std::string& socket_path, SocketAccess access,
                                                       Handler handler, Rejected rejected, HttpLimits limits) {
  if (auto wrong = check_quota_limits(limits.connections)) return make_error(ErrorKind::invalid, "{}", *wrong);
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  if (socket_path.empty() || socket_path.size() >= sizeof(address.sun_path))
    return make_error("socket path '{}' is empty or longer than {} bytes", socket_path, sizeof(address.sun_path) - 1);
  std::memcpy(address.sun_path, socket_path.c_str(), socket_path.size() + 1);

  auto dir = std::filesystem::path(socket_path).parent_path();
  std::error_code error;
  if (!dir.empty() && !std::filesystem::exists(dir, error)) {
    std::filesystem::create_directories(dir, error);
    if (error) return make_error("cannot create {}: {}", dir.string(), error.message());
    chmod(dir.c_str(), 0755);
  }

  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return make_error("socket: {}", std::strerror(errno));
  struct stat info {};
  if (lstat(socket_path.c_str(), &info) == 0) {
    if (!S_ISSOCK(info.st_mode)) {
      close(fd);
      return make_error("{} exists and is not a socket", socket_path);
    }
    if (connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) == 0) {
      close(fd);
      return make_error("another process serves {}", socket_path);
    }
    close(fd);
    unlink(socket_path.c_str());  // stale: its server is gone
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return make_error("socket: {}", std::strerror(errno));
  }
  // Mode and group before listen(): until then no one can connect, so no
  // one connects through a mode the umask made.
  const char* step = "bind";
  bool ready = bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) == 0;
  if (ready) ready = (step = "chmod", chmod(socket_path.c_str(), access.mode) == 0);
  if (ready && access.group)
    ready = (step = "chown", chown(socket_path.c_str(), static_cast<uid_t>(-1), *access.group) == 0);
  // A deep backlog: a burst of connections waits its turn (each is admitted
  // or refused at once) instead of failing the callers behind it.
  if (ready) ready = (step = "listen", ::listen(fd, SOMAXCONN) == 0);
  if (!ready) {
    int saved = errno;
    close(fd);
    unlink(socket_path.c_str());
    return errno_error(ErrorKind::io, saved, "cannot listen on {}: {}: {}", socket_path, step, std::strerror(saved));
  }
  int pipe_fds[2];
  if (pipe2(pipe_fds, O_CLOEXEC | O_NONBLOCK) != 0) {
    close(fd);
    unlink(socket_path.c_str());
    return make_error("pipe: {}", std::strerror(errno));
  }
  int ended = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (ended < 0) {
    int saved = errno;
    close(fd);
    close(pipe_fds[0]);
    close(pipe_fds[1]);
    unlink(socket_path.c_str());
    return make_error("eventfd: {}", std::strerror(saved));
  }
  return std::unique_ptr<HttpServer>(new HttpServer(fd, pipe_fds[0], pipe_fds[1], ended, socket_path,
                                                    std::move(handler), std::move(rejected), limits));
}

HttpServer::HttpServer(int listen_fd, int stop_read, int stop_write, int ended, std::string path, Handler handler,
                       Rejected rejected, HttpLimits limits)
    : listen_fd_(listen_fd),
      stop_read_(stop_read),
      stop_write_(stop_write),
      ended_(ended),
      path_(std::move(path)),
      handler_(std::move(handler)),
      rejected_(std::move(rejected)),
      limits_(limits),
      quota_(limits.connections) {}

HttpServer::~HttpServer() {
  close(listen_fd_);
  close(stop_read_);
  close(stop_write_);
  close(ended_);
  unlink(path_.c_str());
}

void HttpServer::stop() {
  char byte = 1;
  [[maybe_unused]] ssize_t n = write(stop_write_, &byte, 1);
}

void HttpServer::serve() {
  for (;;) {
    pollfd descriptors[3] = {{listen_fd_, POLLIN, 0}, {stop_read_, POLLIN, 0}, {ended_, POLLIN, 0}};
    // Woken for a trim that waits on its interval, too, when nothing else happens.
    const int timeout = large_since_trim_.load(std::memory_order_relaxed)
                            ? std::max(milliseconds_until(last_trim_ + kTrimInterval), 1)
                            : -1;
    if (poll(descriptors, 3, timeout) < 0) {
      if (errno == EINTR) continue;
      log::error("API: poll failed: {}", std::strerror(errno));
      stop();  // the connections end too
      break;
    }
    if (descriptors[1].revents) break;
    join_ended_connections();
    trim_memory();
    if (!(descriptors[0].revents & POLLIN)) continue;
    int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) continue;
    start_connection(fd);
  }
  // Their threads see the stop pipe as well: those reading answer and end,
  // those in the handler finish first.
  for (auto& connection : connections_) {
    connection.thread.join();
    quota_.release(connection.uid);
  }
  connections_.clear();
  counters_.open.store(0, std::memory_order_relaxed);
}

void HttpServer::start_connection(int fd) {
  const uid_t uid = peer_uid(fd);
  if (auto verdict = quota_.admit(uid); verdict != ConnectionQuota::Verdict::admitted) {
    auto& refused =
        verdict == ConnectionQuota::Verdict::over_uid_limit ? counters_.refused_uid_limit : counters_.refused_capacity;
    refused.fetch_add(1, std::memory_order_relaxed);
    return refuse_connection(fd, uid, quota_.refusal(verdict, uid));
  }
  Connection& connection = connections_.emplace_back();
  connection.uid = uid;
  try {
    connection.thread = std::thread([this, fd, &connection] {
      if (handle_connection(fd) >= kLargeBytes) large_since_trim_.store(true, std::memory_order_relaxed);
      close(fd);
      // Then tell serve(), which joins this thread: nothing of the server
      // is touched after the write.
      connection.done.store(true, std::memory_order_release);
      uint64_t one = 1;
      [[maybe_unused]] ssize_t n = write(ended_, &one, sizeof(one));
    });
  } catch (const std::system_error& error) {
    connections_.pop_back();
    quota_.release(uid);
    counters_.refused_capacity.fetch_add(1, std::memory_order_relaxed);
    log::warn("API: cannot start a thread for a connection: {}", error.what());
    return refuse_connection(fd, uid, "the API cannot take another connection now; try again");
  }
  counters_.accepted.fetch_add(1, std::memory_order_relaxed);
  counters_.open.store(connections_.size(), std::memory_order_relaxed);
}

void HttpServer::refuse_connection(int fd, uid_t uid, const std::string& message) {
  send_response(fd, error_response(503, message), Clock::now());  // no waiting: a new socket's buffer takes it whole
  if (rejected_) {
    if (refusal_reports_.size() >= kMaxRefusalReports && !refusal_reports_.contains(uid)) refusal_reports_.clear();
    RefusalReports& reports = refusal_reports_[uid];
    const auto now = Clock::now();
    if (now - reports.last < kRefusalReportInterval) {
      ++reports.unreported;
    } else {
      std::string reported = message;
      if (reports.unreported > 0)
        reported += fmt::format(" ({} more connections of uid {} refused since the last report, not reported each)",
                                reports.unreported, uid);
      reports = {now, 0};
      rejected_(Caller::of_socket(fd), error_response(503, std::move(reported)));
    }
  }
  discard_pending(fd);
  close(fd);
}

void HttpServer::join_ended_connections() {
  // Reset the count first: a thread that ends during the walk writes again.
  uint64_t count;
  [[maybe_unused]] ssize_t n = read(ended_, &count, sizeof(count));
  for (auto it = connections_.begin(); it != connections_.end();) {
    if (!it->done.load(std::memory_order_acquire)) {
      ++it;
      continue;
    }
    it->thread.join();
    quota_.release(it->uid);
    it = connections_.erase(it);
  }
  counters_.open.store(connections_.size(), std::memory_order_relaxed);
}

void HttpServer::trim_memory() {
  if (!large_since_trim_.load(std::memory_order_relaxed)) return;
  const auto now = Clock::now();
  if (!connections_.empty() && now - last_trim_ < kTrimInterval) return;
  large_since_trim_.store(false, std::memory_order_relaxed);
  last_trim_ = now;
  // Every arena's free pages, the connections' threads' included.
  malloc_trim(0);
  counters_.memory_trims.fetch_add(1, std::memory_order_relaxed);
}

size_t HttpServer::handle_connection(int fd) {
  HttpRequest request;
  request.caller = Caller::of_socket(fd);
  std::string buffer;
  size_t held = 0;  // the most this connection held at once, about
  auto answer = [&](const HttpResponse& response) {
    held = std::max(held, buffer.capacity() + request.body.capacity() + response.body.size());
    if (send_response(fd, response, Clock::now() + limits_.write_deadline) == SendResult::late)
      counters_.write_deadlines.fetch_add(1, std::memory_order_relaxed);
    return held;
  };
  auto reject = [&](int status, std::string message) {
    HttpResponse response = error_response(status, std::move(message));
    if (status == 408) counters_.read_deadlines.fetch_add(1, std::memory_order_relaxed);
    answer(response);
    if (rejected_) rejected_(request.caller, response);
    return held;
  };
  const auto deadline = Clock::now() + limits_.read_deadline;

  // The request line and headers.
  size_t header_end;
  for (;;) {
    header_end = buffer.find("\r\n\r\n");
    if (header_end != std::string::npos) break;
    if (buffer.size() > limits_.max_header_bytes)
      return reject(431, fmt::format("request headers exceed {} bytes", limits_.max_header_bytes));
    auto result = read_more(fd, stop_read_, buffer, deadline);
    if (result == ReadResult::late) return reject(408, "request not complete within the read deadline");
    if (result == ReadResult::stopping) return reject(503, "the API is shutting down");
    if (result == ReadResult::closed) return buffer.capacity();  // nobody to answer
  }
  if (header_end > limits_.max_header_bytes)
    return reject(431, fmt::format("request headers exceed {} bytes", limits_.max_header_bytes));

  std::string_view head(buffer.data(), header_end);
  size_t line_end = head.find("\r\n");
  std::string_view request_line = head.substr(0, line_end);
  size_t first_space = request_line.find(' ');
  size_t last_space = request_line.rfind(' ');
  if (first_space == std::string_view::npos || first_space == last_space) return reject(400, "malformed request line");
  request.method = std::string(request_line.substr(0, first_space));
  std::string_view target = request_line.substr(first_space + 1, last_space - first_space - 1);
  std::string_view version = request_line.substr(last_space + 1);
  if (version != "HTTP/1.1" && version != "HTTP/1.0") return reject(400, "unsupported HTTP version");
  if (target.empty() || target.front() != '/') return reject(400, "request target must start with '/'");
  for (char c : request.method)
    if (c < 'A' || c > 'Z') return reject(400, "malformed method");
  size_t question = target.find('?');
  request.path = std::string(target.substr(0, question));
  if (question != std::string_view::npos) request.query = std::string(target.substr(question + 1));

  std::string_view rest = line_end == std::string_view::npos ? std::string_view() : head.substr(line_end + 2);
  while (!rest.empty()) {
    size_t end = rest.find("\r\n");
    std::string_view line = rest.substr(0, end);
    rest = end == std::string_view::npos ? std::string_view() : rest.substr(end + 2);
    size_t colon = line.find(':');
    if (colon == std::string_view::npos || colon == 0) return reject(400, "malformed header line");
    request.headers[lower(trim(line.substr(0, colon)))] = std::string(trim(line.substr(colon + 1)));
  }

  if (request.headers.contains("transfer-encoding"))
    return reject(501, "Transfer-Encoding is not supported; send a Content-Length");
  size_t length = 0;
  if (auto it = request.headers.find("content-length"); it != request.headers.end()) {
    const std::string& text = it->second;
    if (text.empty() || text.size() > 12 || text.find_first_not_of("0123456789") != std::string::npos)
      return reject(400, "malformed Content-Length");
    length = std::stoull(text);
    if (length > limits_.max_body_bytes)
      return reject(413, fmt::format("body of {} bytes exceeds the limit of {} bytes", length, limits_.max_body_bytes));
  }
  request.body = buffer.substr(header_end + 4);
  while (request.body.size() < length) {
    auto result = read_more(fd, stop_read_, request.body, deadline);
    if (result == ReadResult::late) return reject(408, "request body not complete within the read deadline");
    if (result == ReadResult::stopping) return reject(503, "the API is shutting down");
    if (result == ReadResult::closed) return buffer.capacity() + request.body.capacity();
  }
  if (request.body.size() > length) request.body.resize(length);  // one request per connection

  return answer(handle_guarded(handler_, request));
}

}  // namespace tollgate
