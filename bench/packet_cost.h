// Nanoseconds per packet through BPF_PROG_TEST_RUN for each path of the
// data path, next to a floor program measured in the same round ("cost"),
// and the same with many services, backends and flows ("scale").
#pragma once

#include "fixture.h"

namespace tollgate::datapath_bench {

json cost(const TestNetwork& network, int rounds, size_t iterations);
json scale(const TestNetwork& network, int rounds, size_t iterations);

}  // namespace tollgate::datapath_bench
