// Bearer tokens for ringmaild's HTTP API ([[api.token]] in the
// configuration): made at random, stored only as their SHA-256, checked in
// constant time. A stolen configuration file gives no usable token.
#pragma once

#include <string>
#include <string_view>

namespace ringmail::tls {

// "rmt_" and 43 base64url characters (32 random bytes); empty when the
// random source fails.
std::string new_api_token();
// The token's SHA-256 in lower-case hex (64 characters): what
// [[api.token]] sha256 holds.
std::string api_token_hash(std::string_view token);
// `sha256_hex` is 64 hex digits (either case).
bool is_token_hash(std::string_view sha256_hex);
// `token` hashes to `sha256_hex` (a hash from the configuration; compared
// in constant time).
bool api_token_matches(std::string_view token, std::string_view sha256_hex);
// The same with the token's hash made once (api_token_hash), for checking
// one token against every configured hash.
bool api_token_hash_equal(std::string_view token_hash, std::string_view sha256_hex);

}  // namespace ringmail::tls
