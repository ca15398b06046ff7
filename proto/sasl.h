// SASL pieces of SMTP AUTH (RFC 4954): base64 (RFC 4648) and the PLAIN
// (RFC 4616) and LOGIN mechanisms' messages. Pure functions, fuzzed
// (tests/fuzz/fuzz_sasl.cc).
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace ringmail::proto {

// Strict base64: the standard alphabet, padding required to a multiple of
// four, no whitespace, no bits set past the end. nullopt when invalid.
std::optional<std::string> base64_decode(std::string_view in);
std::string base64_encode(std::string_view in);

struct Credentials {
  std::string authzid;  // empty unless the client asked to act as someone else
  std::string user;     // authcid
  std::string password;
};

enum class SaslError { kNone, kBadBase64, kMalformed };

// PLAIN's message: [authzid] NUL authcid NUL passwd, base64-encoded. The
// user and password must be non-empty, at most 255 octets, without NUL.
SaslError decode_plain(std::string_view b64, Credentials* out);
// One LOGIN response (user name or password), base64-encoded; at most 255
// octets, no NUL, not empty.
SaslError decode_login_field(std::string_view b64, std::string* out);

}  // namespace ringmail::proto
