// MapHandle on real maps: a missing key is an answer, not an error, and
// every error names its map.
#include "map_handle.h"

#include <bpf/bpf.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include "datapath_fixture.h"
#include "stats.h"

namespace tollgate::test {
namespace {

// A hash map of one entry, closed at the end.
class SmallMap {
 public:
  SmallMap()
      : fd_(bpf_map_create(BPF_MAP_TYPE_HASH, "tg_test_small", sizeof(uint32_t), sizeof(uint64_t), 1, nullptr)) {}
  ~SmallMap() {
    if (fd_ >= 0) close(fd_);
  }
  SmallMap(const SmallMap&) = delete;
  SmallMap& operator=(const SmallMap&) = delete;
  MapHandle handle() const { return MapHandle(fd_, "tg_test_small"); }
  int fd() const { return fd_; }

 private:
  int fd_;
};

TEST(MapHandleKernel, MissingKeyIsFalseAndAFullMapIsAnErrorNamingIt) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root: makes a BPF map";
  SmallMap small;
  ASSERT_GE(small.fd(), 0) << std::strerror(errno);
  const MapHandle map = small.handle();
  uint64_t value = 0;
  auto found = map.lookup(uint32_t{1}, value);
  ASSERT_TRUE(found) << found.error().message;
  EXPECT_FALSE(*found);
  auto removed = map.remove(uint32_t{1});
  ASSERT_TRUE(removed) << removed.error().message;
  EXPECT_FALSE(*removed);

  ASSERT_TRUE(map.update(uint32_t{1}, uint64_t{7}));
  found = map.lookup(uint32_t{1}, value);
  ASSERT_TRUE(found && *found);
  EXPECT_EQ(value, 7u);

  auto full = map.update(uint32_t{2}, uint64_t{8});
  ASSERT_FALSE(full);
  EXPECT_EQ(full.error().message, "map update failed: Argument list too long [map = tg_test_small]");
  EXPECT_EQ(full.error().error_number, E2BIG);
  auto exists = map.update(uint32_t{1}, uint64_t{9}, BPF_NOEXIST);
  ASSERT_FALSE(exists);
  EXPECT_EQ(exists.error().message, "map update failed: File exists [map = tg_test_small]");

  removed = map.remove(uint32_t{1});
  ASSERT_TRUE(removed && *removed);
}

using DataPathMapTest = DataPathTest;

TEST_F(DataPathMapTest, ErrorOfADataPathMapNamesIt) {
  auto counters = read_counters(datapath_->maps().service_stats, TG_MAX_SERVICES);
  ASSERT_FALSE(counters);
  EXPECT_EQ(counters.error().message,
            fmt::format("map lookup failed: No such file or directory [map = tg_service_stats, index = {}]",
                        TG_MAX_SERVICES));
  auto health = read_health(datapath_->maps().backend_health, TG_MAX_BACKENDS);
  ASSERT_FALSE(health);
  EXPECT_NE(health.error().message.find("[map = tg_backend_health, index = "), std::string::npos)
      << health.error().message;
}

TEST_F(DataPathMapTest, EveryHandleIsTheKernelsMapOfThatName) {
  for (const MapHandle& map : datapath_->maps().all()) {
    bpf_map_info info{};
    uint32_t length = sizeof(info);
    ASSERT_EQ(bpf_obj_get_info_by_fd(map.fd(), &info, &length), 0) << map.name() << ": " << std::strerror(errno);
    // The kernel keeps BPF_OBJ_NAME_LEN - 1 characters of a name.
    EXPECT_EQ(std::string(info.name), map.name().substr(0, BPF_OBJ_NAME_LEN - 1));
  }
}

}  // namespace
}  // namespace tollgate::test
