// Maglev table build times, the time from an HTTP API call that drains a
// backend to the data path steering by the new table ("control"), and the
// kernel memory of every map ("memory").
#pragma once

#include "fixture.h"

namespace tollgate::datapath_bench {

json maglev_builds(int rounds);
json api_to_datapath(const TestNetwork& network, int rounds);
json memory(const TestNetwork& network);

}  // namespace tollgate::datapath_bench
