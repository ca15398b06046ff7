#include "proto/address.h"

#include <cctype>
#include <cstdint>

#include "proto/ascii.h"

namespace ringmail::proto {
namespace {

bool is_atext(unsigned char c) {
  if (is_alpha(c) || is_digit(c)) return true;
  switch (c) {
    case '!':
    case '#':
    case '$':
    case '%':
    case '&':
    case '\'':
    case '*':
    case '+':
    case '-':
    case '/':
    case '=':
    case '?':
    case '^':
    case '_':
    case '`':
    case '{':
    case '|':
    case '}':
    case '~':
      return true;
    default:
      return false;
  }
}

// Length of one valid UTF-8 sequence (2..4) starting at s[i] or 0.
size_t utf8_seq(std::string_view s, size_t i) {
  const auto b0 = static_cast<unsigned char>(s[i]);
  size_t n;
  uint32_t cp;
  if (b0 >= 0xC2 && b0 <= 0xDF) {
    n = 2;
    cp = b0 & 0x1F;
  } else if (b0 >= 0xE0 && b0 <= 0xEF) {
    n = 3;
    cp = b0 & 0x0F;
  } else if (b0 >= 0xF0 && b0 <= 0xF4) {
    n = 4;
    cp = b0 & 0x07;
  } else {
    return 0;
  }
  if (i + n > s.size()) return 0;
  for (size_t k = 1; k < n; ++k) {
    const auto b = static_cast<unsigned char>(s[i + k]);
    if ((b & 0xC0) != 0x80) return 0;
    cp = (cp << 6) | (b & 0x3F);
  }
  if ((n == 3 && cp < 0x800) || (n == 4 && (cp < 0x10000 || cp > 0x10FFFF)) ||
      (cp >= 0xD800 && cp <= 0xDFFF)) {
    return 0;
  }
  return n;
}

bool needs_quoting(std::string_view local) {
  if (local.empty() || local.front() == '.' || local.back() == '.') return true;
  char prev = 0;
  for (char ch : local) {
    const auto c = static_cast<unsigned char>(ch);
    if (c == '.' && prev == '.') return true;
    if (c != '.' && !is_atext(c) && c < 0x80) return true;
    prev = ch;
  }
  return false;
}

bool parse_ipv4(std::string_view s) {
  int parts = 0;
  size_t i = 0;
  while (true) {
    size_t start = i;
    int value = 0;
    while (i < s.size() && is_digit(s[i]) && i - start < 3) value = value * 10 + (s[i++] - '0');
    if (i == start || value > 255) return false;
    ++parts;
    if (i == s.size()) break;
    if (s[i] != '.' || parts == 4) return false;
    ++i;
  }
  return parts == 4;
}

bool parse_ipv6(std::string_view s) {
  // Accepts hex groups separated by ':' with at most one '::' and an optional
  // trailing IPv4; enough to refuse garbage without being a full validator.
  if (s.empty() || s.size() > 45) return false;
  int groups = 0;
  bool compressed = false;
  size_t i = 0;
  if (s.substr(0, 2) == "::") {
    compressed = true;
    i = 2;
    if (i == s.size()) return true;
  }
  while (i < s.size()) {
    size_t start = i;
    while (i < s.size() && std::isxdigit(static_cast<unsigned char>(s[i])) && i - start < 4) ++i;
    if (i < s.size() && s[i] == '.') {
      return parse_ipv4(s.substr(start)) && groups <= 6;
    }
    if (i == start) return false;
    ++groups;
    if (i == s.size()) break;
    if (s[i] != ':') return false;
    ++i;
    if (i < s.size() && s[i] == ':') {
      if (compressed) return false;
      compressed = true;
      ++i;
      if (i == s.size()) break;
    } else if (i == s.size()) {
      return false;
    }
  }
  return compressed ? groups < 8 : groups == 8;
}

bool is_address_literal(std::string_view s) {
  if (s.size() < 3 || s.front() != '[' || s.back() != ']') return false;
  std::string_view inner = s.substr(1, s.size() - 2);
  if (inner.size() > 5 && iequals(inner.substr(0, 5), "IPv6:")) return parse_ipv6(inner.substr(5));
  return parse_ipv4(inner);
}

}  // namespace

std::string ascii_lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c + 32);
  }
  return out;
}

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    char x = a[i], y = b[i];
    if (x >= 'A' && x <= 'Z') x = static_cast<char>(x + 32);
    if (y >= 'A' && y <= 'Z') y = static_cast<char>(y + 32);
    if (x != y) return false;
  }
  return true;
}

bool is_valid_domain(std::string_view d) {
  if (d.empty() || d.size() > kDomainBytesMax) return false;
  if (d.front() == '[') return is_address_literal(d);
  size_t label = 0;
  for (size_t i = 0; i < d.size(); ++i) {
    const auto c = static_cast<unsigned char>(d[i]);
    if (c == '.') {
      if (label == 0 || d[i - 1] == '-') return false;
      label = 0;
      continue;
    }
    if (c >= 0x80) {
      size_t n = utf8_seq(d, i);
      if (n == 0) return false;
      i += n - 1;
      label += n;
      continue;
    }
    if (c == '-') {
      if (label == 0) return false;
    } else if (!is_alpha(c) && !is_digit(c)) {
      return false;
    }
    if (++label > 63) return false;
  }
  return label > 0 && d.back() != '-';
}

std::string Address::to_string() const {
  if (is_null()) return "";
  std::string out;
  if (needs_quoting(local)) {
    out += '"';
    for (char c : local) {
      if (c == '"' || c == '\\') out += '\\';
      out += c;
    }
    out += '"';
  } else {
    out += local;
  }
  if (!domain.empty()) {
    out += '@';
    out += domain;
  }
  return out;
}

AddressError parse_path(std::string_view in, bool allow_null, bool allow_postmaster, Address& out,
                        size_t& consumed) {
  out = Address{};
  if (in.empty() || in[0] != '<') return AddressError::kSyntax;
  size_t close = in.find('>');
  // A '>' may appear inside a quoted local part; find the real end below.
  size_t i = 1;
  if (allow_null && in.size() >= 2 && in[1] == '>') {
    consumed = 2;
    return AddressError::kNone;
  }
  // Source route "@a,@b:" (RFC 5321 4.1.2): accepted and ignored.
  if (i < in.size() && in[i] == '@') {
    size_t colon = in.find(':', i);
    if (colon == std::string_view::npos || (close != std::string_view::npos && colon > close)) {
      return AddressError::kSyntax;
    }
    i = colon + 1;
  }
  // Local part.
  if (i < in.size() && in[i] == '"') {
    ++i;
    while (true) {
      if (i >= in.size()) return AddressError::kSyntax;
      const auto c = static_cast<unsigned char>(in[i]);
      if (c == '"') {
        ++i;
        break;
      }
      if (c == '\\') {
        if (i + 1 >= in.size()) return AddressError::kSyntax;
        const auto q = static_cast<unsigned char>(in[i + 1]);
        if (q < 32 || q > 126) return AddressError::kSyntax;
        out.local += static_cast<char>(q);
        i += 2;
        continue;
      }
      if (c >= 0x80) {
        size_t n = utf8_seq(in, i);
        if (n == 0) return AddressError::kSyntax;
        out.local.append(in.substr(i, n));
        out.utf8 = true;
        i += n;
        continue;
      }
      if (c < 32 || c > 126) return AddressError::kSyntax;
      out.local += static_cast<char>(c);
      ++i;
    }
  } else {
    size_t start = i;
    bool atom_empty = true;
    while (i < in.size() && in[i] != '@' && in[i] != '>') {
      const auto c = static_cast<unsigned char>(in[i]);
      if (c == '.') {
        if (atom_empty) return AddressError::kSyntax;
        atom_empty = true;
        ++i;
        continue;
      }
      if (c >= 0x80) {
        size_t n = utf8_seq(in, i);
        if (n == 0) return AddressError::kSyntax;
        out.utf8 = true;
        i += n;
        atom_empty = false;
        continue;
      }
      if (!is_atext(c)) return AddressError::kSyntax;
      atom_empty = false;
      ++i;
    }
    if (i == start || atom_empty) return AddressError::kSyntax;
    out.local.assign(in.substr(start, i - start));
  }
  if (out.local.size() > kLocalPartBytesMax) return AddressError::kTooLong;
  if (i >= in.size()) return AddressError::kSyntax;
  if (in[i] == '>') {
    if (allow_postmaster && iequals(out.local, "postmaster")) {
      consumed = i + 1;
      return AddressError::kNone;
    }
    return AddressError::kSyntax;
  }
  if (in[i] != '@') return AddressError::kSyntax;
  ++i;
  size_t dstart = i;
  if (i < in.size() && in[i] == '[') {
    size_t rb = in.find(']', i);
    if (rb == std::string_view::npos) return AddressError::kSyntax;
    i = rb + 1;
  } else {
    while (i < in.size() && in[i] != '>') ++i;
  }
  if (i >= in.size() || in[i] != '>') return AddressError::kSyntax;
  std::string_view domain = in.substr(dstart, i - dstart);
  if (domain.size() > kDomainBytesMax) return AddressError::kTooLong;
  if (!is_valid_domain(domain)) return AddressError::kSyntax;
  for (char c : domain) {
    if (static_cast<unsigned char>(c) >= 0x80) out.utf8 = true;
  }
  out.domain.assign(domain);
  consumed = i + 1;
  if (consumed > kPathBytesMax + 2) return AddressError::kTooLong;
  return AddressError::kNone;
}

}  // namespace ringmail::proto
