// A small HTTP/1.1 server on a Unix socket, for the control API.
//
// Why not cpp-httplib's server: the API authorizes every request by the
// peer's uid and groups (SO_PEERCRED, SO_PEERGROUPS), and httplib 0.11
// gives a handler neither the connection's socket nor those credentials.
// The CLI's side uses cpp-httplib's client.
//
// One request per connection (Connection: close), handled in turn; a
// request must arrive whole within the read deadline. Bodies need a
// Content-Length; chunked bodies are refused.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <string>

#include "audit.h"
#include "result.h"

namespace tollgate {

inline constexpr const char* kDefaultSocketPath = "/run/tollgate/tollgate.sock";

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
  std::chrono::milliseconds read_deadline{5000};
};

// "%2F" -> "/"; an invalid escape is an error.
Result<std::string> percent_decode(std::string_view text);

class HttpServer {
 public:
  using Handler = std::function<HttpResponse(const HttpRequest&)>;
  // Called for a request refused before the handler (malformed, too large,
  // too slow), with the caller and the response sent.
  using Rejected = std::function<void(const Caller&, const HttpResponse&)>;

  // Binds `socket_path` (mode `mode`; its directory is created 0755). A
  // stale socket file is replaced; one another process listens on is not.
  static Result<std::unique_ptr<HttpServer>> listen(const std::string& socket_path, unsigned mode, Handler handler,
                                                    Rejected rejected, HttpLimits limits = {});
  ~HttpServer();

  // Serves until stop(); call from one thread.
  void serve();
  // From any thread (or a signal-safe context: it only writes to a pipe).
  void stop();

 private:
  HttpServer(int listen_fd, int stop_read, int stop_write, std::string path, Handler handler, Rejected rejected,
             HttpLimits limits);
  void handle_connection(int fd);

  int listen_fd_;
  int stop_read_;
  int stop_write_;
  std::string path_;
  Handler handler_;
  Rejected rejected_;
  HttpLimits limits_;
};

}  // namespace tollgate
