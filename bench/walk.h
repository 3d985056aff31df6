// A walk of tg_flows holding 100k and 262k flows, key by key and batched
// (userspace/datapath/flow_walk.h), in the same run ("walk").
#pragma once

#include "fixture.h"

namespace tollgate::datapath_bench {

json walks(const TestNetwork& network, int rounds);

}  // namespace tollgate::datapath_bench
