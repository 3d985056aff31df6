// The scrape endpoint on a real loopback socket: GET /metrics answers the
// exposition text, nothing else is served, and an address that cannot be
// bound is an error at start.
#include "scrape_server.h"

#include <gtest/gtest.h>
#include <httplib.h>

using namespace tollgate;

namespace {

std::unique_ptr<ScrapeServer> listen_on_loopback(ScrapeServer::Render render) {
  auto address = Endpoint::parse("127.0.0.1:0");
  EXPECT_TRUE(address);
  auto server = ScrapeServer::listen(*address, std::move(render));
  EXPECT_TRUE(server) << (server ? "" : server.error().message);
  return server ? std::move(*server) : nullptr;
}

TEST(ScrapeServer, ServesTheExpositionTextAndNothingElse) {
  int renders = 0;
  auto server = listen_on_loopback([&renders]() -> Result<std::string> {
    ++renders;
    return std::string("tollgate_build_info{version=\"test\"} 1\n");
  });
  ASSERT_TRUE(server);
  ASSERT_NE(server->address().port, 0);
  httplib::Client client("127.0.0.1", server->address().port);
  client.set_connection_timeout(5);
  client.set_read_timeout(5);

  auto got = client.Get("/metrics");
  ASSERT_TRUE(got) << httplib::to_string(got.error());
  EXPECT_EQ(got->status, 200);
  EXPECT_EQ(got->body, "tollgate_build_info{version=\"test\"} 1\n");
  EXPECT_EQ(got->get_header_value("Content-Type"), "text/plain; version=0.0.4");
  EXPECT_EQ(renders, 1);

  // Read-only: no method that could change state, no other path.
  auto posted = client.Post("/metrics", "x", "text/plain");
  ASSERT_TRUE(posted);
  EXPECT_EQ(posted->status, 405);
  auto deleted = client.Delete("/metrics");
  ASSERT_TRUE(deleted);
  EXPECT_EQ(deleted->status, 405);
  for (const char* path : {"/", "/v1/metrics", "/v1/services", "/metrics/x"}) {
    auto other = client.Get(path);
    ASSERT_TRUE(other) << path;
    EXPECT_EQ(other->status, 404) << path;
  }
  EXPECT_EQ(renders, 1) << "only GET /metrics renders";
}

TEST(ScrapeServer, ARenderingErrorIsA500WithItsMessage) {
  auto server = listen_on_loopback([]() -> Result<std::string> { return make_error("the maps are gone"); });
  ASSERT_TRUE(server);
  httplib::Client client("127.0.0.1", server->address().port);
  auto got = client.Get("/metrics");
  ASSERT_TRUE(got);
  EXPECT_EQ(got->status, 500);
  EXPECT_EQ(got->body, "the maps are gone\n");
}

TEST(ScrapeServer, AnAddressInUseIsAnErrorThatNamesIt) {
  auto first = listen_on_loopback([]() -> Result<std::string> { return std::string(); });
  ASSERT_TRUE(first);
  auto second = ScrapeServer::listen(first->address(), []() -> Result<std::string> { return std::string(); });
  ASSERT_FALSE(second);
  EXPECT_NE(second.error().message.find(first->address().to_string()), std::string::npos) << second.error().message;
  EXPECT_NE(second.error().message.find("in use"), std::string::npos) << second.error().message;
}

TEST(ScrapeServer, AddressesAreParsedOrRefusedClearly) {
  auto v4 = parse_scrape_address("127.0.0.1:9464");
  ASSERT_TRUE(v4);
  ASSERT_TRUE(*v4);
  EXPECT_EQ((*v4)->to_string(), "127.0.0.1:9464");
  auto v6 = parse_scrape_address("[::1]:9464");
  ASSERT_TRUE(v6);
  ASSERT_TRUE(*v6);
  EXPECT_EQ((*v6)->port, 9464);
  auto off = parse_scrape_address("off");
  ASSERT_TRUE(off);
  EXPECT_FALSE(*off);
  for (const char* bad : {"", "localhost:9464", "127.0.0.1", "127.0.0.1:99999", "::1:9464", "127.0.0.1:-1", "on"}) {
    auto parsed = parse_scrape_address(bad);
    EXPECT_FALSE(parsed) << bad;
    if (!parsed) {
      EXPECT_NE(parsed.error().message.find("--metrics-address"), std::string::npos) << bad;
    }
  }
}

}  // namespace
