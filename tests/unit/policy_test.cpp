// The policy model: CIDRs, defaults, the checks and the JSON round trip.
#include <gtest/gtest.h>

#include "config.h"
#include "policy_maps.h"

using namespace tollgate;

TEST(Cidr, ParsesNetworksAndRefusesHostBits) {
  auto net = Cidr::parse("198.18.0.0/24");
  ASSERT_TRUE(net);
  EXPECT_EQ(net->to_string(), "198.18.0.0/24");
  EXPECT_EQ(Cidr::parse("2001:db8::1")->to_string(), "2001:db8::1/128");
  EXPECT_EQ(Cidr::parse("0.0.0.0/0")->prefix, 0);
  auto host_bits = Cidr::parse("198.18.0.1/24");
  ASSERT_FALSE(host_bits);
  EXPECT_NE(host_bits.error().message.find("the network is 198.18.0.0/24"), std::string::npos);
  for (const char* bad : {"198.18.0.0/33", "2001:db8::/129", "198.18.0.0/", "198.18.0.0/x", "nope/8", "/8"})
    EXPECT_FALSE(Cidr::parse(bad)) << bad;
}

TEST(Policy, RoundTripsWithDefaultsFilledIn) {
  auto config = parse_config(R"({
    "access": {"deny": ["198.18.0.128/25"]},
    "events": {"interval_ms": 500, "per_second": 50},
    "services": [{"address": "198.18.100.1:53/udp", "backends": [],
                  "policy": {"allow": ["198.18.0.0/16", "2001:db8::/32"],
                             "rate_limit": {"packets_per_second": 1000, "ipv4_prefix": 24},
                             "new_connections": {"per_second": 30},
                             "syn_authentication": true}}]})");
  ASSERT_TRUE(config) << config.error().message;
  const ServicePolicy& policy = config->services[0].policy;
  EXPECT_EQ(policy.access.allow.size(), 2u);
  ASSERT_TRUE(policy.rate_limit);
  EXPECT_EQ(policy.rate_limit->burst_packets, 100u) << "a tenth of a second's worth";
  EXPECT_EQ(policy.rate_limit->ipv4_prefix, 24);
  EXPECT_EQ(policy.rate_limit->ipv6_prefix, 64);
  ASSERT_TRUE(policy.new_connections);
  EXPECT_EQ(policy.new_connections->burst, 3u);
  EXPECT_EQ(config->events.per_second, 50u);
  auto again = parse_config_json(config_to_json(*config));
  ASSERT_TRUE(again) << again.error().message;
  EXPECT_EQ(*again, *config);

  const tg_service_policy value = to_kernel(policy);
  EXPECT_TRUE(policy.syn_authentication);
  EXPECT_EQ(value.flags, TG_POLICY_ALLOW_LIST | TG_POLICY_RATE_LIMIT | TG_POLICY_CONN_LIMIT | TG_POLICY_SYN_AUTH);
  EXPECT_EQ(value.packet_rate, 1000u);
  EXPECT_EQ(value.conn_rate, 30u);
  EXPECT_EQ(to_kernel(ServicePolicy{}).flags, 0u);
}

TEST(Policy, BadInputNamesTheField) {
  const std::pair<const char*, const char*> cases[] = {
      {R"({"access": {"allow": ["198.18.0.1/24"]}})", "access.allow[0]"},
      {R"({"access": {"deny": ["198.18.0.0/24", "198.18.0.0/24"]}})", "access.deny[1]"},
      {R"({"access": {"deny": "198.18.0.0/24"}})", "access.deny"},
      {R"({"access": {"block": []}})", "access.block"},
      {R"({"events": {"per_second": -1}})", "events.per_second"},
      {R"({"events": {"interval_ms": 0}})", "events.interval_ms"},
      {R"({"services": [{"address": "198.18.100.1:80/tcp", "policy": {"rate_limit": {}}}]})",
       "services[0].policy.rate_limit"},
      {R"({"services": [{"address": "198.18.100.1:80/tcp", "policy": {"rate_limit": {"packets_per_second": 10,
          "ipv4_prefix": 33}}}]})",
       "services[0].policy.rate_limit.ipv4_prefix"},
      {R"({"services": [{"address": "198.18.100.1:80/tcp", "policy": {"rate_limit": {"bytes_per_second": 1000,
          "burst_bytes": 100}}}]})",
       "services[0].policy.rate_limit.burst_bytes"},
      {R"({"services": [{"address": "198.18.100.1:80/tcp", "policy": {"rate_limit": {"packets_per_second": 10,
          "burst_bytes": 2000}}}]})",
       "services[0].policy.rate_limit.burst_bytes"},
      {R"({"services": [{"address": "198.18.100.1:80/tcp", "policy": {"new_connections": {"burst": 5}}}]})",
       "services[0].policy.new_connections.per_second"},
      {R"({"services": [{"address": "198.18.100.1:80/tcp", "policy": {"new_connections": {"per_second": 0}}}]})",
       "services[0].policy.new_connections.per_second"},
      {R"({"services": [{"address": "198.18.100.1:80/tcp", "policy": {"limit": 1}}]})", "services[0].policy.limit"},
      {R"({"services": [{"address": "198.18.100.1:80/tcp", "policy": {"syn_authentication": "yes"}}]})",
       "services[0].policy.syn_authentication"},
  };
  for (const auto& [text, field] : cases) {
    auto config = parse_config(text);
    ASSERT_FALSE(config) << text;
    EXPECT_NE(config.error().message.find(field), std::string::npos) << config.error().message;
  }
}
