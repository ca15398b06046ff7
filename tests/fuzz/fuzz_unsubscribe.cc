// libFuzzer target: one-click unsubscribe tokens (proto/unsubscribe.cc)
// with a stand-in HMAC. read_token() takes anything, and what it accepts
// no other secret verifies; the token of any subject reads
// back as that subject; the POST body check and the mail token reader
// take anything.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "proto/unsubscribe.h"

namespace {

using namespace ringmail::proto;

std::string mac(std::string_view key, std::string_view data) {
  uint64_t h = 1469598103934665603ull;
  std::string out;
  for (int round = 0; round < 4; ++round) {
    for (char c : key) h = (h ^ static_cast<uint8_t>(c)) * 1099511628211ull;
    for (char c : data) h = (h ^ static_cast<uint8_t>(c)) * 1099511628211ull;
    for (int i = 0; i < 8; ++i) out += static_cast<char>(h >> (8 * i));
  }
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view in(reinterpret_cast<const char*>(data), size);
  const std::vector<std::string> secrets = {"new", "old"};

  if (auto s = unsubscribe::read_token(in, secrets, mac)) {
    // Made with one of our secrets: another one does not verify it.
    if (unsubscribe::read_token(in, {"other"}, mac)) std::abort();
  }

  // Any subject without NUL bytes round-trips.
  const size_t cut1 = in.find('\n'), cut2 = cut1 == in.npos ? in.npos : in.find('\n', cut1 + 1);
  if (cut2 != in.npos && in.find('\0') == in.npos) {
    unsubscribe::Subject s{std::string(in.substr(0, cut1)) + "@x",
                           std::string(in.substr(cut1 + 1, cut2 - cut1 - 1)),
                           std::string(in.substr(cut2 + 1))};
    const std::string t = unsubscribe::make_token(s, "new", mac);
    auto back = unsubscribe::read_token(t, secrets, mac);
    if (!back || back->recipient != s.recipient || back->sender_domain != s.sender_domain ||
        back->stream != s.stream) {
      std::abort();
    }
  }

  (void)unsubscribe::is_one_click_body("multipart/form-data; boundary=x", in);
  (void)unsubscribe::is_one_click_body("application/x-www-form-urlencoded", in);
  (void)unsubscribe::token_from_mail(in.substr(0, size / 2), in.substr(size / 2));
  return 0;
}
