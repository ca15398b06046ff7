// libFuzzer target: proto::build_message (mustache through mstch, MIME
// through GMime) over fields cut from the input. It must never crash or
// leak, every message it returns must be CRLF-only with no line over 998
// octets, and every error must name a field. A MessageBuilder that built
// the message and then builds one for a second recipient (its own "v":
// the header value field) must give the bytes of a fresh build for that
// recipient.
//
// Input: one flag byte, then fields separated by NUL: subject, text body,
// HTML body, AMP body, header name, header value, from name, recipient
// name, attachment data, attachment content type, content id, file name,
// the value of the substitution "v".
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "proto/message_builder.h"

namespace {

constexpr size_t kFields = 13;

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace ringmail::proto;
  if (size < 1 || size > 64 * 1024) return 0;
  const uint8_t flags = data[0];
  std::string_view in(reinterpret_cast<const char*>(data + 1), size - 1);
  std::vector<std::string> f;
  while (f.size() < kFields) {
    size_t nul = in.find('\0');
    f.emplace_back(in.substr(0, nul));
    in = nul == std::string_view::npos ? std::string_view() : in.substr(nul + 1);
  }

  tmpl::Values global{{"v", f[12]},
                      {"n", int64_t{flags}},
                      {"items", tmpl::Value::Array{tmpl::Value(tmpl::Value::Object{{"v", "a<b"}}),
                                                   tmpl::Value(2.5)}},
                      {"on", (flags & 0x40) != 0}};
  Recipient r{(flags & 0x20) ? f[7] : "to@example.org", f[7], {{"v", "recipient"}}};
  if (flags & 0x10) r.substitutions.clear();
  const tmpl::Dialect dialect = (flags & 0x80) ? tmpl::Dialect::kStatic : tmpl::Dialect::kMustache;
  BuildContext context{"mx.example.net", 1796594400, [] { return uint64_t{42}; }};

  Content content;
  if (flags & 0x01) {
    content = f[0] + "\r\n" + f[1];  // a whole message: header lines, body
  } else {
    StructuredContent c;
    c.from = {"from@example.com", f[6]};
    c.subject = f[0];
    if (flags & 0x02) c.text_body = f[1];
    if (flags & 0x04) c.html_body = f[2];
    if (flags & 0x08) c.amp_html_body = f[3];
    if (!f[4].empty()) c.headers.push_back({f[4], f[5]});
    if (!f[8].empty()) c.attachments.push_back({f[8], (flags & 0x40) != 0, f[9], f[11], f[10]});
    content = std::move(c);
  }
  std::vector<std::string> warnings;
  BuildResult m = build_message(content, r, "/recipients/0", global, dialect, context, &warnings);
  if (!m) {
    if (m.error().pointer.empty() || m.error().pointer[0] != '/' || m.error().reason.empty())
      std::abort();
    return 0;
  }
  const std::string& bytes = m.message();
  size_t line = 0;
  for (size_t i = 0; i < bytes.size(); ++i) {
    if (bytes[i] == '\n') {
      if (i == 0 || bytes[i - 1] != '\r' || line > 999) std::abort();
      line = 0;
    } else {
      ++line;
    }
  }
  if (line > 998) std::abort();

  MessageBuilder kept(content, global, dialect, context);
  if (!kept.build(r, "/recipients/0", nullptr)) std::abort();
  Recipient second = r;
  second.substitutions = {{"v", f[5]}};
  BuildResult a = kept.build(second, "/recipients/1", nullptr);
  BuildResult b =
      build_message(content, second, "/recipients/1", global, dialect, context, nullptr);
  if (a.ok() != b.ok()) std::abort();
  if (a.ok() ? a.message() != b.message() : a.error().pointer != b.error().pointer) std::abort();
  return 0;
}
