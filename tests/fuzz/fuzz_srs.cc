// libFuzzer target: SRS (proto/srs.cc) with a stand-in HMAC. reverse()
// takes anything; whatever forward() rewrites, reverse() turns back into
// the sender (for an SRS1 sender: the first forwarder's SRS0 address).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "proto/address.h"
#include "proto/srs.h"

namespace {

using namespace ringmail::proto;

constexpr int64_t kNow = int64_t{20000} * 86400;

std::string mac(std::string_view key, std::string_view data) {
  uint32_t h = 2166136261u;
  for (char c : key) h = (h ^ static_cast<uint8_t>(c)) * 16777619u;
  for (char c : data) h = (h ^ static_cast<uint8_t>(c)) * 16777619u;
  std::string out(20, '\0');
  for (size_t i = 0; i < out.size(); ++i) out[i] = static_cast<char>(h >> (i % 4 * 8));
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  srs::Config c;
  c.domain = "fwd.example";
  c.secrets = {"new", "old"};
  c.hmac = mac;

  std::string out;
  if (srs::reverse(c, in, kNow, &out) == srs::Error::kNone && out.empty()) std::abort();

  std::string fwd;
  if (srs::forward(c, in, kNow, &fwd) != srs::Error::kNone || fwd == in) return 0;
  std::string back;
  if (srs::reverse(c, fwd, kNow, &back) != srs::Error::kNone) std::abort();
  const size_t at = in.rfind('@');
  const std::string_view user = in.substr(0, at);
  if (srs::is_srs(user) && user[3] == '1') {
    // SRS1=hash=host=rest@... comes back as SRS0rest@host.
    const std::string_view fields = user.substr(5);
    const size_t h = fields.find('='), r = fields.find('=', h + 1);
    const std::string want = "SRS0" + std::string(fields.substr(r + 1)) + "@" +
                             std::string(fields.substr(h + 1, r - h - 1));
    if (back != want) std::abort();
  } else if (srs::is_srs(user)) {
    // The tag comes back upper-case.
    if (!iequals(back.substr(0, 4), "SRS0") || back.substr(4) != in.substr(4)) std::abort();
  } else if (back != in) {
    std::abort();
  }
  return 0;
}
