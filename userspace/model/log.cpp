#include "log.h"

#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <nlohmann/json.hpp>
#include <string>

namespace tollgate::log {
namespace {

std::atomic<Level> current_level{Level::info};
std::atomic<Format> current_format{Format::plain};

constexpr std::string_view level_name(Level level) {
  switch (level) {
    case Level::debug: return "debug";
    case Level::info: return "info";
    case Level::warn: return "warn";
    case Level::error: return "error";
    case Level::off: return "off";
  }
  return "?";
}

// syslog(3) priorities, for journald.
constexpr int journal_priority(Level level) {
  switch (level) {
    case Level::debug: return 7;
    case Level::info: return 6;
    case Level::warn: return 4;
    case Level::error: return 3;
    case Level::off: return 6;
  }
  return 6;
}

// 2026-12-03T15:35:29.123Z
std::string utc_now() {
  timespec now{};
  clock_gettime(CLOCK_REALTIME, &now);
  tm parts{};
  gmtime_r(&now.tv_sec, &parts);
  char text[32];
  size_t length = std::strftime(text, sizeof(text), "%Y-%m-%dT%H:%M:%S", &parts);
  return fmt::format("{}.{:03}Z", std::string_view(text, length), now.tv_nsec / 1'000'000);
}

}  // namespace

void set_format(Format format) { current_format.store(format); }

bool parse_format(std::string_view text, Format& out) {
  if (text == "text") return out = Format::text, true;
  if (text == "json") return out = Format::json, true;
  return false;
}

bool stderr_is_journal() {
  const char* stream = std::getenv("JOURNAL_STREAM");
  struct stat status {};
  if (!stream || fstat(STDERR_FILENO, &status) != 0) return false;
  unsigned long long device = 0, inode = 0;
  if (std::sscanf(stream, "%llu:%llu", &device, &inode) != 2) return false;
  return device == status.st_dev && inode == status.st_ino;
}

void set_level(Level level) { current_level.store(level); }
Level level() { return current_level.load(std::memory_order_relaxed); }

bool parse_level(std::string_view text, Level& out) {
  for (Level candidate : {Level::debug, Level::info, Level::warn, Level::error, Level::off}) {
    if (text == level_name(candidate)) {
      out = candidate;
      return true;
    }
  }
  return false;
}

void write(Level level, std::string_view message) {
  // One fprintf per line keeps concurrent lines whole.
  const auto name = level_name(level);
  const int length = static_cast<int>(message.size());
  switch (current_format.load(std::memory_order_relaxed)) {
    case Format::plain: std::fprintf(stderr, "tollgate %-5s %.*s\n", name.data(), length, message.data()); break;
    case Format::text:
      std::fprintf(stderr, "%s tollgate %-5s %.*s\n", utc_now().c_str(), name.data(), length, message.data());
      break;
    case Format::journal:
      std::fprintf(stderr, "<%d>tollgate %-5s %.*s\n", journal_priority(level), name.data(), length, message.data());
      break;
    case Format::json: {
      const nlohmann::json line = {{"time", utc_now()}, {"level", name}, {"message", message}};
      // Bytes that are not UTF-8 (an interface name, a peer's text) become U+FFFD, never an exception.
      std::fprintf(stderr, "%s\n", line.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
      break;
    }
  }
}

}  // namespace tollgate::log
