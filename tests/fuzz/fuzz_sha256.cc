// libFuzzer target, differential: the SHA-NI SHA-256 job against wolfCrypt's
// on any input fed in any split, and the 16-lane batch on the input cut into
// up to 16 messages in 16 AVX-512 and 8 AVX2 lanes (tls/sha256.cc,
// tls/sha256_x16.cc).
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "tls/sha256.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace ringmail::tls;
  if (size < 1 || !cpu_features().sha_ni) return 0;
  const size_t step = 1 + data[0];
  const std::string_view in(reinterpret_cast<const char*>(data + 1), size - 1);
  Sha256Job a(Sha256Backend::kShaNi);
  for (size_t pos = 0; pos < in.size(); pos += step) a.update(in.substr(pos, step));
  if (a.finish() != Sha256Job::hash(in, Sha256Backend::kWolfCrypt)) std::abort();
  for (auto b : {Sha256Backend::kAvx512x16, Sha256Backend::kAvx2x8}) {
    if (b == Sha256Backend::kAvx512x16 ? !cpu_features().avx512 : !cpu_features().avx2) continue;
    std::string_view msgs[16];
    size_t n = 0, pos = 0;
    while (n < 16 && pos <= in.size()) {
      const size_t len = std::min(in.size() - pos, step * (n + 1));
      msgs[n++] = in.substr(pos, len);
      pos += len + 1;
    }
    Sha256Digest out[16];
    sha256_many(msgs, n, out, b);
    for (size_t i = 0; i < n; ++i) {
      if (out[i] != Sha256Job::hash(msgs[i], Sha256Backend::kWolfCrypt)) std::abort();
    }
  }
  return 0;
}
