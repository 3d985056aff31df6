#include "scrape_server.h"

#include <httplib.h>
#include <sys/socket.h>

#include <cerrno>
#include <chrono>
#include <cstring>

namespace tollgate {

ScrapeServer::ScrapeServer(std::unique_ptr<httplib::Server> server, Endpoint address)
    : server_(std::move(server)), address_(std::move(address)) {
  thread_ = std::thread([this] { server_->listen_after_bind(); });
  // stop() before the loop runs would be lost (httplib stops a running
  // server only), and the destructor would wait for ever. The socket is
  // bound and listening already: connections queue meanwhile.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (!server_->is_running() && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
}

ScrapeServer::~ScrapeServer() {
  server_->stop();
  if (thread_.joinable()) thread_.join();
}

Result<std::unique_ptr<ScrapeServer>> ScrapeServer::listen(const Endpoint& address, Render render) {
  auto server = std::make_unique<httplib::Server>();
  // httplib's default also sets SO_REUSEPORT, which would let a second
  // agent bind the same port and take half the scrapes: only SO_REUSEADDR
  // (a restart rebinds past TIME_WAIT).
  server->set_socket_options([](int socket) {
    int yes = 1;
    setsockopt(socket, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
  });
  server->set_read_timeout(5, 0);
  server->set_write_timeout(5, 0);
  server->set_keep_alive_timeout(5);
  server->set_payload_max_length(4096);  // a scrape sends no body
  server->Get("/metrics", [render](const httplib::Request&, httplib::Response& response) {
    auto text = render();
    if (!text) {
      response.status = 500;
      response.set_content(text.error().message + "\n", "text/plain");
      return;
    }
    response.set_content(*text, "text/plain; version=0.0.4");
  });
  auto refuse = [](const httplib::Request&, httplib::Response& response) {
    response.status = 405;
    response.set_header("Allow", "GET, HEAD");
    response.set_content("read-only: GET /metrics\n", "text/plain");
  };
  server->Post("/metrics", refuse);
  server->Put("/metrics", refuse);
  server->Patch("/metrics", refuse);
  server->Delete("/metrics", refuse);

  const std::string host = address.address.to_string();
  Endpoint bound = address;
  errno = 0;
  if (address.port == 0) {
    const int port = server->bind_to_any_port(host);
    if (port < 0) return make_error("metrics: cannot listen on {}: {}", address.to_string(), std::strerror(errno));
    bound.port = static_cast<uint16_t>(port);
  } else if (!server->bind_to_port(host, address.port)) {
    return make_error("metrics: cannot listen on {}: {}", address.to_string(),
                      errno ? std::strerror(errno) : "bind failed");
  }
  return std::unique_ptr<ScrapeServer>(new ScrapeServer(std::move(server), bound));
}

Result<std::optional<Endpoint>> parse_scrape_address(std::string_view text) {
  if (text == "off") return std::optional<Endpoint>{};
  auto endpoint = Endpoint::parse(text);
  if (!endpoint)
    return make_error("--metrics-address: {} (expected ADDRESS:PORT, [IPv6]:PORT or off)", endpoint.error().message);
  return std::optional<Endpoint>{*endpoint};
}

}  // namespace tollgate
