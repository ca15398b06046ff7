// Delivery status notifications (RFC 3464, RFC 3462 multipart/report): the
// bounce a sender gets for recipients that failed permanently or expired,
// and the optional delay warning. Pure text building; the queue decides
// when, and never sends one to the null sender.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "proto/address.h"

namespace ringmail::proto {

struct DsnRecipient {
  Address rcpt;
  std::string status;      // "5.1.1"; derived from `diagnostic` when empty
  std::string diagnostic;  // the remote reply ("550 5.1.1 no such user") or our reason
  std::string remote_mta;  // the host that answered, if any
};

struct DsnInput {
  std::string reporting_host;  // our host name
  std::string message_id;      // queue id of the original message
  Address sender;              // the original envelope sender (the DSN's recipient)
  int64_t arrival_unix = 0;
  int64_t now_unix = 0;
  bool delayed = false;          // a delay warning, not a failure
  int64_t retry_until_unix = 0;  // delay warnings: when we give up
  std::vector<DsnRecipient> recipients;
  std::string_view original;  // the original message; only its header is included
};

// Whether `s` is an RFC 3463 enhanced status code: class "." subject "."
// detail, class 2, 4 or 5, subject and detail of one to three digits.
bool is_enhanced_status(std::string_view s);

// The status for a reply: its enhanced code when it has one ("5.1.1"),
// else class.0.0 from the basic code; `fallback` when there is no code.
std::string status_of(std::string_view reply, std::string_view fallback);

// The whole DSN message (CRLF line endings), ready to be queued with the
// null sender to `in.sender`.
std::string make_dsn(const DsnInput& in);

}  // namespace ringmail::proto
