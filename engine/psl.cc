#include "engine/psl.h"

#include <libpsl.h>

#include "proto/address.h"

namespace ringmail::engine {

namespace {

// The newest of Debian's list and libpsl's builtin data. Never freed: it
// lives as long as the process, shared read-only by every shard.
const psl_ctx_t* list() {
  static const psl_ctx_t* const psl = [] {
    const psl_ctx_t* p = psl_latest("/usr/share/publicsuffix/public_suffix_list.dat");
    return p != nullptr ? p : psl_builtin();
  }();
  return psl;
}

}  // namespace

std::string organizational_domain(std::string_view domain) {
  std::string name = proto::ascii_lower(domain);
  if (!name.empty() && name.back() == '.') name.pop_back();
  const psl_ctx_t* psl = list();
  const char* registrable = psl != nullptr ? psl_registrable_domain(psl, name.c_str()) : nullptr;
  return registrable != nullptr ? std::string(registrable) : name;
}

}  // namespace ringmail::engine
