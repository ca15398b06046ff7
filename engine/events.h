// The event stream of one shard (issue 25, docs/events.md): what happened
// to each recipient, as JSON lines in the shard's storage::EventLog.
// Every event of a message is recorded on the shard that holds it in its
// spool (outbound results come back there), so the events of a recipient
// are in order in one shard's segments.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "proto/bounce_class.h"
#include "proto/smtp_server.h"
#include "storage/event_log.h"

namespace ringmail::config {
struct Config;
}

namespace ringmail::engine {

// A response as events carry it: "550 5.1.1 text" split (after the SMTP
// stage some summaries start with, "MAIL: "), or (a failure with no
// reply: a timeout, a refused connection) code 0 and the text.
struct Response {
  int code = 0;
  std::string enhanced_code;  // "5.1.1", or empty
  std::string text;
};
Response parse_response(std::string_view reply);

// The metadata of a message received by SMTP: a compact JSON object
// (ASCII, \u escapes) of the first field of each of `names` in its
// header, unfolded and trimmed; "" when it has none of them.
std::string header_metadata(std::string_view message, const std::vector<std::string>& names);

class Events {
 public:
  enum class Type {
    kReception,
    kDelivery,
    kTransientFailure,
    kBounce,
    kExpiration,
    kAdminBounce,
    kSuppressed,
    kOob,          // a bounce that came back later (a DSN to a report address)
    kFeedback,     // a complaint (an ARF report to a report address)
    kUnsubscribe,  // a one-click POST or a mail to the unsubscribe address
  };
  static std::string_view type_name(Type t);

  // What an event says beyond the envelope and the recipient.
  struct Detail {
    std::string_view protocol;  // Reception: "ESMTP", "ESMTPS", "HTTP"
    uint64_t size = 0;          // the message's bytes, when known
    uint32_t attempt = 0;       // delivery attempts so far, this one included
    std::string_view peer_name, peer_address, tls;
    std::string_view reply;  // parsed into "response"
    // OOB: the DSN's Status, the enhanced code when `reply` has none (a
    // diagnostic that is not an SMTP reply: "X-Postfix; unknown user").
    std::string_view status;
    // OOB and Feedback: who reported it; Feedback: the report's fields.
    std::string_view reporting_mta, feedback_type, user_agent, source_ip;
    // Unsubscribe: the token's sender domain and stream, "one-click" or
    // "mailto".
    std::string_view sender_domain, stream, method;
  };

  Events(storage::FileIo& io, const config::Config& cfg, uint32_t shard);
  [[nodiscard]] int open();  // 0 or -errno

  // One event for recipient `rcpt` (an index into env.rcpts). A failure
  // to write is logged once per run and counted; the mail goes on.
  void record(Type type, const proto::Envelope& env, size_t rcpt, const Detail& d,
              int64_t now_unix) {
    record(type, env, rcpt < env.rcpts.size() ? env.rcpts[rcpt].to_string() : std::string(), d,
           now_unix);
  }
  void record(Type type, const proto::Envelope& env, std::string_view recipient, const Detail& d,
              int64_t now_unix);

  // Each loop turn: starts the fdatasync of what was written, when the
  // last one began [events] sync_interval_ms ago or more; once an hour,
  // removes segments past the retention.
  void turn(std::chrono::steady_clock::time_point now, int64_t now_unix);
  bool idle() const { return log_.idle(); }
  uint64_t recorded() const { return log_.lines(); }
  uint64_t failed() const { return failed_; }

 private:
  storage::EventLog log_;
  std::shared_ptr<const proto::BounceClassifier> classifier_;
  std::chrono::steady_clock::duration interval_;
  std::chrono::steady_clock::time_point last_sync_{};
  int64_t next_expiry_ = 0;
  uint64_t failed_ = 0;
};

}  // namespace ringmail::engine
