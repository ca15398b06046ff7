// SHA-256 (FIPS 180-4) for DKIM body and header hashes, as resumable jobs:
// state, partial block and length, fed in chunks of any size. Backends:
// wolfCrypt's (the scalar reference), and a SHA-NI kernel (x86 SHA
// extensions) used by default where the CPU has them. The backend is picked
// once per process (cpu_features(), or forced: tests and benchmarks).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace ringmail::tls {

enum class Sha256Backend : uint8_t { kAuto, kWolfCrypt, kShaNi, kAvx512x16, kAvx2x8 };
const char* to_string(Sha256Backend b);

struct CpuFeatures {
  bool sha_ni = false;
  bool avx2 = false;
  bool avx512 = false;  // F, VL, BW, and the OS saves the state
};
const CpuFeatures& cpu_features();

// kAuto resolves to SHA-NI when the CPU has it, else wolfCrypt. A backend
// the CPU lacks resolves to wolfCrypt.
Sha256Backend resolve(Sha256Backend b);

using Sha256Digest = std::array<uint8_t, 32>;

class Sha256Job {
 public:
  explicit Sha256Job(Sha256Backend b = Sha256Backend::kAuto);
  ~Sha256Job();
  Sha256Job(const Sha256Job&) = delete;
  Sha256Job& operator=(const Sha256Job&) = delete;

  void update(std::string_view data);
  Sha256Digest finish();  // the job is spent afterwards
  Sha256Backend backend() const { return backend_; }
  uint64_t length() const { return length_; }

  static Sha256Digest hash(std::string_view data, Sha256Backend b = Sha256Backend::kAuto);

 private:
  Sha256Backend backend_;
  uint32_t state_[8];
  uint8_t partial_[64];
  size_t partial_len_ = 0;
  uint64_t length_ = 0;
  void* wolf_ = nullptr;  // wc_Sha256, for the wolfCrypt backend
};

// The compression function on whole 64-byte blocks (exposed for tests and
// the benchmark).
void sha256_blocks_shani(uint32_t state[8], const uint8_t* data, size_t blocks);

}  // namespace ringmail::tls

namespace ringmail::tls {

// Multi-buffer SHA-256: 16 independent streams in the 16 lanes of AVX-512
// registers. `states[i]` advances by `blocks` whole blocks of `data[i]`
// (lanes that are not used point at a scratch state and null data). Needs
// cpu_features().avx512.
void sha256_x16_avx512(uint32_t* const states[16], const uint8_t* const data[16], size_t blocks);
// The same with 8 lanes of AVX2 registers (CPUs without AVX-512; where
// there is no SHA-NI either, it beats one stream at a time).
void sha256_x8_avx2(uint32_t* const states[8], const uint8_t* const data[8], size_t blocks);
// Portable compression function (finishing a multi-buffer job without
// SHA-NI, and the differential tests).
void sha256_blocks_portable(uint32_t state[8], const uint8_t* data, size_t blocks);

// Hashes n complete messages at once: AVX-512 16 lanes at a time when the
// CPU has it and `b` allows it (kAuto or kAvx512x16); AVX2 8 lanes when
// asked for (kAvx2x8) or, with kAuto, on a CPU with AVX2 but neither
// AVX-512 nor SHA-NI; else one by one with `b`.
void sha256_many(const std::string_view* msgs, size_t n, Sha256Digest* out,
                 Sha256Backend b = Sha256Backend::kAuto);

}  // namespace ringmail::tls

namespace ringmail::tls {

// A SHA-256 job whose input can wait for its owner to run the compression:
// one stream at a time (pump()) or the whole blocks of several jobs at once
// in the lanes (pump_many()). A shard's DKIM body hashes are these: each
// connection adds canonical body bytes as they arrive, and at the end of a
// loop turn the shard hashes what all of them hold in one pass of the
// 16-lane kernel. `defer` false: every add() is hashed at once with
// `backend` (no batching: wolfCrypt forced, or no lanes worth using).
class Sha256Deferred {
 public:
  explicit Sha256Deferred(bool defer, Sha256Backend backend = Sha256Backend::kAuto);
  Sha256Deferred(const Sha256Deferred&) = delete;
  Sha256Deferred& operator=(const Sha256Deferred&) = delete;

  void add(std::string_view data);
  // Whole blocks waiting (0 when not deferred).
  size_t waiting_blocks() const { return pending_.size() / 64; }
  void pump();
  Sha256Digest finish();  // spent afterwards
  uint64_t length() const { return length_; }
  // A job never holds more than this much input (it pumps itself).
  static constexpr size_t kMaxPending = 64 * 1024;

 private:
  friend void pump_many(Sha256Deferred* const* jobs, size_t n, size_t min_lanes, Sha256Backend b);
  bool defer_;
  Sha256Job now_;
  uint32_t state_[8];
  std::string pending_;
  uint64_t length_ = 0;
};

// The waiting whole blocks of `jobs` (deferred ones), 16 jobs at a time in
// the AVX-512 lanes (or 8 in AVX2 ones, chosen as in sha256_many()) while
// at least `min_lanes` of a group still have blocks; the rest one stream
// at a time.
void pump_many(Sha256Deferred* const* jobs, size_t n, size_t min_lanes,
               Sha256Backend b = Sha256Backend::kAuto);

}  // namespace ringmail::tls
