// libFuzzer target: aliases files (proto/aliases.cc). Any text parses or
// fails with a line number; a table that parses resolves every name it
// defines (and a few others) without crashing, within the depth limit,
// to destinations that are never empty.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "proto/aliases.h"

namespace {

using namespace ringmail::proto;

class Dir : public AliasDirectory {
 public:
  explicit Dir(const AliasTable& t) : t_(t) {}
  bool is_local_domain(const std::string& d) const override {
    return d == "a.test" || d == "b.test";
  }
  const AliasTable* aliases(const std::string& d) const override {
    return d == "a.test" ? &t_ : nullptr;
  }
  const std::string* find_user(const std::string& d, const std::string& key) const override {
    static const std::string alice = "alice";
    return d == "a.test" && key == "alice" ? &alice : nullptr;
  }
  bool accepts_any_mailbox(const std::string& d) const override { return d == "b.test"; }

 private:
  const AliasTable& t_;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  auto t = AliasTable::parse(text, ".");
  if (!t) {
    if (t.error().rfind("line ", 0) != 0) std::abort();
    return 0;
  }
  Dir dir(*t);
  AliasOptions opt;
  // Every name on the left of a line, and some fixed ones.
  for (std::string_view rest = text; !rest.empty();) {
    const size_t nl = rest.find('\n');
    const std::string_view line = rest.substr(0, nl);
    rest.remove_prefix(nl == std::string_view::npos ? rest.size() : nl + 1);
    const size_t colon = line.find(':');
    if (colon == std::string_view::npos || colon > 64) continue;
    std::string name(line.substr(0, colon));
    for (const char* extra : {"", "+x"}) {
      const Resolution r = resolve_alias(name + extra, "a.test", dir, opt);
      if (r.status == Resolution::Status::kOk) {
        if (r.destinations.empty()) std::abort();
        for (const auto& d : r.destinations) {
          if (d.address.empty() || (d.kind == Destination::Kind::kPipe && d.command.empty()))
            std::abort();
        }
      } else if (r.detail.empty()) {
        std::abort();
      }
    }
  }
  (void)resolve_alias("nobody", "a.test", dir, opt);
  (void)resolve_alias("postmaster", "a.test", dir, opt);
  return 0;
}
