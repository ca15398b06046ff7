// How one delivery attempt to one recipient ended, whatever carried it:
// SMTP (proto::SmtpClient), LMTP, a pipe alias or an MDA (engine/pipe.h),
// or a Maildir write (storage/maildir.cc maps its errno here).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace ringmail::proto {

// Delivered; try again later; give up (the sender gets a DSN).
enum class Outcome : uint8_t { kOk, kTemp, kPerm };

// Why an attempt did not deliver, for /metrics' reason classes: a
// server's reply (4xx or 5xx, or an answer the client could not go on
// with), or what kept a server from answering. kOther is everything else
// (a local refusal, a mail loop, LMTP and local deliveries).
enum class Cause : uint8_t { kReply, kDns, kConnect, kTls, kTimeout, kOther };
inline constexpr size_t kCauses = 6;
// The label /metrics gives it ("reply", "dns", "connect", "tls",
// "timeout", "other").
inline const char* cause_name(Cause c) {
  switch (c) {
    case Cause::kReply:
      return "reply";
    case Cause::kDns:
      return "dns";
    case Cause::kConnect:
      return "connect";
    case Cause::kTls:
      return "tls";
    case Cause::kTimeout:
      return "timeout";
    case Cause::kOther:
      break;
  }
  return "other";
}

struct DeliveryResult {
  Outcome outcome = Outcome::kTemp;
  // The server's reply, summarised, or why it failed ("exit 1: ...",
  // "timed out after 60 s"): for the log and the DSN.
  std::string reply;
  Cause cause = Cause::kOther;
};

}  // namespace ringmail::proto
