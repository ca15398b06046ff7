// Tests of pure protocol code that takes an HMAC from its caller: a keyed
// stand-in for HMAC-SHA256 (the real one is tls::hmac_sha256, tested in
// tls/ and used by the engine's tests): 32 bytes that change with every
// byte of the key and the data.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace ringmail::proto::test_support {

inline std::string fake_hmac_sha256(std::string_view key, std::string_view data) {
  std::string out;
  uint64_t h = 1469598103934665603ull;
  for (int round = 0; round < 4; ++round) {
    for (char c : key) h = (h ^ static_cast<unsigned char>(c)) * 1099511628211ull;
    h = (h ^ 0xff) * 1099511628211ull;
    for (char c : data) h = (h ^ static_cast<unsigned char>(c)) * 1099511628211ull;
    for (int i = 0; i < 8; ++i) out += static_cast<char>(h >> (8 * i));
  }
  return out;
}

}  // namespace ringmail::proto::test_support
