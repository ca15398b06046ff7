// libFuzzer target, differential: the SHA-NI SHA-256 job against wolfCrypt's
// on any input fed in any split (tls/sha256.cc).
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
  return 0;
}
