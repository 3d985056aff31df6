#include "libbpf_log.h"

#include <bpf/libbpf.h>

#include <cstdarg>
#include <cstdio>
#include <string>
#include <vector>

namespace tollgate::log {
namespace {

thread_local int warnings_expected = 0;  // LibbpfWarningsExpected alive on this thread

constexpr std::string_view kLogBegin = "-- BEGIN PROG LOAD LOG --\n";
constexpr std::string_view kLogEnd = "-- END PROG LOAD LOG --";

// libbpf prints a refused program's verifier log as one warning:
// "prog 'NAME': -- BEGIN PROG LOAD LOG --\n<log>-- END PROG LOAD LOG --".
// Thousands of lines: all of them at debug, one line at error.
void write_verifier_log(std::string_view message) {
  size_t begin = message.find(kLogBegin);
  std::string_view program = message.substr(0, begin);
  while (!program.empty() && (program.back() == ' ' || program.back() == ':')) program.remove_suffix(1);
  std::string_view body = message.substr(begin + kLogBegin.size());
  body = body.substr(0, body.find(kLogEnd));
  if (level() <= Level::debug) {
    size_t position = 0;
    while (position < body.size()) {
      size_t end = body.find('\n', position);
      if (end == std::string_view::npos) end = body.size();
      write(Level::debug, fmt::format("libbpf: {} verifier: {}", program, body.substr(position, end - position)));
      position = end + 1;
    }
  }
  if (level() <= Level::error)
    write(Level::error, fmt::format("the kernel's verifier refused {}: {} (--log-level debug shows its whole log)",
                                    program, summarize_verifier_log(body)));
}

int libbpf_print(enum libbpf_print_level libbpf_level, const char* format, va_list args) {
  // libbpf's info lines are load details: debug for us; so are warnings
  // the caller expects.
  if (libbpf_level == LIBBPF_WARN && warnings_expected > 0) libbpf_level = LIBBPF_DEBUG;
  Level mapped = libbpf_level == LIBBPF_WARN ? Level::warn : Level::debug;
  // A warning may carry a verifier log, whose summary is an error.
  const bool wanted = level() <= mapped || (libbpf_level == LIBBPF_WARN && level() <= Level::error);
  if (!wanted) return 0;
  va_list measure;
  va_copy(measure, args);
  int length = std::vsnprintf(nullptr, 0, format, measure);
  va_end(measure);
  if (length < 0) return 0;
  std::string buffer(static_cast<size_t>(length) + 1, '\0');
  std::vsnprintf(buffer.data(), buffer.size(), format, args);
  std::string_view message(buffer.data(), static_cast<size_t>(length));
  while (!message.empty() && message.back() == '\n') message.remove_suffix(1);
  if (message.starts_with("libbpf: ")) message.remove_prefix(8);  // most of its lines name it already
  if (message.find(kLogBegin) != std::string_view::npos) {
    write_verifier_log(message);
  } else if (level() <= mapped) {
    write(mapped, fmt::format("libbpf: {}", message));
  }
  return length;
}

}  // namespace

void capture_libbpf() { libbpf_set_print(libbpf_print); }

LibbpfWarningsExpected::LibbpfWarningsExpected() { ++warnings_expected; }
LibbpfWarningsExpected::~LibbpfWarningsExpected() { --warnings_expected; }

std::string summarize_verifier_log(std::string_view log) {
  // The verifier ends with its statistics; before them comes the reason
  // (a line or two), and before that the instruction it stopped at.
  std::vector<std::string_view> lines;
  size_t position = 0;
  while (position < log.size()) {
    size_t end = log.find('\n', position);
    if (end == std::string_view::npos) end = log.size();
    std::string_view line = log.substr(position, end - position);
    while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) line.remove_suffix(1);
    if (!line.empty()) lines.push_back(line);
    position = end + 1;
  }
  auto is_statistics = [](std::string_view line) {
    return line.starts_with("processed ") || line.starts_with("verification time") || line.starts_with("stack depth") ||
           line.starts_with("Validating ") || line.starts_with("Func#");
  };
  // An instruction line reads "123: (0f) r1 += r2".
  auto is_instruction = [](std::string_view line) {
    size_t colon = line.find(": (");
    return colon != std::string_view::npos && colon > 0 &&
           line.substr(0, colon).find_first_not_of("0123456789") == std::string_view::npos;
  };
  while (!lines.empty() && is_statistics(lines.back())) lines.pop_back();
  if (lines.empty()) return "(no log)";
  size_t instruction = lines.size();
  while (instruction > 0 && !is_instruction(lines[instruction - 1])) --instruction;
  if (instruction == 0 || instruction == lines.size()) return std::string(lines.back());
  std::vector<std::string_view> reason(lines.begin() + static_cast<std::ptrdiff_t>(instruction), lines.end());
  std::string_view at = lines[instruction - 1];
  at = at.substr(0, at.find("   ;"));  // the register state the verifier appends
  while (!at.empty() && at.back() == ' ') at.remove_suffix(1);
  return fmt::format("{} [at instruction {}]", fmt::join(reason, "; "), at);
}

}  // namespace tollgate::log
