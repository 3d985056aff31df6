#include "policy.h"

#include <algorithm>
#include <charconv>
#include <set>

namespace tollgate {
namespace {

constexpr uint64_t kMaxPacketRate = 1'000'000'000;  // 1 ns per packet
constexpr uint64_t kMaxByteRate = 1'000'000'000'000;
constexpr uint64_t kMaxByteBurst = 10'000'000'000;  // burst x 1e9 stays in 64 bits
constexpr uint64_t kMinByteBurst = 1514;            // one full Ethernet frame

uint8_t max_prefix(Family family) { return family == Family::ipv4 ? 32 : 128; }

uint64_t tenth_of(uint64_t rate, uint64_t floor) { return std::max(rate / 10, floor); }

}  // namespace

Result<Cidr> Cidr::parse(std::string_view text) {
  const auto slash = text.find('/');
  auto address = IpAddress::parse(text.substr(0, slash));
  if (!address) return make_error("'{}': {}", text, address.error().message);
  Cidr cidr{*address, max_prefix(address->family)};
  if (slash != std::string_view::npos) {
    std::string_view digits = text.substr(slash + 1);
    unsigned prefix = 0;
    auto [end, error] = std::from_chars(digits.data(), digits.data() + digits.size(), prefix);
    if (digits.empty() || error != std::errc{} || end != digits.data() + digits.size() ||
        prefix > max_prefix(address->family))
      return make_error("'{}': the prefix length must be 0-{}", text, max_prefix(address->family));
    cidr.prefix = static_cast<uint8_t>(prefix);
  }
  IpAddress network = cidr.address;
  for (size_t bit = cidr.prefix; bit < static_cast<size_t>(max_prefix(network.family)); ++bit)
    network.bytes[bit / 8] &= static_cast<uint8_t>(~(0x80u >> (bit % 8)));
  if (network != cidr.address)
    return make_error("'{}': host bits are set (the network is {}/{})", text, network.to_string(), cidr.prefix);
  return cidr;
}

std::string Cidr::to_string() const { return fmt::format("{}/{}", address.to_string(), prefix); }

Result<RateLimitSpec> complete_rate_limit(RateLimitSpec spec, bool burst_packets_set, bool burst_bytes_set,
                                          const std::string& path) {
  if (spec.packets_per_second == 0 && spec.bytes_per_second == 0)
    return make_error("{}: set packets_per_second, bytes_per_second or both", path);
  if (spec.packets_per_second > kMaxPacketRate)
    return make_error("{}.packets_per_second: {} is out of range 0-{}", path, spec.packets_per_second, kMaxPacketRate);
  if (spec.bytes_per_second > kMaxByteRate)
    return make_error("{}.bytes_per_second: {} is out of range 0-{}", path, spec.bytes_per_second, kMaxByteRate);
  if (spec.packets_per_second) {
    if (!burst_packets_set) spec.burst_packets = tenth_of(spec.packets_per_second, 1);
    if (spec.burst_packets < 1 || spec.burst_packets > kMaxPacketRate)
      return make_error("{}.burst_packets: {} is out of range 1-{}", path, spec.burst_packets, kMaxPacketRate);
  } else if (burst_packets_set) {
    return make_error("{}.burst_packets: set without packets_per_second", path);
  }
  if (spec.bytes_per_second) {
    if (!burst_bytes_set) spec.burst_bytes = tenth_of(spec.bytes_per_second, kMinByteBurst);
    if (spec.burst_bytes < kMinByteBurst || spec.burst_bytes > kMaxByteBurst)
      return make_error("{}.burst_bytes: {} is out of range {}-{} (a bucket must hold one full frame)", path,
                        spec.burst_bytes, kMinByteBurst, kMaxByteBurst);
  } else if (burst_bytes_set) {
    return make_error("{}.burst_bytes: set without bytes_per_second", path);
  }
  if (spec.ipv4_prefix < 1 || spec.ipv4_prefix > 32)
    return make_error("{}.ipv4_prefix: {} is out of range 1-32", path, spec.ipv4_prefix);
  if (spec.ipv6_prefix < 1 || spec.ipv6_prefix > 128)
    return make_error("{}.ipv6_prefix: {} is out of range 1-128", path, spec.ipv6_prefix);
  return spec;
}

Result<ConnectionLimitSpec> complete_connection_limit(ConnectionLimitSpec spec, bool burst_set,
                                                      const std::string& path) {
  if (spec.per_second < 1 || spec.per_second > kMaxPacketRate)
    return make_error("{}.per_second: {} is out of range 1-{}", path, spec.per_second, kMaxPacketRate);
  if (!burst_set) spec.burst = tenth_of(spec.per_second, 1);
  if (spec.burst < 1 || spec.burst > kMaxPacketRate)
    return make_error("{}.burst: {} is out of range 1-{}", path, spec.burst, kMaxPacketRate);
  return spec;
}

Status validate_access_lists(const AccessLists& lists, const std::string& path) {
  for (const auto& [name, list] : {std::pair{"allow", &lists.allow}, std::pair{"deny", &lists.deny}}) {
    if (list->size() > kMaxListEntries)
      return make_error("{}.{}: {} entries, at most {}", path, name, list->size(), kMaxListEntries);
    std::set<Cidr> seen;
    for (size_t i = 0; i < list->size(); ++i)
      if (!seen.insert((*list)[i]).second)
        return make_error("{}.{}[{}]: {} is listed twice", path, name, i, (*list)[i].to_string());
  }
  return {};
}

}  // namespace tollgate
