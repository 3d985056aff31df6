#include "config.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>

#include "hostile_json.h"

using namespace tollgate;
using namespace tollgate::test;

TEST(Config, ParsesTheWholeModel) {
  auto config = parse_config(R"({
    "timeouts": {"tcp_established": 600, "udp": 30},
    "services": [
      {"address": "198.18.100.1:80/tcp", "maglev_size": 251,
       "backends": [{"address": "198.18.1.11:8080", "weight": 2},
                    {"address": "198.18.1.12:8080", "state": "draining"}]},
      {"address": "[2001:db8:100::1]:53/udp", "backends": [], "scheduler": "source-hash", "source_prefix": 64},
      {"address": "198.18.100.2:80/tcp", "scheduler": "round-robin"}
    ]})");
  ASSERT_TRUE(config) << config.error().message;
  EXPECT_EQ(config->timeouts.tcp_established.count(), 600);
  EXPECT_EQ(config->timeouts.udp.count(), 30);
  EXPECT_EQ(config->timeouts.tcp_syn.count(), FlowTimeouts{}.tcp_syn.count());
  ASSERT_EQ(config->services.size(), 3u);
  EXPECT_EQ(config->services[0].scheduler, Scheduler::maglev);
  EXPECT_EQ(config->services[1].scheduler, Scheduler::source_hash);
  EXPECT_EQ(config->services[1].source_prefix, 64);
  EXPECT_EQ(config->services[2].scheduler, Scheduler::round_robin);
  EXPECT_FALSE(config->services[2].source_prefix);
  // And back: what the API shows parses to the same service.
  for (const auto& service : config->services)
    EXPECT_EQ(parse_service_json(service_to_json(service), "").value(), service) << service.address.to_string();
  EXPECT_EQ(config->services[0].maglev_size, 251u);
  EXPECT_EQ(config->services[0].backends[0].weight, 2u);
  EXPECT_EQ(config->services[0].backends[1].state, BackendState::draining);
  EXPECT_EQ(config->services[1].address.to_string(), "[2001:db8:100::1]:53/udp");
  EXPECT_EQ(config->services[1].maglev_size, static_cast<uint32_t>(TG_MAGLEV_DEFAULT_SIZE));
}

TEST(Config, BadInputNamesWhere) {
  struct Case {
    const char* text;
    const char* error;
  };
  const Case cases[] = {
      {"{\n  \"services\": [\n    {\"address\": }\n", "line 3, column"},
      {R"({"servics": []})", "servics: unknown field"},
      {R"({"services": {}})", "services: expected an array"},
      {R"({"services": [{"address": "198.18.100.1:80/tcp", "backend": []}]})", "services[0].backend: unknown field"},
      {R"({"services": [{"backends": []}]})", "services[0].address: missing"},
      {R"({"services": [{"address": "198.18.100.1:99999/tcp"}]})", "services[0].address: bad port '99999'"},
      {R"({"services": [{"address": "198.18.100.1:80/tcp", "maglev_size": 65536}]})",
       "services[0].maglev_size: 65536 is not a prime"},
      {R"({"services": [{"address": "198.18.100.1:80/tcp", "backends": [{"address": "198.18.1.11:80", "weight": 0}]}]})",
       "services[0].backends[0].weight: 0 is out of range 1-65535"},
      {R"({"services": [{"address": "198.18.100.1:80/tcp", "backends": [{"address": "198.18.1.11:80", "weight": -3}]}]})",
       "services[0].backends[0].weight: expected an integer"},
      {R"({"services": [{"address": "198.18.100.1:80/tcp", "backends": [{"address": "198.18.1.11:80", "weight": "2"}]}]})",
       "services[0].backends[0].weight: expected an integer"},
      {R"({"services": [{"address": "198.18.100.1:80/tcp", "backends": [{"address": "198.18.1.11:80", "state": "sleepy"}]}]})",
       "services[0].backends[0].state: unknown state 'sleepy'"},
      {R"({"services": [{"address": "198.18.100.1:80/tcp", "backends": [{"address": "198.18.1.11:80"}, {"address": "198.18.1.11:80"}]}]})",
       "services[0].backends[1]: 198.18.1.11:80 is listed twice"},
      {R"({"services": [{"address": "198.18.100.1:80/tcp", "backends": [{"address": "[2001:db8::1]:80"}]}]})",
       "services[0].backends[0]: [2001:db8::1]:80 is not of the service's address family"},
      {R"({"services": [{"address": "198.18.100.1:80/tcp"}, {"address": "198.18.100.1:80/tcp"}]})",
       "services[1].address: 198.18.100.1:80/tcp is listed twice"},
      {R"({"services": [{"address": "198.18.100.1:80/tcp", "scheduler": "wlc"}]})",
       "services[0].scheduler: 'wlc' is not a scheduler (one of maglev, source-hash, round-robin, random, "
       "least-connections, least-requests)"},
      {R"({"services": [{"address": "198.18.100.1:80/tcp", "scheduler": 2}]})",
       "services[0].scheduler: expected a string"},
      {R"({"services": [{"address": "198.18.100.1:80/tcp", "source_prefix": 24}]})",
       "services[0].source_prefix: only the source-hash scheduler has one, not maglev"},
      {R"({"services": [{"address": "198.18.100.1:80/tcp", "scheduler": "source-hash", "source_prefix": 33}]})",
       "services[0].source_prefix: 33 is out of range 1-32"},
      {R"({"services": [{"address": "[2001:db8::1]:80/tcp", "scheduler": "source-hash", "source_prefix": 0}]})",
       "services[0].source_prefix: 0 is out of range 1-128"},
      {R"({"timeouts": {"udp": 0}})", "timeouts.udp: 0 is out of range"},
      {R"([])", "(top level): expected an object"},
  };
  for (const auto& test_case : cases) {
    auto config = parse_config(test_case.text);
    ASSERT_FALSE(config) << test_case.text;
    EXPECT_NE(config.error().message.find(test_case.error), std::string::npos)
        << test_case.text << "\n  -> " << config.error().message;
  }
}

// What a JSON reader cannot hold: a named error with its line, never an
// exception (the agent would abort at start or on SIGHUP).
TEST(Config, TextsBeyondTheReaderAreNamedErrors) {
  const std::string service = R"({"address": "198.18.100.1:80/tcp", )";
  struct Case {
    std::string text;
    std::string error;
  };
  const Case cases[] = {
      {"{\"services\": [\n" + service + "\"maglev_size\": 1e999}]}",
       "line 2, column 51: services[0].maglev_size: 1e999 is beyond the range of a number"},
      {"{\"services\": [" + service + "\"backends\": [{\"address\": \"198.18.1.1:80\", \"weight\": 1e400}]}]}",
       "services[0].backends[0].weight: 1e400 is beyond the range of a number"},
      {"{\"timeouts\": {\"udp\": -1e400}}", "timeouts.udp: -1e400 is beyond the range of a number"},
      {"{\"timeouts\": {\"udp\": " + huge_integer() + "}}",
       "timeouts.udp: 1000000000000000... (400 characters) is beyond the range of a number"},
      {"{\"events\": {\"per_second\": " + std::string(kTwoToThe64) + "}}",
       "events.per_second: expected an integer 0-100000"},
      {"{\"events\": {\"per_second\": 18446744073709551615}}",
       "events.per_second: 18446744073709551615 is out of range 0-100000"},
      {"{\"events\": {\"per_second\": -1}}", "events.per_second: expected an integer 0-100000"},
      {"{\"services\": [" + service + "\"maglev_size\": 4294967311}]}",
       "services[0].maglev_size: 4294967311 is out of range"},
      {"{\n\"services\": [{\"address\": \"198.18.100.1:80/tcp\xff\"}]}", "line 2, column"},
      {"{\"services\": [{\"address\": \"198.18.100.1:80/tcp\xc0\xaf\"}]}", "ill-formed UTF-8"},
      {std::string(kByteOrderMark) + "{}", "line 1, column 1: starts with a UTF-8 byte-order mark"},
      {"{\"access\": {\"allow\": " + deep_array() + "}}", "access.allow[0][0]"},
      {"{\"access\": {\"allow\": " + deep_array() + "}}", "nested deeper than 64 levels"},
      {"\n\n" + std::string(100000, '['), "line 3, column 65: [0][0]"},
  };
  for (const auto& test_case : cases) {
    auto config = parse_config(test_case.text);
    ASSERT_FALSE(config) << test_case.text.substr(0, 200);
    EXPECT_NE(config.error().message.find(test_case.error), std::string::npos)
        << test_case.text.substr(0, 200) << "\n  -> " << config.error().message.substr(0, 400);
  }
}

TEST(Config, AFileBeyondTheReaderIsAnErrorWithItsPathAndLine) {
  char pattern[] = "/tmp/tollgate-config-test-XXXXXX";
  ASSERT_NE(mkstemp(pattern), -1);
  const std::string path = pattern;
  std::ofstream(path)
      << "{\n  \"services\": [\n    {\"address\": \"198.18.100.1:80/tcp\", \"maglev_size\": 1e400}\n  ]\n}\n";
  auto file = load_config_file(path);
  ASSERT_FALSE(file);
  EXPECT_NE(file.error().message.find(path + ": line 3, column"), std::string::npos) << file.error().message;
  EXPECT_NE(file.error().message.find("services[0].maglev_size: 1e400"), std::string::npos) << file.error().message;
  std::ofstream(path) << "";
  EXPECT_FALSE(load_config_file(path));
  std::remove(path.c_str());
}

TEST(ContentDigest, DependsOnEveryByte) {
  EXPECT_EQ(content_digest("abc"), content_digest("abc"));
  EXPECT_NE(content_digest("abc"), content_digest("abd"));
  EXPECT_EQ(content_digest("").size(), 16u);
}

// Backends are paired by address whatever their order: kept in place,
// moved, added and removed.
TEST(MatchBackends, PairsByAddress) {
  auto spec_of = [](std::initializer_list<const char*> endpoints) {
    ServiceSpec spec;
    for (const char* endpoint : endpoints) spec.backends.push_back({*Endpoint::parse(endpoint), 1, BackendState::up});
    return spec;
  };
  const ServiceSpec before = spec_of({"198.18.1.1:80", "198.18.1.2:80", "198.18.1.3:80", "198.18.1.4:80"});
  EXPECT_EQ(match_backends(before, nullptr), (std::vector<const BackendSpec*>(4, nullptr)));
  const ServiceSpec same = before;
  EXPECT_EQ(match_backends(same, &before), (std::vector<const BackendSpec*>{&before.backends[0], &before.backends[1],
                                                                            &before.backends[2], &before.backends[3]}));
  // The second removed, the fourth moved first, a fifth added.
  const ServiceSpec after = spec_of({"198.18.1.4:80", "198.18.1.1:80", "198.18.1.5:80", "198.18.1.3:80"});
  EXPECT_EQ(match_backends(after, &before),
            (std::vector<const BackendSpec*>{&before.backends[3], &before.backends[0], nullptr, &before.backends[2]}));
  EXPECT_EQ(match_backends(spec_of({}), &before), std::vector<const BackendSpec*>{});
}
