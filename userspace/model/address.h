// Addresses, endpoints and services as operators write them:
//   198.18.1.11   2001:db8::11   198.18.1.11:8080   [2001:db8::11]:8080
//   198.18.100.1:80/tcp   [2001:db8::100]:443/udp
#pragma once

#include <array>
#include <compare>
#include <cstdint>
#include <string>
#include <string_view>

#include "abi.h"
#include "result.h"

namespace tollgate {

enum class Family : uint8_t { ipv4 = TG_FAMILY_IPV4, ipv6 = TG_FAMILY_IPV6 };
enum class Protocol : uint8_t { tcp = 6, udp = 17 };

std::string_view protocol_name(Protocol protocol);
Result<Protocol> parse_protocol(std::string_view text);

struct IpAddress {
  Family family = Family::ipv4;
  // Network order; an IPv4 address uses the first 4 bytes, the rest are 0.
  std::array<uint8_t, 16> bytes{};

  static Result<IpAddress> parse(std::string_view text);
  std::string to_string() const;
  // The ABI layout: four network-order words, IPv4 in the first.
  void to_words(uint32_t words[4]) const;
  static IpAddress from_words(const uint32_t words[4], Family family);

  auto operator<=>(const IpAddress&) const = default;
};

struct Endpoint {
  IpAddress address;
  uint16_t port = 0;  // host order

  // "198.18.1.11:8080" or "[2001:db8::11]:8080"; with `default_port` the
  // port may be left out.
  static Result<Endpoint> parse(std::string_view text, int default_port = -1);
  std::string to_string() const;

  auto operator<=>(const Endpoint&) const = default;
};

struct ServiceAddress {
  Endpoint endpoint;  // port 0: every port
  Protocol protocol = Protocol::tcp;

  // "198.18.100.1:80/tcp"; the protocol defaults to tcp.
  static Result<ServiceAddress> parse(std::string_view text);
  std::string to_string() const;
  tg_service_key to_key() const;
  static Result<ServiceAddress> from_key(const tg_service_key& key);

  auto operator<=>(const ServiceAddress&) const = default;
};

}  // namespace tollgate
