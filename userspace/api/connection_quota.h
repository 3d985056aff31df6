// Who may open one more API connection, so that no local user can take
// them all: each uid but root holds at most `per_uid` at once, and all of
// them together at most `total - reserved_for_root`, which keeps room for
// root (uid 0) whatever the others do. Root is bound by `total` alone.
//
// Not thread-safe: the server's accepting thread is its one user.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <map>
#include <optional>
#include <string>

namespace tollgate {

struct ConnectionQuotaLimits {
  size_t total = 256;             // connections at once, root's included
  size_t reserved_for_root = 32;  // of `total`: never taken by another uid
  size_t per_uid = 16;            // for each uid but root
};

// Limits that make sense (per_uid and total at least 1, the reserve within
// total), or what is wrong with them.
std::optional<std::string> check_quota_limits(const ConnectionQuotaLimits& limits);

class ConnectionQuota {
 public:
  enum class Verdict {
    admitted,
    over_uid_limit,  // this uid holds per_uid connections already
    over_capacity,   // every connection it may take is taken
  };

  explicit ConnectionQuota(ConnectionQuotaLimits limits) : limits_(limits) {}

  // Counts a connection of `uid` when it is admitted.
  Verdict admit(uid_t uid);
  // A connection admitted for `uid` ended.
  void release(uid_t uid);

  size_t open() const { return open_; }
  size_t open_of(uid_t uid) const;
  // Why `verdict` refused `uid`, for the caller.
  std::string refusal(Verdict verdict, uid_t uid) const;

 private:
  ConnectionQuotaLimits limits_;
  std::map<uid_t, size_t> open_by_uid_;  // uids with connections open only
  size_t open_ = 0;
  size_t open_not_root_ = 0;
};

}  // namespace tollgate
