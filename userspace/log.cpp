#include "log.h"

#include <bpf/libbpf.h>

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

int libbpf_print(enum libbpf_print_level libbpf_level, const char* format, va_list args) {
  // libbpf's info lines are load details: debug for us.
  Level mapped = libbpf_level == LIBBPF_WARN ? Level::warn : Level::debug;
  if (level() > mapped) return 0;
  char buffer[2048];
  int length = std::vsnprintf(buffer, sizeof(buffer), format, args);
  if (length < 0) return 0;
  std::string_view message(buffer, std::min<size_t>(length, sizeof(buffer) - 1));
  while (!message.empty() && message.back() == '\n') message.remove_suffix(1);
  if (message.starts_with("libbpf: ")) message.remove_prefix(8);  // most of its lines name it already
  write(mapped, fmt::format("libbpf: {}", message));
  return length;
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

void capture_libbpf() { libbpf_set_print(libbpf_print); }

}  // namespace tollgate::log
