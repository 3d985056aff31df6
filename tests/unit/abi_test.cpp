#include "abi.h"

#include <gtest/gtest.h>

#include <set>
#include <string>

using namespace tollgate;

namespace {

// Written out apart from the lists in maps/tollgate_abi.h that make the
// enums and the names: the numbers are ABI (they index tg_drops and
// tg_event_stats, in maps an earlier agent pinned), the names are what
// metrics, the audit log and the e2e tests match. A swapped, renamed or
// reordered entry fails here.
struct Pinned {
  int enumerator;
  int number;
  std::string_view name;
};

constexpr Pinned kDropReasons[] = {
    {TG_DROP_ETH_TRUNCATED, 0, "eth_truncated"},
    {TG_DROP_VLAN_TOO_DEEP, 1, "vlan_too_deep"},
    {TG_DROP_IPV4_TRUNCATED, 2, "ipv4_truncated"},
    {TG_DROP_IPV4_BAD_IHL, 3, "ipv4_bad_ihl"},
    {TG_DROP_IPV4_OPTIONS, 4, "ipv4_options"},
    {TG_DROP_IPV4_FRAGMENT, 5, "ipv4_fragment"},
    {TG_DROP_IPV6_TRUNCATED, 6, "ipv6_truncated"},
    {TG_DROP_IPV6_EXT_HEADER, 7, "ipv6_ext_header"},
    {TG_DROP_IPV6_FRAGMENT, 8, "ipv6_fragment"},
    {TG_DROP_TCP_TRUNCATED, 9, "tcp_truncated"},
    {TG_DROP_UDP_TRUNCATED, 10, "udp_truncated"},
    {TG_DROP_UDP6_ZERO_CHECKSUM, 11, "udp6_zero_checksum"},
    {TG_DROP_NO_BACKEND, 12, "no_backend"},
    {TG_DROP_TTL_EXCEEDED, 13, "ttl_exceeded"},
    {TG_DROP_FIB_FAILED, 14, "fib_failed"},
    {TG_DROP_FRAME_TOO_BIG, 15, "frame_too_big"},
    {TG_DROP_INTERNAL, 16, "internal"},
    {TG_DROP_DENIED, 17, "denied"},
    {TG_DROP_NOT_ALLOWED, 18, "not_allowed"},
    {TG_DROP_RATE_LIMITED, 19, "rate_limited"},
    {TG_DROP_CONN_LIMITED, 20, "connection_limited"},
    {TG_DROP_SYN_CHALLENGED, 21, "syn_challenged"},
    {TG_DROP_SYN_PROOF, 22, "syn_proof"},
    {TG_DROP_SYN_UNPROVEN, 23, "syn_unproven"},
    {TG_DROP_IPV6_BAD_VERSION, 24, "ipv6_bad_version"},
    {TG_DROP_FRAME_TOO_BIG_ANSWERED, 25, "frame_too_big_answered"},
    {TG_DROP_ICMP_TRUNCATED, 26, "icmp_truncated"},
    {TG_DROP_ICMP_UNKNOWN_FLOW, 27, "icmp_unknown_flow"},
    {TG_DROP_REPLY_NO_ROUTE, 28, "reply_no_route"},
    {TG_DROP_REPLY_TOO_BIG, 29, "reply_too_big"},
    {TG_DROP_REPLY_NO_FLOW, 30, "reply_no_flow"},
};

constexpr Pinned kEventKinds[] = {
    {TG_EVENT_DENIED, 0, "denied"},
    {TG_EVENT_RATE_LIMITED, 1, "rate_limited"},
    {TG_EVENT_CONN_LIMITED, 2, "connection_limited"},
    {TG_EVENT_FLOW_MOVED, 3, "flow_moved"},
    {TG_EVENT_FLOW_UNTRACKED, 4, "flow_untracked"},
};

// A Prometheus label value we want: lower case, digits, underscores.
bool is_plain_name(std::string_view name) {
  if (name.empty()) return false;
  for (char c : name)
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_')) return false;
  return true;
}

}  // namespace

TEST(Abi, DropReasonsKeepTheirNumbersAndNames) {
  ASSERT_EQ(std::size(kDropReasons), size_t{TG_DROP_REASON_COUNT});
  for (const auto& reason : kDropReasons) {
    EXPECT_EQ(reason.enumerator, reason.number) << reason.name;
    EXPECT_EQ(drop_reason_name(static_cast<tg_drop_reason>(reason.number)), reason.name) << "reason " << reason.number;
  }
}

TEST(Abi, EventKindsKeepTheirNumbersAndNames) {
  ASSERT_EQ(std::size(kEventKinds), size_t{TG_EVENT_KIND_COUNT});
  for (const auto& kind : kEventKinds) {
    EXPECT_EQ(kind.enumerator, kind.number) << kind.name;
    EXPECT_EQ(event_kind_name(static_cast<tg_event_kind>(kind.number)), kind.name) << "kind " << kind.number;
  }
}

TEST(Abi, EveryDropReasonHasAUniquePlainName) {
  std::set<std::string_view> names;
  for (int reason = 0; reason < TG_DROP_REASON_COUNT; ++reason) {
    const auto name = drop_reason_name(static_cast<tg_drop_reason>(reason));
    EXPECT_TRUE(is_plain_name(name)) << "reason " << reason << ": '" << name << "'";
    EXPECT_NE(name, "unknown") << "reason " << reason;
    EXPECT_TRUE(names.insert(name).second) << name;
  }
}

TEST(Abi, EveryEventKindHasAUniquePlainName) {
  std::set<std::string_view> names;
  for (int kind = 0; kind < TG_EVENT_KIND_COUNT; ++kind) {
    const auto name = event_kind_name(static_cast<tg_event_kind>(kind));
    EXPECT_TRUE(is_plain_name(name)) << "kind " << kind << ": '" << name << "'";
    EXPECT_NE(name, "unknown") << "kind " << kind;
    EXPECT_TRUE(names.insert(name).second) << name;
  }
}

// events.cpp names a detail it cannot trust by clamping it to the count.
TEST(Abi, TheCountIsNoName) {
  EXPECT_EQ(drop_reason_name(TG_DROP_REASON_COUNT), "unknown");
  EXPECT_EQ(event_kind_name(TG_EVENT_KIND_COUNT), "unknown");
}
