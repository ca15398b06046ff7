// VERP return paths (Variable Envelope Return Path, after Bernstein's
// scheme; docs/events.md "VERP"): with [events] verp on, each recipient
// of an outbound message gets its own transaction whose envelope sender
// names the message and the recipient:
//
//   bounce+<queue id>-<hash>@<verp domain>
//
// where <hash> is 8 base32 characters (40 bits) of HMAC-SHA256(secret,
// "ringmail verp" 0x00 queue-id 0x00 recipient-in-lower-case). A bounce
// that comes back to that address, whatever its form (an RFC 3464 DSN or
// a few lines of text), tells which recipient failed: the recipients of
// the queue id (from the event log) are hashed until one matches. A
// forged bounce cannot name a recipient without the secret. Pure: the HMAC
// comes from the caller.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <string_view>

namespace ringmail::proto::verp {

using HmacSha256 = std::function<std::string(std::string_view key, std::string_view data)>;

inline constexpr std::string_view kLocalPrefix = "bounce+";

// The 8-character hash of (queue id, recipient); "" when the HMAC failed.
std::string hash(std::string_view queue_id, std::string_view recipient, std::string_view secret,
                 const HmacSha256& hmac);

// The local part "bounce+<id>-<hash>" for (queue id, recipient); "" when
// the HMAC failed.
std::string local_part(std::string_view queue_id, std::string_view recipient,
                       std::string_view secret, const HmacSha256& hmac);

struct Parsed {
  std::string queue_id;
  std::string hash;  // lower case
};
// A VERP local part's fields (case-insensitive: some MTAs lower-case local
// parts), or nothing when it is not one of ours in shape.
std::optional<Parsed> parse_local_part(std::string_view local);

}  // namespace ringmail::proto::verp
