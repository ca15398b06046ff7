#include "tls/sha256.h"

#include <cpuid.h>
#include <immintrin.h>
#include <wolfssl/options.h>
#include <wolfssl/wolfcrypt/sha256.h>

#include <cstring>

#include "tls/sha256_internal.h"

namespace ringmail::tls {

using sha256_detail::kInit;
using sha256_detail::kK;

namespace {

CpuFeatures detect() {
  CpuFeatures f;
  unsigned a, b, c, d;
  if (__get_cpuid(1, &a, &b, &c, &d) == 0) return f;
  const bool osxsave = (c >> 27) & 1;
  uint64_t xcr0 = 0;
  if (osxsave) {
    uint32_t lo, hi;
    __asm__("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    xcr0 = (static_cast<uint64_t>(hi) << 32) | lo;
  }
  if (__get_cpuid_count(7, 0, &a, &b, &c, &d) == 0) return f;
  f.sha_ni = (b >> 29) & 1;
  const bool ymm = (xcr0 & 0x6) == 0x6;
  const bool zmm = ymm && (xcr0 & 0xe0) == 0xe0;
  f.avx2 = ymm && ((b >> 5) & 1);
  f.avx512 = zmm && ((b >> 16) & 1) && ((b >> 30) & 1) && ((b >> 31) & 1);  // F, BW, VL
  return f;
}

}  // namespace

const CpuFeatures& cpu_features() {
  static const CpuFeatures f = detect();
  return f;
}

const char* to_string(Sha256Backend b) {
  switch (b) {
    case Sha256Backend::kAuto:
      return "auto";
    case Sha256Backend::kWolfCrypt:
      return "wolfcrypt";
    case Sha256Backend::kShaNi:
      return "sha-ni";
    case Sha256Backend::kAvx512x16:
      return "avx512x16";
    case Sha256Backend::kAvx2x8:
      return "avx2x8";
  }
  return "?";
}

Sha256Backend resolve(Sha256Backend b) {
  // Single streams have no AVX-512 kernel: they use SHA-NI (sha256_many()
  // is where the 16 lanes work).
  if (b == Sha256Backend::kAvx512x16 || b == Sha256Backend::kAvx2x8) b = Sha256Backend::kAuto;
  if (b == Sha256Backend::kAuto) {
    return cpu_features().sha_ni ? Sha256Backend::kShaNi : Sha256Backend::kWolfCrypt;
  }
  if (b == Sha256Backend::kShaNi && !cpu_features().sha_ni) return Sha256Backend::kWolfCrypt;
  return b;
}

// Two rounds per sha256rnds2, four per group; the message schedule keeps
// the last four groups of words in w[0..3] (Intel's SHA extensions, as in
// the SDM's description of SHA256RNDS2/MSG1/MSG2).
__attribute__((target("sha,sse4.1,ssse3"))) void sha256_blocks_shani(uint32_t state[8],
                                                                     const uint8_t* data,
                                                                     size_t blocks) {
  const __m128i bswap = _mm_set_epi64x(0x0c0d0e0f08090a0bULL, 0x0405060700010203ULL);
  // state a..h -> the ABEF and CDGH layouts the instructions use.
  __m128i t = _mm_shuffle_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(state)), 0xB1);
  __m128i s1 =
      _mm_shuffle_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(state + 4)), 0x1B);
  __m128i s0 = _mm_alignr_epi8(t, s1, 8);
  s1 = _mm_blend_epi16(s1, t, 0xF0);
  for (; blocks > 0; --blocks, data += 64) {
    const __m128i save0 = s0, save1 = s1;
    __m128i w[4];
#pragma GCC unroll 16
    for (int g = 0; g < 16; ++g) {
      __m128i& cur = w[g & 3];
      if (g < 4) {
        cur = _mm_shuffle_epi8(_mm_loadu_si128(reinterpret_cast<const __m128i*>(data + 16 * g)),
                               bswap);
      } else {
        const __m128i prev = w[(g + 3) & 3];  // W[g-1]
        __m128i x = _mm_sha256msg1_epu32(cur, w[(g + 1) & 3]);
        x = _mm_add_epi32(x, _mm_alignr_epi8(prev, w[(g + 2) & 3], 4));
        cur = _mm_sha256msg2_epu32(x, prev);
      }
      __m128i m = _mm_add_epi32(cur, _mm_load_si128(reinterpret_cast<const __m128i*>(kK + 4 * g)));
      s1 = _mm_sha256rnds2_epu32(s1, s0, m);
      m = _mm_shuffle_epi32(m, 0x0E);
      s0 = _mm_sha256rnds2_epu32(s0, s1, m);
    }
    s0 = _mm_add_epi32(s0, save0);
    s1 = _mm_add_epi32(s1, save1);
  }
  t = _mm_shuffle_epi32(s0, 0x1B);
  s1 = _mm_shuffle_epi32(s1, 0xB1);
  _mm_storeu_si128(reinterpret_cast<__m128i*>(state), _mm_blend_epi16(t, s1, 0xF0));
  _mm_storeu_si128(reinterpret_cast<__m128i*>(state + 4), _mm_alignr_epi8(s1, t, 8));
}

Sha256Job::Sha256Job(Sha256Backend b) : backend_(resolve(b)) {
  std::memcpy(state_, kInit, sizeof state_);
  if (backend_ == Sha256Backend::kWolfCrypt) {
    auto* w = new wc_Sha256;
    wc_InitSha256(w);
    wolf_ = w;
  }
}

Sha256Job::~Sha256Job() {
  if (wolf_ != nullptr) {
    wc_Sha256Free(static_cast<wc_Sha256*>(wolf_));
    delete static_cast<wc_Sha256*>(wolf_);
  }
}

void Sha256Job::update(std::string_view in) {
  length_ += in.size();
  if (wolf_ != nullptr) {
    wc_Sha256Update(static_cast<wc_Sha256*>(wolf_), reinterpret_cast<const byte*>(in.data()),
                    static_cast<word32>(in.size()));
    return;
  }
  const auto* p = reinterpret_cast<const uint8_t*>(in.data());
  size_t n = in.size();
  if (partial_len_ > 0) {
    const size_t take = std::min(n, 64 - partial_len_);
    std::memcpy(partial_ + partial_len_, p, take);
    partial_len_ += take;
    p += take;
    n -= take;
    if (partial_len_ < 64) return;
    sha256_blocks_shani(state_, partial_, 1);
    partial_len_ = 0;
  }
  if (n >= 64) {
    sha256_blocks_shani(state_, p, n / 64);
    p += n / 64 * 64;
    n %= 64;
  }
  std::memcpy(partial_, p, n);
  partial_len_ = n;
}

Sha256Digest Sha256Job::finish() {
  Sha256Digest out{};
  if (wolf_ != nullptr) {
    wc_Sha256Final(static_cast<wc_Sha256*>(wolf_), out.data());
    return out;
  }
  return sha256_detail::finish_tail(
      state_, std::string_view(reinterpret_cast<const char*>(partial_), partial_len_), length_);
}

Sha256Digest Sha256Job::hash(std::string_view data, Sha256Backend b) {
  Sha256Job h(b);
  h.update(data);
  return h.finish();
}

}  // namespace ringmail::tls
