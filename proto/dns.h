// What a DNS lookup came to: the one vocabulary of the resolver (engine/
// resolver.h), SPF, DMARC, DKIM key lookups, MX delivery and the tools.
#pragma once

#include <cstdint>

namespace ringmail::proto {

enum class DnsStatus : uint8_t {
  kOk,        // records found
  kNoData,    // the name exists without records of the type (for MX: use
              // the domain's own addresses)
  kNxDomain,  // the name does not exist (RCODE 3)
  kTempFail,  // SERVFAIL, another RCODE, or no answer in time: try later
};

// "ok", "no such record", "no such domain", "temporary DNS failure".
const char* to_string(DnsStatus s);

}  // namespace ringmail::proto
