// The Prometheus scrape endpoint: GET /metrics on a TCP address, loopback
// by default (tollgated --metrics-address). Apart from the control API on
// purpose: a stock Prometheus scrapes it without credentials, and nothing
// served here changes state (any other method on /metrics is answered 405,
// any other path 404).
//
// cpp-httplib's server serves it: unlike the control API, it needs no
// peer credentials. Its threads are few (httplib's pool), its requests
// small and bounded in time.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <thread>

#include "address.h"
#include "result.h"

namespace httplib {
class Server;
}

namespace tollgate {

class ScrapeServer {
 public:
  // The exposition text, or an error (answered 500).
  using Render = std::function<Result<std::string>()>;

  // Binds `address` (port 0: any free port) and serves from a thread of
  // its own until destroyed. An address that cannot be bound (in use, not
  // this host's) is an error.
  static Result<std::unique_ptr<ScrapeServer>> listen(const Endpoint& address, Render render);
  ~ScrapeServer();  // stops serving and joins
  ScrapeServer(const ScrapeServer&) = delete;
  ScrapeServer& operator=(const ScrapeServer&) = delete;

  // Where it listens, with the port it was given.
  const Endpoint& address() const { return address_; }

 private:
  ScrapeServer(std::unique_ptr<httplib::Server> server, Endpoint address);

  std::unique_ptr<httplib::Server> server_;
  Endpoint address_;
  std::thread thread_;
};

// The scrape address as tollgated takes it: "127.0.0.1:9464",
// "[::1]:9464", or "off" (no listener: nullopt).
Result<std::optional<Endpoint>> parse_scrape_address(std::string_view text);

}  // namespace tollgate
