// Out-of-band reports (issue 25): mail that comes back to a sender after
// its message was accepted, parsed with GMime.
//
//   - A delivery status notification (RFC 3464): multipart/report with
//     report-type=delivery-status; each per-recipient block of its
//     message/delivery-status part gives the final (and original)
//     recipient, the action, the status, the diagnostic and the remote
//     MTA.
//   - A feedback report (ARF, RFC 5965): multipart/report with
//     report-type=feedback-report; its message/feedback-report part gives
//     the feedback type (abuse, fraud, ...), the original envelope sender
//     and recipients, the source IP and the reporter.
//
// Either way the header of the original message (its message/rfc822 or
// text/rfc822-headers part) gives its Message-ID and, when it went
// through ringmail, the queue id from its Received field ("with ... id
// ID"). Pure: memory in, values out.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "proto/result.h"

namespace ringmail::proto {

struct OobRecipient {
  std::string final_recipient;     // "bob@example.net" (the address of "rfc822; ...")
  std::string original_recipient;  // when given
  std::string action;              // failed, delayed, delivered, relayed, expanded (lower case)
  std::string status;              // "5.1.1"
  std::string diagnostic;          // "550 5.1.1 no such user" (of "smtp; ...")
  std::string remote_mta;          // "mx.example.net" (of "dns; ...")
};

struct OobReport {
  enum class Kind { kDsn, kFeedback };
  Kind kind = Kind::kDsn;
  std::string reporting_mta;  // the reporter's host (DSN Reporting-MTA, ARF Reporting-MTA)
  // DSN: one per recipient block.
  std::vector<OobRecipient> recipients;
  // Feedback: the fields of the report.
  std::string feedback_type;  // "abuse" (lower case)
  std::string user_agent;
  std::string original_mail_from;              // without angle brackets
  std::vector<std::string> original_rcpt_tos;  // without angle brackets
  std::string source_ip;
  std::string arrival_date;
  // The original message, from its header, when the report includes it.
  std::string original_message_id;  // without angle brackets
  std::string original_queue_id;    // the id of our Received field, when there is one
  std::string original_from;        // its From header, as written
  std::string original_to;          // its To header, as written
};

// The report in `message` (a whole message, CRLF or LF), or why it is
// not one ("not a multipart/report", "no message/delivery-status part",
// "a DSN without a recipient block").
Result<OobReport> parse_oob_report(std::string_view message);

// The value after the type of an RFC 3464 typed field: "rfc822;
// Bob@Example.NET" -> "Bob@Example.NET", "smtp; 550 ..." -> "550 ...";
// the field as it is when it has no type.
std::string_view typed_value(std::string_view field);

}  // namespace ringmail::proto
