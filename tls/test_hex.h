// Test-only: bytes as lower-case hex, for comparing digests and keys with
// the published test vectors.
#pragma once

#include <string>
#include <string_view>

namespace ringmail::tls {

inline std::string hex(std::string_view s) {
  static const char* d = "0123456789abcdef";
  std::string out;
  for (unsigned char c : s) {
    out += d[c >> 4];
    out += d[c & 15];
  }
  return out;
}

}  // namespace ringmail::tls
