// libFuzzer target: proto::parse_oob_report, the DSN (RFC 3464) and
// feedback report (ARF, RFC 5965) parser over GMime, seeded with a
// Postfix bounce and RFC 5965's example. It must never crash or leak; a
// report it accepts is complete (a DSN has recipients, each with a final
// recipient; a feedback report has its type), and a refusal says why.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "proto/oob.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace ringmail::proto;
  if (size > 256 * 1024) return 0;
  auto r = parse_oob_report(std::string_view(reinterpret_cast<const char*>(data), size));
  if (!r) {
    if (r.error().empty()) std::abort();
    return 0;
  }
  if (r->kind == OobReport::Kind::kDsn) {
    if (r->recipients.empty()) std::abort();
    for (const auto& x : r->recipients) {
      if (x.final_recipient.empty()) std::abort();
    }
  } else if (r->feedback_type.empty()) {
    std::abort();
  }
  return 0;
}
