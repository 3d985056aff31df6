// The connection table: one entry per flow, for both directions, from its
// first packet; nothing evicts it. New flows that find it full go to the
// overflow table and settle in once idle flows are swept.
#include <fmt/format.h>

#include "datapath_fixture.h"
#include "flow_walk.h"
#include "flows.h"

using namespace tollgate;
using namespace tollgate::test;

namespace {

struct TableCase {
  const char* name;
  const Addresses* family;
};
void PrintTo(const TableCase& test_case, std::ostream* out) { *out << test_case.name; }

constexpr uint32_t kCapacity = 1024;
constexpr uint32_t kOverflow = 512;

class FullTableTest : public DataPathTest, public ::testing::WithParamInterface<TableCase> {
 protected:
  LoadOptions load_options() const override {
    LoadOptions options;
    options.flow_capacity = kCapacity;
    options.overflow_capacity = kOverflow;
    return options;
  }
  const Addresses& family() { return *GetParam().family; }

  PacketSpec spoofed_syn(size_t i) {
    PacketSpec syn = client_packet(family(), 6, static_cast<uint16_t>(1024 + (i >> 12)));
    syn.src = family().ipv6 ? fmt::format("2001:db8:9:{:x}::{:x}", i >> 12, (i & 0xfff) + 1)
                            : fmt::format("198.19.{}.{}", (i >> 8) & 0xff, i & 0xff);
    return syn;
  }

  // Every flow but `keep`'s idle for `by` more.
  void age_all_but(const PacketSpec& keep, std::chrono::seconds by) {
    const tg_flow_key kept = flow_key(family(), keep);
    auto keys = all_keys<tg_flow_key>(datapath_->maps().flows);
    ASSERT_TRUE(keys);
    for (const auto& key : *keys) {
      if (std::memcmp(&key, &kept, sizeof(key)) == 0) continue;
      tg_flow flow{};
      ASSERT_EQ(bpf_map_lookup_elem(datapath_->maps().flows.fd(), &key, &flow), 0);
      flow.last_seen_ns -= static_cast<uint64_t>(std::chrono::nanoseconds(by).count());
      ASSERT_EQ(bpf_map_update_elem(datapath_->maps().flows.fd(), &key, &flow, BPF_EXIST), 0);
    }
  }
};

TEST_P(FullTableTest, AFlowIsWrittenOnceAndAFloodTakesNoTrackedFlowsEntry) {
  auto spec = service_spec(family(), 6, 3);
  apply(spec);
  PacketSpec syn = client_packet(family(), 6, 40000);
  RunResult opened = run(build_packet(syn));
  ASSERT_EQ(opened.verdict, XDP_REDIRECT);
  const int backend = backend_of(family(), opened.data);
  EXPECT_EQ(flow_table_of(family(), syn), datapath_->maps().flows.fd()) << "a SYN's flow goes to the table at once";
  PacketSpec ack = syn;
  ack.tcp_flags = kTcpAck;
  ASSERT_EQ(backend_of(family(), run(build_packet(ack)).data), backend);
  EXPECT_EQ(map_entries(datapath_->maps().flows), 1u);
  EXPECT_EQ(map_entries(datapath_->maps().overflow_flows), 0u);
  EXPECT_EQ(flow_of(family(), syn)->state, TG_FLOW_TCP_ESTABLISHED) << "the ACK completes the same entry";

  // A flood of SYNs from more sources than both tables hold: the table
  // fills and stays full, the rest churns the overflow, and the
  // established flow keeps its entry.
  const size_t flood = kCapacity + 2 * kOverflow;
  for (size_t i = 0; i < flood; ++i) ASSERT_EQ(run(build_packet(spoofed_syn(i))).verdict, XDP_REDIRECT);
  EXPECT_EQ(map_entries(datapath_->maps().flows), static_cast<size_t>(kCapacity));
  EXPECT_EQ(flow_table_of(family(), syn), datapath_->maps().flows.fd());
  EXPECT_LE(map_entries(datapath_->maps().overflow_flows), static_cast<size_t>(kOverflow));
  EXPECT_GT(map_entries(datapath_->maps().overflow_flows), static_cast<size_t>(kOverflow) / 2);
  EXPECT_EQ(backend_of(family(), run(build_packet(ack)).data), backend);

  // A real client's new connection meanwhile lives in the overflow: its
  // reply goes back, its ACK follows its SYN.
  PacketSpec newcomer = client_packet(family(), 6, 40001);
  RunResult syn_sent = run(build_packet(newcomer));
  ASSERT_EQ(syn_sent.verdict, XDP_REDIRECT);
  const int newcomer_backend = backend_of(family(), syn_sent.data);
  EXPECT_EQ(flow_table_of(family(), newcomer), datapath_->maps().overflow_flows.fd());
  PacketSpec syn_ack = backend_reply(family(), newcomer, newcomer_backend, {});
  RunResult answered = run_tc(build_packet(syn_ack));
  EXPECT_EQ(answered.verdict, TC_ACT_REDIRECT);
  Bytes expected = reply_output(family(), syn_ack);
  EXPECT_EQ(answered.data, expected) << hex_diff(expected, answered.data);

  // The sweep deletes the flood's flows once idle past the SYN timeout,
  // and only those; the newcomer's next packet settles in the table.
  age_all_but(syn, std::chrono::seconds(31));
  auto swept = sweep_flows(datapath_->maps());
  ASSERT_TRUE(swept) << swept.error().message;
  EXPECT_GE(*swept, static_cast<size_t>(kCapacity - 1));
  EXPECT_EQ(flow_table_of(family(), syn), datapath_->maps().flows.fd()) << "the sweep took a live flow";
  PacketSpec newcomer_ack = newcomer;
  newcomer_ack.tcp_flags = kTcpAck;
  EXPECT_EQ(backend_of(family(), run(build_packet(newcomer_ack)).data), newcomer_backend);
  EXPECT_EQ(flow_table_of(family(), newcomer), datapath_->maps().flows.fd()) << "it did not move once there was room";
  EXPECT_EQ(flow_of(family(), newcomer)->state, TG_FLOW_TCP_ESTABLISHED);
  EXPECT_EQ(run_tc(build_packet(backend_reply(family(), newcomer, newcomer_backend, {}, kTcpAck))).verdict,
            TC_ACT_REDIRECT);
}

INSTANTIATE_TEST_SUITE_P(Families, FullTableTest,
                         ::testing::Values(TableCase{"Ipv4", &kIpv4}, TableCase{"Ipv6", &kIpv6}),
                         [](const auto& info) { return std::string(info.param.name); });

}  // namespace
