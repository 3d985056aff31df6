// Builds test packets with every checksum computed from scratch, and
// checks checksums of packets the data path wrote. Independent of the BPF
// code's incremental updates on purpose.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "lab_topology.h"

namespace tollgate::test {

using Bytes = std::vector<uint8_t>;
using Mac = std::array<uint8_t, 6>;

// "02:00:00:00:c1:01" as bytes. Constexpr: a malformed constant does not
// compile.
constexpr Mac parse_mac(std::string_view text) {
  auto nibble = [](char c) {
    if (c >= '0' && c <= '9') return static_cast<uint8_t>(c - '0');
    if (c >= 'a' && c <= 'f') return static_cast<uint8_t>(c - 'a' + 10);
    throw std::invalid_argument("a MAC has lower-case hex digits");
  };
  if (text.size() != 17) throw std::invalid_argument("a MAC is xx:xx:xx:xx:xx:xx");
  Mac mac{};
  for (size_t i = 0; i < mac.size(); ++i) {
    if (i > 0 && text[3 * i - 1] != ':') throw std::invalid_argument("a MAC is xx:xx:xx:xx:xx:xx");
    mac[i] = static_cast<uint8_t>(nibble(text[3 * i]) << 4 | nibble(text[3 * i + 1]));
  }
  return mac;
}

inline constexpr uint8_t kTcpFin = 0x01;
inline constexpr uint8_t kTcpSyn = 0x02;
inline constexpr uint8_t kTcpRst = 0x04;
inline constexpr uint8_t kTcpAck = 0x10;

// By default from the test client to the gateway's client side (netns.h).
struct PacketSpec {
  Mac src_mac = parse_mac(topology::kBpfClientMac);
  Mac dst_mac = parse_mac(topology::kBpfGwClientMac);
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
  uint8_t ipv4_tos = 0;
  bool dont_fragment = true;  // IPv4 DF
  Bytes payload;
};

// A well-formed frame with correct IPv4 header and L4 checksums.
Bytes build_packet(const PacketSpec& spec);

// An ICMP error (ICMPv6 if spec.ipv6) from spec.src to spec.dst: `type`,
// `code`, the 32-bit word after the checksum (`rest`: the MTU of a
// fragmentation needed / packet too big), then `quoted`, the start of the
// IP packet it is about. spec's protocol, ports, flags and payload are
// not used.
Bytes build_icmp_error(const PacketSpec& spec, uint8_t type, uint8_t code, uint32_t rest, const Bytes& quoted);

// The first `length` bytes of the IP packet in the frame built from `spec`
// (all of it if shorter): what an ICMP error about it quotes.
Bytes ip_quote(const PacketSpec& spec, size_t length = SIZE_MAX);

// An untagged frame split as a sender fragments it: IP payload pieces of
// `piece` bytes (a multiple of 8), each under a copy of the IP header;
// IPv4 with the frame's identification, MF and offset, and its own header
// checksum; IPv6 with a fragment header of identification `ipv6_id`.
std::vector<Bytes> fragment_frame(const Bytes& frame, size_t piece, uint32_t ipv6_id = 0x4242);
// The datagram the fragments make (in any order), under the first's
// Ethernet and IP headers: what the receiver reassembles.
Bytes reassemble(std::vector<Bytes> fragments);

// Offsets into a frame built from `spec`.
size_t l3_offset(const PacketSpec& spec);
size_t l4_offset(const PacketSpec& spec);

// The one's complement checksum of `bytes`, folded, not inverted.
uint16_t ones_complement_sum(const uint8_t* bytes, size_t length, uint32_t initial = 0);
// True if the IPv4 header checksum and the L4 checksum (TCP, UDP, ICMP,
// ICMPv6) of the (untagged) frame verify.
bool checksums_valid(const Bytes& frame, std::string* why);

std::string hex_diff(const Bytes& expected, const Bytes& actual);

}  // namespace tollgate::test
