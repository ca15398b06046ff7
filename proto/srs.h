// The Sender Rewriting Scheme (Shevek's "Sender Rewriting Scheme" paper,
// as libsrs2 and postsrsd implement it): a forwarder rewrites the envelope
// sender into its own domain so SPF passes at the next hop, and reverses
// the rewritten address when a bounce comes back.
//
//   user@orig.example      -> SRS0=HHHH=TT=orig.example=user@fwd.example
//   SRS0=...@fwd1.example  -> SRS1=HHHH=fwd1.example==HHHH=TT=...@fwd2.example
//   SRS1=HHHH=fwd1.example==...@fwd3.example (re-forwarded: the hash renewed)
//
// TT is the day (seconds / 86400, mod 1024) as two base32 characters;
// HHHH the first four characters of base64(HMAC-SHA1(secret, fields)),
// the fields lower-cased and concatenated: stamp, host, user for SRS0;
// host, user for SRS1. Pure: the HMAC (tls/hmac.h) and the time come from
// the caller.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

namespace ringmail::proto::srs {

// The 20-byte HMAC-SHA1 of `data` under `key`; empty if it could not be
// computed.
using HmacSha1 = std::function<std::string(std::string_view key, std::string_view data)>;

inline constexpr int kMaxAgeDaysDefault = 21;  // libsrs2's and postsrsd's

struct Config {
  std::string domain;                // ours: rewritten addresses end in @domain
  std::vector<std::string> secrets;  // the first signs, all verify (key rotation)
  int max_age_days = kMaxAgeDaysDefault;
  HmacSha1 hmac;
};

enum class Error : uint8_t {
  kNone,
  kNotSrs,     // reverse: not an SRS address at our domain
  kMalformed,  // a field missing or empty, a bad timestamp character; forward: no usable domain
  kBadHash,    // no secret gives this hash (forged, or signed with a retired secret)
  kExpired,    // the hash is good but the timestamp is older than max_age_days
  kNoSecret,   // the configuration has no secret
  kHmac,       // the HMAC function failed
};
const char* to_string(Error e);

// Rewrites the envelope sender `sender` (local@domain) for forwarding at
// `now_s` (Unix seconds). An empty sender (<>) and one already at our
// domain come back unchanged, as with libsrs2 (without alwaysrewrite). A
// sender whose domain is not a valid domain name is kMalformed: it could
// not be reversed.
Error forward(const Config& c, std::string_view sender, int64_t now_s, std::string* out);

// The address a bounce to `address` should go to: for SRS0 the original
// sender, for SRS1 the SRS0 address at the first forwarder. The tag
// ("SRS0"/"SRS1", then '=', '-' or '+') and the hash are matched without
// regard to case, as libsrs2 does (some MTAs lower-case local parts). The
// hash is checked before the timestamp, so kExpired only ever describes an
// address we made.
Error reverse(const Config& c, std::string_view address, int64_t now_s, std::string* out);

// Whether `address` looks like an SRS address (tag and separator), at any
// domain.
bool is_srs(std::string_view address);

}  // namespace ringmail::proto::srs
