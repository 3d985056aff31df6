#include "address.h"

#include <arpa/inet.h>

#include <charconv>
#include <cstring>

namespace tollgate {

std::string_view protocol_name(Protocol protocol) { return protocol == Protocol::tcp ? "tcp" : "udp"; }

Result<Protocol> parse_protocol(std::string_view text) {
  if (text == "tcp") return Protocol::tcp;
  if (text == "udp") return Protocol::udp;
  return make_error("unknown protocol '{}' (expected tcp or udp)", text);
}

Result<IpAddress> IpAddress::parse(std::string_view text) {
  std::string copy(text);
  IpAddress address;
  if (copy.find(':') == std::string::npos) {
    if (inet_pton(AF_INET, copy.c_str(), address.bytes.data()) == 1) {
      address.family = Family::ipv4;
      return address;
    }
  } else if (inet_pton(AF_INET6, copy.c_str(), address.bytes.data()) == 1) {
    address.family = Family::ipv6;
    return address;
  }
  return make_error("'{}' is not an IPv4 or IPv6 address", text);
}

std::string IpAddress::to_string() const {
  char buffer[INET6_ADDRSTRLEN] = {};
  inet_ntop(family == Family::ipv4 ? AF_INET : AF_INET6, bytes.data(), buffer, sizeof(buffer));
  return buffer;
}

void IpAddress::to_words(uint32_t words[4]) const { std::memcpy(words, bytes.data(), 16); }

IpAddress IpAddress::from_words(const uint32_t words[4], Family family) {
  IpAddress address;
  address.family = family;
  std::memcpy(address.bytes.data(), words, family == Family::ipv4 ? 4 : 16);
  return address;
}

namespace {

Result<uint16_t> parse_port(std::string_view text, std::string_view whole) {
  unsigned value = 0;
  auto [end, code] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (text.empty() || code != std::errc() || end != text.data() + text.size() || value > 65535)
    return make_error("bad port '{}' in '{}' (expected 0-65535)", text, whole);
  return static_cast<uint16_t>(value);
}

}  // namespace

Result<Endpoint> Endpoint::parse(std::string_view text, int default_port) {
  std::string_view host = text;
  std::string_view port_text;
  bool has_port = false;
  if (!text.empty() && text.front() == '[') {
    size_t close = text.find(']');
    if (close == std::string_view::npos) return make_error("missing ']' in '{}'", text);
    host = text.substr(1, close - 1);
    std::string_view rest = text.substr(close + 1);
    if (!rest.empty()) {
      if (rest.front() != ':') return make_error("expected ':PORT' after ']' in '{}'", text);
      port_text = rest.substr(1);
      has_port = true;
    }
  } else if (size_t colon = text.rfind(':'); colon != std::string_view::npos) {
    if (text.find(':') != colon) {
      host = text;  // a bare IPv6 address: its port needs brackets
    } else {
      host = text.substr(0, colon);
      port_text = text.substr(colon + 1);
      has_port = true;
    }
  }
  auto address = IpAddress::parse(host);
  if (!address) return address.error();
  Endpoint endpoint{*address, 0};
  if (has_port) {
    auto port = parse_port(port_text, text);
    if (!port) return port.error();
    endpoint.port = *port;
  } else if (default_port >= 0) {
    endpoint.port = static_cast<uint16_t>(default_port);
  } else {
    return make_error("missing port in '{}' (write ADDRESS:PORT or [IPV6]:PORT)", text);
  }
  return endpoint;
}

std::string Endpoint::to_string() const {
  if (address.family == Family::ipv6) return fmt::format("[{}]:{}", address.to_string(), port);
  return fmt::format("{}:{}", address.to_string(), port);
}

Result<ServiceAddress> ServiceAddress::parse(std::string_view text) {
  ServiceAddress service;
  std::string_view endpoint_text = text;
  if (size_t slash = text.rfind('/'); slash != std::string_view::npos) {
    auto protocol = parse_protocol(text.substr(slash + 1));
    if (!protocol) return make_error("{} in '{}'", protocol.error().message, text);
    service.protocol = *protocol;
    endpoint_text = text.substr(0, slash);
  }
  auto endpoint = Endpoint::parse(endpoint_text);
  if (!endpoint) return endpoint.error();
  service.endpoint = *endpoint;
  return service;
}

std::string ServiceAddress::to_string() const {
  return fmt::format("{}/{}", endpoint.to_string(), protocol_name(protocol));
}

tg_service_key ServiceAddress::to_key() const {
  tg_service_key key{};
  endpoint.address.to_words(key.addr);
  key.port = htons(endpoint.port);
  key.protocol = static_cast<uint8_t>(protocol);
  key.family = static_cast<uint8_t>(endpoint.address.family);
  return key;
}

Result<ServiceAddress> ServiceAddress::from_key(const tg_service_key& key) {
  if (key.family != TG_FAMILY_IPV4 && key.family != TG_FAMILY_IPV6)
    return make_error("service key: unknown family {}", key.family);
  if (key.protocol != static_cast<uint8_t>(Protocol::tcp) && key.protocol != static_cast<uint8_t>(Protocol::udp))
    return make_error("service key: unknown protocol {}", key.protocol);
  ServiceAddress address;
  address.endpoint.address = IpAddress::from_words(key.addr, static_cast<Family>(key.family));
  address.endpoint.port = ntohs(key.port);
  address.protocol = static_cast<Protocol>(key.protocol);
  return address;
}

}  // namespace tollgate
