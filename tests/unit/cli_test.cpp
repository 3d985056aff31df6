// The tollgate CLI against a fake API: what it sends, and what it refuses
// before sending anything.
#include "cli.h"

#include <fmt/format.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <nlohmann/json.hpp>
#include <sstream>
#include <vector>

#include "hostile_json.h"

using namespace tollgate;
using namespace tollgate::test;

namespace {

struct Sent {
  std::string method, path, body;
};

struct CliRun {
  int code;
  std::string out, err;
  std::vector<Sent> sent;
};

// The fake API answers with `replies` in turn, repeating the last one.
CliRun run_cli(std::vector<std::string> args, std::vector<cli::Reply> replies) {
  args.insert(args.begin(), "tollgate");
  std::vector<const char*> argv;
  for (const auto& arg : args) argv.push_back(arg.c_str());
  CliRun run;
  auto connect = [&](const std::string&) -> cli::Transport {
    return [&](const std::string& method, const std::string& path, const std::string& body) -> Result<cli::Reply> {
      run.sent.push_back({method, path, body});
      return replies[std::min(run.sent.size(), replies.size()) - 1];
    };
  };
  std::ostringstream out, err;
  run.code = cli::run(static_cast<int>(argv.size()), argv.data(), connect, out, err);
  run.out = out.str();
  run.err = err.str();
  return run;
}

CliRun run_cli(std::vector<std::string> args, cli::Reply reply = {200, "{}"}) {
  return run_cli(std::move(args), std::vector<cli::Reply>{reply});
}

TEST(Cli, BadArgumentsAreNamedAndNothingIsSent) {
  struct Case {
    std::vector<std::string> args;
    std::string error;
  };
  const Case cases[] = {
      {{}, "tollgate: a subcommand is required: service, backend, status, stats, conntrack"},
      {{"service"}, "service: a subcommand is required: add, set, rm, list"},
      {{"service", "add", "198.18.100.1:80/tcp", "--scheduler", "fastest"}, "'fastest' is not a scheduler"},
      {{"service", "set", "198.18.100.1:80/tcp", "--scheduler", "wlc"}, "one of maglev, source-hash"},
      {{"service", "set", "198.18.100.1:80/tcp", "--source-prefix", "129"}, "--source-prefix"},
      {{"service", "set", "198.18.100.1:80/tcp"}, "nothing to change"},
      {{"service", "add"}, "service is required"},
      {{"service", "add", "198.18.100.1:99999/tcp"}, "bad port '99999'"},
      {{"service", "add", "198.18.100.1:80/sctp"}, "sctp"},
      {{"service", "add", "198.18.100.300:80/tcp"}, "198.18.100.300"},
      {{"service", "add", "198.18.100.1:80/tcp", "--backend", "198.18.1.11"}, "--backend"},
      {{"service", "add", "198.18.100.1:80/tcp", "--backend", "198.18.1.11:0"}, "port 0 is not a backend port"},
      {{"service", "add", "198.18.100.1:80/tcp", "--maglev-size", "1"}, "--maglev-size"},
      {{"backend", "add", "198.18.100.1:80/tcp"}, "backend is required"},
      {{"backend", "add", "198.18.100.1:80/tcp", "198.18.1.11:8080", "--weight", "0"}, "--weight"},
      {{"backend", "add", "198.18.100.1:80/tcp", "198.18.1.11:8080", "--weight", "65536"}, "--weight"},
      {{"backend", "add", "198.18.100.1:80/tcp", "198.18.1.11:8080", "--weight", "two"}, "--weight"},
      {{"backend", "add", "198.18.100.1:80/tcp", "198.18.1.11:8080", "--state", "sleepy"}, "--state"},
      {{"backend", "add", "198.18.100.1:80/tcp", "[2001:db8::1:8080"}, "backend"},
      {{"backend", "drain", "not-an-address", "198.18.1.11:8080"}, "service"},
      {{"backend", "set", "198.18.100.1:80/tcp", "198.18.1.11:8080"}, "give --weight or --state"},
      {{"backend", "list"}, "service is required"},
      {{"service", "list", "-o", "yaml"}, "--output"},
      {{"conntrack", "list", "--limit", "0"}, "--limit"},
      {{"conntrack", "wipe"}, "not expected: wipe"},
      {{"frobnicate"}, "not expected: frobnicate"},
  };
  for (const auto& test_case : cases) {
    CliRun run = run_cli(test_case.args);
    std::string line = fmt::format("tollgate {}", fmt::join(test_case.args, " "));
    EXPECT_EQ(run.code, 2) << line << "\n" << run.err;
    EXPECT_NE(run.err.find(test_case.error), std::string::npos) << line << "\n  -> " << run.err;
    EXPECT_TRUE(run.sent.empty()) << line;
  }
}

TEST(Cli, VersionIsTheBuildsAndAsksNothingOfTheAgent) {
  CliRun run = run_cli({"--version"});
  EXPECT_EQ(run.code, 0);
  EXPECT_EQ(run.out, std::string("tollgate ") + TOLLGATE_VERSION + "\n");
  EXPECT_TRUE(run.sent.empty());
}

TEST(Cli, HelpAtEveryLevelHasAnExample) {
  for (std::vector<std::string> args : {std::vector<std::string>{"--help"},
                                        {"backend", "add", "--help"},
                                        {"backend", "drain", "--help"},
                                        {"service", "add", "--help"},
                                        {"conntrack", "flush", "--help"}}) {
    CliRun run = run_cli(args);
    EXPECT_EQ(run.code, 0);
    EXPECT_NE(run.out.find("Example: tollgate"), std::string::npos) << fmt::format("{}", fmt::join(args, " "));
  }
}

TEST(Cli, RequestsAreWhatTheApiExpects) {
  CliRun run = run_cli({"backend", "add", "198.18.100.1:80/tcp", "198.18.1.11:8080", "--weight", "3"},
                       {201, R"({"address": "198.18.1.11:8080", "weight": 3, "state": "up"})"});
  EXPECT_EQ(run.code, 0) << run.err;
  ASSERT_EQ(run.sent.size(), 1u);
  EXPECT_EQ(run.sent[0].method, "POST");
  EXPECT_EQ(run.sent[0].path, "/v1/services/198.18.100.1%3A80%2Ftcp/backends");
  EXPECT_EQ(nlohmann::json::parse(run.sent[0].body),
            nlohmann::json::parse(R"({"address": "198.18.1.11:8080", "weight": 3})"));

  run = run_cli({"backend", "drain", "[2001:db8:100::1]:443/tcp", "[2001:db8:1::11]:8443"},
                {200, R"({"address": "[2001:db8:1::11]:8443", "weight": 1, "state": "draining"})"});
  EXPECT_EQ(run.code, 0) << run.err;
  ASSERT_EQ(run.sent.size(), 1u);
  EXPECT_EQ(run.sent[0].method, "PATCH");
  EXPECT_EQ(run.sent[0].path,
            "/v1/services/%5B2001%3Adb8%3A100%3A%3A1%5D%3A443%2Ftcp/backends/"
            "%5B2001%3Adb8%3A1%3A%3A11%5D%3A8443");
  EXPECT_EQ(nlohmann::json::parse(run.sent[0].body), nlohmann::json::parse(R"({"state": "draining"})"));

  run = run_cli({"service", "set", "198.18.100.1:80/tcp", "--scheduler", "source-hash", "--source-prefix", "24"},
                {200, R"({"scheduler": "source-hash", "source_prefix": 24, "maglev_size": 65537})"});
  EXPECT_EQ(run.code, 0) << run.err;
  ASSERT_EQ(run.sent.size(), 1u);
  EXPECT_EQ(run.sent[0].method, "PATCH");
  EXPECT_EQ(run.sent[0].path, "/v1/services/198.18.100.1%3A80%2Ftcp");
  EXPECT_EQ(nlohmann::json::parse(run.sent[0].body),
            nlohmann::json::parse(R"({"scheduler": "source-hash", "source_prefix": 24})"));
  EXPECT_NE(run.out.find("scheduler source-hash"), std::string::npos) << run.out;

  run = run_cli({"service", "add", "198.18.100.1:80/tcp", "--scheduler", "round-robin"},
                {201, R"({"address": "198.18.100.1:80/tcp"})"});
  EXPECT_EQ(run.code, 0) << run.err;
  ASSERT_EQ(run.sent.size(), 1u);
  EXPECT_EQ(nlohmann::json::parse(run.sent[0].body),
            nlohmann::json::parse(R"({"address": "198.18.100.1:80/tcp", "backends": [], "scheduler": "round-robin"})"));

  // Written the short way, sent the canonical way: the protocol defaults to tcp.
  run = run_cli({"service", "rm", "198.18.100.1:80"});
  ASSERT_EQ(run.sent.size(), 1u);
  EXPECT_EQ(run.sent[0].method, "DELETE");
  EXPECT_EQ(run.sent[0].path, "/v1/services/198.18.100.1%3A80%2Ftcp");
}

TEST(Cli, DrainWaitReturnsWhenTheActiveFlowsAreGoneOrSaysHowManyRemain) {
  const cli::Reply draining{200, R"({"address": "198.18.1.11:8080", "weight": 1, "state": "draining"})"};
  auto with_active = [](int active) {
    return cli::Reply{
        200, fmt::format(R"({{"address": "198.18.1.11:8080", "state": "draining", "active_flows": {}}})", active)};
  };
  CliRun run = run_cli({"backend", "drain", "198.18.100.1:80/tcp", "198.18.1.11:8080", "--wait", "--timeout", "10"},
                       {draining, with_active(2), with_active(1), with_active(0)});
  EXPECT_EQ(run.code, 0) << run.err;
  ASSERT_EQ(run.sent.size(), 4u);
  EXPECT_EQ(run.sent[0].method, "PATCH");
  for (size_t i = 1; i < run.sent.size(); ++i) {
    EXPECT_EQ(run.sent[i].method, "GET");
    EXPECT_EQ(run.sent[i].path, "/v1/services/198.18.100.1%3A80%2Ftcp/backends/198.18.1.11%3A8080");
  }
  EXPECT_NE(run.out.find("drained: no active flows"), std::string::npos) << run.out;

  run = run_cli({"backend", "drain", "198.18.100.1:80/tcp", "198.18.1.11:8080", "--wait", "--timeout", "0.3"},
                {draining, with_active(7)});
  EXPECT_EQ(run.code, 1);
  EXPECT_NE(run.err.find("timeout after"), std::string::npos) << run.err;
  EXPECT_NE(run.err.find("7 active flows remain"), std::string::npos) << run.err;

  run = run_cli({"backend", "drain", "198.18.100.1:80/tcp", "198.18.1.11:8080", "--timeout", "-1"});
  EXPECT_EQ(run.code, 2);
  EXPECT_TRUE(run.sent.empty());
}

TEST(Cli, TheAgentsRefusalIsShownAndExitsOne) {
  CliRun run = run_cli({"backend", "rm", "198.18.100.1:80/tcp", "198.18.1.11:8080"},
                       {403, R"({"error": "uid 1000 (gid 1000) is not allowed to use the tollgate API"})"});
  EXPECT_EQ(run.code, 1);
  EXPECT_NE(run.err.find("uid 1000 (gid 1000) is not allowed"), std::string::npos) << run.err;
  EXPECT_NE(run.err.find("HTTP 403"), std::string::npos) << run.err;
}

TEST(Cli, ListingsAsTablesAndJson) {
  const std::string services =
      R"([{"address": "198.18.100.1:80/tcp", "maglev_size": 65537, "scheduler": "maglev", "backends": [
           {"address": "198.18.1.11:8080", "weight": 1, "state": "up"},
           {"address": "198.18.1.12:8080", "weight": 2, "state": "draining"}]},
          {"address": "198.18.100.2:80/tcp", "maglev_size": 7, "scheduler": "source-hash", "source_prefix": 24,
           "backends": [], "table_digest": "00000000000000aa"}])";
  CliRun table = run_cli({"service", "list"}, {200, services});
  EXPECT_EQ(table.code, 0);
  EXPECT_NE(table.out.find("SERVICE"), std::string::npos);
  EXPECT_NE(table.out.find("198.18.100.1:80/tcp  2         1   maglev          65537  -"), std::string::npos)
      << table.out;
  EXPECT_NE(table.out.find("198.18.100.2:80/tcp  0         0   source-hash/24  7      00000000000000aa"),
            std::string::npos)
      << table.out;
  CliRun json = run_cli({"service", "list", "-o", "json"}, {200, services});
  EXPECT_EQ(nlohmann::json::parse(json.out), nlohmann::json::parse(services));
}

// An answer the CLI cannot read or did not expect: a message and exit 1,
// never an exception out of main().
TEST(Cli, AnAnswerBeyondTheReaderOrOfTheWrongShapeIsAnError) {
  struct Case {
    std::vector<std::string> args;
    cli::Reply reply;
    std::string error;
  };
  const std::string service = R"({"address": "198.18.100.1:80/tcp", "backends": [], "maglev_size": )";
  const Case cases[] = {
      {{"service", "list"}, {200, "[" + service + "1e400}]"}, "[0].maglev_size: 1e400 is beyond the range"},
      {{"service", "list"}, {200, "[" + service + "-1e400}]"}, "[0].maglev_size: -1e400 is beyond the range"},
      {{"service", "list"}, {200, "[" + service + huge_integer() + "}]"}, "[0].maglev_size: 1000000000000000..."},
      {{"service", "list"}, {200, deep_array()}, "nested deeper than 64 levels"},
      {{"service", "list", "-o", "json"}, {200, deep_array()}, "nested deeper than 64 levels"},
      {{"service", "list"}, {200, std::string(kByteOrderMark) + "[]"}, "byte-order mark"},
      {{"service", "list"}, {200, "[\"\xff\"]"}, "ill-formed UTF-8"},
      {{"service", "list"}, {200, "[1, 2]"}, "unexpected answer"},
      {{"backend", "add", "198.18.100.1:80/tcp", "198.18.1.11:8080"}, {201, "[]"}, "unexpected answer"},
      {{"events"}, {200, R"({"events": [], "next": "soon"})"}, "unexpected answer"},
      {{"conntrack", "list"},
       {200, R"({"flows": [{"idle_seconds": "1"}], "total": 1, "truncated": false})"},
       "unexpected answer"},
      {{"conntrack", "list"}, {200, R"({"flows": [], "total": 0})"}, "unexpected answer"},
  };
  for (const auto& test_case : cases) {
    CliRun run = run_cli(test_case.args, test_case.reply);
    std::string line =
        fmt::format("tollgate {} <- {}", fmt::join(test_case.args, " "), test_case.reply.body.substr(0, 80));
    EXPECT_EQ(run.code, 1) << line << "\n" << run.err;
    EXPECT_NE(run.err.find(test_case.error), std::string::npos) << line << "\n  -> " << run.err.substr(0, 400);
  }
}

TEST(Cli, AnUnreachableAgentIsSaidSo) {
  std::vector<const char*> argv{"tollgate", "--socket", "/nonexistent/tollgate.sock", "status"};
  std::ostringstream out, err;
  int code = cli::run(static_cast<int>(argv.size()), argv.data(), cli::unix_socket_transport, out, err);
  EXPECT_EQ(code, 1);
  EXPECT_NE(err.str().find("cannot reach tollgated at /nonexistent/tollgate.sock"), std::string::npos) << err.str();
  EXPECT_NE(err.str().find("is tollgated running? --socket or TOLLGATE_SOCKET selects another"), std::string::npos)
      << err.str();
}

TEST(Cli, TheSocketComesFromTheEnvironmentUnlessGiven) {
  auto socket_used = [](std::vector<const char*> argv) {
    std::string used;
    auto connect = [&used](const std::string& socket_path) -> cli::Transport {
      used = socket_path;
      return [](const std::string&, const std::string&, const std::string&) -> Result<cli::Reply> {
        return cli::Reply{200, "[]"};
      };
    };
    std::ostringstream out, err;
    cli::run(static_cast<int>(argv.size()), argv.data(), connect, out, err);
    return used;
  };
  unsetenv("TOLLGATE_SOCKET");
  EXPECT_EQ(socket_used({"tollgate", "service", "list"}), "/run/tollgate/tollgate.sock");
  setenv("TOLLGATE_SOCKET", "/run/other/tollgate.sock", 1);
  EXPECT_EQ(socket_used({"tollgate", "service", "list"}), "/run/other/tollgate.sock");
  EXPECT_EQ(socket_used({"tollgate", "--socket", "/tmp/given.sock", "service", "list"}), "/tmp/given.sock");
  setenv("TOLLGATE_SOCKET", "", 1);
  EXPECT_EQ(socket_used({"tollgate", "service", "list"}), "/run/tollgate/tollgate.sock");
  unsetenv("TOLLGATE_SOCKET");
}

}  // namespace
