#include "connection_quota.h"

#include <fmt/format.h>

namespace tollgate {

std::optional<std::string> check_quota_limits(const ConnectionQuotaLimits& limits) {
  if (limits.total == 0) return "the API must take at least 1 connection at once";
  if (limits.per_uid == 0) return "each uid must be allowed at least 1 connection";
  if (limits.reserved_for_root > limits.total)
    return fmt::format("{} connections reserved for root, more than the {} the API takes at once",
                       limits.reserved_for_root, limits.total);
  return std::nullopt;
}

ConnectionQuota::Verdict ConnectionQuota::admit(uid_t uid) {
  if (uid == 0) {
    if (open_ >= limits_.total) return Verdict::over_capacity;
  } else {
    auto found = open_by_uid_.find(uid);
    if (found != open_by_uid_.end() && found->second >= limits_.per_uid) return Verdict::over_uid_limit;
    if (open_not_root_ >= limits_.total - limits_.reserved_for_root || open_ >= limits_.total)
      return Verdict::over_capacity;
    ++open_not_root_;
  }
  ++open_by_uid_[uid];
  ++open_;
  return Verdict::admitted;
}

void ConnectionQuota::release(uid_t uid) {
  auto found = open_by_uid_.find(uid);
  if (found == open_by_uid_.end()) return;  // never admitted: nothing to give back
  if (--found->second == 0) open_by_uid_.erase(found);
  --open_;
  if (uid != 0) --open_not_root_;
}

size_t ConnectionQuota::open_of(uid_t uid) const {
  auto found = open_by_uid_.find(uid);
  return found == open_by_uid_.end() ? 0 : found->second;
}

std::string ConnectionQuota::refusal(Verdict verdict, uid_t uid) const {
  switch (verdict) {
    case Verdict::admitted: return "";
    case Verdict::over_uid_limit:
      return fmt::format("uid {} has {} API connections open, the most one uid may; try again", uid, limits_.per_uid);
    case Verdict::over_capacity:
      if (uid == 0) return fmt::format("the API serves at most {} connections at once; try again", limits_.total);
      return fmt::format(
          "the API serves at most {} connections at once, {} of them kept for root, and those are taken; try again",
          limits_.total, limits_.reserved_for_root);
  }
  return "";
}

}  // namespace tollgate
