// Weighted Maglev lookup table (Eisenbud et al., NSDI'16, section 3.4),
// with weights as in the paper's round-robin population: in each round a
// backend takes its next preferred free slot only if its share so far is
// below its weight's share.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "address.h"

namespace tollgate {

struct MaglevBackend {
  uint64_t key = 0;     // stable identity (see maglev_key); decides the permutation
  uint32_t weight = 0;  // 0: not in the table
};

// A table slot no backend took: only when no backend has weight > 0.
inline constexpr uint32_t kMaglevEmpty = UINT32_MAX;

// Stable identity of a backend, from its address bytes and port.
uint64_t maglev_key(const uint8_t* address, size_t length, uint16_t port);
uint64_t maglev_key(const Endpoint& endpoint);

bool is_prime(uint32_t value);

// Returns `size` entries, each an index into `backends` (or kMaglevEmpty
// when no backend has weight). `size` must be prime; the share of a backend
// is proportional to its weight.
std::vector<uint32_t> build_maglev_table(std::span<const MaglevBackend> backends, uint32_t size);

// The table of round robin and random: `size` entries, each an index into
// `backends` (kMaglevEmpty when no backend has weight), in the order of
// smooth weighted round robin (nginx's). A backend has its weight's share of
// the entries (largest remainders), spread as evenly as the weights allow:
// weights 5:1:1 over 7 entries give A A B A C A A. Ties go to the lower key,
// so the sequence depends on the set of backends alone.
std::vector<uint32_t> build_weighted_sequence(std::span<const MaglevBackend> backends, uint32_t size);

// A digest of a table that build_maglev_table() or build_weighted_sequence()
// gave for `backends`: of
// its size and of each slot's backend by key. Gateways holding the same
// backends hold the same table, whatever order they came in, and show the
// same digest.
uint64_t maglev_digest(std::span<const MaglevBackend> backends, std::span<const uint32_t> table);
// As the API and the metrics show it: 16 hex digits.
std::string maglev_digest_text(uint64_t digest);

}  // namespace tollgate
