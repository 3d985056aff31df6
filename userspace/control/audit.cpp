#include "audit.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "log.h"

namespace tollgate {
namespace {

std::string command_line_of(pid_t pid) {
  std::ifstream file(fmt::format("/proc/{}/cmdline", pid), std::ios::binary);
  std::string text;
  char c;
  while (text.size() < 1024 && file.get(c)) text.push_back(c == '\0' ? ' ' : c);
  while (!text.empty() && text.back() == ' ') text.pop_back();
  return text;
}

}  // namespace

std::string utc_now() {
  auto now = std::chrono::system_clock::now();
  auto milliseconds = std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count() % 1000;
  time_t seconds = std::chrono::system_clock::to_time_t(now);
  struct tm parts {};
  gmtime_r(&seconds, &parts);
  char text[32];
  strftime(text, sizeof(text), "%Y-%m-%dT%H:%M:%S", &parts);
  return fmt::format("{}.{:03d}Z", text, milliseconds);
}

Caller Caller::of_socket(int fd) {
  Caller caller;
  struct ucred credentials {};
  socklen_t length = sizeof(credentials);
  if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &credentials, &length) == 0) {
    caller.pid = credentials.pid;
    caller.uid = credentials.uid;
    caller.gid = credentials.gid;
  } else {
    // Unknown peer: treat as nobody, never as root.
    caller.uid = static_cast<uid_t>(-1);
    caller.gid = static_cast<gid_t>(-1);
  }
  std::vector<gid_t> groups(64);
  socklen_t groups_length = static_cast<socklen_t>(groups.size() * sizeof(gid_t));
  if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups.data(), &groups_length) == 0) {
    groups.resize(groups_length / sizeof(gid_t));
    caller.groups = std::move(groups);
  }
  if (caller.pid > 0) caller.command_line = command_line_of(caller.pid);
  return caller;
}

Caller Caller::of_self() {
  Caller caller;
  caller.pid = getpid();
  caller.uid = getuid();
  caller.gid = getgid();
  caller.command_line = command_line_of(caller.pid);
  return caller;
}

nlohmann::json Caller::to_json() const {
  return {{"uid", uid}, {"gid", gid}, {"pid", pid}, {"command_line", command_line}};
}

Result<std::unique_ptr<AuditLog>> AuditLog::open(const std::string& path) {
  std::error_code error;
  auto dir = std::filesystem::path(path).parent_path();
  if (!dir.empty()) std::filesystem::create_directories(dir, error);
  if (error) return make_error("cannot create audit log directory {}: {}", dir.string(), error.message());
  int fd = ::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) return make_error("cannot open audit log {}: {}", path, std::strerror(errno));
  return std::unique_ptr<AuditLog>(new AuditLog(fd));
}

AuditLog::~AuditLog() { close(fd_); }

void AuditLog::record(const nlohmann::json& entry) {
  nlohmann::ordered_json line;
  line["time"] = utc_now();
  for (const auto& [key, value] : entry.items()) line[key] = value;
  // One write per line with O_APPEND: lines never interleave.
  std::string text = line.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
  std::lock_guard lock(mutex_);
  if (write(fd_, text.data(), text.size()) != static_cast<ssize_t>(text.size()))
    log::error("audit log write failed: {}", std::strerror(errno));
}

}  // namespace tollgate
