// The audit log: one JSON object per line for every control action (also
// denied and invalid ones) and every backend state change, with who asked.
#pragma once

#include <sys/types.h>

#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "result.h"

namespace tollgate {

inline constexpr const char* kDefaultAuditLog = "/var/log/tollgate/audit.log";

// Who is on the other end of a Unix socket (SO_PEERCRED, SO_PEERGROUPS).
struct Caller {
  pid_t pid = 0;
  uid_t uid = 0;
  gid_t gid = 0;
  std::vector<gid_t> groups;  // supplementary groups
  std::string command_line;   // from /proc, best effort; "" once it is gone

  static Caller of_socket(int fd);
  // This process (actions the agent takes on its own: start, reload, detach).
  static Caller of_self();
  nlohmann::json to_json() const;
};

// Now, UTC, RFC 3339 with milliseconds ("2026-11-22T10:00:00.123Z").
std::string utc_now();

class AuditLog {
 public:
  // Appends to `path` (created 0600 with its directory).
  static Result<std::unique_ptr<AuditLog>> open(const std::string& path);
  ~AuditLog();

  // Adds "time" (UTC, RFC 3339 with milliseconds) first and writes one line.
  void record(const nlohmann::json& entry);

 private:
  explicit AuditLog(int fd) : fd_(fd) {}
  std::mutex mutex_;
  int fd_;
};

}  // namespace tollgate
