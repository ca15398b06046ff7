// HMAC (RFC 2104) through wolfCrypt: SHA-1 for SRS addresses (proto/srs.h),
// which libsrs2 and postsrsd fix to SHA-1; SHA-256 for the AUTH cache
// (engine/auth.h).
#pragma once

#include <string>
#include <string_view>

namespace ringmail::tls {

// The 20-byte HMAC-SHA1 of `data` under `key` (of any length, empty too);
// empty when wolfCrypt fails (a build without HMAC or SHA-1).
std::string hmac_sha1(std::string_view key, std::string_view data);
// The 32-byte HMAC-SHA256; empty when wolfCrypt fails.
std::string hmac_sha256(std::string_view key, std::string_view data);

}  // namespace ringmail::tls
