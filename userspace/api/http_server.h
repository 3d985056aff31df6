// A small HTTP/1.1 server on a Unix socket, for the control API.
//
// Why not cpp-httplib's server: the API authorizes every request by the
// peer's uid and groups (SO_PEERCRED, SO_PEERGROUPS), and httplib 0.11
// gives a handler neither the connection's socket nor those credentials.
// The CLI's side uses cpp-httplib's client.
//
// One request per connection (Connection: close), so no connection idles
// between requests; a request must arrive whole (headers and body) within
// the read deadline, and its answer must be taken within the write
// deadline, or the connection is closed. Headers and body are bounded
// before they are read. Bodies need a Content-Length; chunked bodies are
// refused.
//
// Connections are served at once, each by a thread of its own: a silent or
// slow client, a slow handler or a caller slow to read its answer costs its
// connection, not the API. How many: see ConnectionQuota (each uid but
// root a few, some always kept for root); one more is answered 503 at once.
// Why threads rather than a poll loop feeding a few handler threads:
// reading stays a plain loop with a deadline, and a slow handler (waiting
// for the controller's lock, walking a large flow table) cannot take a
// shared worker from the other callers. This API's callers are a CLI,
// scripts and a metrics scraper: a few threads at once.
//
// After a large request or answer, the memory the connections freed is
// given back to the system (malloc_trim) once the last connection ended or
// a few seconds later: a burst of large bodies does not leave the agent
// holding what it parsed. (That takes the allocator settings tollgated
// makes at its start, too: see give_memory_back_when_freed.)
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <list>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>

#include "audit.h"
#include "connection_quota.h"
#include "defaults.h"
#include "result.h"

namespace tollgate {

struct HttpRequest {
  std::string method;
  std::string path;                            // percent-encoded, without the query
  std::string query;                           // after '?', percent-encoded
  std::map<std::string, std::string> headers;  // names in lower case
  std::string body;
  Caller caller;
};

struct HttpResponse {
  int status = 200;
  std::string body;
  std::string content_type = "application/json";
};

struct HttpLimits {
  size_t max_header_bytes = 16 * 1024;
  size_t max_body_bytes = 1024 * 1024;
  std::chrono::milliseconds read_deadline{5000};   // for the whole request
  std::chrono::milliseconds write_deadline{5000};  // for the whole answer
  ConnectionQuotaLimits connections;               // served at once
};

// Who may connect to the socket at all (the file's mode and group); who may
// use the API is the handler's decision, by the caller's credentials.
struct SocketAccess {
  unsigned mode = 0660;
  std::optional<gid_t> group;  // none: the agent's own (root's)
};

// What the server counted; read from any thread (the metrics).
struct HttpServerCounters {
  std::atomic<uint64_t> accepted{0};           // connections admitted
  std::atomic<uint64_t> open{0};               // admitted and not ended yet
  std::atomic<uint64_t> refused_uid_limit{0};  // over their uid's limit
  std::atomic<uint64_t> refused_capacity{0};   // no connection left for them (or no thread)
  std::atomic<uint64_t> read_deadlines{0};     // requests not whole within the read deadline
  std::atomic<uint64_t> write_deadlines{0};    // answers not taken within the write deadline
  std::atomic<uint64_t> memory_trims{0};       // times freed memory was given back
};

// A group's id by its name (or a number); an unknown one is an error.
Result<gid_t> group_by_name(const std::string& name);

// "%2F" -> "/"; an invalid escape is an error.
Result<std::string> percent_decode(std::string_view text);

class HttpServer {
 public:
  // Called from several connections' threads at once: it locks what it
  // shares (the Api takes the controller's mutex).
  using Handler = std::function<HttpResponse(const HttpRequest&)>;
  // Called for a request refused before the handler (malformed, too large,
  // too slow, over the connection cap, cut by stop()), with the caller and
  // the response sent; from several threads at once too. Refusals at
  // accept are reported once a second per uid at most, the next report
  // saying how many were not: a caller reconnecting in a loop costs a
  // counter, not an audit line each.
  using Rejected = std::function<void(const Caller&, const HttpResponse&)>;

  // Binds `socket_path` (its mode and group as `access` says, set before
  // anyone can connect; its directory is created 0755). A stale socket
  // file is replaced; one another process listens on is not. Limits that
  // make no sense are an error.
  static Result<std::unique_ptr<HttpServer>> listen(const std::string& socket_path, SocketAccess access,
                                                    Handler handler, Rejected rejected, HttpLimits limits = {});
  // Not while serve() runs.
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Serves until stop(); call once, from one thread. Returns when every
  // connection's thread has ended.
  void serve();
  // From any thread (or a signal-safe context: it only writes to a pipe).
  // Connections still reading their request are answered 503 and closed;
  // handlers running finish, and their answer is sent (within the write
  // deadline) before serve() returns.
  void stop();

  const HttpServerCounters& counters() const { return counters_; }

 private:
  // A connection being served; only serve() adds and removes them.
  struct Connection {
    uid_t uid = 0;  // whose quota it counts in
    std::thread thread;
    std::atomic<bool> done{false};
  };

  HttpServer(int listen_fd, int stop_read, int stop_write, int ended, std::string path, Handler handler,
             Rejected rejected, HttpLimits limits);
  void start_connection(int fd);
  // Answers 503 from the accepting thread, without waiting on the caller.
  void refuse_connection(int fd, uid_t uid, const std::string& message);
  void join_ended_connections();
  // Gives freed memory back after large requests (see above).
  void trim_memory();
  // Serves one request; returns the bytes it held (request and answer).
  size_t handle_connection(int fd);

  int listen_fd_;
  int stop_read_;  // readable once stop() was called, for every thread
  int stop_write_;
  int ended_;  // an eventfd: a connection's thread is about to end
  std::string path_;
  Handler handler_;
  Rejected rejected_;
  HttpLimits limits_;
  std::list<Connection> connections_;  // a list: their threads hold references
  ConnectionQuota quota_;              // serve()'s alone
  struct RefusalReports {
    std::chrono::steady_clock::time_point last{};  // the last reported
    uint64_t unreported = 0;                       // refused since
  };
  std::map<uid_t, RefusalReports> refusal_reports_;  // serve()'s alone
  HttpServerCounters counters_;
  std::atomic<bool> large_since_trim_{false};  // a connection held a large request or answer
  std::chrono::steady_clock::time_point last_trim_{};
};

}  // namespace tollgate
