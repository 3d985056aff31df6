#include "active_counts.h"

#include <sys/mman.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <utility>

#include "flow_walk.h"

namespace tollgate {

Result<ActiveCounts> ActiveCounts::map(const MapHandle& active) {
  auto layout = map_layout(active);
  if (!layout) return layout.error();
  if (layout->value_size != sizeof(int64_t))
    return active.error("map", EINVAL, fmt::format("values of {} bytes, not 8", layout->value_size));
  const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  const size_t bytes = (size_t{layout->max_entries} * sizeof(int64_t) + page - 1) / page * page;
  void* mapped = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, active.fd(), 0);
  if (mapped == MAP_FAILED) return active.error("mmap", errno);
  return ActiveCounts(static_cast<int64_t*>(mapped), bytes, layout->max_entries);
}

ActiveCounts::ActiveCounts(ActiveCounts&& other) noexcept
    : values_(std::exchange(other.values_, nullptr)),
      bytes_(other.bytes_),
      entries_(std::exchange(other.entries_, 0)),
      last_difference_(std::move(other.last_difference_)) {}

ActiveCounts::~ActiveCounts() {
  if (values_) munmap(values_, bytes_);
}

int64_t ActiveCounts::load(uint32_t index) const {
  if (index >= entries_) return 0;
  return std::atomic_ref<int64_t>(values_[index]).load(std::memory_order_relaxed);
}

void ActiveCounts::add(uint32_t index, int64_t delta) {
  if (index < entries_ && delta) std::atomic_ref<int64_t>(values_[index]).fetch_add(delta, std::memory_order_relaxed);
}

uint64_t ActiveCounts::reconcile(const std::map<uint32_t, int64_t>& walked) {
  std::map<uint32_t, int64_t> difference;
  for (uint32_t index = 0; index < entries_; ++index) {
    auto found = walked.find(index);
    const int64_t counted = load(index) - (found == walked.end() ? 0 : found->second);
    if (counted) difference[index] = counted;
  }
  uint64_t corrected = 0;
  std::map<uint32_t, int64_t> left;
  for (const auto& [index, now] : difference) {
    auto before = last_difference_.find(index);
    int64_t correction = 0;
    if (before != last_difference_.end() && (before->second > 0) == (now > 0))
      correction = std::abs(before->second) < std::abs(now) ? before->second : now;
    add(index, -correction);
    corrected += static_cast<uint64_t>(std::abs(correction));
    if (now != correction) left[index] = now - correction;
  }
  last_difference_ = std::move(left);
  return corrected;
}

}  // namespace tollgate
