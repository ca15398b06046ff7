// Shared by the SHA-256 kernels (tls/sha256.cc, tls/sha256_x16.cc): the
// constants of FIPS 180-4 4.2.2 and 5.3.3, and the digest's byte order.
#pragma once

#include <cstdint>
#include <string_view>

#include "tls/sha256.h"

namespace ringmail::tls::sha256_detail {

inline constexpr uint32_t kInit[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                                      0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};

alignas(16) inline constexpr uint32_t kK[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2};

// The state words, big-endian: the digest.
inline Sha256Digest to_digest(const uint32_t state[8]) {
  Sha256Digest out;
  for (int i = 0; i < 8; ++i) {
    out[static_cast<size_t>(4 * i)] = static_cast<uint8_t>(state[i] >> 24);
    out[static_cast<size_t>(4 * i + 1)] = static_cast<uint8_t>(state[i] >> 16);
    out[static_cast<size_t>(4 * i + 2)] = static_cast<uint8_t>(state[i] >> 8);
    out[static_cast<size_t>(4 * i + 3)] = static_cast<uint8_t>(state[i]);
  }
  return out;
}

// One stream's whole blocks: SHA-NI when the CPU has it, else portable.
void blocks_single(uint32_t state[8], const uint8_t* data, size_t blocks);

// The end of a message of `total` bytes whose last `tail` bytes (any
// length, whole blocks included) are not in `state` yet: those, the
// padding (0x80, zeros, the length in bits), and the digest.
Sha256Digest finish_tail(uint32_t state[8], std::string_view tail, uint64_t total);

}  // namespace ringmail::tls::sha256_detail
