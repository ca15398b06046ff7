#include "proto/message_builder.h"

#include <gmime/gmime.h>

#include <cstdio>
#include <memory>
#include <mutex>
#include <set>

#include "proto/address.h"
#include "proto/ascii.h"
#include "proto/sasl.h"

namespace ringmail::proto {
namespace {

// RFC 5322 2.1.1: no line longer than 998 octets, CRLF excluded.
constexpr size_t kLineBytesMax = 998;

void init_gmime() {
  static std::once_flag once;
  std::call_once(once, [] { g_mime_init(); });
}

struct Unref {
  void operator()(gpointer p) const { g_object_unref(p); }
};
template <class T>
using Ref = std::unique_ptr<T, Unref>;

bool has_crlf(std::string_view s) {
  return s.find_first_of(std::string_view("\r\n\0", 3)) != std::string_view::npos;
}

bool iequals_ascii(std::string_view a, std::string_view b) { return iequals(a, b); }

bool istarts_with(std::string_view s, std::string_view prefix) {
  return s.size() >= prefix.size() && iequals(s.substr(0, prefix.size()), prefix);
}

// Bodies as LF-terminated lines; the writer makes them CRLF.
std::string to_lf(std::string_view s) {
  size_t cr = s.find('\r');
  if (cr == std::string_view::npos) return std::string(s);
  std::string out;
  out.reserve(s.size());
  size_t from = 0;
  while (cr != std::string_view::npos) {  // CRLF and a lone CR both become LF
    out.append(s.substr(from, cr - from));
    out.push_back('\n');
    from = cr + 1;
    if (from < s.size() && s[from] == '\n') ++from;
    cr = s.find('\r', from);
  }
  out.append(s.substr(from));
  return out;
}

std::string to_crlf(std::string_view s) {
  std::string lf = to_lf(s);
  std::string out;
  out.reserve(lf.size() + lf.size() / 32);
  for (char c : lf) {
    if (c == '\n') out.push_back('\r');
    out.push_back(c);
  }
  return out;
}

// Offset of the first line over kLineBytesMax octets, or npos.
size_t long_line(std::string_view s) {
  size_t start = 0;
  while (start <= s.size()) {
    size_t nl = s.find('\n', start);
    size_t end = nl == std::string_view::npos ? s.size() : nl;
    size_t len = end - start;
    if (len > 0 && s[end - 1] == '\r') --len;
    if (len > kLineBytesMax) return start;
    if (nl == std::string_view::npos) break;
    start = nl + 1;
  }
  return std::string_view::npos;
}

// RFC 5322 3.6.8: printable ASCII except ':'.
bool is_field_name(std::string_view name) {
  if (name.empty()) return false;
  for (unsigned char c : name) {
    if (c < 33 || c > 126 || c == ':') return false;
  }
  return true;
}

// Headers the builder writes itself; `headers` may not set them.
bool is_reserved_header(std::string_view name) {
  for (std::string_view r : {"From", "To", "Subject", "Date", "Message-ID", "MIME-Version"}) {
    if (iequals_ascii(name, r)) return true;
  }
  return istarts_with(name, "Content-");
}

// Renders the template fields of one message and remembers the missing
// names.
class Fields {
 public:
  Fields(const tmpl::Renderer* renderer) : renderer_(renderer) {}

  // False (and `*error` set) on a syntax error.
  bool render(std::string_view text, tmpl::Escape escape, const std::string& pointer,
              std::string* out, std::optional<FieldError>* error) {
    if (renderer_ == nullptr) {
      *out = text;
      return true;
    }
    auto r = renderer_->render(text, escape, &missing_);
    if (!r) {
      *error = FieldError{pointer, "template syntax error at " + r.error()};
      return false;
    }
    *out = std::move(*r);
    return true;
  }

  void report(std::vector<std::string>* warnings) const {
    if (warnings == nullptr) return;
    for (const std::string& name : missing_) {
      std::string w = "missing substitution '" + name + "'";
      bool seen = false;
      for (const std::string& have : *warnings) seen = seen || have == w;
      if (!seen) warnings->push_back(std::move(w));
    }
  }

 private:
  const tmpl::Renderer* renderer_;
  std::set<std::string> missing_;
};

// Sets the bytes of leaf `part`, with the transfer encoding GMime finds
// best for 7-bit transport (7bit, quoted-printable or base64: never a
// line over 998 octets).
// `seven_bit`: the caller knows the bytes are 7bit already (ASCII, no
// NUL, no line over 998 octets), which is what GMime's scan would find;
// the scan of a 10 KiB body is then saved.
void set_content(GMimePart* part, std::string_view bytes, bool seven_bit = false) {
  Ref<GMimeStream> stream(g_mime_stream_mem_new_with_buffer(bytes.data(), bytes.size()));
  Ref<GMimeDataWrapper> wrapper(
      g_mime_data_wrapper_new_with_stream(stream.get(), GMIME_CONTENT_ENCODING_DEFAULT));
  g_mime_part_set_content(part, wrapper.get());
  g_mime_part_set_content_encoding(part, seven_bit ? GMIME_CONTENT_ENCODING_DEFAULT
                                                   : g_mime_part_get_best_content_encoding(
                                                         part, GMIME_ENCODING_CONSTRAINT_7BIT));
}

// Sets a text leaf to `text`: its charset, bytes and transfer encoding.
void set_text(GMimePart* part, const std::string& text) {
  std::string lf = to_lf(text);
  const bool ascii = is_ascii(lf);
  g_mime_object_set_content_type_parameter(GMIME_OBJECT(part), "charset",
                                           ascii ? "us-ascii" : "utf-8");
  const bool seven_bit =
      ascii && lf.find('\0') == std::string::npos && long_line(lf) == std::string_view::npos;
  set_content(part, lf, seven_bit);
}

std::string random_hex(const BuildContext& context) {
  char buf[40];
  uint64_t a = context.random ? context.random() : 0;
  uint64_t b = context.random ? context.random() : 0;
  std::snprintf(buf, sizeof buf, "%016llx%016llx", static_cast<unsigned long long>(a),
                static_cast<unsigned long long>(b));
  return buf;
}

std::string format_date(int64_t now_unix) {
  GDateTime* dt = g_date_time_new_from_unix_utc(now_unix);
  if (dt == nullptr) dt = g_date_time_new_from_unix_utc(0);
  char* s = g_mime_utils_header_format_date(dt);
  std::string out(s);
  g_free(s);
  g_date_time_unref(dt);
  return out;
}

std::string message_id(const BuildContext& context) {
  return random_hex(context) + "@" + context.hostname;
}

std::string write(GMimeObject* object) {
  GMimeFormatOptions* options = g_mime_format_options_new();
  g_mime_format_options_set_newline_format(options, GMIME_NEWLINE_FORMAT_DOS);
  Ref<GMimeStream> mem(g_mime_stream_mem_new());
  g_mime_object_write_to_stream(object, options, mem.get());
  g_mime_format_options_free(options);
  GByteArray* bytes = g_mime_stream_mem_get_byte_array(GMIME_STREAM_MEM(mem.get()));
  return std::string(reinterpret_cast<const char*>(bytes->data), bytes->len);
}

// A display name or header value after rendering: one line of UTF-8.
std::optional<FieldError> check_line(const std::string& value, const std::string& pointer) {
  if (has_crlf(value)) return FieldError{pointer, "may not contain CR, LF or NUL"};
  if (!g_utf8_validate(value.data(), static_cast<gssize>(value.size()), nullptr)) {
    return FieldError{pointer, "is not valid UTF-8"};
  }
  return std::nullopt;
}

// RFC 2045 5.1 type/subtype: tokens, no parameters smuggling CR/LF.
bool is_content_type(std::string_view s) {
  if (has_crlf(s)) return false;
  size_t slash = s.find('/');
  if (slash == 0 || slash == std::string_view::npos || slash + 1 >= s.size()) return false;
  std::string_view type = s.substr(0, slash);
  for (unsigned char c : type) {
    if (c <= 32 || c >= 127 ||
        std::string_view("()<>@,;:\\\"/[]?=").find(static_cast<char>(c)) != std::string_view::npos)
      return false;
  }
  return true;
}

bool is_content_id(std::string_view s) {
  if (s.empty()) return false;
  for (unsigned char c : s) {
    if (c <= 32 || c >= 127 || c == '<' || c == '>') return false;
  }
  return true;
}

// The raw value of an ASCII header field: " value\n", folded (RFC 5322
// 2.2.3) before a space when a line would pass 78 columns and only there.
// GMime's folding of unstructured text turns a word too long for a line
// into RFC 2047 encoded words and its structured folding breaks inside
// words at dots, and either would break the URLs of List-Unsubscribe
// (RFC 2369), which receivers do not decode; a word too long for 998
// octets is left to the line check after writing.
std::string fold_ascii(std::string_view name, std::string_view value) {
  constexpr size_t kColumnsSoftMax = 78;
  std::string out = " ";
  size_t column = name.size() + 2;  // "Name: "
  size_t line_start = 0;            // offset in `out` of the current line
  size_t last_space = std::string::npos;
  for (char c : value) {
    if (c == ' ' || c == '\t') last_space = out.size();
    out.push_back(c);
    ++column;
    if (column > kColumnsSoftMax && last_space != std::string::npos && last_space > line_start) {
      out.insert(last_space, 1, '\n');  // the space starts the continuation line
      line_start = last_space + 1;
      column = out.size() - line_start;
      last_space = std::string::npos;
    }
  }
  out.push_back('\n');
  return out;
}

// Display names are encoded as UTF-8 words (RFC 2047) when not ASCII,
// rather than in whichever ISO 8859 part GMime finds smallest.
void add_mailbox(GMimeMessage* message, GMimeAddressType type, const std::string& name,
                 const std::string& email) {
  InternetAddress* mailbox =
      internet_address_mailbox_new(name.empty() ? nullptr : name.c_str(), email.c_str());
  internet_address_set_charset(mailbox, "utf-8");
  internet_address_list_add(g_mime_message_get_addresses(message, type), mailbox);
  g_object_unref(mailbox);
}

void set_mailbox(GMimeMessage* message, GMimeAddressType type, const std::string& name,
                 const std::string& email) {
  internet_address_list_clear(g_mime_message_get_addresses(message, type));
  add_mailbox(message, type, name, email);
}

// An extra header's value: encoded words when not ASCII, else folded at
// spaces only (fold_ascii).
void fold_extra(GMimeHeader* header, const std::string& name, const std::string& value) {
  if (is_ascii(value)) g_mime_header_set_raw_value(header, fold_ascii(name, value).c_str());
}

// A multipart with a boundary from the context's random source (rather
// than GMime's read of /dev/urandom for each one).
GMimeMultipart* new_multipart(const char* subtype, const BuildContext& context) {
  GMimeMultipart* m = g_mime_multipart_new_with_subtype(subtype);
  g_mime_multipart_set_boundary(m, ("=-" + random_hex(context)).c_str());
  return m;
}

// The template fields of one message, rendered for one recipient.
struct Rendered {
  std::string from_name, to_name, reply_name, subject;
  std::vector<std::pair<std::string, std::string>> extra;  // `headers`, in order
  std::optional<std::string> text, html, amp;
};

// Renders and checks the fields of `c` for `recipient` into `*f`.
std::optional<FieldError> render_fields(const StructuredContent& c, const Recipient& recipient,
                                        std::string_view recipient_pointer, Fields& fields,
                                        Rendered* f) {
  std::optional<FieldError> error;
  if (!is_valid_email(c.from.email))
    return FieldError{"/content/from/email", "is not a valid mail address"};
  if (!is_valid_email(recipient.email)) {
    return FieldError{std::string(recipient_pointer) + "/email", "is not a valid mail address"};
  }
  if (c.reply_to && !is_valid_email(c.reply_to->email)) {
    return FieldError{"/content/reply_to/email", "is not a valid mail address"};
  }

  const tmpl::Escape none = tmpl::Escape::kNone;
  if (!fields.render(c.from.name, none, "/content/from/name", &f->from_name, &error)) return error;
  if ((error = check_line(f->from_name, "/content/from/name"))) return error;
  std::string to_pointer = std::string(recipient_pointer) + "/name";
  if (!fields.render(recipient.name, none, to_pointer, &f->to_name, &error)) return error;
  if ((error = check_line(f->to_name, to_pointer))) return error;
  if (c.reply_to) {
    if (!fields.render(c.reply_to->name, none, "/content/reply_to/name", &f->reply_name, &error))
      return error;
    if ((error = check_line(f->reply_name, "/content/reply_to/name"))) return error;
  }
  if (!fields.render(c.subject, none, "/content/subject", &f->subject, &error)) return error;
  if ((error = check_line(f->subject, "/content/subject"))) return error;

  for (const Header& h : c.headers) {
    std::string pointer = "/content/headers/" + json_pointer_token(h.name);
    if (!is_field_name(h.name)) return FieldError{pointer, "is not a valid header field name"};
    if (is_reserved_header(h.name))
      return FieldError{pointer, "is set by the builder and may not be given in headers"};
    if (c.reply_to && iequals_ascii(h.name, "Reply-To")) {
      return FieldError{pointer, "conflicts with /content/reply_to"};
    }
    std::string value;
    if (!fields.render(h.value, none, pointer, &value, &error)) return error;
    if ((error = check_line(value, pointer))) return error;
    f->extra.emplace_back(h.name, std::move(value));
  }

  struct Body {
    const std::optional<std::string>* source;
    std::optional<std::string>* out;
    tmpl::Escape escape;
    const char* pointer;
  };
  for (const Body& b :
       {Body{&c.text_body, &f->text, none, "/content/text_body"},
        Body{&c.html_body, &f->html, tmpl::Escape::kHtml, "/content/html_body"},
        Body{&c.amp_html_body, &f->amp, tmpl::Escape::kHtml, "/content/amp_html_body"}}) {
    if (!*b.source) continue;
    b.out->emplace();
    if (!fields.render(**b.source, b.escape, b.pointer, &**b.out, &error)) return error;
  }
  for (const Body& b : {Body{nullptr, &f->text, none, "/content/text_body"},
                        Body{nullptr, &f->html, none, "/content/html_body"},
                        Body{nullptr, &f->amp, none, "/content/amp_html_body"}}) {
    const std::optional<std::string>& body = *b.out;
    if (body && !is_ascii(*body) &&
        !g_utf8_validate(body->data(), static_cast<gssize>(body->size()), nullptr)) {
      return FieldError{b.pointer, "is not valid UTF-8"};
    }
  }
  return std::nullopt;
}

}  // namespace

// The GMime objects a MessageBuilder keeps from one recipient to the next.
struct MessageBuilder::Tree {
  // The attachments, decoded and checked once (prepare_attachments).
  bool attachments_made = false;
  std::optional<FieldError> attachment_error;
  std::vector<Ref<GMimePart>> inline_parts, attached_parts;
  // The message of the last recipient, and the text leaves and extra
  // headers in it.
  Ref<GMimeMessage> message;
  GMimePart* text = nullptr;
  GMimePart* amp = nullptr;
  GMimePart* html = nullptr;
  std::vector<GMimeHeader*> extra;
  Rendered held;  // what the message holds
};

namespace {

using Tree = MessageBuilder::Tree;

// Decodes and checks the attachments into `t` (inline ones, with a
// content_id, apart from the others); the first error instead.
std::optional<FieldError> prepare_attachments(const StructuredContent& c, Tree& t) {
  std::optional<FieldError> error;
  for (size_t i = 0; i < c.attachments.size(); ++i) {
    const Attachment& a = c.attachments[i];
    std::string pointer = "/content/attachments/" + std::to_string(i);
    std::string content_type = a.content_type.empty() ? "application/octet-stream" : a.content_type;
    if (!is_content_type(content_type))
      return FieldError{pointer + "/content_type", "is not a MIME type"};
    if (istarts_with(content_type, "multipart/") || istarts_with(content_type, "message/")) {
      return FieldError{pointer + "/content_type", "may not be multipart/* or message/*"};
    }
    if (!a.content_id.empty() && !is_content_id(a.content_id)) {
      return FieldError{pointer + "/content_id",
                        "must be printable ASCII without spaces or angle brackets"};
    }
    if (!a.content_id.empty() && !c.html_body) {
      return FieldError{pointer + "/content_id", "an inline attachment needs an html_body"};
    }
    if ((error = check_line(a.file_name, pointer + "/file_name"))) return error;
    std::string decoded;
    if (a.base64) {
      auto d = base64_decode(a.data);
      if (!d) return FieldError{pointer + "/data", "is not valid base64"};
      decoded = std::move(*d);
    }
    const std::string& bytes = a.base64 ? decoded : a.data;
    Ref<GMimeContentType> type(g_mime_content_type_parse(nullptr, content_type.c_str()));
    if (!type) return FieldError{pointer + "/content_type", "is not a MIME type"};
    Ref<GMimePart> part(g_mime_part_new());
    g_mime_object_set_content_type(GMIME_OBJECT(part.get()), type.get());
    set_content(part.get(), bytes);
    g_mime_object_set_disposition(GMIME_OBJECT(part.get()),
                                  a.content_id.empty() ? "attachment" : "inline");
    if (!a.file_name.empty()) g_mime_part_set_filename(part.get(), a.file_name.c_str());
    if (!a.content_id.empty()) {
      g_mime_object_set_content_id(GMIME_OBJECT(part.get()), a.content_id.c_str());
      t.inline_parts.push_back(std::move(part));
    } else {
      t.attached_parts.push_back(std::move(part));
    }
  }
  return std::nullopt;
}

// A text leaf of `subtype` holding `text`; `*leaf` points at it.
Ref<GMimeObject> make_text(const char* subtype, const std::string& text, GMimePart** leaf) {
  GMimePart* part = GMIME_PART(g_mime_text_part_new_with_subtype(subtype));
  set_text(part, text);
  *leaf = part;
  return Ref<GMimeObject>(GMIME_OBJECT(part));
}

// The message for the first recipient, into `t`; nullopt, or why there
// is none.
std::optional<FieldError> make_message(const StructuredContent& c, const Rendered& f,
                                       const Recipient& recipient, const BuildContext& context,
                                       Tree& t) {
  const std::string id = message_id(context);  // first of the random draws
  // The tree, innermost first.
  std::vector<Ref<GMimeObject>> alternatives;
  if (f.text) alternatives.push_back(make_text("plain", *f.text, &t.text));
  if (f.amp) alternatives.push_back(make_text("x-amp-html", *f.amp, &t.amp));
  if (f.html) {
    Ref<GMimeObject> html_part = make_text("html", *f.html, &t.html);
    if (!t.inline_parts.empty()) {
      GMimeMultipart* related = new_multipart("related", context);
      g_mime_object_set_content_type_parameter(GMIME_OBJECT(related), "type", "text/html");
      g_mime_multipart_add(related, html_part.get());
      for (auto& p : t.inline_parts) g_mime_multipart_add(related, GMIME_OBJECT(p.get()));
      html_part.reset(GMIME_OBJECT(related));
    }
    alternatives.push_back(std::move(html_part));
  }
  Ref<GMimeObject> body;
  if (alternatives.size() == 1) {
    body = std::move(alternatives[0]);
  } else if (alternatives.size() > 1) {
    GMimeMultipart* alt = new_multipart("alternative", context);
    for (auto& p : alternatives) g_mime_multipart_add(alt, p.get());
    body.reset(GMIME_OBJECT(alt));
  }
  if (!t.attached_parts.empty()) {
    GMimeMultipart* mixed = new_multipart("mixed", context);
    if (body) g_mime_multipart_add(mixed, body.get());
    for (auto& p : t.attached_parts) g_mime_multipart_add(mixed, GMIME_OBJECT(p.get()));
    body.reset(GMIME_OBJECT(mixed));
  }
  if (!body) {
    t.text = t.amp = t.html = nullptr;
    return FieldError{"/content", "needs text_body, html_body, amp_html_body or an attachment"};
  }

  Ref<GMimeMessage> message(g_mime_message_new(TRUE));
  add_mailbox(message.get(), GMIME_ADDRESS_TYPE_FROM, f.from_name, c.from.email);
  add_mailbox(message.get(), GMIME_ADDRESS_TYPE_TO, f.to_name, recipient.email);
  if (c.reply_to)
    add_mailbox(message.get(), GMIME_ADDRESS_TYPE_REPLY_TO, f.reply_name, c.reply_to->email);
  g_mime_message_set_subject(message.get(), f.subject.c_str(), "utf-8");
  GDateTime* date = g_date_time_new_from_unix_utc(context.now_unix);
  if (date == nullptr) date = g_date_time_new_from_unix_utc(0);
  g_mime_message_set_date(message.get(), date);
  g_date_time_unref(date);
  g_mime_message_set_message_id(message.get(), id.c_str());
  GMimeObject* object = GMIME_OBJECT(message.get());
  GMimeHeaderList* list = g_mime_object_get_header_list(object);
  for (const auto& [name, value] : f.extra) {
    g_mime_object_append_header(object, name.c_str(), value.c_str(), "utf-8");
    GMimeHeader* header =
        g_mime_header_list_get_header_at(list, g_mime_header_list_get_count(list) - 1);
    fold_extra(header, name, value);
    t.extra.push_back(header);
  }
  g_mime_message_set_mime_part(message.get(), body.get());
  t.message = std::move(message);
  t.held = f;
  return std::nullopt;
}

// The message of `t` made the one for `recipient`: only what differs
// from the last one is set.
void update_message(const StructuredContent& c, Rendered& f, const Recipient& recipient,
                    const BuildContext& context, Tree& t) {
  GMimeMessage* m = t.message.get();
  if (f.from_name != t.held.from_name)
    set_mailbox(m, GMIME_ADDRESS_TYPE_FROM, f.from_name, c.from.email);
  set_mailbox(m, GMIME_ADDRESS_TYPE_TO, f.to_name, recipient.email);
  if (c.reply_to && f.reply_name != t.held.reply_name)
    set_mailbox(m, GMIME_ADDRESS_TYPE_REPLY_TO, f.reply_name, c.reply_to->email);
  if (f.subject != t.held.subject) g_mime_message_set_subject(m, f.subject.c_str(), "utf-8");
  g_mime_message_set_message_id(m, message_id(context).c_str());
  for (size_t i = 0; i < f.extra.size(); ++i) {
    const auto& [name, value] = f.extra[i];
    if (value == t.held.extra[i].second) continue;
    g_mime_header_set_value(t.extra[i], nullptr, value.c_str(), "utf-8");
    fold_extra(t.extra[i], name, value);
  }
  if (f.text && *f.text != *t.held.text) set_text(t.text, *f.text);
  if (f.amp && *f.amp != *t.held.amp) set_text(t.amp, *f.amp);
  if (f.html && *f.html != *t.held.html) set_text(t.html, *f.html);
  t.held = std::move(f);
}

BuildResult build_structured(const StructuredContent& c, const Recipient& recipient,
                             std::string_view recipient_pointer, Fields& fields,
                             const BuildContext& context, Tree& t) {
  Rendered f;
  if (auto error = render_fields(c, recipient, recipient_pointer, fields, &f)) return *error;
  if (!t.attachments_made) {
    t.attachments_made = true;
    t.attachment_error = prepare_attachments(c, t);
  }
  if (t.attachment_error) return *t.attachment_error;
  if (!t.message) {
    if (auto error = make_message(c, f, recipient, context, t)) return *error;
  } else {
    update_message(c, f, recipient, context, t);
  }

  std::string out = write(GMIME_OBJECT(t.message.get()));
  if (size_t at = long_line(out); at != std::string_view::npos) {
    // GMime encodes bodies and folds or encodes long header text; only a
    // structured header (References, List-Unsubscribe) with a word longer
    // than a line gets here. Name the field the line belongs to.
    size_t field = at;
    while (field > 0 && (out[field] == ' ' || out[field] == '\t')) {
      size_t nl = out.rfind('\n', field - 2);
      field = nl == std::string::npos ? 0 : nl + 1;
    }
    std::string_view line(out.data() + field, out.size() - field);
    std::string_view name = line.substr(0, line.find(':'));
    std::string pointer = "/content";
    if (iequals_ascii(name, "Subject")) pointer = "/content/subject";
    for (const auto& h : c.headers) {
      if (iequals_ascii(name, h.name)) pointer = "/content/headers/" + json_pointer_token(h.name);
    }
    return FieldError{pointer, "has a word too long to fold into lines of 998 octets"};
  }
  return out;
}

BuildResult build_whole(const std::string& message, Fields& fields, const BuildContext& context) {
  std::optional<FieldError> error;
  std::string rendered;
  if (!fields.render(message, tmpl::Escape::kNone, "/content", &rendered, &error)) return *error;
  std::string out = to_crlf(rendered);
  if (size_t at = long_line(out); at != std::string_view::npos) {
    return FieldError{"/content",
                      "the line at offset " + std::to_string(at) + " is longer than 998 octets"};
  }
  Ref<GMimeStream> stream(g_mime_stream_mem_new_with_buffer(out.data(), out.size()));
  Ref<GMimeParser> parser(g_mime_parser_new_with_stream(stream.get()));
  Ref<GMimeMessage> parsed(g_mime_parser_construct_message(parser.get(), nullptr));
  if (!parsed) return FieldError{"/content", "is not an RFC 5322 message"};
  GMimeObject* object = GMIME_OBJECT(parsed.get());
  if (g_mime_object_get_header(object, "From") == nullptr)
    return FieldError{"/content", "has no From header"};
  std::string prefix;
  if (g_mime_object_get_header(object, "Date") == nullptr)
    prefix += "Date: " + format_date(context.now_unix) + "\r\n";
  if (g_mime_object_get_header(object, "Message-ID") == nullptr)
    prefix += "Message-ID: <" + message_id(context) + ">\r\n";
  if (out.size() < 2 || out.compare(out.size() - 2, 2, "\r\n") != 0) out += "\r\n";
  return prefix + out;
}

}  // namespace

std::string json_pointer_token(std::string_view key) {
  std::string out;
  out.reserve(key.size());
  for (char c : key) {
    if (c == '~') {
      out += "~0";
    } else if (c == '/') {
      out += "~1";
    } else {
      out.push_back(c);
    }
  }
  return out;
}

bool is_valid_email(std::string_view email) {
  if (email.empty()) return false;
  std::string path = "<" + std::string(email) + ">";
  Address address;
  size_t consumed = 0;
  if (parse_path(path, false, false, address, consumed) != AddressError::kNone) return false;
  return consumed == path.size() && !address.domain.empty();
}

MessageBuilder::MessageBuilder(const Content& content, tmpl::Values global, tmpl::Dialect dialect,
                               BuildContext context)
    : content_(content),
      global_(std::move(global)),
      dialect_(dialect),
      context_(std::move(context)),
      tree_(std::make_unique<Tree>()) {
  init_gmime();
}

MessageBuilder::~MessageBuilder() = default;

BuildResult MessageBuilder::build(const Recipient& recipient, std::string_view recipient_pointer,
                                  std::vector<std::string>* warnings) {
  std::optional<tmpl::Renderer> renderer;
  if (dialect_ == tmpl::Dialect::kMustache) renderer.emplace(global_, recipient.substitutions);
  Fields fields(renderer ? &*renderer : nullptr);
  BuildResult result = std::holds_alternative<std::string>(content_)
                           ? build_whole(std::get<std::string>(content_), fields, context_)
                           : build_structured(std::get<StructuredContent>(content_), recipient,
                                              recipient_pointer, fields, context_, *tree_);
  if (result) fields.report(warnings);
  return result;
}

BuildResult build_message(const Content& content, const Recipient& recipient,
                          std::string_view recipient_pointer, const tmpl::Values& global,
                          tmpl::Dialect dialect, const BuildContext& context,
                          std::vector<std::string>* warnings) {
  return MessageBuilder(content, global, dialect, context)
      .build(recipient, recipient_pointer, warnings);
}

}  // namespace ringmail::proto
