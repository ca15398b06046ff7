// libFuzzer target: HTTP requests (proto/http.cc over Debian's
// http-parser) from any bytes in any split. It must never crash, never
// hand out a body over the limit, and stay broken once it said so.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>
#include <vector>

#include "proto/http.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace ringmail::proto;
  if (size < 1) return 0;
  const size_t chunk = 1 + data[0] % 97;
  constexpr size_t kBodyMax = 300;
  HttpRequestReader r(kBodyMax);
  std::string_view in(reinterpret_cast<const char*>(data + 1), size - 1);
  std::vector<HttpRequest> out;
  bool broken = false;
  while (!in.empty()) {
    const size_t n = chunk < in.size() ? chunk : in.size();
    const bool ok = r.feed(in.substr(0, n), &out);
    in.remove_prefix(n);
    if (broken && ok) std::abort();
    if (!ok) {
      broken = true;
      if (r.status() != 400 && r.status() != 413 && r.status() != 431) std::abort();
    }
  }
  for (const auto& q : out) {
    if (q.body.size() > kBodyMax || q.method.empty()) std::abort();
    (void)http_response(200, "text/plain", q.body, q.keep_alive);
    std::vector<std::pair<std::string, std::string>> params;
    std::string bad;
    if (!parse_query(q.query, &params, &bad) && bad.empty()) std::abort();
  }
  return 0;
}
