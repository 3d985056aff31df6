// TG_DATAPATH_MAPS (userspace/datapath/loader.h) against the compiled BPF
// objects: opened, not loaded, so no kernel is needed.
#include <bpf/libbpf.h>
#include <gtest/gtest.h>

#include <cerrno>
#include <cstring>
#include <set>
#include <string>

#include "loader.h"
#include "map_handle.h"
#include "tollgate_tc.skel.h"
#include "tollgate_xdp.skel.h"

using namespace tollgate;

namespace {

// The object's own maps (not .rodata, .bss and the like).
std::set<std::string> maps_of(const bpf_object* object) {
  std::set<std::string> names;
  bpf_map* map;
  bpf_object__for_each_map(map, object) {
    if (!bpf_map__is_internal(map)) names.insert(bpf_map__name(map));
  }
  return names;
}

void expect_same_maps(const std::set<std::string>& in_object, const char* object) {
  const std::set<std::string> listed(std::begin(kDataPathMapNames), std::end(kDataPathMapNames));
  EXPECT_EQ(listed.size(), std::size(kDataPathMapNames)) << "a map is listed twice in TG_DATAPATH_MAPS";
  for (const auto& name : in_object)
    EXPECT_TRUE(listed.contains(name)) << name << " is in " << object << " but not in TG_DATAPATH_MAPS";
  for (const auto& name : listed)
    EXPECT_TRUE(in_object.contains(name)) << name << " is in TG_DATAPATH_MAPS but not in " << object;
}

}  // namespace

TEST(DataPathMapList, IsEveryMapOfTheXdpObjectAndNoOther) {
  tollgate_xdp* xdp = tollgate_xdp__open();
  ASSERT_NE(xdp, nullptr) << std::strerror(errno);
  expect_same_maps(maps_of(xdp->obj), "tollgate_xdp.bpf.o");
  tollgate_xdp__destroy(xdp);
}

TEST(DataPathMapList, IsEveryMapOfTheTcObjectAndNoOther) {
  tollgate_tc* tc = tollgate_tc__open();
  ASSERT_NE(tc, nullptr) << std::strerror(errno);
  expect_same_maps(maps_of(tc->obj), "tollgate_tc.bpf.o");
  tollgate_tc__destroy(tc);
}

TEST(DataPathMapList, EveryHandleCarriesItsMapsName) {
  const DataPathMaps maps;
  const auto all = maps.all();
  ASSERT_EQ(all.size(), std::size(kDataPathMapNames));
  for (size_t i = 0; i < all.size(); ++i) {
    EXPECT_EQ(all[i].name(), kDataPathMapNames[i]);
    EXPECT_EQ(all[i].fd(), -1);
  }
  EXPECT_EQ(maps.flows.name(), "tg_flows");
  EXPECT_EQ(maps.event_budget.name(), "tg_event_budget");
}

TEST(MapHandle, FailedCallIsAnErrorNamingTheCallTheMapAndErrno) {
  const MapHandle closed(-1, "tg_flows");
  const uint32_t key = 1, value = 2;
  auto updated = closed.update(key, value);
  ASSERT_FALSE(updated);
  EXPECT_EQ(updated.error().message, "map update failed: Bad file descriptor [map = tg_flows]");
  EXPECT_EQ(updated.error().kind, ErrorKind::kernel);
  EXPECT_EQ(updated.error().error_number, EBADF);

  uint32_t read = 0;
  auto found = closed.lookup(key, read);
  ASSERT_FALSE(found) << "a bad fd is an error, not a missing key";
  EXPECT_EQ(found.error().message, "map lookup failed: Bad file descriptor [map = tg_flows]");
  auto removed = closed.remove(key);
  ASSERT_FALSE(removed);
  EXPECT_EQ(removed.error().message, "map delete failed: Bad file descriptor [map = tg_flows]");
}

TEST(MapHandle, DetailFollowsTheMapsName) {
  const Error error = map_error("tg_drops", "lookup", ENOENT, "index = 3");
  EXPECT_EQ(error.message, "map lookup failed: No such file or directory [map = tg_drops, index = 3]");
  EXPECT_EQ(error.error_number, ENOENT);
}
