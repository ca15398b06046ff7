// Where mail for a domain goes (RFC 5321 5.1, RFC 7505), from the MX records
// a resolver found: pure, the resolver is the engine's.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace ringmail::proto {

struct MxRecord {
  uint16_t preference = 0;
  std::string host;  // as the resolver gave it; a trailing dot is ignored
};

struct MxPlan {
  enum class Kind : uint8_t {
    kHosts,     // try `hosts` in order
    kImplicit,  // no MX: the domain's own A/AAAA (`hosts` = {domain})
    kNullMx,    // "MX 0 ." (RFC 7505): the domain takes no mail, fail at once
    kLoop,      // we are the best MX and there is no better one: a local
                // delivery problem, not a destination (RFC 5321 5.1)
  };
  Kind kind = Kind::kHosts;
  std::vector<std::string> hosts;  // lower case, no trailing dot
};

// Sorts by preference, shuffling hosts of equal preference with `seed` (so
// load spreads over them), drops duplicates, and when `self` (our host
// name) is among the hosts, drops it and every host of the same or a
// larger preference.
MxPlan plan_mx(std::string_view domain, std::vector<MxRecord> records, std::string_view self,
               uint64_t seed);

}  // namespace ringmail::proto
