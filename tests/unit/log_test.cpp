// The logger's line formats: plain for the CLI, a timestamp for the agent,
// the journal's priorities under systemd, JSON objects; and how it tells
// that stderr is the journal.
#include "log.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <nlohmann/json.hpp>
#include <regex>
#include <string>

using namespace tollgate;
using testing::internal::CaptureStderr;
using testing::internal::GetCapturedStderr;

namespace {

class LogTest : public ::testing::Test {
 protected:
  void TearDown() override {
    log::set_format(log::Format::plain);
    log::set_level(log::Level::info);
    unsetenv("JOURNAL_STREAM");
  }
  std::string logged(log::Format format, log::Level level, const std::string& message) {
    log::set_format(format);
    CaptureStderr();
    log::write(level, message);
    return GetCapturedStderr();
  }
};

TEST_F(LogTest, PlainAndTextLinesTextWithAUtcTimestampFirst) {
  EXPECT_EQ(logged(log::Format::plain, log::Level::info, "ready"), "tollgate info  ready\n");
  const std::string line = logged(log::Format::text, log::Level::warn, "generic XDP");
  EXPECT_TRUE(
      std::regex_match(line, std::regex(R"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z tollgate warn  generic XDP\n)")))
      << line;
}

TEST_F(LogTest, JournalLinesCarryTheSyslogPriority) {
  EXPECT_EQ(logged(log::Format::journal, log::Level::error, "x"), "<3>tollgate error x\n");
  EXPECT_EQ(logged(log::Format::journal, log::Level::warn, "x"), "<4>tollgate warn  x\n");
  EXPECT_EQ(logged(log::Format::journal, log::Level::info, "x"), "<6>tollgate info  x\n");
  EXPECT_EQ(logged(log::Format::journal, log::Level::debug, "x"), "<7>tollgate debug x\n");
}

TEST_F(LogTest, JsonLinesAreObjectsEvenForBytesThatAreNotUtf8) {
  const std::string line = logged(log::Format::json, log::Level::error, "bad \"name\" \xff\n end");
  ASSERT_FALSE(line.empty());
  EXPECT_EQ(line.back(), '\n');
  EXPECT_EQ(line.find('\n'), line.size() - 1) << "one line";
  auto object = nlohmann::json::parse(line);
  EXPECT_EQ(object["level"], "error");
  EXPECT_EQ(object["message"], "bad \"name\" \xef\xbf\xbd\n end");
  EXPECT_TRUE(std::regex_match(object["time"].get<std::string>(), std::regex(R"(\d{4}-.*T.*\.\d{3}Z)")));
}

TEST_F(LogTest, FormatsAreParsedByName) {
  log::Format format{};
  EXPECT_TRUE(log::parse_format("text", format));
  EXPECT_EQ(format, log::Format::text);
  EXPECT_TRUE(log::parse_format("json", format));
  EXPECT_EQ(format, log::Format::json);
  for (const char* bad : {"", "plain", "journal", "JSON", "yaml"}) EXPECT_FALSE(log::parse_format(bad, format)) << bad;
}

TEST_F(LogTest, StderrIsTheJournalOnlyWhenJournalStreamNamesIt) {
  CaptureStderr();  // stderr is a file of its own now
  struct stat status {};
  ASSERT_EQ(fstat(STDERR_FILENO, &status), 0);
  EXPECT_FALSE(log::stderr_is_journal()) << "no JOURNAL_STREAM";
  setenv("JOURNAL_STREAM", fmt::format("{}:{}", status.st_dev, status.st_ino).c_str(), 1);
  EXPECT_TRUE(log::stderr_is_journal());
  setenv("JOURNAL_STREAM", fmt::format("{}:{}", status.st_dev, status.st_ino + 1).c_str(), 1);
  EXPECT_FALSE(log::stderr_is_journal()) << "another stream: stderr was redirected";
  setenv("JOURNAL_STREAM", "garbage", 1);
  EXPECT_FALSE(log::stderr_is_journal());
  GetCapturedStderr();
}

}  // namespace
