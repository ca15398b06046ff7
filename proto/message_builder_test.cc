#include "proto/message_builder.h"

#include <gmime/gmime.h>
#include <gtest/gtest.h>

#include <thread>

#include "proto/sasl.h"

namespace ringmail::proto {
namespace {

BuildContext test_context() {
  BuildContext c;
  c.hostname = "mx.example.net";
  c.now_unix = 1796594400;  // 2026-12-06 22:00:00 UTC
  c.random = [n = uint64_t{0}]() mutable { return ++n; };
  return c;
}

StructuredContent basic() {
  StructuredContent c;
  c.from = {"sender@example.com", "Sender"};
  c.subject = "Hello";
  c.text_body = "Hi there\n";
  return c;
}

Recipient ann() { return Recipient{"ann@example.org", "Ann", {}}; }

std::string build_ok(const Content& content, const Recipient& r = ann(),
                     const tmpl::Values& global = {}, std::vector<std::string>* warnings = nullptr,
                     tmpl::Dialect dialect = tmpl::Dialect::kMustache) {
  BuildResult res =
      build_message(content, r, "/recipients/0", global, dialect, test_context(), warnings);
  EXPECT_TRUE(res.ok()) << (res.ok() ? "" : res.error().pointer + ": " + res.error().reason);
  return res.ok() ? res.message() : "";
}

FieldError build_error(const Content& content, const Recipient& r = ann(),
                       const tmpl::Values& global = {}) {
  BuildResult res = build_message(content, r, "/recipients/0", global, tmpl::Dialect::kMustache,
                                  test_context(), nullptr);
  EXPECT_FALSE(res.ok());
  return res.ok() ? FieldError{} : res.error();
}

struct Unref {
  void operator()(gpointer p) const { g_object_unref(p); }
};

// The message parsed back by GMime.
std::unique_ptr<GMimeMessage, Unref> parse(const std::string& bytes) {
  GMimeStream* stream = g_mime_stream_mem_new_with_buffer(bytes.data(), bytes.size());
  GMimeParser* parser = g_mime_parser_new_with_stream(stream);
  GMimeMessage* m = g_mime_parser_construct_message(parser, nullptr);
  g_object_unref(parser);
  g_object_unref(stream);
  return std::unique_ptr<GMimeMessage, Unref>(m);
}

std::string mime_type(GMimeObject* o) {
  char* s = g_mime_content_type_get_mime_type(g_mime_object_get_content_type(o));
  std::string out(s);
  g_free(s);
  return out;
}

// "multipart/mixed(text/plain,application/pdf)".
std::string shape(GMimeObject* o) {
  std::string out = mime_type(o);
  if (GMIME_IS_MULTIPART(o)) {
    GMimeMultipart* m = GMIME_MULTIPART(o);
    out += "(";
    for (int i = 0; i < g_mime_multipart_get_count(m); ++i) {
      if (i > 0) out += ",";
      out += shape(g_mime_multipart_get_part(m, i));
    }
    out += ")";
  }
  return out;
}

std::string shape_of(const std::string& bytes) {
  auto m = parse(bytes);
  if (!m) return "unparsable";
  return shape(g_mime_message_get_mime_part(m.get()));
}

// The line-level promises: CRLF only, no line over 998 octets.
void expect_wire_form(const std::string& bytes) {
  size_t line = 0;
  for (size_t i = 0; i < bytes.size(); ++i) {
    if (bytes[i] == '\n') {
      ASSERT_TRUE(i > 0 && bytes[i - 1] == '\r') << "bare LF at " << i;
      EXPECT_LE(line, 999u) << "line ending at " << i;
      line = 0;
    } else {
      ++line;
    }
  }
}

std::string header_block(const std::string& bytes) {
  return bytes.substr(0, bytes.find("\r\n\r\n") + 2);
}

StructuredContent with(std::initializer_list<const char*> bodies) {
  StructuredContent c = basic();
  c.text_body.reset();
  for (std::string_view b : bodies) {
    if (b == "text") c.text_body = "plain text";
    if (b == "html") c.html_body = "<p>html</p>";
    if (b == "amp") c.amp_html_body = "<html amp4email></html>";
  }
  return c;
}

Attachment image() {
  return Attachment{"iVBORw0KGgo=", true, "image/png", "logo.png", "logo@example.com"};
}
Attachment pdf() {
  return Attachment{std::string("%PDF-1.4\n\x00\x01\xff binary\n", 20), false, "application/pdf",
                    "invoice.pdf", ""};
}

TEST(MessageBuilder, TreeShapes) {
  EXPECT_EQ(shape_of(build_ok(with({"text"}))), "text/plain");
  EXPECT_EQ(shape_of(build_ok(with({"html"}))), "text/html");
  EXPECT_EQ(shape_of(build_ok(with({"text", "html"}))),
            "multipart/alternative(text/plain,text/html)");
  EXPECT_EQ(shape_of(build_ok(with({"text", "html", "amp"}))),
            "multipart/alternative(text/plain,text/x-amp-html,text/html)");
  StructuredContent related = with({"html"});
  related.attachments = {image()};
  EXPECT_EQ(shape_of(build_ok(related)), "multipart/related(text/html,image/png)");
  StructuredContent alt_related = with({"text", "html"});
  alt_related.attachments = {image()};
  EXPECT_EQ(shape_of(build_ok(alt_related)),
            "multipart/alternative(text/plain,multipart/related(text/html,image/png))");
  StructuredContent mixed = with({"text"});
  mixed.attachments = {pdf()};
  EXPECT_EQ(shape_of(build_ok(mixed)), "multipart/mixed(text/plain,application/pdf)");
  StructuredContent all = with({"text", "html"});
  all.attachments = {pdf(), image()};
  EXPECT_EQ(shape_of(build_ok(all)),
            "multipart/mixed(multipart/alternative(text/plain,multipart/related(text/html,image/"
            "png)),application/pdf)");
  StructuredContent only_attachment = with({});
  only_attachment.attachments = {pdf()};
  EXPECT_EQ(shape_of(build_ok(only_attachment)), "multipart/mixed(application/pdf)");
}

// Bodies come with CRLF, LF or a lone CR; each is one line break on the
// wire, and a 7-bit body is sent as it is (no transfer encoding).
TEST(MessageBuilder, LineBreaksOfEveryKindBecomeCrlf) {
  StructuredContent c = basic();
  c.text_body = "one\r\ntwo\rthree\nfour\r\n\r\nsix";
  const std::string m = build_ok(c);
  expect_wire_form(m);
  EXPECT_EQ(m.substr(m.find("\r\n\r\n") + 4), "one\r\ntwo\r\nthree\r\nfour\r\n\r\nsix\r\n");
  EXPECT_EQ(m.find("Content-Transfer-Encoding"), std::string::npos) << m;
  // Not 7-bit (a line over 998 octets): GMime picks the encoding.
  c.text_body = std::string(1200, 'a');
  EXPECT_NE(build_ok(c).find("Content-Transfer-Encoding: quoted-printable"), std::string::npos);
}

TEST(MessageBuilder, HeadersAndWireForm) {
  StructuredContent c = basic();
  c.reply_to = Mailbox{"help@example.com", "Help desk"};
  c.headers = {{"X-Campaign", "winter"}, {"List-Unsubscribe", "<mailto:u@example.com>"}};
  std::string m = build_ok(c);
  expect_wire_form(m);
  std::string h = header_block(m);
  EXPECT_NE(h.find("From: Sender <sender@example.com>\r\n"), std::string::npos) << h;
  EXPECT_NE(h.find("To: Ann <ann@example.org>\r\n"), std::string::npos) << h;
  EXPECT_NE(h.find("Reply-To: Help desk <help@example.com>\r\n"), std::string::npos) << h;
  EXPECT_NE(h.find("Subject: Hello\r\n"), std::string::npos) << h;
  EXPECT_NE(h.find("Date: Sun, 06 Dec 2026 22:00:00 +0000\r\n"), std::string::npos) << h;
  EXPECT_NE(h.find("Message-Id: <00000000000000010000000000000002@mx.example.net>\r\n"),
            std::string::npos)
      << h;
  EXPECT_NE(h.find("MIME-Version: 1.0\r\n"), std::string::npos) << h;
  EXPECT_NE(h.find("X-Campaign: winter\r\n"), std::string::npos) << h;
  EXPECT_NE(h.find("List-Unsubscribe: <mailto:u@example.com>\r\n"), std::string::npos) << h;
  // 7bit is the default (RFC 2045 6.1): GMime writes no header for it.
  EXPECT_NE(m.find("Content-Type: text/plain; charset=us-ascii\r\n\r\nHi there\r\n"),
            std::string::npos)
      << m;
}

TEST(MessageBuilder, NonAsciiSubjectAndNamesAreEncodedWords) {
  StructuredContent c = basic();
  c.subject = "Grüße aus Köln";
  c.from.name = "Jürgen Müller";
  Recipient r{"ann@example.org", "Zoë", {}};
  std::string m = build_ok(c, r);
  std::string h = header_block(m);
  for (char ch : h) ASSERT_LT(static_cast<unsigned char>(ch), 0x80u) << h;
  auto parsed = parse(m);
  ASSERT_TRUE(parsed);
  EXPECT_STREQ(g_mime_message_get_subject(parsed.get()), "Grüße aus Köln");
  InternetAddressList* from = g_mime_message_get_from(parsed.get());
  EXPECT_STREQ(internet_address_get_name(internet_address_list_get_address(from, 0)),
               "Jürgen Müller");
  InternetAddressList* to = g_mime_message_get_to(parsed.get());
  EXPECT_STREQ(internet_address_get_name(internet_address_list_get_address(to, 0)), "Zoë");
}

std::string part_header(const std::string& m, std::string_view type) {
  size_t at = m.find("Content-Type: " + std::string(type));
  if (at == std::string::npos) return "";
  return m.substr(at, m.find("\r\n\r\n", at) - at);
}

TEST(MessageBuilder, TransferEncodings) {
  StructuredContent c = with({"text", "html"});
  c.text_body = std::string(2500, 'a') + "\n";  // one long ASCII line
  c.html_body = "<p>Größe</p>\n";               // non-ASCII
  c.attachments = {pdf()};
  std::string m = build_ok(c);
  expect_wire_form(m);
  EXPECT_NE(part_header(m, "text/plain").find("charset=us-ascii"), std::string::npos) << m;
  EXPECT_NE(part_header(m, "text/plain").find("quoted-printable"), std::string::npos) << m;
  EXPECT_NE(part_header(m, "text/html").find("charset=utf-8"), std::string::npos) << m;
  EXPECT_EQ(part_header(m, "text/html").find("7bit"), std::string::npos) << m;
  EXPECT_NE(part_header(m, "application/pdf").find("base64"), std::string::npos) << m;
  EXPECT_NE(part_header(m, "application/pdf").find("attachment"), std::string::npos) << m;
  EXPECT_NE(part_header(m, "application/pdf").find("invoice.pdf"), std::string::npos) << m;
}

TEST(MessageBuilder, AttachmentBytesRoundTrip) {
  StructuredContent c = with({"html"});
  std::string raw("\x00\x01\x02\xfe\xff\r\n\n\rend", 12);
  c.attachments = {Attachment{base64_encode(raw), true, "application/octet-stream", "blob.bin", ""},
                   image()};
  auto parsed = parse(build_ok(c));
  ASSERT_TRUE(parsed);
  GMimeMultipart* mixed = GMIME_MULTIPART(g_mime_message_get_mime_part(parsed.get()));
  GMimePart* blob = GMIME_PART(g_mime_multipart_get_part(mixed, 1));
  GMimeStream* out = g_mime_stream_mem_new();
  g_mime_data_wrapper_write_to_stream(g_mime_part_get_content(blob), out);
  GByteArray* bytes = g_mime_stream_mem_get_byte_array(GMIME_STREAM_MEM(out));
  EXPECT_EQ(std::string(reinterpret_cast<char*>(bytes->data), bytes->len), raw);
  g_object_unref(out);
  GMimeObject* related = g_mime_multipart_get_part(mixed, 0);
  GMimeObject* img = g_mime_multipart_get_part(GMIME_MULTIPART(related), 1);
  EXPECT_STREQ(g_mime_object_get_content_id(img), "logo@example.com");
  EXPECT_STREQ(
      g_mime_content_disposition_get_disposition(g_mime_object_get_content_disposition(img)),
      "inline");
}

TEST(MessageBuilder, SubstitutionsRecipientOverGlobal) {
  StructuredContent c = basic();
  c.subject = "Order {{order}} for {{name}}";
  c.from.name = "{{shop}}";
  c.text_body = "Dear {{name}} <{{shop}}>";
  c.html_body = "<p>{{shop}} {{{shop}}}</p>";
  c.headers = {{"X-Order", "{{order}}"}};
  Recipient r{"ann@example.org", "{{name}}", {{"name", "Ann"}, {"order", int64_t{7}}}};
  std::vector<std::string> warnings;
  std::string m = build_ok(c, r, {{"name", "nobody"}, {"shop", "A&B"}}, &warnings);
  EXPECT_TRUE(warnings.empty());
  std::string h = header_block(m);
  EXPECT_NE(h.find("Subject: Order 7 for Ann\r\n"), std::string::npos) << h;
  EXPECT_NE(h.find("From: A&B <sender@example.com>"), std::string::npos) << h;
  EXPECT_NE(h.find("To: Ann <ann@example.org>"), std::string::npos) << h;
  EXPECT_NE(h.find("X-Order: 7\r\n"), std::string::npos) << h;
  EXPECT_NE(m.find("Dear Ann <A&B>"), std::string::npos) << m;
  EXPECT_NE(m.find("<p>A&amp;B A&B</p>"), std::string::npos) << m;
}

TEST(MessageBuilder, StaticDialectSubstitutesNothing) {
  StructuredContent c = basic();
  c.subject = "{{x}} {{#broken";
  std::vector<std::string> warnings;
  std::string m = build_ok(c, ann(), {{"x", "y"}}, &warnings, tmpl::Dialect::kStatic);
  EXPECT_NE(m.find("Subject: {{x}} {{#broken\r\n"), std::string::npos) << m;
  EXPECT_TRUE(warnings.empty());
}

TEST(MessageBuilder, MissingVariablesWarnOncePerName) {
  StructuredContent c = basic();
  c.subject = "{{first}} {{coupon}}";
  c.text_body = "{{first}} {{coupon}}";
  std::vector<std::string> warnings{"missing substitution 'coupon'"};
  std::string m = build_ok(c, ann(), {}, &warnings);
  EXPECT_EQ(warnings, (std::vector<std::string>{"missing substitution 'coupon'",
                                                "missing substitution 'first'"}));
  EXPECT_NE(m.find("\r\n\r\n \r\n"), std::string::npos) << m;
}

TEST(MessageBuilder, SyntaxErrorsNameFieldAndOffset) {
  StructuredContent c = basic();
  c.subject = "Hi {{name";
  FieldError e = build_error(c);
  EXPECT_EQ(e.pointer, "/content/subject");
  EXPECT_EQ(e.reason, "template syntax error at offset 3: tag is not closed");
  c = basic();
  c.html_body = "<ul>{{#items}}<li>";
  e = build_error(c);
  EXPECT_EQ(e.pointer, "/content/html_body");
  EXPECT_EQ(e.reason, "template syntax error at offset 4: section 'items' is never closed");
  c = basic();
  c.headers = {{"X-A/b", "{{/x}}"}};
  e = build_error(c);
  EXPECT_EQ(e.pointer, "/content/headers/X-A~1b");
  Recipient r{"ann@example.org", "{{", {}};
  EXPECT_EQ(build_error(basic(), r).pointer, "/recipients/0/name");
}

TEST(MessageBuilder, ForbiddenAndInvalidHeaders) {
  for (const char* name : {"From", "from", "To", "Subject", "Date", "Message-ID", "MIME-Version",
                           "Content-Type", "content-transfer-encoding"}) {
    StructuredContent c = basic();
    c.headers = {{name, "x"}};
    FieldError e = build_error(c);
    EXPECT_EQ(e.pointer, std::string("/content/headers/") + name);
    EXPECT_EQ(e.reason, "is set by the builder and may not be given in headers");
  }
  for (const char* name : {"", "Bad Name", "Colon:", "Ünicode"}) {
    StructuredContent c = basic();
    c.headers = {{name, "x"}};
    EXPECT_EQ(build_error(c).reason, "is not a valid header field name") << name;
  }
  StructuredContent c = basic();
  c.headers = {{"X-Inject", "a\r\nBcc: victim@example.com"}};
  EXPECT_EQ(build_error(c).reason, "may not contain CR, LF or NUL");
  // Also when the line break comes from a substitution.
  c.headers = {{"X-Inject", "{{v}}"}};
  FieldError e = build_error(c, ann(), {{"v", "a\nBcc: victim@example.com"}});
  EXPECT_EQ(e.pointer, "/content/headers/X-Inject");
  c = basic();
  c.subject = "{{s}}";
  EXPECT_EQ(build_error(c, ann(), {{"s", "a\rb"}}).pointer, "/content/subject");
  c = basic();
  c.reply_to = Mailbox{"r@example.com", ""};
  c.headers = {{"Reply-To", "x@example.com"}};
  EXPECT_EQ(build_error(c).reason, "conflicts with /content/reply_to");
}

TEST(MessageBuilder, InvalidAddresses) {
  StructuredContent c = basic();
  c.from.email = "not an address";
  EXPECT_EQ(build_error(c).pointer, "/content/from/email");
  EXPECT_EQ(build_error(basic(), Recipient{"ann@", "", {}}).pointer, "/recipients/0/email");
  c = basic();
  c.reply_to = Mailbox{"a@b@c", ""};
  EXPECT_EQ(build_error(c).pointer, "/content/reply_to/email");
  EXPECT_TRUE(is_valid_email("a.b+c@example.com"));
  EXPECT_FALSE(is_valid_email("<a@example.com>"));
  EXPECT_FALSE(is_valid_email("a@example.com>, <b@example.com"));
  EXPECT_FALSE(is_valid_email(""));
}

TEST(MessageBuilder, AttachmentErrors) {
  StructuredContent c = basic();
  c.attachments = {Attachment{"not base64!", true, "application/pdf", "a.pdf", ""}};
  FieldError e = build_error(c);
  EXPECT_EQ(e.pointer, "/content/attachments/0/data");
  c.attachments = {pdf(), Attachment{"x", false, "nonsense", "", ""}};
  EXPECT_EQ(build_error(c).pointer, "/content/attachments/1/content_type");
  c.attachments = {Attachment{"x", false, "multipart/mixed", "", ""}};
  EXPECT_EQ(build_error(c).pointer, "/content/attachments/0/content_type");
  c.attachments = {image()};  // inline without HTML
  e = build_error(c);
  EXPECT_EQ(e.pointer, "/content/attachments/0/content_id");
  EXPECT_EQ(e.reason, "an inline attachment needs an html_body");
  StructuredContent empty = with({});
  EXPECT_EQ(build_error(empty).pointer, "/content");
}

TEST(MessageBuilder, WholeMessageGetsDateAndMessageId) {
  std::string raw = "From: a@example.com\nTo: {{who}}\nSubject: hi\n\nHello {{who}} <{{who}}>\n";
  std::string m = build_ok(Content(raw), ann(), {{"who", "b&c"}});
  EXPECT_EQ(m,
            "Date: Sun, 06 Dec 2026 22:00:00 +0000\r\n"
            "Message-ID: <00000000000000010000000000000002@mx.example.net>\r\n"
            "From: a@example.com\r\nTo: b&c\r\nSubject: hi\r\n\r\nHello b&c <b&c>\r\n");
  std::string has =
      "Date: Mon, 1 Jan 2024 00:00:00 +0000\r\nMessage-ID: <x@y>\r\nFrom: "
      "a@example.com\r\n\r\nbody";
  EXPECT_EQ(build_ok(Content(has)), has + "\r\n");
}

TEST(MessageBuilder, WholeMessageErrors) {
  FieldError e = build_error(Content(std::string("Subject: no sender\r\n\r\nbody\r\n")));
  EXPECT_EQ(e.pointer, "/content");
  EXPECT_EQ(e.reason, "has no From header");
  e = build_error(Content("From: a@example.com\r\n\r\n" + std::string(999, 'x') + "\r\n"));
  EXPECT_EQ(e.reason, "the line at offset 23 is longer than 998 octets");
  e = build_error(Content(std::string("From: a@example.com\r\n\r\n{{#x}}")));
  EXPECT_EQ(e.pointer, "/content");
  EXPECT_EQ(e.reason, "template syntax error at offset 23: section 'x' is never closed");
}

TEST(MessageBuilder, LongHeaderValuesAreFolded) {
  StructuredContent c = basic();
  std::string words;
  for (int i = 0; i < 300; ++i) words += "word" + std::to_string(i) + " ";
  c.subject = words;
  c.headers = {{"X-Long", words}};
  expect_wire_form(build_ok(c));
  // A subject with one long word becomes encoded words (GMime).
  c.subject = std::string(3000, 'a');
  c.headers = {};
  expect_wire_form(build_ok(c));
  // An ASCII header value is never encoded: a word too long for a line
  // is an error of its field.
  c.headers = {{"X-Long", std::string(3000, 'b')}};
  EXPECT_EQ(build_error(c).pointer, "/content/headers/X-Long");
}

// Unfolded header fields of the header block (RFC 5322 2.2.3).
std::string unfolded(const std::string& m, std::string_view name) {
  std::string h = header_block(m);
  size_t at = h.find("\r\n" + std::string(name) + ": ");
  if (at == std::string::npos) return "";
  at += name.size() + 4;
  std::string out;
  for (size_t i = at; i < h.size(); ++i) {
    if (h.compare(i, 2, "\r\n") == 0) {
      if (i + 2 < h.size() && (h[i + 2] == ' ' || h[i + 2] == '\t')) {
        ++i;
        continue;
      }
      break;
    }
    out.push_back(h[i]);
  }
  return out;
}

TEST(MessageBuilder, AsciiHeaderValuesFoldOnlyAtSpaces) {
  StructuredContent c = basic();
  std::string url = "<https://example.com/unsubscribe?token=" + std::string(150, 'T') + ">";
  std::string value = "<mailto:unsub@example.com?subject=unsubscribe>, " + url;
  c.headers = {{"List-Unsubscribe", value},
               {"X-Words",
                "one two three four five six seven eight nine ten eleven"
                " twelve thirteen fourteen fifteen sixteen seventeen"}};
  std::string m = build_ok(c);
  expect_wire_form(m);
  EXPECT_EQ(unfolded(m, "List-Unsubscribe"), value);
  EXPECT_NE(m.find("\r\n " + url + "\r\n"), std::string::npos) << header_block(m);
  EXPECT_EQ(unfolded(m, "X-Words"),
            "one two three four five six seven eight nine ten eleven twelve thirteen fourteen "
            "fifteen sixteen "
            "seventeen");
  for (size_t at = 0; (at = m.find("\r\n", at)) != std::string::npos && at < header_block(m).size();
       at += 2) {
    size_t next = m.find("\r\n", at + 2);
    if (m.compare(at + 2, 5, "List-") != 0 && m.compare(at + 2, 2, "X-") != 0) continue;
    EXPECT_LE(next - at - 2, 78u) << m.substr(at + 2, next - at - 2);
  }
}

TEST(MessageBuilder, UnfoldableHeaderIsAnErrorOfItsField) {
  StructuredContent c = basic();
  c.headers = {{"X-Ok", "fine"},
               {"References", "<" + std::string(1200, 'r') + "@example.com>"},
               {"X-After", "x"}};
  FieldError e = build_error(c);
  EXPECT_EQ(e.pointer, "/content/headers/References");
  EXPECT_EQ(e.reason, "has a word too long to fold into lines of 998 octets");
  // Folded: the long word on a continuation line of its field.
  c.headers = {{"X-Ok", "fine"},
               {"References", "<a@example.com> <" + std::string(1200, 'r') + "@example.com>"}};
  EXPECT_EQ(build_error(c).pointer, "/content/headers/References");
}

// A MessageBuilder keeps the tree of one recipient's message for the
// next and sets only what changed. Every recipient's bytes must be those
// of a fresh build: charsets and transfer encodings that come and go with
// the substitutions, names and headers that change or stay, an address
// header among the extra ones, a recipient refused in between. (A
// constant random source, so boundaries and Message-IDs agree.)
TEST(MessageBuilder, KeptTreeGivesTheBytesOfFreshBuilds) {
  StructuredContent c = with({"text", "html", "amp"});
  c.from.name = "{{shop}}";
  c.reply_to = Mailbox{"help@example.com", "{{desk}}"};
  c.subject = "Order {{order}} for {{name}}";
  c.text_body = "Dear {{name}},\n{{line}}\nbye\n";
  c.html_body = "<p>{{name}}</p>";
  c.amp_html_body = "<html amp4email>{{shop}}</html>";
  c.headers = {{"X-Order", "{{order}}"},
               {"Cc", "{{name}} <copy@example.com>"},
               {"List-Unsubscribe", "<mailto:u@example.com>"},
               {"X-Note", "{{note}}"}};
  c.attachments = {pdf(), image()};
  BuildContext context = test_context();
  context.random = [] { return uint64_t{7}; };
  const tmpl::Values global{{"shop", "Shop"}, {"desk", "Desk"}};
  auto rcpt = [](const char* email, const char* name, tmpl::Values subs) {
    return Recipient{email, name, std::move(subs)};
  };
  const std::string long_line(1500, 'x');
  const std::vector<Recipient> recipients = {
      rcpt("ann@example.org", "{{name}}", {{"name", "Ann"}, {"order", 1}, {"line", "plain"}}),
      rcpt("bob@example.org", "Bob",
           {{"name", "Bøb"},
            {"order", 2},
            {"line", "grüße"},
            {"note", "naïve"},
            {"shop", "Straße"}}),
      rcpt("cy@example.org", "", {{"name", "Cy"}, {"order", 3}, {"line", long_line}}),
      rcpt("not an address", "X", {{"name", "X"}}),
      rcpt("dee@example.org", "Dee",
           {{"name", "Dee"},
            {"order", 3},
            {"line", "plain"},
            {"note",
             "a note long enough to be folded once it is "
             "written after its field name, surely"},
            {"desk", "Désk"}}),
      rcpt("dee2@example.org", "Dee", {{"name", "Dee"}, {"order", 3}, {"line", "plain"}}),
      rcpt("eve@example.org", "{{name}}", {{"order", 5}, {"line", "plain"}}),
      rcpt("gus@example.org", "Gus", {{"name", "Gus"}, {"order", 5}, {"line", "\xff\xfe"}}),
      rcpt("fay@example.org", "Fay", {{"name", "Fay"}, {"order", 6}, {"line", "plain"}}),
  };
  const Content content = c;
  MessageBuilder kept(content, global, tmpl::Dialect::kMustache, context);
  std::vector<std::string> kept_warnings, fresh_warnings;
  for (size_t i = 0; i < recipients.size(); ++i) {
    const std::string pointer = "/recipients/" + std::to_string(i);
    BuildResult a = kept.build(recipients[i], pointer, &kept_warnings);
    BuildResult b = build_message(c, recipients[i], pointer, global, tmpl::Dialect::kMustache,
                                  context, &fresh_warnings);
    ASSERT_EQ(a.ok(), b.ok()) << i;
    if (a.ok()) {
      EXPECT_EQ(a.message(), b.message()) << "recipient " << i;
    } else {
      EXPECT_EQ(a.error().pointer, b.error().pointer) << i;
      EXPECT_EQ(a.error().reason, b.error().reason) << i;
    }
  }
  EXPECT_EQ(kept_warnings, fresh_warnings);
  EXPECT_EQ(kept_warnings, (std::vector<std::string>{"missing substitution 'note'",
                                                     "missing substitution 'name'"}));
}

// A content error (here a bad attachment) is found once and given for
// every recipient, as a fresh build gives it.
TEST(MessageBuilder, KeptTreeRepeatsContentErrors) {
  StructuredContent c = basic();
  c.attachments = {Attachment{"not base64!", true, "application/pdf", "a.pdf", ""}};
  const Content content = c;
  MessageBuilder kept(content, {}, tmpl::Dialect::kMustache, test_context());
  for (int i = 0; i < 2; ++i) {
    BuildResult r = kept.build(ann(), "/recipients/0", nullptr);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().pointer, "/content/attachments/0/data");
    EXPECT_EQ(r.error().pointer, build_error(c).pointer);
  }
}

TEST(MessageBuilder, BuildsOnSeveralThreadsAtOnce) {
  // Each build owns its GMime objects and its mstch nodes; nothing is
  // shared but GMime's tables from g_mime_init. Four threads, a bounded
  // number of builds each.
  StructuredContent c = with({"text", "html"});
  c.attachments = {pdf(), image()};
  const std::string expected = shape_of(build_ok(c));
  std::vector<std::string> shapes(4);
  std::vector<std::thread> threads;
  for (size_t t = 0; t < shapes.size(); ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 50; ++i) {
        BuildResult r = build_message(c, ann(), "/recipients/0", {}, tmpl::Dialect::kMustache,
                                      test_context(), nullptr);
        std::string s = r ? shape_of(r.message()) : r.error().reason;
        if (i == 0 || s != expected) shapes[t] = s;
      }
    });
  }
  for (auto& th : threads) th.join();
  for (const std::string& s : shapes) EXPECT_EQ(s, expected);
}

}  // namespace
}  // namespace ringmail::proto
