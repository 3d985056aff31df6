#include "address.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>

using namespace tollgate;

TEST(Address, ParsesServicesAsOperatorsWriteThem) {
  auto v4 = ServiceAddress::parse("198.18.100.1:80/tcp");
  ASSERT_TRUE(v4) << v4.error().message;
  EXPECT_EQ(v4->to_string(), "198.18.100.1:80/tcp");
  EXPECT_EQ(v4->endpoint.address.family, Family::ipv4);

  auto v6 = ServiceAddress::parse("[2001:db8::100]:443/udp");
  ASSERT_TRUE(v6) << v6.error().message;
  EXPECT_EQ(v6->to_string(), "[2001:db8::100]:443/udp");
  EXPECT_EQ(v6->protocol, Protocol::udp);

  auto backend = Endpoint::parse("198.18.1.11:8080");
  ASSERT_TRUE(backend);
  EXPECT_EQ(backend->port, 8080);
}

TEST(Address, ServiceKeyLayout) {
  auto service = ServiceAddress::parse("198.18.100.1:80/udp");
  ASSERT_TRUE(service);
  tg_service_key key = service->to_key();
  const uint8_t* bytes = reinterpret_cast<const uint8_t*>(key.addr);
  EXPECT_EQ(bytes[0], 198);
  EXPECT_EQ(bytes[3], 1);
  EXPECT_EQ(key.addr[1] | key.addr[2] | key.addr[3], 0u);
  EXPECT_EQ(key.port, htons(80));
  EXPECT_EQ(key.protocol, 17);
  EXPECT_EQ(key.family, TG_FAMILY_IPV4);
}

TEST(Address, RejectsBadInputWithTheReason) {
  struct Case {
    const char* text;
    const char* error_part;
  };
  const Case cases[] = {
      {"198.18.100.1:80/sctp", "unknown protocol 'sctp'"},
      {"198.18.100.1:65536/tcp", "bad port '65536'"},
      {"198.18.100.1:-1/tcp", "bad port '-1'"},
      {"198.18.100.1:/tcp", "bad port ''"},
      {"198.18.100.1/tcp", "missing port"},
      {"198.18.100.300:80/tcp", "not an IPv4 or IPv6 address"},
      {"2001:db8::1:80/tcp", "missing port"},
      {"[2001:db8::1:80/tcp", "missing ']'"},
      {"[2001:db8::1]80/tcp", "expected ':PORT'"},
      {"host.example:80/tcp", "not an IPv4 or IPv6 address"},
      {"", "not an IPv4 or IPv6 address"},
  };
  for (const auto& test_case : cases) {
    auto parsed = ServiceAddress::parse(test_case.text);
    ASSERT_FALSE(parsed) << test_case.text;
    EXPECT_NE(parsed.error().message.find(test_case.error_part), std::string::npos)
        << test_case.text << " -> " << parsed.error().message;
  }
}
