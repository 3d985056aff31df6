// ConnectionQuota: each uid but root a few connections, all of them
// together never the ones kept for root; root bound by the total alone.
#include "connection_quota.h"

#include <gtest/gtest.h>

using namespace tollgate;

namespace {

using Verdict = ConnectionQuota::Verdict;

constexpr uid_t kRoot = 0;
constexpr uid_t kNobody = 65534;
constexpr uid_t kOperator = 1000;

TEST(ConnectionQuota, AUidBeyondItsLimitIsRefusedAndOthersAreNot) {
  ConnectionQuota quota({.total = 100, .reserved_for_root = 10, .per_uid = 3});
  for (int i = 0; i < 3; ++i) EXPECT_EQ(quota.admit(kNobody), Verdict::admitted) << i;
  EXPECT_EQ(quota.admit(kNobody), Verdict::over_uid_limit);
  EXPECT_EQ(quota.open_of(kNobody), 3u);
  EXPECT_EQ(quota.admit(kOperator), Verdict::admitted);
  EXPECT_EQ(quota.open(), 4u);

  quota.release(kNobody);  // one ended: room for one more, not two
  EXPECT_EQ(quota.admit(kNobody), Verdict::admitted);
  EXPECT_EQ(quota.admit(kNobody), Verdict::over_uid_limit);
  EXPECT_NE(quota.refusal(Verdict::over_uid_limit, kNobody).find("uid 65534 has 3 API connections open"),
            std::string::npos)
      << quota.refusal(Verdict::over_uid_limit, kNobody);
}

TEST(ConnectionQuota, RootIsNotBoundByThePerUidLimit) {
  ConnectionQuota quota({.total = 10, .reserved_for_root = 2, .per_uid = 1});
  for (int i = 0; i < 10; ++i) EXPECT_EQ(quota.admit(kRoot), Verdict::admitted) << i;
  EXPECT_EQ(quota.admit(kRoot), Verdict::over_capacity);  // the total binds root too
  EXPECT_EQ(quota.admit(kNobody), Verdict::over_capacity);
  EXPECT_NE(quota.refusal(Verdict::over_capacity, kRoot).find("at most 10 connections"), std::string::npos);
}

TEST(ConnectionQuota, ManyUidsTogetherNeverTakeWhatIsKeptForRoot) {
  ConnectionQuota quota({.total = 8, .reserved_for_root = 3, .per_uid = 2});
  // Uids 1000.. take 2 each until the 5 not kept for root are gone.
  size_t admitted = 0;
  uid_t uid = kOperator;
  for (int attempt = 0; attempt < 20; ++attempt, ++uid)
    for (int i = 0; i < 2; ++i) admitted += quota.admit(uid) == Verdict::admitted;
  EXPECT_EQ(admitted, 5u);
  EXPECT_EQ(quota.admit(kOperator + 100), Verdict::over_capacity);
  EXPECT_NE(quota.refusal(Verdict::over_capacity, kNobody).find("3 of them kept for root"), std::string::npos)
      << quota.refusal(Verdict::over_capacity, kNobody);
  // Root finds its 3, and no more.
  for (int i = 0; i < 3; ++i) EXPECT_EQ(quota.admit(kRoot), Verdict::admitted) << i;
  EXPECT_EQ(quota.admit(kRoot), Verdict::over_capacity);
  EXPECT_EQ(quota.open(), 8u);

  // What root frees is root's again: the others still find nothing.
  quota.release(kRoot);
  EXPECT_EQ(quota.admit(kNobody), Verdict::over_capacity);
  EXPECT_EQ(quota.admit(kRoot), Verdict::admitted);
  // What another uid frees goes to whoever comes first.
  quota.release(kOperator);
  EXPECT_EQ(quota.open_of(kOperator), 1u);
  EXPECT_EQ(quota.admit(kNobody), Verdict::admitted);
}

TEST(ConnectionQuota, RootFillsTheSharedPartToo) {
  // Root may take everything; then the others wait for root to let go.
  ConnectionQuota quota({.total = 4, .reserved_for_root = 1, .per_uid = 4});
  for (int i = 0; i < 4; ++i) EXPECT_EQ(quota.admit(kRoot), Verdict::admitted) << i;
  EXPECT_EQ(quota.admit(kNobody), Verdict::over_capacity);
  quota.release(kRoot);
  EXPECT_EQ(quota.admit(kNobody), Verdict::admitted);
  EXPECT_EQ(quota.admit(kNobody), Verdict::over_capacity);
}

TEST(ConnectionQuota, ReleasingWhatWasNeverAdmittedChangesNothing) {
  ConnectionQuota quota({.total = 2, .reserved_for_root = 1, .per_uid = 1});
  quota.release(kNobody);
  quota.release(kRoot);
  EXPECT_EQ(quota.open(), 0u);
  EXPECT_EQ(quota.admit(kNobody), Verdict::admitted);
  EXPECT_EQ(quota.admit(kOperator), Verdict::over_capacity);  // 1 of 2 kept for root
  EXPECT_EQ(quota.admit(kRoot), Verdict::admitted);
}

TEST(ConnectionQuota, NoReserveMeansEveryoneShares) {
  ConnectionQuota quota({.total = 2, .reserved_for_root = 0, .per_uid = 2});
  EXPECT_EQ(quota.admit(kNobody), Verdict::admitted);
  EXPECT_EQ(quota.admit(kNobody), Verdict::admitted);
  EXPECT_EQ(quota.admit(kRoot), Verdict::over_capacity);
}

TEST(ConnectionQuota, LimitsThatMakeNoSenseAreNamed) {
  EXPECT_FALSE(check_quota_limits({}));                                                  // the defaults
  EXPECT_FALSE(check_quota_limits({.total = 4, .reserved_for_root = 4, .per_uid = 1}));  // root only
  auto wrong = check_quota_limits({.total = 4, .reserved_for_root = 5, .per_uid = 1});
  ASSERT_TRUE(wrong);
  EXPECT_NE(wrong->find("5 connections reserved for root, more than the 4"), std::string::npos) << *wrong;
  EXPECT_TRUE(check_quota_limits({.total = 0, .reserved_for_root = 0, .per_uid = 1}));
  EXPECT_TRUE(check_quota_limits({.total = 4, .reserved_for_root = 0, .per_uid = 0}));
}

}  // namespace
