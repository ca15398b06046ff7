// How one delivery attempt to one recipient ended, whatever carried it:
// SMTP (proto::SmtpClient), LMTP, a pipe alias or an MDA (engine/pipe.h),
// or a Maildir write (storage/maildir.cc maps its errno here).
#pragma once

#include <cstdint>
#include <string>

namespace ringmail::proto {

// Delivered; try again later; give up (the sender gets a DSN).
enum class Outcome : uint8_t { kOk, kTemp, kPerm };

struct DeliveryResult {
  Outcome outcome = Outcome::kTemp;
  // The server's reply, summarised, or why it failed ("exit 1: ...",
  // "timed out after 60 s"): for the log and the DSN.
  std::string reply;
};

}  // namespace ringmail::proto
