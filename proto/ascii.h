// ASCII character classes for the parsers (RFC 5234's ALPHA, DIGIT, WSP),
// locale-free and the same everywhere: <cctype> depends on the locale and
// is undefined for negative chars.
#pragma once

#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

namespace ringmail::proto {

constexpr bool is_alpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
constexpr bool is_digit(char c) { return c >= '0' && c <= '9'; }
constexpr bool is_alnum(char c) { return is_alpha(c) || is_digit(c); }
// WSP: space or horizontal tab (RFC 5234).
constexpr bool is_wsp(char c) { return c == ' ' || c == '\t'; }
// WSP, CR or LF: what a line- or tag-based format trims.
constexpr bool is_space(char c) { return is_wsp(c) || c == '\r' || c == '\n'; }
constexpr char to_lower(char c) {
  return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c;
}

inline constexpr char kHexDigits[] = "0123456789abcdef";

// A hex digit's value (either case), or -1.
constexpr int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Bytes as lower-case hex, two digits each.
inline std::string hex_lower(std::string_view bytes) {
  std::string out;
  out.reserve(bytes.size() * 2);
  for (unsigned char b : bytes) {
    out += kHexDigits[b >> 4];
    out += kHexDigits[b & 15];
  }
  return out;
}

// `s` without leading and trailing is_space characters.
constexpr std::string_view trim_space(std::string_view s) {
  while (!s.empty() && is_space(s.front())) s.remove_prefix(1);
  while (!s.empty() && is_space(s.back())) s.remove_suffix(1);
  return s;
}

// No byte of `s` has its high bit set (7-bit text). Eight bytes at a
// time: built messages are scanned whole.
inline bool is_ascii(std::string_view s) {
  size_t i = 0;
  for (; i + 8 <= s.size(); i += 8) {
    uint64_t w;
    std::memcpy(&w, s.data() + i, 8);
    if ((w & 0x8080808080808080ull) != 0) return false;
  }
  for (; i < s.size(); ++i) {
    if ((static_cast<unsigned char>(s[i]) & 0x80) != 0) return false;
  }
  return true;
}

// Text someone else chose (a client's command, a user name), made fit
// for one log line: at most `max` bytes and "..." after a cut, control and
// non-ASCII bytes as '?', so no line can be forged through it.
inline std::string loggable(std::string_view in, size_t max) {
  std::string out(in.substr(0, max));
  for (char& c : out) {
    if (static_cast<unsigned char>(c) < 0x20 || static_cast<unsigned char>(c) >= 0x7f) c = '?';
  }
  if (in.size() > max) out += "...";
  return out;
}

}  // namespace ringmail::proto
