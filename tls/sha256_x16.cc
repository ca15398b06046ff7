// SHA-256 over 16 streams at once (AVX-512), a portable compression
// function, and sha256_many() which batches whole messages through them.
// FIPS 180-4 section 6.2, one stream per 32-bit lane: every step of the
// single-stream algorithm is done on 16 words at a time.
// GCC 12's AVX-512 headers trip its own uninitialized-value warnings
// (_mm512_undefined_* inside the intrinsics); nothing here is uninitialized.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include <immintrin.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "tls/sha256.h"
#include "tls/sha256_internal.h"

namespace ringmail::tls {

using sha256_detail::kInit;
using sha256_detail::kK;

namespace {

inline uint32_t rotr(uint32_t x, int n) { return (x >> n) | (x << (32 - n)); }

inline uint32_t load_be(const uint8_t* p) {
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | p[3];
}

}  // namespace

namespace sha256_detail {

void blocks_single(uint32_t state[8], const uint8_t* data, size_t blocks) {
  if (cpu_features().sha_ni) {
    sha256_blocks_shani(state, data, blocks);
  } else {
    sha256_blocks_portable(state, data, blocks);
  }
}

Sha256Digest finish_tail(uint32_t state[8], std::string_view tail, uint64_t total) {
  const size_t whole = tail.size() / 64;
  blocks_single(state, reinterpret_cast<const uint8_t*>(tail.data()), whole);
  tail.remove_prefix(whole * 64);
  uint8_t pad[128] = {};
  std::memcpy(pad, tail.data(), tail.size());
  pad[tail.size()] = 0x80;
  const size_t n = tail.size() < 56 ? 64 : 128;
  const uint64_t bits = total * 8;
  for (size_t j = 0; j < 8; ++j) pad[n - 1 - j] = static_cast<uint8_t>(bits >> (8 * j));
  blocks_single(state, pad, n / 64);
  return to_digest(state);
}

}  // namespace sha256_detail

void sha256_blocks_portable(uint32_t state[8], const uint8_t* data, size_t blocks) {
  for (; blocks > 0; --blocks, data += 64) {
    uint32_t w[64];
    for (int t = 0; t < 16; ++t) w[t] = load_be(data + 4 * t);
    for (int t = 16; t < 64; ++t) {
      const uint32_t s0 = rotr(w[t - 15], 7) ^ rotr(w[t - 15], 18) ^ (w[t - 15] >> 3);
      const uint32_t s1 = rotr(w[t - 2], 17) ^ rotr(w[t - 2], 19) ^ (w[t - 2] >> 10);
      w[t] = w[t - 16] + s0 + w[t - 7] + s1;
    }
    uint32_t a = state[0], b = state[1], c = state[2], d = state[3];
    uint32_t e = state[4], f = state[5], g = state[6], h = state[7];
    for (int t = 0; t < 64; ++t) {
      const uint32_t t1 =
          h + (rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25)) + ((e & f) ^ (~e & g)) + kK[t] + w[t];
      const uint32_t t2 = (rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22)) + ((a & b) ^ (a & c) ^ (b & c));
      h = g;
      g = f;
      f = e;
      e = d + t1;
      d = c;
      c = b;
      b = a;
      a = t1 + t2;
    }
    state[0] += a;
    state[1] += b;
    state[2] += c;
    state[3] += d;
    state[4] += e;
    state[5] += f;
    state[6] += g;
    state[7] += h;
  }
}

#define RM_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl")))

RM_AVX512 void sha256_x16_avx512(uint32_t* const states[16], const uint8_t* const data[16],
                                 size_t blocks) {
  // The 16 states, word-major: v[j] lane i = states[i][j].
  alignas(64) uint32_t tmp[8][16];
  for (int i = 0; i < 16; ++i) {
    for (int j = 0; j < 8; ++j) tmp[j][i] = states[i][j];
  }
  __m512i st[8];
  for (int j = 0; j < 8; ++j) st[j] = _mm512_load_si512(tmp[j]);
  // Byte order within each 32-bit word: big-endian message words.
  const __m512i bswap =
      _mm512_broadcast_i32x4(_mm_set_epi8(12, 13, 14, 15, 8, 9, 10, 11, 4, 5, 6, 7, 0, 1, 2, 3));
  for (size_t n = 0; n < blocks; ++n) {
    // The 16 lanes' blocks, one row each, transposed into word-major rows
    // (w[t] lane i = word t of lane i's block): 4x4 transposes inside each
    // 128-bit lane, then 128-bit lanes regrouped.
    __m512i r[16];
    for (int i = 0; i < 16; ++i) {
      // A lane without data (null) hashes zeros into its scratch state.
      r[i] = data[i] != nullptr ? _mm512_loadu_si512(data[i] + 64 * n) : _mm512_setzero_si512();
    }
    __m512i u[4][4];
    for (int g = 0; g < 4; ++g) {
      const __m512i t0 = _mm512_unpacklo_epi32(r[4 * g], r[4 * g + 1]);
      const __m512i t1 = _mm512_unpackhi_epi32(r[4 * g], r[4 * g + 1]);
      const __m512i t2 = _mm512_unpacklo_epi32(r[4 * g + 2], r[4 * g + 3]);
      const __m512i t3 = _mm512_unpackhi_epi32(r[4 * g + 2], r[4 * g + 3]);
      u[g][0] = _mm512_unpacklo_epi64(t0, t2);
      u[g][1] = _mm512_unpackhi_epi64(t0, t2);
      u[g][2] = _mm512_unpacklo_epi64(t1, t3);
      u[g][3] = _mm512_unpackhi_epi64(t1, t3);
    }
    __m512i w[16];
    for (int k = 0; k < 4; ++k) {
      const __m512i x01 = _mm512_shuffle_i32x4(u[0][k], u[1][k], 0x44);
      const __m512i y01 = _mm512_shuffle_i32x4(u[2][k], u[3][k], 0x44);
      const __m512i x23 = _mm512_shuffle_i32x4(u[0][k], u[1][k], 0xEE);
      const __m512i y23 = _mm512_shuffle_i32x4(u[2][k], u[3][k], 0xEE);
      w[k] = _mm512_shuffle_epi8(_mm512_shuffle_i32x4(x01, y01, 0x88), bswap);
      w[4 + k] = _mm512_shuffle_epi8(_mm512_shuffle_i32x4(x01, y01, 0xDD), bswap);
      w[8 + k] = _mm512_shuffle_epi8(_mm512_shuffle_i32x4(x23, y23, 0x88), bswap);
      w[12 + k] = _mm512_shuffle_epi8(_mm512_shuffle_i32x4(x23, y23, 0xDD), bswap);
    }
    __m512i a = st[0], b = st[1], c = st[2], d = st[3], e = st[4], f = st[5], g = st[6], h = st[7];
#pragma GCC unroll 8
    for (int t = 0; t < 64; ++t) {
      __m512i wt;
      if (t < 16) {
        wt = w[t];
      } else {
        const __m512i w15 = w[(t - 15) & 15], w2 = w[(t - 2) & 15];
        const __m512i s0 = _mm512_ternarylogic_epi32(
            _mm512_ror_epi32(w15, 7), _mm512_ror_epi32(w15, 18), _mm512_srli_epi32(w15, 3), 0x96);
        const __m512i s1 = _mm512_ternarylogic_epi32(
            _mm512_ror_epi32(w2, 17), _mm512_ror_epi32(w2, 19), _mm512_srli_epi32(w2, 10), 0x96);
        wt = _mm512_add_epi32(_mm512_add_epi32(w[t & 15], s0),
                              _mm512_add_epi32(w[(t - 7) & 15], s1));
        w[t & 15] = wt;
      }
      const __m512i S1 = _mm512_ternarylogic_epi32(_mm512_ror_epi32(e, 6), _mm512_ror_epi32(e, 11),
                                                   _mm512_ror_epi32(e, 25), 0x96);
      const __m512i ch = _mm512_ternarylogic_epi32(e, f, g, 0xCA);
      const __m512i t1 = _mm512_add_epi32(
          _mm512_add_epi32(h, S1),
          _mm512_add_epi32(ch, _mm512_add_epi32(_mm512_set1_epi32(static_cast<int>(kK[t])), wt)));
      const __m512i S0 = _mm512_ternarylogic_epi32(_mm512_ror_epi32(a, 2), _mm512_ror_epi32(a, 13),
                                                   _mm512_ror_epi32(a, 22), 0x96);
      const __m512i maj = _mm512_ternarylogic_epi32(a, b, c, 0xE8);
      h = g;
      g = f;
      f = e;
      e = _mm512_add_epi32(d, t1);
      d = c;
      c = b;
      b = a;
      a = _mm512_add_epi32(t1, _mm512_add_epi32(S0, maj));
    }
    st[0] = _mm512_add_epi32(st[0], a);
    st[1] = _mm512_add_epi32(st[1], b);
    st[2] = _mm512_add_epi32(st[2], c);
    st[3] = _mm512_add_epi32(st[3], d);
    st[4] = _mm512_add_epi32(st[4], e);
    st[5] = _mm512_add_epi32(st[5], f);
    st[6] = _mm512_add_epi32(st[6], g);
    st[7] = _mm512_add_epi32(st[7], h);
  }
  for (int j = 0; j < 8; ++j) _mm512_store_si512(tmp[j], st[j]);
  for (int i = 0; i < 16; ++i) {
    for (int j = 0; j < 8; ++j) states[i][j] = tmp[j][i];
  }
}

#define RM_AVX2 __attribute__((target("avx2")))

namespace {

RM_AVX2 inline __m256i ror8(__m256i x, int n) {
  return _mm256_or_si256(_mm256_srli_epi32(x, n), _mm256_slli_epi32(x, 32 - n));
}

RM_AVX2 inline __m256i xor3(__m256i a, __m256i b, __m256i c) {
  return _mm256_xor_si256(_mm256_xor_si256(a, b), c);
}

// 8 rows of 8 words (each row 32 bytes at p[i] + off) -> 8 word-major rows.
RM_AVX2 void transpose8(const uint8_t* const p[8], size_t off, __m256i bswap, __m256i* w) {
  __m256i r[8];
  for (int i = 0; i < 8; ++i) {
    r[i] = p[i] != nullptr ? _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p[i] + off))
                           : _mm256_setzero_si256();
  }
  __m256i u[8];
  for (int g = 0; g < 2; ++g) {
    const __m256i t0 = _mm256_unpacklo_epi32(r[4 * g], r[4 * g + 1]);
    const __m256i t1 = _mm256_unpackhi_epi32(r[4 * g], r[4 * g + 1]);
    const __m256i t2 = _mm256_unpacklo_epi32(r[4 * g + 2], r[4 * g + 3]);
    const __m256i t3 = _mm256_unpackhi_epi32(r[4 * g + 2], r[4 * g + 3]);
    u[4 * g] = _mm256_unpacklo_epi64(t0, t2);
    u[4 * g + 1] = _mm256_unpackhi_epi64(t0, t2);
    u[4 * g + 2] = _mm256_unpacklo_epi64(t1, t3);
    u[4 * g + 3] = _mm256_unpackhi_epi64(t1, t3);
  }
  for (int k = 0; k < 4; ++k) {
    w[k] = _mm256_shuffle_epi8(_mm256_permute2x128_si256(u[k], u[4 + k], 0x20), bswap);
    w[4 + k] = _mm256_shuffle_epi8(_mm256_permute2x128_si256(u[k], u[4 + k], 0x31), bswap);
  }
}

}  // namespace

RM_AVX2 void sha256_x8_avx2(uint32_t* const states[8], const uint8_t* const data[8],
                            size_t blocks) {
  alignas(32) uint32_t tmp[8][8];
  for (int i = 0; i < 8; ++i) {
    for (int j = 0; j < 8; ++j) tmp[j][i] = states[i][j];
  }
  __m256i st[8];
  for (int j = 0; j < 8; ++j) st[j] = _mm256_load_si256(reinterpret_cast<const __m256i*>(tmp[j]));
  const __m256i bswap = _mm256_set_epi8(12, 13, 14, 15, 8, 9, 10, 11, 4, 5, 6, 7, 0, 1, 2, 3, 12,
                                        13, 14, 15, 8, 9, 10, 11, 4, 5, 6, 7, 0, 1, 2, 3);
  for (size_t n = 0; n < blocks; ++n) {
    __m256i w[16];
    transpose8(data, 64 * n, bswap, w);
    transpose8(data, 64 * n + 32, bswap, w + 8);
    __m256i a = st[0], b = st[1], c = st[2], d = st[3], e = st[4], f = st[5], g = st[6], h = st[7];
#pragma GCC unroll 8
    for (int t = 0; t < 64; ++t) {
      __m256i wt;
      if (t < 16) {
        wt = w[t];
      } else {
        const __m256i w15 = w[(t - 15) & 15], w2 = w[(t - 2) & 15];
        const __m256i s0 = xor3(ror8(w15, 7), ror8(w15, 18), _mm256_srli_epi32(w15, 3));
        const __m256i s1 = xor3(ror8(w2, 17), ror8(w2, 19), _mm256_srli_epi32(w2, 10));
        wt = _mm256_add_epi32(_mm256_add_epi32(w[t & 15], s0),
                              _mm256_add_epi32(w[(t - 7) & 15], s1));
        w[t & 15] = wt;
      }
      const __m256i S1 = xor3(ror8(e, 6), ror8(e, 11), ror8(e, 25));
      const __m256i ch = _mm256_xor_si256(_mm256_and_si256(e, f), _mm256_andnot_si256(e, g));
      const __m256i t1 = _mm256_add_epi32(
          _mm256_add_epi32(h, S1),
          _mm256_add_epi32(ch, _mm256_add_epi32(_mm256_set1_epi32(static_cast<int>(kK[t])), wt)));
      const __m256i S0 = xor3(ror8(a, 2), ror8(a, 13), ror8(a, 22));
      const __m256i maj =
          _mm256_or_si256(_mm256_and_si256(_mm256_or_si256(a, b), c), _mm256_and_si256(a, b));
      h = g;
      g = f;
      f = e;
      e = _mm256_add_epi32(d, t1);
      d = c;
      c = b;
      b = a;
      a = _mm256_add_epi32(t1, _mm256_add_epi32(S0, maj));
    }
    st[0] = _mm256_add_epi32(st[0], a);
    st[1] = _mm256_add_epi32(st[1], b);
    st[2] = _mm256_add_epi32(st[2], c);
    st[3] = _mm256_add_epi32(st[3], d);
    st[4] = _mm256_add_epi32(st[4], e);
    st[5] = _mm256_add_epi32(st[5], f);
    st[6] = _mm256_add_epi32(st[6], g);
    st[7] = _mm256_add_epi32(st[7], h);
  }
  for (int j = 0; j < 8; ++j) _mm256_store_si256(reinterpret_cast<__m256i*>(tmp[j]), st[j]);
  for (int i = 0; i < 8; ++i) {
    for (int j = 0; j < 8; ++j) states[i][j] = tmp[j][i];
  }
}

namespace {

using Kernel = void (*)(uint32_t* const*, const uint8_t* const*, size_t);

// Lanes 0..m-1 (m <= L) advance `st[i]` over `left[i]` whole blocks at
// `ptr[i]` in lockstep, over the blocks all remaining lanes still have;
// a lane that runs out is parked on a scratch state with no data. Once
// fewer than `min_lanes` lanes have blocks, they finish one by one (the
// single-stream kernel is faster then). `ptr` and `left` are consumed.
template <size_t L>
void run_lanes(uint32_t* const* st, const uint8_t** ptr, size_t* left, size_t m, size_t min_lanes,
               Kernel kernel) {
  uint32_t scratch[8];
  while (true) {
    size_t k = SIZE_MAX, active = 0;
    for (size_t i = 0; i < m; ++i) {
      if (left[i] == 0) continue;
      k = std::min(k, left[i]);
      ++active;
    }
    if (active == 0) return;
    if (active < std::max<size_t>(min_lanes, 2)) {
      for (size_t i = 0; i < m; ++i) {
        if (left[i] == 0) continue;
        sha256_detail::blocks_single(st[i], ptr[i], left[i]);
        ptr[i] += 64 * left[i];
        left[i] = 0;
      }
      return;
    }
    uint32_t* lane_state[L];
    const uint8_t* lane_data[L];
    for (size_t i = 0; i < L; ++i) {
      const bool on = i < m && left[i] > 0;
      lane_state[i] = on ? st[i] : scratch;
      lane_data[i] = on ? ptr[i] : nullptr;
    }
    kernel(lane_state, lane_data, k);
    for (size_t i = 0; i < m; ++i) {
      if (left[i] == 0) continue;
      ptr[i] += 64 * k;
      left[i] -= k;
    }
  }
}

// Whole messages through an L-lane kernel, L at a time.
template <size_t L>
void many_lanes(const std::string_view* msgs, size_t n, Sha256Digest* out, Kernel kernel) {
  for (size_t base = 0; base < n; base += L) {
    const size_t m = std::min<size_t>(L, n - base);
    uint32_t st[L][8];
    uint32_t* sp[L];
    const uint8_t* ptr[L];
    size_t left[L];
    for (size_t i = 0; i < m; ++i) {
      std::memcpy(st[i], kInit, sizeof kInit);
      sp[i] = st[i];
      ptr[i] = reinterpret_cast<const uint8_t*>(msgs[base + i].data());
      left[i] = msgs[base + i].size() / 64;
    }
    run_lanes<L>(sp, ptr, left, m, 2, kernel);
    // The tail and the padding, lane by lane.
    for (size_t i = 0; i < m; ++i) {
      const std::string_view msg = msgs[base + i];
      out[base + i] =
          sha256_detail::finish_tail(st[i], msg.substr(msg.size() - msg.size() % 64), msg.size());
    }
  }
}

// The lane kernel sha256_many() and pump_many() use for `b` on this CPU:
// its width, 0 for none.
size_t lane_kernel(Sha256Backend b, Kernel* kernel) {
  const auto& cpu = cpu_features();
  if (cpu.avx512 && (b == Sha256Backend::kAuto || b == Sha256Backend::kAvx512x16)) {
    *kernel = &sha256_x16_avx512;
    return 16;
  }
  if (cpu.avx2 && (b == Sha256Backend::kAvx2x8 || (b == Sha256Backend::kAuto && !cpu.sha_ni))) {
    *kernel = &sha256_x8_avx2;
    return 8;
  }
  return 0;
}

}  // namespace

void sha256_many(const std::string_view* msgs, size_t n, Sha256Digest* out, Sha256Backend b) {
  Kernel kernel = nullptr;
  switch (lane_kernel(b, &kernel)) {
    case 16:
      many_lanes<16>(msgs, n, out, kernel);
      return;
    case 8:
      many_lanes<8>(msgs, n, out, kernel);
      return;
    default:
      for (size_t i = 0; i < n; ++i) out[i] = Sha256Job::hash(msgs[i], b);
  }
}

}  // namespace ringmail::tls

namespace ringmail::tls {

Sha256Deferred::Sha256Deferred(bool defer, Sha256Backend backend)
    : defer_(defer && resolve(backend) != Sha256Backend::kWolfCrypt), now_(backend) {
  std::memcpy(state_, kInit, sizeof kInit);
}

void Sha256Deferred::add(std::string_view data) {
  length_ += data.size();
  if (!defer_) {
    now_.update(data);
    return;
  }
  pending_.append(data);
  if (pending_.size() >= kMaxPending) pump();
}

void Sha256Deferred::pump() {
  const size_t n = pending_.size() / 64;
  if (n == 0) return;
  sha256_detail::blocks_single(state_, reinterpret_cast<const uint8_t*>(pending_.data()), n);
  pending_.erase(0, n * 64);
}

Sha256Digest Sha256Deferred::finish() {
  if (!defer_) return now_.finish();
  return sha256_detail::finish_tail(state_, pending_, length_);
}

void pump_many(Sha256Deferred* const* jobs, size_t n, size_t min_lanes, Sha256Backend b) {
  std::vector<Sha256Deferred*> busy;
  std::vector<uint32_t*> st;
  std::vector<const uint8_t*> ptr;
  std::vector<size_t> left;
  for (size_t i = 0; i < n; ++i) {
    Sha256Deferred* j = jobs[i];
    if (!j->defer_ || j->waiting_blocks() == 0) continue;
    busy.push_back(j);
    st.push_back(j->state_);
    ptr.push_back(reinterpret_cast<const uint8_t*>(j->pending_.data()));
    left.push_back(j->waiting_blocks());
  }
  Kernel kernel = nullptr;
  const size_t width = lane_kernel(b, &kernel);
  for (size_t base = 0; base < busy.size(); base += width == 0 ? busy.size() : width) {
    const size_t m = std::min(width, busy.size() - base);
    if (width == 16) {
      run_lanes<16>(&st[base], &ptr[base], &left[base], m, min_lanes, kernel);
    } else if (width == 8) {
      run_lanes<8>(&st[base], &ptr[base], &left[base], m, min_lanes, kernel);
    }
  }
  for (size_t i = 0; i < busy.size(); ++i) {
    if (width == 0) {
      busy[i]->pump();
    } else {
      // run_lanes() hashed every whole block (in the lanes or alone).
      busy[i]->pending_.erase(0, busy[i]->waiting_blocks() * 64);
    }
  }
}

}  // namespace ringmail::tls
