#include "state.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <random>

#include "hostile_json.h"

using namespace tollgate;
using namespace tollgate::test;

namespace {

class StateTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char pattern[] = "/tmp/tollgate-state-test-XXXXXX";
    ASSERT_NE(mkdtemp(pattern), nullptr);
    dir_ = pattern;
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  nlohmann::json last_journal_line() const {
    std::ifstream journal(dir_ + "/state.journal");
    std::string line, last;
    while (std::getline(journal, line)) last = line;
    return nlohmann::json::parse(last, nullptr, false);
  }

  // A state with `backends` backends in one service, tagged by its weight.
  static AgentState sample(size_t backends, uint32_t weight) {
    AgentState state;
    ServiceSpec service;
    service.address = *ServiceAddress::parse("198.18.100.1:80/tcp");
    for (size_t i = 0; i < backends; ++i) {
      BackendSpec backend;
      backend.endpoint = *Endpoint::parse(fmt::format("198.18.{}.{}:8080", 1 + i / 250, 1 + i % 250));
      backend.weight = weight;
      backend.state = i % 3 == 0 ? BackendState::draining : BackendState::up;
      service.backends.push_back(backend);
    }
    state.desired.services.push_back(service);
    state.desired.timeouts.udp = std::chrono::seconds(weight);
    state.config_digest = content_digest(fmt::format("config {}", weight));
    state.xdp_interfaces = {"eth0"};
    state.tc_interfaces = {"eth1", "eth2"};
    return state;
  }

  std::string dir_;
};

TEST_F(StateTest, NoFileIsNoState) {
  auto state = load_state(dir_);
  ASSERT_TRUE(state) << state.error().message;
  EXPECT_FALSE(state->has_value());
}

TEST_F(StateTest, RoundTrip) {
  AgentState saved = sample(300, 7);
  ASSERT_TRUE(save_state(dir_, saved));
  auto loaded = load_state(dir_);
  ASSERT_TRUE(loaded) << loaded.error().message;
  ASSERT_TRUE(loaded->has_value());
  EXPECT_EQ(**loaded, saved);
  EXPECT_FALSE(std::filesystem::exists(dir_ + "/state.json.tmp"));
}

TEST_F(StateTest, CorruptFileIsAnErrorNotAnEmptyState) {
  std::ofstream(dir_ + "/state.json") << "{\"version\": 1, \"config\": {\"services\": [";
  auto loaded = load_state(dir_);
  ASSERT_FALSE(loaded);
  EXPECT_NE(loaded.error().message.find("state.json"), std::string::npos) << loaded.error().message;
  std::ofstream(dir_ + "/state.json") << R"({"version": 1, "config": {"services": [{"address": "1.2.3.4:99999"}]}})";
  loaded = load_state(dir_);
  ASSERT_FALSE(loaded);
  EXPECT_NE(loaded.error().message.find("config.services[0].address"), std::string::npos) << loaded.error().message;
}

TEST_F(StateTest, AWriteCutShortLeavesTheOldStateReadable) {
  AgentState old_state = sample(10, 1);
  ASSERT_TRUE(save_state(dir_, old_state));
  // What a crash in the middle of the next write leaves: half a temporary.
  std::ofstream(dir_ + "/state.json.tmp") << "{\"version\": 1, \"config\": {\"serv";
  auto loaded = load_state(dir_);
  ASSERT_TRUE(loaded) << loaded.error().message;
  EXPECT_EQ(**loaded, old_state);
  // And the next write goes through.
  AgentState new_state = sample(10, 2);
  ASSERT_TRUE(save_state(dir_, new_state));
  EXPECT_EQ(**load_state(dir_), new_state);
}

TEST_F(StateTest, KilledWhileWritingLeavesOneWholeState) {
  // A child rewrites a large state over and over, alternating two
  // versions; it is killed at random moments. Whatever is on disk must be
  // one of the two, whole.
  const AgentState first = sample(3000, 1), second = sample(3000, 2);
  ASSERT_TRUE(save_state(dir_, first));
  std::mt19937 random(12345);
  for (int round = 0; round < 20; ++round) {
    pid_t child = fork();
    ASSERT_GE(child, 0);
    if (child == 0) {
      for (int i = 0; i < 200; ++i) (void)save_state(dir_, i % 2 ? first : second);
      _exit(0);
    }
    usleep(std::uniform_int_distribution<useconds_t>(1000, 30000)(random));  // a random moment to crash at
    kill(child, SIGKILL);
    int status = 0;
    waitpid(child, &status, 0);
    auto loaded = load_state(dir_);
    ASSERT_TRUE(loaded) << "round " << round << ": " << loaded.error().message;
    ASSERT_TRUE(loaded->has_value());
    EXPECT_TRUE(**loaded == first || **loaded == second) << "round " << round;
  }
}

// One service's changes go to the journal and come back at load, in order;
// a line cut by a crash is ignored, a journal of an earlier state.json too.
TEST_F(StateTest, ServiceChangesAreJournaledAndReplayed) {
  AgentState state = sample(5, 3);
  ASSERT_TRUE(save_state(dir_, state));
  ServiceSpec second;
  second.address = *ServiceAddress::parse("198.18.100.2:53/udp");
  second.backends.push_back({*Endpoint::parse("198.18.1.11:9000"), 2, BackendState::up});
  auto whole = [&state] { return state; };
  state.desired.services.push_back(second);
  ASSERT_TRUE(save_service_change(dir_, second.address, nullptr, &state.desired.services.back(), whole));
  const ServiceSpec before = state.desired.services[0];
  state.desired.services[0].backends[1].weight = 9;
  state.desired.services[0].backends[2].state = BackendState::draining;
  ASSERT_TRUE(save_service_change(dir_, before.address, &before, &state.desired.services[0], whole));
  // Only those two backends went to the journal.
  EXPECT_EQ(last_journal_line()["backends"]["set"].size(), 2u) << last_journal_line();
  ASSERT_TRUE(load_state(dir_));
  EXPECT_EQ(load_state(dir_)->value(), state);
  state.desired.services.erase(state.desired.services.begin());
  ASSERT_TRUE(save_service_change(dir_, before.address, &before, nullptr, whole));
  auto loaded = load_state(dir_);
  ASSERT_TRUE(loaded && *loaded) << (loaded ? "" : loaded.error().message);
  EXPECT_EQ(**loaded, state);
  // The journal holds three lines, one change each, not the state.
  std::ifstream journal(dir_ + "/state.journal");
  std::string line;
  size_t lines = 0;
  while (std::getline(journal, line)) ++lines;
  EXPECT_EQ(lines, 4u);  // its header and three changes

  // A crash in the middle of an append: the cut line is not applied.
  {
    std::ofstream append(dir_ + "/state.journal", std::ios::app);
    append << R"({"remove": "198.18.100.2:53/u)";
  }
  loaded = load_state(dir_);
  ASSERT_TRUE(loaded && *loaded) << (loaded ? "" : loaded.error().message);
  EXPECT_EQ(**loaded, state);
  // A whole state written starts a new journal; the old lines are gone.
  ASSERT_TRUE(save_state(dir_, sample(2, 4)));
  EXPECT_EQ(**load_state(dir_), sample(2, 4));
}

TEST_F(StateTest, AJournalOfAnotherStateIsIgnoredAndABadLineIsAnError) {
  ASSERT_TRUE(save_state(dir_, sample(2, 4)));
  // A journal left by an earlier state.json (the crash came between the
  // two writes of save_state): its changes are already in the state.
  {
    std::ofstream journal(dir_ + "/state.journal", std::ios::trunc);
    journal << R"({"journal": "another"})"
            << "\n"
            << R"({"remove": "198.18.100.1:80/tcp"})"
            << "\n";
  }
  EXPECT_EQ(**load_state(dir_), sample(2, 4));
  // A whole line that is not a record: an error, never a silent skip.
  ASSERT_TRUE(save_state(dir_, sample(2, 4)));
  {
    std::ofstream journal(dir_ + "/state.journal", std::ios::app);
    journal << R"({"rename": 1})"
            << "\n";
  }
  auto loaded = load_state(dir_);
  ASSERT_FALSE(loaded);
  EXPECT_NE(loaded.error().message.find("line 2: expected set, backends or remove"), std::string::npos)
      << loaded.error().message;
  // Backends of a service the state does not hold: an error too.
  ASSERT_TRUE(save_state(dir_, sample(2, 4)));
  {
    std::ofstream journal(dir_ + "/state.journal", std::ios::app);
    journal << R"({"backends": {"service": "198.18.100.9:80/tcp", "set": []}})"
            << "\n";
  }
  loaded = load_state(dir_);
  ASSERT_FALSE(loaded);
  EXPECT_NE(loaded.error().message.find("line 2: backends: service 198.18.100.9:80/tcp is not in the state"),
            std::string::npos)
      << loaded.error().message;
}

// A state file or journal that a JSON reader cannot hold, or whose fields
// are of the wrong type: an error naming the file and the field, never an
// exception (the agent would abort at start).
TEST_F(StateTest, TextsBeyondTheReaderAreNamedErrors) {
  const std::string service = R"({"address": "198.18.100.1:80/tcp", )";
  struct Case {
    std::string state;
    std::string error;
  };
  const Case cases[] = {
      {R"({"version": 1, "config": {"services": [)" + service + R"("maglev_size": 1e400}]}})",
       "config.services[0].maglev_size: 1e400 is beyond the range of a number"},
      {R"({"version": 1, "config": {"timeouts": {"udp": )" + huge_integer() + "}}}",
       "config.timeouts.udp: 1000000000000000"},
      {R"({"version": -1e400, "config": {}})", "version: -1e400 is beyond the range of a number"},
      {R"({"version": "1", "config": {}})", "version: expected 1"},
      {R"({"version": 18446744073709551617, "config": {}})", "version: expected 1"},
      {"{\"version\": 1, \"config\": {\"services\": [{\"address\": \"198.18.100.1:80/tcp\xff\"}]}}",
       "ill-formed UTF-8"},
      {std::string(kByteOrderMark) + R"({"version": 1, "config": {}})", "byte-order mark"},
      {R"({"version": 1, "config": {"services": [)" + service + R"("policy": {"allow": )" + deep_array() + "}}]}}",
       "nested deeper than 64 levels"},
  };
  for (const auto& test_case : cases) {
    std::ofstream(dir_ + "/state.json", std::ios::trunc) << test_case.state;
    auto loaded = load_state(dir_);
    ASSERT_FALSE(loaded) << test_case.state.substr(0, 200);
    EXPECT_NE(loaded.error().message.find("state.json: "), std::string::npos) << loaded.error().message;
    EXPECT_NE(loaded.error().message.find(test_case.error), std::string::npos)
        << test_case.state.substr(0, 200) << "\n  -> " << loaded.error().message.substr(0, 400);
  }
}

TEST_F(StateTest, AJournalBeyondTheReaderIsANamedError) {
  const std::string cases[][2] = {
      {R"({"set": {"address": "198.18.100.1:80/tcp", "maglev_size": 1e400}})",
       "line 2, column 59: set.maglev_size: 1e400 is beyond the range of a number"},
      {R"({"backends": {"service": "198.18.100.1:80/tcp", "set": [{"address": "198.18.1.1:8080", "weight": -1e400}]}})",
       "backends.set[0].weight: -1e400 is beyond"},
      {"{\"remove\": \"198.18.100.1:80/tcp\xff\"}",
       "line 2, column 32: syntax error while parsing value - invalid string: ill-formed UTF-8"},
      {R"({"set": )" + deep_array() + "}", "nested deeper than 64 levels"},
  };
  for (const auto& [record, error] : cases) {
    ASSERT_TRUE(save_state(dir_, sample(2, 4)));
    std::ofstream(dir_ + "/state.journal", std::ios::app) << record << "\n";
    auto loaded = load_state(dir_);
    ASSERT_FALSE(loaded) << record.substr(0, 200);
    EXPECT_NE(loaded.error().message.find(error), std::string::npos)
        << record.substr(0, 200) << "\n  -> " << loaded.error().message.substr(0, 400);
  }
  // A journal header of the wrong type is some other state's journal.
  ASSERT_TRUE(save_state(dir_, sample(2, 4)));
  std::ofstream(dir_ + "/state.journal", std::ios::trunc) << R"({"journal": 5})"
                                                          << "\n"
                                                          << R"({"remove": "198.18.100.1:80/tcp"})"
                                                          << "\n";
  auto loaded = load_state(dir_);
  ASSERT_TRUE(loaded && *loaded) << (loaded ? "" : loaded.error().message);
  EXPECT_EQ(**loaded, sample(2, 4));
}

}  // namespace
