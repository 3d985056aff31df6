#include "packet.h"

#include <arpa/inet.h>
#include <fmt/format.h>

#include <algorithm>
#include <cstring>
#include <stdexcept>

namespace tollgate::test {
namespace {

void put16(Bytes& out, size_t offset, uint16_t value) {
  out[offset] = static_cast<uint8_t>(value >> 8);
  out[offset + 1] = static_cast<uint8_t>(value);
}

uint16_t get16(const Bytes& in, size_t offset) { return static_cast<uint16_t>(in[offset] << 8 | in[offset + 1]); }

Bytes address_bytes(const std::string& text, bool ipv6) {
  Bytes out(ipv6 ? 16 : 4);
  if (inet_pton(ipv6 ? AF_INET6 : AF_INET, text.c_str(), out.data()) != 1)
    throw std::invalid_argument("bad test address " + text);
  return out;
}

// Sum over the pseudo-header and the L4 segment; 0 means the checksum
// verifies when the segment's checksum field is included.
uint16_t l4_checksum(const uint8_t* src, const uint8_t* dst, size_t address_length, uint8_t protocol,
                     const uint8_t* segment, size_t segment_length) {
  Bytes pseudo;
  pseudo.insert(pseudo.end(), src, src + address_length);
  pseudo.insert(pseudo.end(), dst, dst + address_length);
  if (address_length == 4) {
    pseudo.insert(pseudo.end(),
                  {0, protocol, static_cast<uint8_t>(segment_length >> 8), static_cast<uint8_t>(segment_length)});
  } else {
    uint32_t length = htonl(static_cast<uint32_t>(segment_length));
    const uint8_t* length_bytes = reinterpret_cast<const uint8_t*>(&length);
    pseudo.insert(pseudo.end(), length_bytes, length_bytes + 4);
    pseudo.insert(pseudo.end(), {0, 0, 0, protocol});
  }
  uint16_t sum = ones_complement_sum(pseudo.data(), pseudo.size());
  return ones_complement_sum(segment, segment_length, sum);
}

}  // namespace

uint16_t ones_complement_sum(const uint8_t* bytes, size_t length, uint32_t initial) {
  uint64_t sum = initial;
  for (size_t i = 0; i + 1 < length; i += 2) sum += static_cast<uint32_t>(bytes[i] << 8 | bytes[i + 1]);
  if (length % 2) sum += static_cast<uint32_t>(bytes[length - 1] << 8);
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return static_cast<uint16_t>(sum);
}

size_t l3_offset(const PacketSpec& spec) { return 14 + 4 * spec.vlan_ids.size(); }
size_t l4_offset(const PacketSpec& spec) { return l3_offset(spec) + (spec.ipv6 ? 40 : 20); }

namespace {

// The frame of `spec` (Ethernet, VLAN tags, IP header) around `l4`, the
// IP payload of `protocol`.
Bytes ip_frame(const PacketSpec& spec, uint8_t protocol, const Bytes& l4) {
  const size_t l3 = l3_offset(spec);
  const size_t l4_start = l4_offset(spec);
  Bytes out(l4_start + l4.size(), 0);

  std::memcpy(&out[0], spec.dst_mac.data(), 6);
  std::memcpy(&out[6], spec.src_mac.data(), 6);
  size_t offset = 12;
  for (uint16_t vlan : spec.vlan_ids) {
    put16(out, offset, offset == 12 && spec.vlan_ids.size() > 1 ? 0x88a8 : 0x8100);
    put16(out, offset + 2, vlan);
    offset += 4;
  }
  put16(out, offset, spec.ipv6 ? 0x86dd : 0x0800);

  Bytes src = address_bytes(spec.src, spec.ipv6);
  Bytes dst = address_bytes(spec.dst, spec.ipv6);
  if (spec.ipv6) {
    out[l3] = 0x60;
    put16(out, l3 + 4, static_cast<uint16_t>(l4.size()));
    out[l3 + 6] = protocol;
    out[l3 + 7] = spec.ttl;
    std::memcpy(&out[l3 + 8], src.data(), 16);
    std::memcpy(&out[l3 + 24], dst.data(), 16);
  } else {
    out[l3] = 0x45;
    out[l3 + 1] = spec.ipv4_tos;
    put16(out, l3 + 2, static_cast<uint16_t>(20 + l4.size()));
    put16(out, l3 + 4, spec.ipv4_id);
    put16(out, l3 + 6, spec.dont_fragment ? 0x4000 : 0);
    out[l3 + 8] = spec.ttl;
    out[l3 + 9] = protocol;
    std::memcpy(&out[l3 + 12], src.data(), 4);
    std::memcpy(&out[l3 + 16], dst.data(), 4);
    put16(out, l3 + 10, static_cast<uint16_t>(~ones_complement_sum(&out[l3], 20)));
  }
  std::copy(l4.begin(), l4.end(), out.begin() + static_cast<long>(l4_start));
  return out;
}

}  // namespace

Bytes build_packet(const PacketSpec& spec) {
  const size_t l4_header = spec.protocol == 6 ? 20 : 8;
  Bytes l4(l4_header + spec.payload.size(), 0);
  put16(l4, 0, spec.src_port);
  put16(l4, 2, spec.dst_port);
  size_t check_offset;
  if (spec.protocol == 6) {
    put16(l4, 4, 0x1000);  // sequence number
    l4[12] = 5 << 4;
    l4[13] = spec.tcp_flags;
    put16(l4, 14, 64240);
    check_offset = 16;
  } else {
    put16(l4, 4, static_cast<uint16_t>(l4.size()));
    check_offset = 6;
  }
  std::copy(spec.payload.begin(), spec.payload.end(), l4.begin() + static_cast<long>(l4_header));
  Bytes src = address_bytes(spec.src, spec.ipv6);
  Bytes dst = address_bytes(spec.dst, spec.ipv6);
  uint16_t check =
      static_cast<uint16_t>(~l4_checksum(src.data(), dst.data(), src.size(), spec.protocol, l4.data(), l4.size()));
  if (spec.protocol == 17 && check == 0) check = 0xffff;
  put16(l4, check_offset, check);
  return ip_frame(spec, spec.protocol, l4);
}

Bytes build_icmp_error(const PacketSpec& spec, uint8_t type, uint8_t code, uint32_t rest, const Bytes& quoted) {
  Bytes icmp(8 + quoted.size(), 0);
  icmp[0] = type;
  icmp[1] = code;
  put16(icmp, 4, static_cast<uint16_t>(rest >> 16));
  put16(icmp, 6, static_cast<uint16_t>(rest));
  std::copy(quoted.begin(), quoted.end(), icmp.begin() + 8);
  const uint8_t protocol = spec.ipv6 ? 58 : 1;
  uint16_t sum;
  if (spec.ipv6) {  // ICMPv6 covers a pseudo-header, ICMPv4 does not
    Bytes src = address_bytes(spec.src, true);
    Bytes dst = address_bytes(spec.dst, true);
    sum = l4_checksum(src.data(), dst.data(), 16, protocol, icmp.data(), icmp.size());
  } else {
    sum = ones_complement_sum(icmp.data(), icmp.size());
  }
  put16(icmp, 2, static_cast<uint16_t>(~sum));
  return ip_frame(spec, protocol, icmp);
}

Bytes ip_quote(const PacketSpec& spec, size_t length) {
  Bytes frame = build_packet(spec);
  const size_t l3 = l3_offset(spec);
  return Bytes(frame.begin() + static_cast<long>(l3),
               frame.begin() + static_cast<long>(l3 + std::min(length, frame.size() - l3)));
}

namespace {

constexpr size_t kEthernet = 14;

// Where a fragment's piece starts in the datagram, and the piece.
struct Piece {
  size_t offset;
  Bytes bytes;
};

Piece piece_of(const Bytes& fragment) {
  const size_t l3 = kEthernet;
  if (get16(fragment, 12) == 0x0800) {
    const size_t end = l3 + get16(fragment, l3 + 2);
    return {(get16(fragment, l3 + 6) & 0x1fffu) * 8u, Bytes(fragment.begin() + l3 + 20, fragment.begin() + end)};
  }
  const size_t end = l3 + 40 + get16(fragment, l3 + 4);
  return {get16(fragment, l3 + 42) & 0xfff8u, Bytes(fragment.begin() + l3 + 48, fragment.begin() + end)};
}

}  // namespace

std::vector<Bytes> fragment_frame(const Bytes& frame, size_t piece, uint32_t ipv6_id) {
  if (piece == 0 || piece % 8) throw std::invalid_argument("fragments carry multiples of 8 bytes");
  const size_t l3 = kEthernet;
  const bool ipv6 = get16(frame, 12) == 0x86dd;
  const size_t header = ipv6 ? 40 : 20;
  const size_t payload = ipv6 ? get16(frame, l3 + 4) : get16(frame, l3 + 2) - header;
  std::vector<Bytes> out;
  for (size_t offset = 0; offset < payload; offset += piece) {
    const size_t length = std::min(piece, payload - offset);
    const bool more = offset + length < payload;
    Bytes fragment(frame.begin(), frame.begin() + static_cast<long>(l3 + header));
    if (ipv6) {
      const uint8_t next = frame[l3 + 6];
      fragment[l3 + 6] = 44;
      put16(fragment, l3 + 4, static_cast<uint16_t>(8 + length));
      fragment.insert(fragment.end(), {next, 0, static_cast<uint8_t>(offset >> 8),
                                       static_cast<uint8_t>((offset & 0xf8) | (more ? 1 : 0)),
                                       static_cast<uint8_t>(ipv6_id >> 24), static_cast<uint8_t>(ipv6_id >> 16),
                                       static_cast<uint8_t>(ipv6_id >> 8), static_cast<uint8_t>(ipv6_id)});
    } else {
      put16(fragment, l3 + 2, static_cast<uint16_t>(header + length));
      put16(fragment, l3 + 6, static_cast<uint16_t>((more ? 0x2000 : 0) | offset / 8));
      put16(fragment, l3 + 10, 0);
      put16(fragment, l3 + 10, static_cast<uint16_t>(~ones_complement_sum(&fragment[l3], header)));
    }
    const auto start = frame.begin() + static_cast<long>(l3 + header + offset);
    fragment.insert(fragment.end(), start, start + static_cast<long>(length));
    out.push_back(std::move(fragment));
  }
  return out;
}

Bytes reassemble(std::vector<Bytes> fragments) {
  if (fragments.empty()) throw std::invalid_argument("no fragments");
  std::sort(fragments.begin(), fragments.end(),
            [](const Bytes& a, const Bytes& b) { return piece_of(a).offset < piece_of(b).offset; });
  Bytes payload;
  for (const Bytes& fragment : fragments) {
    Piece piece = piece_of(fragment);
    if (piece.offset != payload.size()) throw std::invalid_argument("fragments leave a hole or overlap");
    payload.insert(payload.end(), piece.bytes.begin(), piece.bytes.end());
  }
  const Bytes& first = fragments.front();
  const size_t l3 = kEthernet;
  Bytes out;
  if (get16(first, 12) == 0x0800) {
    out.assign(first.begin(), first.begin() + l3 + 20);
    put16(out, l3 + 2, static_cast<uint16_t>(20 + payload.size()));
    put16(out, l3 + 6, 0);
    put16(out, l3 + 10, 0);
    put16(out, l3 + 10, static_cast<uint16_t>(~ones_complement_sum(&out[l3], 20)));
  } else {
    out.assign(first.begin(), first.begin() + l3 + 40);
    out[l3 + 6] = first[l3 + 40];  // the fragment header's next header
    put16(out, l3 + 4, static_cast<uint16_t>(payload.size()));
  }
  out.insert(out.end(), payload.begin(), payload.end());
  return out;
}

bool checksums_valid(const Bytes& frame, std::string* why) {
  if (frame.size() < 14) return *why = "frame too short", false;
  const uint16_t ether_type = get16(frame, 12);
  const size_t l3 = 14;
  if (ether_type == 0x0800) {
    const size_t header_length = (frame[l3] & 0x0f) * 4u;
    if (ones_complement_sum(&frame[l3], header_length) != 0xffff) return *why = "IPv4 header checksum", false;
    const size_t total = get16(frame, l3 + 2);
    const uint8_t protocol = frame[l3 + 9];
    if (protocol == 17 && get16(frame, l3 + header_length + 6) == 0) return true;  // no UDP checksum
    if (protocol == 1) {
      if (ones_complement_sum(&frame[l3 + header_length], total - header_length) != 0xffff)
        return *why = "ICMP checksum", false;
      return true;
    }
    if (l4_checksum(&frame[l3 + 12], &frame[l3 + 16], 4, protocol, &frame[l3 + header_length], total - header_length) !=
        0xffff)
      return *why = "IPv4 L4 checksum", false;
    return true;
  }
  if (ether_type == 0x86dd) {
    const size_t payload = get16(frame, l3 + 4);
    if (l4_checksum(&frame[l3 + 8], &frame[l3 + 24], 16, frame[l3 + 6], &frame[l3 + 40], payload) != 0xffff)
      return *why = "IPv6 L4 checksum", false;
    return true;
  }
  return *why = fmt::format("unexpected EtherType {:#06x}", ether_type), false;
}

std::string hex_diff(const Bytes& expected, const Bytes& actual) {
  std::string out = fmt::format("expected {} bytes, got {}\n", expected.size(), actual.size());
  for (size_t i = 0; i < std::max(expected.size(), actual.size()); ++i) {
    int want = i < expected.size() ? expected[i] : -1;
    int got = i < actual.size() ? actual[i] : -1;
    if (want != got) out += fmt::format("  byte {:3}: expected {:02x} got {:02x}\n", i, want & 0xff, got & 0xff);
  }
  return out;
}

}  // namespace tollgate::test
