// libFuzzer target: the request handler's pure part, POST /api/inject/v1's
// body through proto::parse_inject_request (simdjson On-Demand) and then,
// for each recipient it keeps (at most 4), a proto::MessageBuilder, as
// the handler builds them. It must never crash or leak; every error names
// a field by JSON pointer and says why; each message is the one a fresh
// build_message gives (the builder keeps its tree between recipients).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "proto/inject_request.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace ringmail::proto;
  if (size > 256 * 1024) return 0;
  const std::string_view body(reinterpret_cast<const char*>(data), size);
  auto parsed = parse_inject_request(body);
  if (auto* e = std::get_if<FieldError>(&parsed)) {
    if (e->reason.empty() || (!e->pointer.empty() && e->pointer[0] != '/')) std::abort();
    return 0;
  }
  const InjectRequest& req = std::get<InjectRequest>(parsed);
  if (req.recipients.empty()) std::abort();  // refused instead
  BuildContext context{"mx.example.net", 1796594400, [] { return uint64_t{7}; }};
  std::vector<std::string> warnings, fresh_warnings;
  MessageBuilder builder(req.content, req.substitutions, req.dialect, context);
  size_t built = 0;
  for (const InjectRecipient& r : req.recipients) {
    if (++built > 4) break;
    const std::string at = "/recipients/" + std::to_string(r.index);
    BuildResult m = builder.build(r.recipient, at, &warnings);
    if (!m && (m.error().pointer.empty() || m.error().reason.empty())) std::abort();
    BuildResult fresh = build_message(req.content, r.recipient, at, req.substitutions, req.dialect,
                                      context, &fresh_warnings);
    if (m.ok() != fresh.ok()) std::abort();
    if (m.ok() && m.message() != fresh.message()) std::abort();
    if (!m.ok() && m.error().pointer != fresh.error().pointer) std::abort();
  }
  if (warnings != fresh_warnings) std::abort();
  return 0;
}
