// libFuzzer target: the AUTH decoders (proto/sasl.cc). base64 must round-trip
// whatever it accepts, and PLAIN/LOGIN results must respect their limits.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "proto/sasl.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace ringmail::proto;
  std::string_view in(reinterpret_cast<const char*>(data), size);
  if (auto raw = base64_decode(in)) {
    if (base64_encode(*raw) != in) std::abort();  // only canonical input is accepted
  }
  const std::string enc = base64_encode(in);
  auto back = base64_decode(enc);
  if (!back || *back != in) std::abort();
  Credentials c;
  if (decode_plain(in, &c) == SaslError::kNone) {
    if (c.user.empty() || c.password.empty() || c.user.size() > 255 || c.password.size() > 255) {
      std::abort();
    }
  }
  if (decode_plain(enc, &c) == SaslError::kNone) {
    if (c.user.find('\0') != std::string::npos || c.password.find('\0') != std::string::npos) {
      std::abort();
    }
  }
  std::string field;
  if (decode_login_field(enc, &field) == SaslError::kNone &&
      (field.empty() || field.size() > 255)) {
    std::abort();
  }
  return 0;
}
