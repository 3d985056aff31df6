// flow_walk.h on real maps: a batched walk returns every entry exactly
// once, whatever the chunk; the key-by-key fallback returns the same; a map
// type without batches (a device map) falls back by itself; a walk ends while the map
// changes under it; batched deletes skip keys already gone.
#include "flow_walk.h"

#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstring>
#include <map>
#include <vector>

#include "abi.h"
#include "datapath_fixture.h"
#include "flows.h"

namespace tollgate::test {
namespace {

constexpr uint32_t kEntries = 10000;
constexpr uint32_t kLoopback = 1;  // every network namespace has lo as ifindex 1

// A key as std::map keys it: its bytes.
std::string bytes_of(const tg_flow_key& key) { return std::string(reinterpret_cast<const char*>(&key), sizeof(key)); }

// Flow `number`'s key: a client address and port of its own.
tg_flow_key numbered_key(uint32_t number) {
  tg_flow_key key{};
  key.src_addr[0] = htonl(0xc6130000u | (number >> 16));  // 198.19.x.y
  key.src_addr[1] = number;
  key.dst_addr[0] = htonl(0xc0000201u);
  key.src_port = htons(static_cast<uint16_t>(number));
  key.dst_port = htons(80);
  key.protocol = 6;
  key.family = TG_FAMILY_IPV4;
  return key;
}

tg_flow numbered_flow(uint32_t number) {
  tg_flow flow{};
  flow.backend_index = number;
  flow.service_id = number ^ 0x5a5a;
  return flow;
}

// Flows 0 .. count-1, written in one batch.
void fill(const MapHandle& map, uint32_t count, uint32_t first = 0) {
  std::vector<tg_flow_key> keys;
  std::vector<tg_flow> values;
  for (uint32_t i = first; i < first + count; ++i) {
    keys.push_back(numbered_key(i));
    values.push_back(numbered_flow(i));
  }
  uint32_t written = count;
  ASSERT_EQ(bpf_map_update_batch(map.fd(), keys.data(), values.data(), &written, nullptr), 0) << std::strerror(errno);
  ASSERT_EQ(written, count);
}

// A map made for the test, closed at the end.
class OwnMap {
 public:
  OwnMap(bpf_map_type type, const char* name, uint32_t key_size, uint32_t value_size, uint32_t entries,
         uint32_t flags = 0)
      : name_(name) {
    LIBBPF_OPTS(bpf_map_create_opts, options, .map_flags = flags);
    fd_ = bpf_map_create(type, name, key_size, value_size, entries, &options);
  }
  ~OwnMap() {
    if (fd_ >= 0) close(fd_);
  }
  OwnMap(const OwnMap&) = delete;
  OwnMap& operator=(const OwnMap&) = delete;
  bool made() const { return fd_ >= 0; }
  MapHandle handle() const { return MapHandle(fd_, name_); }

 private:
  int fd_ = -1;
  std::string name_;
};

class FlowWalkTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (geteuid() != 0) GTEST_SKIP() << "needs root: makes BPF maps";
  }

  // How often each key was visited; every value checked against its key.
  static std::map<std::string, int> visits(const MapHandle& map, const WalkOptions& options, size_t* walked) {
    std::map<std::string, int> seen;
    auto result = walk_entries<tg_flow_key, tg_flow>(
        map,
        [&seen](const tg_flow_key& key, const tg_flow& flow) {
          ++seen[bytes_of(key)];
          const tg_flow_key expected = numbered_key(flow.backend_index);
          EXPECT_EQ(std::memcmp(&key, &expected, sizeof(key)), 0);
          EXPECT_EQ(flow.service_id, flow.backend_index ^ 0x5a5a);
        },
        options);
    EXPECT_TRUE(result) << result.error().message;
    *walked = result ? *result : 0;
    return seen;
  }

  static void expect_each_once(const std::map<std::string, int>& seen, uint32_t count) {
    ASSERT_EQ(seen.size(), count);
    for (uint32_t i = 0; i < count; ++i) {
      auto it = seen.find(bytes_of(numbered_key(i)));
      ASSERT_NE(it, seen.end()) << "flow " << i << " not visited";
      EXPECT_EQ(it->second, 1) << "flow " << i;
    }
  }
};

TEST_F(FlowWalkTest, BatchedWalkVisitsEveryEntryOnceWhateverTheChunk) {
  OwnMap map(BPF_MAP_TYPE_LRU_HASH, "tg_test_flows", sizeof(tg_flow_key), sizeof(tg_flow), 4 * kEntries);
  ASSERT_TRUE(map.made()) << std::strerror(errno);
  fill(map.handle(), kEntries);
  for (uint32_t chunk : {kWalkChunk, 7u, 1000u, kEntries, 1u << 16}) {
    SCOPED_TRACE(fmt::format("chunk {}", chunk));
    size_t walked = 0;
    auto seen = visits(map.handle(), {WalkMethod::batched, chunk}, &walked);
    EXPECT_EQ(walked, kEntries);
    expect_each_once(seen, kEntries);
  }
  auto count = count_entries(map.handle());
  ASSERT_TRUE(count) << count.error().message;
  EXPECT_EQ(*count, kEntries);
}

TEST_F(FlowWalkTest, KeyByKeyFallbackGivesWhatTheBatchedWalkGives) {
  OwnMap map(BPF_MAP_TYPE_LRU_HASH, "tg_test_flows", sizeof(tg_flow_key), sizeof(tg_flow), 4 * kEntries);
  ASSERT_TRUE(map.made()) << std::strerror(errno);
  fill(map.handle(), kEntries);
  size_t batched_count = 0, key_by_key_count = 0;
  const auto batched = visits(map.handle(), {WalkMethod::batched}, &batched_count);
  const auto key_by_key = visits(map.handle(), {WalkMethod::key_by_key}, &key_by_key_count);
  expect_each_once(key_by_key, kEntries);
  EXPECT_EQ(key_by_key_count, batched_count);
  EXPECT_EQ(key_by_key, batched);
  auto keys = all_keys<tg_flow_key>(map.handle(), {WalkMethod::key_by_key});
  ASSERT_TRUE(keys) << keys.error().message;
  EXPECT_EQ(keys->size(), kEntries);
}

TEST_F(FlowWalkTest, EmptyMapIsWalkedToNothing) {
  OwnMap map(BPF_MAP_TYPE_LRU_HASH, "tg_test_flows", sizeof(tg_flow_key), sizeof(tg_flow), 1024);
  ASSERT_TRUE(map.made()) << std::strerror(errno);
  for (auto method : {WalkMethod::batched, WalkMethod::key_by_key}) {
    auto count = count_entries(map.handle(), {method});
    ASSERT_TRUE(count) << count.error().message;
    EXPECT_EQ(*count, 0u);
  }
}

// A device map (hash) has no batch operations: a batched-only walk is
// refused with the map's name, the automatic one falls back to key by key,
// and so does a delete.
TEST_F(FlowWalkTest, MapTypeWithoutBatchesFallsBackToKeyByKey) {
  constexpr uint32_t kDevices = 100;
  OwnMap devices(BPF_MAP_TYPE_DEVMAP_HASH, "tg_test_devices", sizeof(uint32_t), sizeof(uint32_t), 2 * kDevices);
  ASSERT_TRUE(devices.made()) << std::strerror(errno);
  const MapHandle map = devices.handle();
  std::vector<uint32_t> keys;
  for (uint32_t i = 0; i < kDevices; ++i) {
    keys.push_back(7 * i + 3);
    ASSERT_TRUE(map.update(keys.back(), kLoopback)) << "entry " << i;
  }
  auto refused = count_entries(map, {WalkMethod::batched});
  ASSERT_FALSE(refused) << "the kernel walked a device map in batches: this test needs another map type";
  EXPECT_NE(refused.error().message.find("[map = tg_test_devices"), std::string::npos) << refused.error().message;

  std::map<uint32_t, int> seen;
  auto walked = walk_entries<uint32_t, uint32_t>(map, [&seen](uint32_t key, uint32_t ifindex) {
    ++seen[key];
    EXPECT_EQ(ifindex, kLoopback);
  });
  ASSERT_TRUE(walked) << walked.error().message;
  EXPECT_EQ(*walked, kDevices);
  ASSERT_EQ(seen.size(), kDevices);
  for (uint32_t key : keys) EXPECT_EQ(seen[key], 1) << "key " << key;

  // A key listed twice is gone the second time.
  keys.push_back(keys.front());
  auto deleted = delete_keys(map, keys);
  ASSERT_TRUE(deleted) << deleted.error().message;
  EXPECT_EQ(*deleted, kDevices);
  auto left = count_entries(map);
  ASSERT_TRUE(left) << left.error().message;
  EXPECT_EQ(*left, 0u);
}

// The walk's visitor deletes entries not yet visited and adds new ones
// (until the map is full): both walks end, and each entry present
// throughout is visited exactly once.
TEST_F(FlowWalkTest, WalkEndsWhileTheMapChangesUnderIt) {
  for (auto method : {WalkMethod::batched, WalkMethod::key_by_key}) {
    SCOPED_TRACE(method == WalkMethod::batched ? "batched" : "key by key");
    OwnMap map(BPF_MAP_TYPE_HASH, "tg_test_flows", sizeof(tg_flow_key), sizeof(tg_flow), 2 * kEntries);
    ASSERT_TRUE(map.made()) << std::strerror(errno);
    fill(map.handle(), kEntries);
    const MapHandle handle = map.handle();
    std::map<std::string, int> seen;
    uint32_t added = 0;
    auto walked = walk_entries<tg_flow_key, tg_flow>(
        handle,
        [&](const tg_flow_key& key, const tg_flow& flow) -> Status {
          ++seen[bytes_of(key)];
          // Odd flows delete the odd flow after them (maybe visited already).
          if (flow.backend_index < kEntries && flow.backend_index % 2 == 1) {
            const tg_flow_key next = numbered_key((flow.backend_index + 2) % kEntries);
            if (auto removed = handle.remove(next); !removed) return removed.error();
          }
          // Every visit adds a flow, until the map is full.
          const uint32_t number = kEntries + added++;
          (void)handle.update(numbered_key(number), numbered_flow(number), BPF_NOEXIST);
          return {};
        },
        {method, 512});
    ASSERT_TRUE(walked) << walked.error().message;
    EXPECT_LE(*walked, 2 * 2 * kEntries + 512);
    for (uint32_t i = 0; i < kEntries; i += 2) {
      auto it = seen.find(bytes_of(numbered_key(i)));
      ASSERT_NE(it, seen.end()) << "even flow " << i << " was never deleted, but not visited";
      EXPECT_EQ(it->second, 1) << "flow " << i;
    }
    for (const auto& [key, times] : seen) EXPECT_EQ(times, 1);
  }
}

TEST_F(FlowWalkTest, BatchedDeleteSkipsKeysAlreadyGone) {
  for (auto method : {WalkMethod::batched, WalkMethod::key_by_key}) {
    SCOPED_TRACE(method == WalkMethod::batched ? "batched" : "key by key");
    OwnMap map(BPF_MAP_TYPE_LRU_HASH, "tg_test_flows", sizeof(tg_flow_key), sizeof(tg_flow), 4 * kEntries);
    ASSERT_TRUE(map.made()) << std::strerror(errno);
    fill(map.handle(), kEntries);
    // Every key, and between them keys never written.
    std::vector<tg_flow_key> keys;
    for (uint32_t i = 0; i < kEntries; ++i) {
      keys.push_back(numbered_key(i));
      if (i % 1000 == 0) keys.push_back(numbered_key(kEntries + i));
    }
    auto deleted = delete_keys(map.handle(), keys, {method, 4096});
    ASSERT_TRUE(deleted) << deleted.error().message;
    EXPECT_EQ(*deleted, kEntries);
    auto left = count_entries(map.handle());
    ASSERT_TRUE(left) << left.error().message;
    EXPECT_EQ(*left, 0u);
  }
}

TEST_F(FlowWalkTest, WrongKeyTypeIsAnErrorNamingTheMap) {
  OwnMap map(BPF_MAP_TYPE_LRU_HASH, "tg_test_flows", sizeof(tg_flow_key), sizeof(tg_flow), 1024);
  ASSERT_TRUE(map.made()) << std::strerror(errno);
  auto keys = all_keys<uint32_t>(map.handle());
  ASSERT_FALSE(keys);
  EXPECT_NE(keys.error().message.find("[map = tg_test_flows]"), std::string::npos) << keys.error().message;
}

// The operators' view on the real flow tables: occupancy and flush count
// every flow.
using FlowTableTest = DataPathTest;

TEST_F(FlowTableTest, OccupancyAndFlushCountEveryFlow) {
  const MapHandle& flows = datapath_->maps().flows;
  fill(flows, kEntries);
  auto occupancy = flow_occupancy(datapath_->maps());
  ASSERT_TRUE(occupancy) << occupancy.error().message;
  EXPECT_EQ(occupancy->flows, kEntries);
  EXPECT_EQ(occupancy->overflow, 0u);
  EXPECT_EQ(occupancy->flows_capacity, static_cast<size_t>(TG_FLOWS_DEFAULT));
  EXPECT_EQ(occupancy->overflow_capacity, static_cast<size_t>(TG_OVERFLOW_FLOWS_DEFAULT));
  auto flushed = flush_flows(datapath_->maps());
  ASSERT_TRUE(flushed) << flushed.error().message;
  EXPECT_EQ(*flushed, kEntries);
  occupancy = flow_occupancy(datapath_->maps());
  ASSERT_TRUE(occupancy) << occupancy.error().message;
  EXPECT_EQ(occupancy->flows, 0u);
}

}  // namespace
}  // namespace tollgate::test
