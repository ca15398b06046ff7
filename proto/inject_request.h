// The body of POST /api/inject/v1 (docs/inject.md), read with simdjson's
// On-Demand API straight from the request's buffer: the envelope sender,
// the content (a whole message or the structure proto/message_builder.h
// builds), the recipients with their substitutions and metadata, the
// global substitutions and the template dialect. Pure parsing: the
// endpoint checks the token's sender domains, builds, signs and stores.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "proto/message_builder.h"
#include "proto/template.h"

namespace ringmail::proto {

struct InjectRecipient {
  Recipient recipient;    // email, name (a template), substitutions
  tmpl::Values metadata;  // kept with the recipient for its log lines and events
  size_t index = 0;       // its place in the request's `recipients`
};

// A recipient the request names but that cannot be sent to: reported in
// the answer's failed_recipients, the others are queued.
struct RejectedRecipient {
  size_t index = 0;
  std::string email;
  std::string reason;
};

struct InjectRequest {
  std::string envelope_sender;
  Content content;
  std::vector<InjectRecipient> recipients;  // the usable ones, in request order
  std::vector<RejectedRecipient> rejected;
  tmpl::Values substitutions;  // global: a recipient's own win
  tmpl::Dialect dialect = tmpl::Dialect::kMustache;
};

// Nesting deeper than this (objects and arrays in substitutions and
// metadata) is refused: the parser recurses.
inline constexpr size_t kInjectDepthMax = 32;
// Recipients per request.
inline constexpr size_t kInjectRecipientsMax = 100000;

// Parses `body`. `capacity` is how many bytes are readable from
// body.data() (simdjson reads up to SIMDJSON_PADDING past the end); with
// less than body.size() + 64 the body is copied first. An error names the
// field by JSON pointer (RFC 6901) and says why; a bad recipient address
// is not an error but a RejectedRecipient (unless none is left).
std::variant<InjectRequest, FieldError> parse_inject_request(std::string_view body,
                                                             size_t capacity = 0);

}  // namespace ringmail::proto
