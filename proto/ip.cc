#include "proto/ip.h"

#include <algorithm>
#include <cstdio>

#include "proto/ascii.h"

namespace ringmail::proto {

namespace {

bool parse_quad(std::string_view text, uint8_t out[4]) {
  int part = 0;
  size_t i = 0;
  while (true) {
    const size_t start = i;
    unsigned v = 0;
    while (i < text.size() && text[i] >= '0' && text[i] <= '9' && i - start < 3) {
      v = v * 10 + static_cast<unsigned>(text[i] - '0');
      ++i;
    }
    const size_t digits = i - start;
    if (digits == 0 || v > 255 || (digits > 1 && text[start] == '0')) return false;
    out[part++] = static_cast<uint8_t>(v);
    if (part == 4) return i == text.size();
    if (i == text.size() || text[i] != '.') return false;
    ++i;
  }
}

}  // namespace

bool IpAddress::is_v4_mapped() const {
  if (!v6) return false;
  for (int i = 0; i < 10; ++i) {
    if (bytes[i] != 0) return false;
  }
  return bytes[10] == 0xff && bytes[11] == 0xff;
}

IpAddress IpAddress::unmapped() const {
  if (!is_v4_mapped()) return *this;
  IpAddress v4;
  for (int i = 0; i < 4; ++i) v4.bytes[i] = bytes[12 + i];
  return v4;
}

std::string IpAddress::to_string() const {
  char buf[64];
  if (!v6) {
    std::snprintf(buf, sizeof buf, "%u.%u.%u.%u", bytes[0], bytes[1], bytes[2], bytes[3]);
    return buf;
  }
  uint16_t g[8];
  for (int i = 0; i < 8; ++i) g[i] = static_cast<uint16_t>(bytes[2 * i] << 8 | bytes[2 * i + 1]);
  // RFC 5952 4.2: the longest run of two or more zero groups (the first of
  // equal runs) becomes "::".
  int best = -1, best_len = 1;
  for (int i = 0; i < 8;) {
    int j = i;
    while (j < 8 && g[j] == 0) ++j;
    if (j - i > best_len) best = i, best_len = j - i;
    i = j == i ? i + 1 : j;
  }
  std::string out;
  for (int i = 0; i < 8; ++i) {
    if (i == best) {
      out += "::";
      i += best_len - 1;
      continue;
    }
    if (!out.empty() && out.back() != ':') out += ':';
    std::snprintf(buf, sizeof buf, "%x", g[i]);
    out += buf;
  }
  return out;
}

std::optional<IpAddress> parse_ipv4(std::string_view text) {
  IpAddress a;
  if (!parse_quad(text, a.bytes.data())) return std::nullopt;
  return a;
}

std::optional<IpAddress> parse_ipv6(std::string_view text) {
  IpAddress a;
  a.v6 = true;
  uint8_t head[16], tail[16];
  size_t nhead = 0, ntail = 0;
  bool gap = false;  // "::" seen: groups now go to the tail
  size_t i = 0;
  if (text.starts_with("::")) {
    gap = true;
    i = 2;
  } else if (text.starts_with(":")) {
    return std::nullopt;
  }
  while (i < text.size()) {
    uint8_t* out = gap ? tail : head;
    size_t& n = gap ? ntail : nhead;
    // A dotted quad may end the address, in place of two groups.
    const size_t colon = text.find(':', i);
    if (colon == std::string_view::npos && text.find('.', i) != std::string_view::npos) {
      if (nhead + ntail + 4 > 16) return std::nullopt;
      if (!parse_quad(text.substr(i), out + n)) return std::nullopt;
      n += 4;
      break;
    }
    unsigned v = 0;
    size_t digits = 0;
    while (i < text.size() && hex_value(text[i]) >= 0 && digits < 4) {
      v = v << 4 | static_cast<unsigned>(hex_value(text[i]));
      ++i, ++digits;
    }
    if (digits == 0 || nhead + ntail + 2 > 16) return std::nullopt;
    out[n++] = static_cast<uint8_t>(v >> 8);
    out[n++] = static_cast<uint8_t>(v);
    if (i == text.size()) break;
    if (text[i] != ':') return std::nullopt;
    ++i;
    if (i < text.size() && text[i] == ':') {
      if (gap) return std::nullopt;
      gap = true;
      ++i;
    } else if (i == text.size()) {
      return std::nullopt;  // a single trailing colon
    }
  }
  if (gap ? nhead + ntail > 14 : nhead != 16) return std::nullopt;
  for (size_t k = 0; k < nhead; ++k) a.bytes[k] = head[k];
  for (size_t k = 0; k < ntail; ++k) a.bytes[16 - ntail + k] = tail[k];
  return a;
}

std::optional<IpAddress> parse_ip(std::string_view text) {
  if (text.find(':') != std::string_view::npos) return parse_ipv6(text);
  return parse_ipv4(text);
}

bool same_prefix(const IpAddress& a, const IpAddress& net, unsigned prefix_bits) {
  if (a.v6 != net.v6) return false;
  const unsigned bits = std::min(prefix_bits, a.v6 ? 128u : 32u);
  const unsigned whole = bits / 8;
  for (unsigned k = 0; k < whole; ++k) {
    if (a.bytes[k] != net.bytes[k]) return false;
  }
  if (bits % 8 == 0) return true;
  const uint8_t mask = static_cast<uint8_t>(0xff << (8 - bits % 8));
  return (a.bytes[whole] & mask) == (net.bytes[whole] & mask);
}

}  // namespace ringmail::proto
