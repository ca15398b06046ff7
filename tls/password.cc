#include "tls/password.h"

#include <string.h>
#include <wolfssl/options.h>
#include <wolfssl/wolfcrypt/memory.h>
#include <wolfssl/wolfcrypt/pwdbased.h>
#include <wolfssl/wolfcrypt/random.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <mutex>

namespace ringmail::tls {

namespace {

// wc_scrypt takes its working area (128 * r * N bytes: 16 MiB at the
// default cost) from the allocator on every call and frees it at the end;
// the allocator hands such a block back to the kernel, which then faults
// all of it in again at the next AUTH (15% of an AUTH's time, measured).
// So each thread that runs scrypt keeps its largest block: wolfSSL's
// allocation hooks give it back while it is free, and wipe it when
// wolfSSL is done with it (it held password-derived data). Everything
// else goes to malloc and free as before.
constexpr size_t kKeepBytesMin = size_t{1} << 20;

struct Kept {
  void* block = nullptr;
  size_t bytes = 0;
  bool in_use = false;
  ~Kept() { std::free(block); }
};
thread_local Kept kept;
std::atomic<uint64_t> block_allocations{0};

void* scrypt_malloc(size_t n) {
  if (n < kKeepBytesMin) return std::malloc(n);
  if (kept.block != nullptr && !kept.in_use && kept.bytes >= n) {
    kept.in_use = true;
    return kept.block;
  }
  void* p = std::malloc(n);
  if (p != nullptr) block_allocations.fetch_add(1, std::memory_order_relaxed);
  if (p != nullptr && !kept.in_use && n > kept.bytes) {
    std::free(kept.block);
    kept.block = p;
    kept.bytes = n;
    kept.in_use = true;
  }
  return p;
}

void scrypt_free(void* p) {
  if (p != nullptr && p == kept.block) {
    explicit_bzero(p, kept.bytes);
    kept.in_use = false;
    return;
  }
  std::free(p);
}

void* scrypt_realloc(void* p, size_t n) {
  if (p != nullptr && p == kept.block) {  // not done by scrypt; kept simple
    void* q = std::malloc(n);
    if (q != nullptr) std::memcpy(q, p, std::min(n, kept.bytes));
    scrypt_free(p);
    return q;
  }
  return std::realloc(p, n);
}

void install_allocators() {
  static std::once_flag once;
  std::call_once(once, [] {
    // A wolfSSL built without its memory hooks keeps plain malloc.
    (void)wolfSSL_SetAllocators(&scrypt_malloc, &scrypt_free, &scrypt_realloc);
  });
}

}  // namespace

uint64_t scrypt_block_allocations() { return block_allocations.load(std::memory_order_relaxed); }

bool scrypt_key(std::string_view password, std::string_view salt, const ScryptParams& params,
                std::string* key) {
  // Bounds that keep a hostile users file from asking for gigabytes.
  if (params.log_n < 1 || params.log_n > 20 || params.r < 1 || params.r > 32 || params.p < 1 ||
      params.p > 16 || params.key_len < 16 || params.key_len > 64 || salt.empty()) {
    return false;
  }
  install_allocators();
  key->assign(static_cast<size_t>(params.key_len), '\0');
  return wc_scrypt(
             reinterpret_cast<byte*>(key->data()), reinterpret_cast<const byte*>(password.data()),
             static_cast<int>(password.size()), reinterpret_cast<const byte*>(salt.data()),
             static_cast<int>(salt.size()), params.log_n, params.r, params.p, params.key_len) == 0;
}

bool scrypt_matches(std::string_view password, std::string_view salt, const ScryptParams& params,
                    std::string_view key) {
  std::string got;
  return scrypt_key(password, salt, params, &got) && equal_in_constant_time(got, key);
}

bool equal_in_constant_time(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  unsigned char diff = 0;
  for (size_t i = 0; i < a.size(); ++i) diff |= static_cast<unsigned char>(a[i] ^ b[i]);
  return diff == 0;
}

bool random_salt(std::string* salt) {
  WC_RNG rng;
  if (wc_InitRng(&rng) != 0) return false;
  salt->assign(16, '\0');
  const bool ok = wc_RNG_GenerateBlock(&rng, reinterpret_cast<byte*>(salt->data()), 16) == 0;
  wc_FreeRng(&rng);
  return ok;
}

}  // namespace ringmail::tls
