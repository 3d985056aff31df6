// One leveled logger for the agent and the CLI (datapath/libbpf_log.h
// routes libbpf's messages into it).
#pragma once

#include <fmt/format.h>

#include <string>
#include <string_view>

namespace tollgate::log {

enum class Level { debug = 0, info = 1, warn = 2, error = 3, off = 4 };

// How a line looks. plain: "tollgate LEVEL message" (the CLI, tests);
// text: the same after an RFC 3339 UTC timestamp (the agent on a
// terminal or in a file); journal: after a "<N>" syslog priority, which
// journald reads (it stamps the time itself); json: one object a line,
// {"time", "level", "message"}.
enum class Format { plain, text, journal, json };

void set_format(Format format);
// Parses "text", "json" (what --log-format takes).
bool parse_format(std::string_view text, Format& out);
// Whether stderr is the journal's stream: $JOURNAL_STREAM names its device
// and inode (systemd sets it for a unit's stderr).
bool stderr_is_journal();

void set_level(Level level);
Level level();
// Parses "debug", "info", "warn", "error", "off".
bool parse_level(std::string_view text, Level& out);
void write(Level level, std::string_view message);

template <typename... Args>
void debug(fmt::format_string<Args...> format, Args&&... args) {
  if (level() <= Level::debug) write(Level::debug, fmt::format(format, std::forward<Args>(args)...));
}
template <typename... Args>
void info(fmt::format_string<Args...> format, Args&&... args) {
  if (level() <= Level::info) write(Level::info, fmt::format(format, std::forward<Args>(args)...));
}
template <typename... Args>
void warn(fmt::format_string<Args...> format, Args&&... args) {
  if (level() <= Level::warn) write(Level::warn, fmt::format(format, std::forward<Args>(args)...));
}
template <typename... Args>
void error(fmt::format_string<Args...> format, Args&&... args) {
  if (level() <= Level::error) write(Level::error, fmt::format(format, std::forward<Args>(args)...));
}

}  // namespace tollgate::log
