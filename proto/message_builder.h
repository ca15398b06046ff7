// Builds the bytes of one injected message (issue 24, POST /api/inject/v1)
// from the request's `content` and one recipient: mustache substitution
// (proto/template.h, mstch) and MIME through GMime 3. Pure logic: GMime
// works on memory streams only; the clock, the host name and the random
// source come in through BuildContext. docs/inject.md describes the
// content format.
//
// Thread safety: build_message may run on several threads at once (each
// MessageBuilder on one thread); GMime is initialised once per process
// (std::call_once) on first use and never shut down.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "proto/template.h"

namespace ringmail::proto {

// A mailbox of the request: `{email, name}`. `name` is a template.
struct Mailbox {
  std::string email;
  std::string name;
};

struct Attachment {
  std::string data;          // as in the request: base64 text when `base64`
  bool base64 = false;       // `data` is base64 (RFC 4648, padded)
  std::string content_type;  // e.g. "application/pdf"; empty: application/octet-stream
  std::string file_name;     // may be empty; non-ASCII is RFC 2231-encoded
  std::string content_id;    // non-empty: inline, in multipart/related with the HTML
};

// One extra header of `content.headers`, in request order.
struct Header {
  std::string name;
  std::string value;  // a template
};

// The structured form of `content`.
struct StructuredContent {
  Mailbox from;
  std::optional<Mailbox> reply_to;
  std::string subject;                       // template
  std::optional<std::string> text_body;      // template, text/plain
  std::optional<std::string> html_body;      // template (HTML escaping), text/html
  std::optional<std::string> amp_html_body;  // template (HTML escaping), text/x-amp-html
  std::vector<Header> headers;
  std::vector<Attachment> attachments;
};

// `content`: a whole RFC 5322 message (a template as a whole, rendered
// without escaping), or the structure.
using Content = std::variant<std::string, StructuredContent>;

struct Recipient {
  std::string email;
  std::string name;  // template; the To header's display name
  tmpl::Values substitutions;
};

struct BuildContext {
  std::string hostname;  // right-hand side of generated Message-IDs
  int64_t now_unix = 0;  // the Date header (UTC) when the content has none
  // Random bits for the Message-ID's left-hand side; called twice per
  // generated Message-ID.
  std::function<uint64_t()> random;
};

// What was wrong with the request, for a 400 answer: a JSON pointer into
// the request (`/content/subject`, `/content/headers/X-Foo`,
// `/content/attachments/1/data`, `/recipients/0/email` is the caller's)
// and a sentence.
struct FieldError {
  std::string pointer;
  std::string reason;
};

// A key as one token of a JSON pointer (RFC 6901 3: "~" as "~0", "/" as
// "~1").
std::string json_pointer_token(std::string_view key);

// The message bytes (CRLF line endings, no line over 998 octets), or why
// there are none.
class [[nodiscard]] BuildResult {
 public:
  BuildResult(std::string message) : v_(std::move(message)) {}
  BuildResult(FieldError error) : v_(std::move(error)) {}

  bool ok() const { return v_.index() == 0; }
  explicit operator bool() const { return ok(); }
  // Only when ok().
  const std::string& message() const& { return std::get<0>(v_); }
  std::string&& message() && { return std::get<0>(std::move(v_)); }
  // Only when !ok().
  const FieldError& error() const { return std::get<1>(v_); }

 private:
  std::variant<std::string, FieldError> v_;
};

// Builds the messages of one request, recipient after recipient. The
// MIME tree is made for the first recipient and then kept: for each next
// one only what differs is set again (the To mailbox, the Message-ID, and
// the fields and bodies whose rendering changed), and the attachments are
// decoded and checked once. The bytes are those build_message gives for
// the same recipient, except for the Message-ID and the multipart
// boundaries (random, and one set of boundaries per builder).
//
// `content` must outlive the builder (so no temporary: a
// StructuredContent passed here would become one). Not thread-safe: one
// builder per thread.
class MessageBuilder {
 public:
  MessageBuilder(const Content& content, tmpl::Values global, tmpl::Dialect dialect,
                 BuildContext context);
  MessageBuilder(Content&&, tmpl::Values, tmpl::Dialect, BuildContext) = delete;
  ~MessageBuilder();
  MessageBuilder(const MessageBuilder&) = delete;
  MessageBuilder& operator=(const MessageBuilder&) = delete;

  // As build_message below, for `recipient`.
  BuildResult build(const Recipient& recipient, std::string_view recipient_pointer,
                    std::vector<std::string>* warnings);

  struct Tree;  // the kept GMime objects (message_builder.cc)

 private:
  const Content& content_;
  tmpl::Values global_;
  tmpl::Dialect dialect_;
  BuildContext context_;
  std::unique_ptr<Tree> tree_;
};

// Builds the message for `recipient`. `recipient_pointer` is the JSON
// pointer of the recipient (`/recipients/3`), used for errors in its
// fields. Missing template variables render empty; each name is appended
// to `*warnings` once as "missing substitution 'x'", unless `*warnings`
// already holds that sentence (so one vector over all the recipients of a
// request names each variable once). `warnings` may be null.
//
// Structured content becomes:
//   text, AMP, HTML bodies -> multipart/alternative (in that order, the
//   richest last) when more than one; an attachment with a content_id ->
//   multipart/related around the HTML and those attachments; other
//   attachments -> multipart/mixed around the rest. Headers, in this
//   order: Date, From, Reply-To, Subject (RFC 2047 when not ASCII), To
//   (the recipient), Message-Id, then `headers` in request order, then
//   MIME-Version and Content-Type.
// A whole-message string is rendered, its line endings made CRLF, and
// Date and Message-ID prepended when its header lacks them; it must have
// a From header and no line over 998 octets.
BuildResult build_message(const Content& content, const Recipient& recipient,
                          std::string_view recipient_pointer, const tmpl::Values& global,
                          tmpl::Dialect dialect, const BuildContext& context,
                          std::vector<std::string>* warnings);

// Whether `email` is a mailbox (local@domain) that proto/address.h accepts
// as an SMTP path.
bool is_valid_email(std::string_view email);

}  // namespace ringmail::proto
