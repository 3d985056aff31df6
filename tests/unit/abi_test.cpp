#include "abi.h"

#include <gtest/gtest.h>

#include <set>
#include <string>

using namespace tollgate;

TEST(Abi, EveryDropReasonHasAUniqueName) {
  std::set<std::string> names;
  for (int reason = 0; reason < TG_DROP_REASON_COUNT; ++reason) {
    std::string name(drop_reason_name(static_cast<tg_drop_reason>(reason)));
    EXPECT_NE(name, "unknown") << "reason " << reason;
    EXPECT_TRUE(names.insert(name).second) << name;
  }
}
