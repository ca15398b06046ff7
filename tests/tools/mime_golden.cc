// mime_golden: builds the golden message of tests/mime_golden_test.py with
// proto::build_message and writes it to standard output. Test-only.
//
// usage: mime_golden PDF_FILE PNG_FILE
//
// The attachments' bytes come from the files (the checker makes them), so
// the checker can compare what Python decodes with what it wrote.
#include <cstdio>
#include <fstream>
#include <iostream>
#include <sstream>

#include "proto/message_builder.h"
#include "proto/sasl.h"

namespace {

std::string read_file(const char* path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

}  // namespace

int main(int argc, char** argv) {
  using namespace ringmail::proto;
  if (argc != 3) {
    std::cerr << "usage: mime_golden PDF_FILE PNG_FILE\n";
    return 2;
  }
  StructuredContent c;
  c.from = {"rechnung@example.com", "Jürgen Müller"};
  c.reply_to = Mailbox{"hilfe@example.com", "Kundendienst"};
  c.subject = "Grüße, {{first}}: Ihre Rechnung {{invoice.number}}";
  c.text_body = "Hallo {{first}},\nanbei Ihre Rechnung über {{invoice.total}} €.\n";
  c.html_body =
      "<p>Hallo {{first}} &amp; {{{company}}},</p><img "
      "src=\"cid:logo@example.com\"><p>{{company}}</p>\n";
  c.headers = {{"X-Invoice", "{{invoice.number}}"},
               {"List-Unsubscribe",
                "<mailto:unsub@example.com>, <https://example.com/unsubscribe?list=invoices&token="
                "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef>"}};
  c.attachments = {
      Attachment{base64_encode(read_file(argv[1])), true, "application/pdf", "Rechnung-Ü.pdf", ""},
      Attachment{base64_encode(read_file(argv[2])), true, "image/png", "logo.png",
                 "logo@example.com"},
  };
  Recipient r{"zoe@example.org", "Zoë {{last}}", {{"first", "Zoë"}, {"last", "Łukasz"}}};
  tmpl::Values global{{"first", "nobody"},
                      {"company", "A<B>"},
                      {"invoice", tmpl::Value::Object{{"number", int64_t{4711}}, {"total", 12.5}}}};
  BuildContext context{"mx.example.net", 1796594400, [n = uint64_t{0}]() mutable { return ++n; }};
  std::vector<std::string> warnings;
  BuildResult m =
      build_message(c, r, "/recipients/0", global, tmpl::Dialect::kMustache, context, &warnings);
  if (!m) {
    std::cerr << m.error().pointer << ": " << m.error().reason << "\n";
    return 1;
  }
  for (const std::string& w : warnings) std::cerr << "warning: " << w << "\n";
  std::fwrite(m.message().data(), 1, m.message().size(), stdout);
  return 0;
}
