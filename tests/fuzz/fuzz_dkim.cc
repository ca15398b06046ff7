// libFuzzer target: DKIM canonicalization (proto/dkim.cc). The body
// canonicalizer must agree with the line-by-line reference, and fed in
// random splits give the same bytes as fed whole,
// never a CR/LF pair out of place, and a result that is a fixed point (the
// canonical form canonicalizes to itself); header splitting and relaxed
// header forms must stay inside the input, and the streaming body start
// (BodyStart) must find split_header's offset.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "proto/dkim.h"
#include "proto/dkim_test_reference.h"

namespace {

std::string canon(std::string_view in, const uint8_t* splits, size_t nsplits) {
  std::string out;
  ringmail::proto::dkim::RelaxedBody b([&](std::string_view s) { out.append(s); });
  size_t pos = 0;
  for (size_t i = 0; i < nsplits && pos < in.size(); ++i) {
    const size_t n = std::min<size_t>(splits[i], in.size() - pos);
    b.feed(in.substr(pos, n));
    pos += n;
  }
  b.feed(in.substr(pos));
  b.finish();
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace ringmail::proto::dkim;
  if (size < 4) return 0;
  const size_t nsplits = data[0] % 8;
  if (size < 1 + nsplits) return 0;
  const uint8_t* splits = data + 1;
  std::string_view in(reinterpret_cast<const char*>(data + 1 + nsplits), size - 1 - nsplits);
  const std::string whole = canon(in, nullptr, 0);
  if (canon(in, splits, nsplits) != whole) std::abort();
  if (canon(whole, nullptr, 0) != whole) std::abort();  // a fixed point
  if (reference::relaxed_body(in) != whole) std::abort();
  if (!whole.empty() && whole.substr(whole.size() - 2) != "\r\n") std::abort();
  // Empty lines at the end never survive.
  if (whole.size() >= 4 && whole.compare(whole.size() - 4, 4, "\r\n\r\n") == 0) std::abort();
  size_t body = 0;
  const auto fields = split_header(in, &body);
  if (body > in.size()) std::abort();
  // The streaming body start agrees with split_header, in any split.
  BodyStart start;
  size_t seen = 0;
  for (size_t i = 0; i < nsplits && seen < in.size(); ++i) {
    seen = std::min(in.size(), seen + splits[i]);
    if (start.scan(in.substr(0, seen)) && start.offset() != body) std::abort();
  }
  if (start.finish(in) != body) std::abort();
  std::string out;
  for (const auto& f : fields) {
    append_relaxed_header(f, &out);
    if (f.name.data() < in.data() || f.value.data() + f.value.size() > in.data() + in.size())
      std::abort();
  }
  const auto h = choose_signed_headers(fields, default_signed_headers());
  (void)signed_header_data(fields, h, "DKIM-Signature: v=1; b=");
  // Verification's parsers on whatever the fields hold.
  for (const auto& f : fields) {
    auto sig = parse_signature(f.value);
    if (sig && sig->headers.empty()) std::abort();
    if (!sig && sig.error().empty()) std::abort();
    (void)without_b_value(f);
    (void)parse_key_record(f.value);
  }
  std::string simple;
  SimpleBody sb([&](std::string_view s) { simple.append(s); });
  sb.feed(in);
  sb.finish();
  if (simple.size() < 2 || simple.compare(simple.size() - 2, 2, "\r\n") != 0) std::abort();
  return 0;
}
