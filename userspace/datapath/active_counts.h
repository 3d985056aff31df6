// Least connections' active connections per backend slot
// (tg_backend_active): the data path adds one as it places a flow and
// takes it back as the flow closes (FIN, RST), moves or is selected anew;
// the agent, mapping the array, takes back what it sweeps (idle timeout)
// and corrects what no one told (a flow lost to the overflow's LRU, flows
// flushed with a service or by `conntrack flush`). Its adds are atomic, as
// the data path's.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <map>

#include "loader.h"
#include "result.h"

namespace tollgate {

class ActiveCounts {
 public:
  static Result<ActiveCounts> map(const MapHandle& active);
  ActiveCounts(ActiveCounts&& other) noexcept;
  ActiveCounts& operator=(ActiveCounts&&) = delete;
  ~ActiveCounts();

  uint32_t size() const { return entries_; }
  int64_t load(uint32_t index) const;
  void add(uint32_t index, int64_t delta);

  // Against what a walk of the flow tables counted (counted flows by
  // backend slot, each still holding its slot's generation): a difference
  // seen in two walks in a row, with the same sign, is corrected by the
  // smaller of the two. One seen once may be flows that began or ended
  // during the walk; a lost flow's stays. Returns how much was corrected.
  uint64_t reconcile(const std::map<uint32_t, int64_t>& walked);

 private:
  ActiveCounts(int64_t* values, size_t bytes, uint32_t entries) : values_(values), bytes_(bytes), entries_(entries) {}
  int64_t* values_;
  size_t bytes_;
  uint32_t entries_;
  std::map<uint32_t, int64_t> last_difference_;
};

}  // namespace tollgate
