#include "maglev.h"

#include <fmt/format.h>

#include <algorithm>
#include <stdexcept>

namespace tollgate {
namespace {

// SplitMix64 finalizer: a strong 64-bit mix, deterministic across runs.
uint64_t mix64(uint64_t value) {
  value += 0x9e3779b97f4a7c15ULL;
  value = (value ^ (value >> 30)) * 0xbf58476d1ce4e5b9ULL;
  value = (value ^ (value >> 27)) * 0x94d049bb133111ebULL;
  return value ^ (value >> 31);
}

// A backend's preference list, slot (offset + j * skip) % size for j = 0,
// 1, ...: `slot` is its next entry, stepped by addition (no division).
struct Permutation {
  uint32_t slot = 0;
  uint32_t skip = 0;
  uint64_t target = 0;  // weighted turn bookkeeping
};

}  // namespace

uint64_t maglev_key(const uint8_t* address, size_t length, uint16_t port) {
  uint64_t key = mix64(length);
  for (size_t i = 0; i < length; ++i) key = mix64(key ^ address[i]);
  return mix64(key ^ port);
}

uint64_t maglev_key(const Endpoint& endpoint) {
  return maglev_key(endpoint.address.bytes.data(), endpoint.address.family == Family::ipv4 ? 4 : 16, endpoint.port);
}

bool is_prime(uint32_t value) {
  if (value < 2) return false;
  if (value % 2 == 0) return value == 2;
  for (uint32_t divisor = 3; static_cast<uint64_t>(divisor) * divisor <= value; divisor += 2)
    if (value % divisor == 0) return false;
  return true;
}

std::vector<uint32_t> build_maglev_table(std::span<const MaglevBackend> backends, uint32_t size) {
  // (offset, skip) per backend walk a permutation of the slots; each takes
  // its next free preferred slot in turn until the table is full.
  if (!is_prime(size)) throw std::invalid_argument("Maglev table size must be prime");
  std::vector<uint32_t> table(size, kMaglevEmpty);

  uint64_t max_weight = 0;
  for (const auto& backend : backends) max_weight = std::max<uint64_t>(max_weight, backend.weight);
  if (max_weight == 0) return table;

  std::vector<Permutation> permutations(backends.size());
  for (size_t i = 0; i < backends.size(); ++i) {
    permutations[i].slot = static_cast<uint32_t>(mix64(backends[i].key ^ 0x6d61676c65763031ULL) % size);
    permutations[i].skip = static_cast<uint32_t>(mix64(backends[i].key ^ 0x736b69707065726dULL) % (size - 1) + 1);
  }

  // Turns go in key order, so the table depends on the set of backends and
  // not on the order they were listed in.
  std::vector<size_t> order(backends.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return backends[a].key < backends[b].key; });

  uint32_t filled = 0;
  // A backend of weight w takes a turn in round r when r * w has caught up
  // with its turns so far times the largest weight: turns stay proportional
  // to weights, and the heaviest backend moves every round.
  for (uint64_t round = 0; filled < size; ++round) {
    for (size_t i : order) {
      if (filled == size) break;
      auto& permutation = permutations[i];
      if (backends[i].weight == 0 || round * backends[i].weight < permutation.target) continue;
      permutation.target += max_weight;
      uint32_t slot;
      do {
        slot = permutation.slot;
        permutation.slot += permutation.skip;  // both below size, size below 2^31
        if (permutation.slot >= size) permutation.slot -= size;
      } while (table[slot] != kMaglevEmpty);
      table[slot] = static_cast<uint32_t>(i);
      ++filled;
    }
  }
  return table;
}

std::vector<uint32_t> build_weighted_sequence(std::span<const MaglevBackend> backends, uint32_t size) {
  std::vector<uint32_t> sequence(size, kMaglevEmpty);
  std::vector<size_t> order;  // the backends with weight, by key
  uint64_t total = 0;
  for (size_t i = 0; i < backends.size(); ++i) {
    if (backends[i].weight == 0) continue;
    order.push_back(i);
    total += backends[i].weight;
  }
  if (total == 0 || size == 0) return sequence;
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return backends[a].key < backends[b].key; });

  // Entries per backend: its share of `size`, the remainder to the largest fractions.
  std::vector<int64_t> entries(order.size());
  std::vector<uint64_t> fraction(order.size());
  uint64_t given = 0;
  for (size_t j = 0; j < order.size(); ++j) {
    const uint64_t exact = uint64_t{size} * backends[order[j]].weight;
    entries[j] = static_cast<int64_t>(exact / total);
    fraction[j] = exact % total;
    given += static_cast<uint64_t>(entries[j]);
  }
  std::vector<size_t> by_fraction(order.size());
  for (size_t j = 0; j < by_fraction.size(); ++j) by_fraction[j] = j;
  std::stable_sort(by_fraction.begin(), by_fraction.end(),
                   [&](size_t a, size_t b) { return fraction[a] > fraction[b]; });
  for (size_t j = 0; given < size; ++j, ++given) ++entries[by_fraction[j % by_fraction.size()]];

  // Smooth weighted round robin over those counts (they sum to `size`): each
  // step every backend gains its count, the one furthest ahead is chosen and
  // pays `size` back.
  std::vector<int64_t> current(order.size(), 0);
  for (uint32_t slot = 0; slot < size; ++slot) {
    size_t best = 0;
    for (size_t j = 0; j < order.size(); ++j) {
      current[j] += entries[j];
      if (current[j] > current[best]) best = j;
    }
    current[best] -= size;
    sequence[slot] = static_cast<uint32_t>(order[best]);
  }
  return sequence;
}

std::string maglev_digest_text(uint64_t digest) { return fmt::format("{:016x}", digest); }

uint64_t maglev_digest(std::span<const MaglevBackend> backends, std::span<const uint32_t> table) {
  uint64_t digest = mix64(table.size());
  for (uint32_t entry : table) digest = mix64(digest ^ (entry < backends.size() ? backends[entry].key : 0));
  return digest;
}

}  // namespace tollgate
