#include "log.h"

#include <atomic>
#include <cstdarg>
#include <cstdio>
#include <string>

namespace tollgate::log {
namespace {

std::atomic<Level> current_level{Level::info};

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

}  // namespace

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
  std::fprintf(stderr, "tollgate %-5s %.*s\n", level_name(level).data(), static_cast<int>(message.size()),
               message.data());
}

}  // namespace tollgate::log
