// What a DNS lookup came to: the one vocabulary of the resolver (engine/
// resolver.h), SPF, DMARC, DKIM key lookups, MX delivery and the tools.
#pragma once

#include <cstdint>
#include <optional>
#include <span>

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

// How long a DNS response may be kept, read from its wire form (RFC 1035
// section 4.1): c-ares' record parsers drop the TTLs. A TTL with its top
// bit set counts as 0 (RFC 2181 section 8).
struct DnsTtls {
  // The smallest TTL of the answer section's records; none without records.
  std::optional<uint32_t> answer;
  // For a negative answer (NXDOMAIN, no data): the smaller of the SOA
  // record's TTL and its MINIMUM field, from the authority section (RFC 2308
  // section 5); none without a SOA.
  std::optional<uint32_t> negative;
};

// The TTLs of the response `msg`; none when it is cut short or malformed.
[[nodiscard]] std::optional<DnsTtls> read_ttls(std::span<const uint8_t> msg);

}  // namespace ringmail::proto
