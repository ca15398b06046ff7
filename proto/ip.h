// IPv4 and IPv6 addresses as text (RFC 4291 2.2, RFC 5952), parsed and
// printed without the socket headers so that proto/ stays pure.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace ringmail::proto {

struct IpAddress {
  bool v6 = false;
  // IPv4 in the first 4 bytes (the rest zero); IPv6 in all 16, network order.
  std::array<uint8_t, 16> bytes{};

  bool operator==(const IpAddress&) const = default;
  // ::ffff:a.b.c.d (RFC 4291 2.5.5.2).
  bool is_v4_mapped() const;
  // The IPv4 address inside an IPv4-mapped one; itself otherwise.
  IpAddress unmapped() const;
  // Dotted quad, or RFC 5952's form (lower case, longest zero run as ::).
  std::string to_string() const;
};

// Dotted quad (exactly four decimal parts 0-255, no leading zeros beyond a
// single "0") or IPv6 text (hex groups, one "::", an optional dotted quad
// at the end). Nothing else: no zone ids, no brackets, no prefix lengths.
[[nodiscard]] std::optional<IpAddress> parse_ip(std::string_view text);
std::optional<IpAddress> parse_ipv4(std::string_view text);
std::optional<IpAddress> parse_ipv6(std::string_view text);

// True when the first `prefix_bits` bits of `a` and `net` agree (both of
// the same family; bits beyond the family's size are treated as its size).
bool same_prefix(const IpAddress& a, const IpAddress& net, unsigned prefix_bits);

}  // namespace ringmail::proto
