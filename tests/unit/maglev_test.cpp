#include "maglev.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <random>

using namespace tollgate;

namespace {

constexpr uint32_t kSize = 65537;

std::vector<MaglevBackend> equal_backends(size_t count) {
  std::vector<MaglevBackend> backends;
  for (size_t i = 0; i < count; ++i) {
    uint8_t address[4] = {198, 18, static_cast<uint8_t>(i / 250), static_cast<uint8_t>(i % 250 + 1)};
    backends.push_back({maglev_key(address, sizeof(address), 8080), 1});
  }
  return backends;
}

std::vector<size_t> shares(const std::vector<uint32_t>& table, size_t backend_count) {
  std::vector<size_t> counts(backend_count, 0);
  for (uint32_t entry : table) {
    EXPECT_LT(entry, backend_count);
    if (entry < backend_count) ++counts[entry];
  }
  return counts;
}

// Of the entries that pointed at backends other than `removed`, the
// fraction that point at a different backend after it is removed.
double remapped_fraction(size_t backend_count, size_t removed) {
  auto before_backends = equal_backends(backend_count);
  auto after_backends = before_backends;
  after_backends.erase(after_backends.begin() + static_cast<long>(removed));
  auto before = build_maglev_table(before_backends, kSize);
  auto after = build_maglev_table(after_backends, kSize);

  size_t others = 0, moved = 0;
  for (uint32_t slot = 0; slot < kSize; ++slot) {
    if (before[slot] == removed) continue;
    ++others;
    uint64_t key_before = before_backends[before[slot]].key;
    uint64_t key_after = after_backends[after[slot]].key;
    if (key_before != key_after) ++moved;
  }
  return static_cast<double>(moved) / static_cast<double>(others);
}

}  // namespace

TEST(Maglev, HundredEqualBackendsShareWithinOnePercent) {
  auto table = build_maglev_table(equal_backends(100), kSize);
  ASSERT_EQ(table.size(), kSize);
  for (size_t count : shares(table, 100)) {
    double share = static_cast<double>(count) / kSize;
    EXPECT_NEAR(share, 1.0 / 100, 0.01 / 100) << "entries: " << count;
  }
}

TEST(Maglev, WeightsOneTwoThree) {
  auto backends = equal_backends(3);
  backends[0].weight = 1;
  backends[1].weight = 2;
  backends[2].weight = 3;
  auto counts = shares(build_maglev_table(backends, kSize), 3);
  for (size_t i = 0; i < 3; ++i) {
    double expected = static_cast<double>(backends[i].weight) / 6;
    double share = static_cast<double>(counts[i]) / kSize;
    EXPECT_NEAR(share, expected, expected * 0.01) << "backend " << i << " entries " << counts[i];
  }
}

TEST(Maglev, LargeWeightRatios) {
  auto backends = equal_backends(4);
  const uint32_t weights[] = {1, 10, 100, 65535};
  uint64_t total = 0;
  for (size_t i = 0; i < 4; ++i) total += backends[i].weight = weights[i];
  auto counts = shares(build_maglev_table(backends, kSize), 4);
  for (size_t i = 0; i < 4; ++i) {
    double expected = static_cast<double>(weights[i]) / static_cast<double>(total) * kSize;
    EXPECT_NEAR(static_cast<double>(counts[i]), expected, std::max(2.0, expected * 0.01)) << "backend " << i;
  }
}

TEST(Maglev, RemovingOneBackendRemapsLittle) {
  for (size_t count : {3u, 10u, 100u, 1000u}) {
    for (size_t removed : {size_t{0}, count / 2, count - 1}) {
      double fraction = remapped_fraction(count, removed);
      EXPECT_LE(fraction, 1.0 / static_cast<double>(count) + 0.01) << count << " backends, removed #" << removed;
    }
  }
}

TEST(Maglev, TableDependsOnTheSetNotTheOrder) {
  auto backends = equal_backends(50);
  auto shuffled = backends;
  std::mt19937 random(7);
  std::shuffle(shuffled.begin(), shuffled.end(), random);
  auto table = build_maglev_table(backends, kSize);
  auto other = build_maglev_table(shuffled, kSize);
  for (uint32_t slot = 0; slot < kSize; ++slot)
    ASSERT_EQ(backends[table[slot]].key, shuffled[other[slot]].key) << "slot " << slot;
}

TEST(Maglev, EmptyAndZeroWeightBackendsLeaveNoEntries) {
  EXPECT_EQ(build_maglev_table({}, 7), std::vector<uint32_t>(7, kMaglevEmpty));
  auto backends = equal_backends(2);
  backends[0].weight = 0;
  auto table = build_maglev_table(backends, 13);
  EXPECT_EQ(std::count(table.begin(), table.end(), 1u), 13);
}

TEST(Maglev, RejectsSizeThatIsNotPrime) {
  EXPECT_THROW(build_maglev_table(equal_backends(2), 65536), std::invalid_argument);
  EXPECT_TRUE(is_prime(65537));
  EXPECT_TRUE(is_prime(2));
  EXPECT_FALSE(is_prime(1));
  EXPECT_FALSE(is_prime(65535));
}

// Gateways hold the same table for the same backends, whatever order they
// were listed in; the digest tells them apart from any other table.
TEST(Maglev, TheDigestDependsOnTheBackendsNotOnTheirOrder) {
  auto backends = equal_backends(7);
  backends[2].weight = 3;
  auto digest_of = [](const std::vector<MaglevBackend>& list, uint32_t size = kSize) {
    return maglev_digest(list, build_maglev_table(list, size));
  };
  const uint64_t digest = digest_of(backends);
  std::mt19937 shuffle(7);
  for (int round = 0; round < 5; ++round) {
    auto reordered = backends;
    std::shuffle(reordered.begin(), reordered.end(), shuffle);
    EXPECT_EQ(digest_of(reordered), digest);
  }
  auto heavier = backends;
  heavier[2].weight = 4;
  EXPECT_NE(digest_of(heavier), digest);
  auto fewer = backends;
  fewer.pop_back();
  EXPECT_NE(digest_of(fewer), digest);
  EXPECT_NE(digest_of(backends, 65521), digest);
  EXPECT_EQ(maglev_digest_text(0xabcULL), "0000000000000abc");
}

// --- the weighted sequence of round robin and random ----------------------

// The backend keys of `sequence` (indexes into `backends`), as letters by key order: A the lowest.
static std::string letters(const std::vector<MaglevBackend>& backends, const std::vector<uint32_t>& sequence) {
  std::vector<uint64_t> keys;
  for (const auto& backend : backends) keys.push_back(backend.key);
  std::sort(keys.begin(), keys.end());
  std::string out;
  for (uint32_t entry : sequence)
    out += entry < backends.size()
               ? static_cast<char>('A' + (std::find(keys.begin(), keys.end(), backends[entry].key) - keys.begin()))
               : '-';
  return out;
}

TEST(WeightedSequence, IsSmooth) {
  auto backends = equal_backends(3);
  std::sort(backends.begin(), backends.end(), [](auto& a, auto& b) { return a.key < b.key; });
  backends[0].weight = 5;
  EXPECT_EQ(letters(backends, build_weighted_sequence(backends, 7)), "AABACAA");
  EXPECT_EQ(letters(backends, build_weighted_sequence(backends, 14)), "AABACAAAABACAA");
  backends[0].weight = 1;
  backends[2].weight = 2;
  EXPECT_EQ(letters(backends, build_weighted_sequence(backends, 8)), "CABCCABC");
}

// Over any run of the sequence, each backend's count stays within two of its weight's share.
TEST(WeightedSequence, EveryStretchHoldsTheWeightsShares) {
  auto backends = equal_backends(4);
  const std::vector<uint32_t> weights = {1, 3, 7, 100};
  for (size_t i = 0; i < backends.size(); ++i) backends[i].weight = weights[i];
  const auto sequence = build_weighted_sequence(backends, kSize);
  ASSERT_EQ(sequence.size(), kSize);
  EXPECT_EQ(shares(sequence, 4), (std::vector<size_t>{591, 1771, 4133, 59042}));
  for (size_t length : {100, 1000, 30000}) {
    for (size_t start : {size_t{0}, size_t{12345}}) {
      std::vector<size_t> counts(4);
      for (size_t i = start; i < start + length; ++i) ++counts[sequence[i]];
      for (size_t i = 0; i < 4; ++i)
        EXPECT_NEAR(static_cast<double>(counts[i]), length * weights[i] / 111.0, 2.0)
            << "backend " << i << ", " << length << " entries from " << start;
    }
  }
}

TEST(WeightedSequence, DependsOnTheSetNotTheOrder) {
  auto backends = equal_backends(5);
  for (size_t i = 0; i < backends.size(); ++i) backends[i].weight = static_cast<uint32_t>(i % 2 + 1);
  auto reversed = backends;
  std::reverse(reversed.begin(), reversed.end());
  const auto a = build_weighted_sequence(backends, 251);
  const auto b = build_weighted_sequence(reversed, 251);
  ASSERT_EQ(a.size(), b.size());
  for (size_t slot = 0; slot < a.size(); ++slot) EXPECT_EQ(backends[a[slot]].key, reversed[b[slot]].key) << slot;
  EXPECT_EQ(maglev_digest(backends, a), maglev_digest(reversed, b));
}

TEST(WeightedSequence, NoWeightNoEntries) {
  auto backends = equal_backends(2);
  backends[0].weight = 0;
  backends[1].weight = 0;
  EXPECT_EQ(build_weighted_sequence(backends, 7), std::vector<uint32_t>(7, kMaglevEmpty));
  EXPECT_EQ(build_weighted_sequence({}, 7), std::vector<uint32_t>(7, kMaglevEmpty));
  backends[1].weight = 4;
  EXPECT_EQ(build_weighted_sequence(backends, 7), std::vector<uint32_t>(7, 1));
}
