// Builds test packets with every checksum computed from scratch, and
// checks checksums of packets the data path wrote. Independent of the BPF
// code's incremental updates on purpose.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

namespace tollgate::test {

using Bytes = std::vector<uint8_t>;
using Mac = std::array<uint8_t, 6>;

inline constexpr uint8_t kTcpFin = 0x01;
inline constexpr uint8_t kTcpSyn = 0x02;
inline constexpr uint8_t kTcpRst = 0x04;
inline constexpr uint8_t kTcpAck = 0x10;

struct PacketSpec {
  Mac src_mac{0x02, 0, 0, 0, 0xc1, 0x01};
  Mac dst_mac{0x02, 0, 0, 0, 0x00, 0x01};
  std::vector<uint16_t> vlan_ids;  // outermost first
  bool ipv6 = false;
  std::string src;  // textual address
  std::string dst;
  uint8_t protocol = 6;  // 6 TCP, 17 UDP
  uint16_t src_port = 40000;
  uint16_t dst_port = 80;
  uint8_t tcp_flags = kTcpSyn;
  uint8_t ttl = 64;
  uint16_t ipv4_id = 0x1234;
  Bytes payload;
};

// A well-formed frame with correct IPv4 header and L4 checksums.
Bytes build_packet(const PacketSpec& spec);

// Offsets into a frame built from `spec`.
size_t l3_offset(const PacketSpec& spec);
size_t l4_offset(const PacketSpec& spec);

// The one's complement checksum of `bytes`, folded, not inverted.
uint16_t ones_complement_sum(const uint8_t* bytes, size_t length, uint32_t initial = 0);
// True if the IPv4 header checksum and the L4 checksum of the (untagged)
// frame verify.
bool checksums_valid(const Bytes& frame, std::string* why);

std::string hex_diff(const Bytes& expected, const Bytes& actual);

}  // namespace tollgate::test
