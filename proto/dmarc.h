// DMARC (RFC 7489): the policy record, policy discovery, identifier
// alignment and the evaluation of one message, with its
// Authentication-Results part and a log record for aggregate reports.
// Pure: DNS answers, SPF and DKIM results, the organizational domain (the
// Public Suffix List: engine/psl.h) and the pct sampling draw come from the
// caller.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "proto/dkim.h"
#include "proto/dns.h"

namespace ringmail::proto::dmarc {

enum class Policy : uint8_t { kNone, kQuarantine, kReject };
const char* to_string(Policy p);  // "none", "quarantine", "reject"

// A parsed DMARC record (RFC 7489 6.3). Defaults are the RFC's.
struct Record {
  Policy p = Policy::kNone;
  Policy sp = Policy::kNone;  // subdomain policy; p when the tag is absent
  bool adkim_strict = false;
  bool aspf_strict = false;
  int pct = 100;
  std::vector<std::string> rua;  // reporting URIs as written (with any "!size")
  std::vector<std::string> ruf;
  std::string fo = "0";
  std::string rf = "afrf";
  uint32_t ri = 86400;
  // p (or sp) was missing or not a policy, and the record counts as p=none
  // only because it has rua (6.6.3 step 6): what its owner should fix.
  bool policy_defaulted = false;
};

enum class ParseResult : uint8_t {
  kOk,
  kNotDmarc,  // does not start with "v=DMARC1": not a DMARC record at all (6.6.3 step 2)
  kInvalid,   // a DMARC record without a valid p (or with a bad sp) and no valid rua
};
// Parses a TXT record. Tag names and keyword values are case-insensitive,
// "DMARC1" is not (6.4). Unknown tags are ignored and a bad value of any
// tag but p and sp falls back to the default (6.3: "syntax errors in the
// remainder of the record SHOULD be discarded in favor of default
// values"). A missing or bad p, or a bad sp, makes the record kInvalid
// unless rua holds a valid URI; then it counts as p=none (6.6.3 step 6).
[[nodiscard]] ParseResult parse_record(std::string_view txt, Record* out);

// One TXT lookup as the caller's resolver answered it.
struct TxtLookup {
  DnsStatus status = DnsStatus::kTempFail;
  std::vector<std::string> records;  // each record's strings joined
};

// Given a lower-case domain, its organizational domain (RFC 7489 3.2),
// lower case. engine::organizational_domain() is the real one.
using OrgDomain = std::function<std::string(std::string_view domain)>;

// What policy discovery (6.6.3) found.
struct Discovered {
  enum class Status : uint8_t {
    kFound,
    kNone,       // no record, or more than one (step 5)
    kInvalid,    // one record, unusable (see kInvalid above)
    kTempError,  // a lookup failed; a later try may find the record
  };
  Status status = Status::kNone;
  Record record;
  std::string domain;      // where the record was found
  bool subdomain = false;  // found at the organizational domain for a From
                           // domain below it: sp applies
};

// Policy discovery step by step, so the caller's resolver can answer
// asynchronously: look up next_query(), give the answer to answer(), until
// next_query() is empty. First _dmarc.<From domain>; when that has no DMARC
// record, _dmarc.<organizational domain> if that is another name.
class PolicyDiscovery {
 public:
  PolicyDiscovery(std::string_view from_domain, const OrgDomain& org_domain);
  const std::string& next_query() const { return next_query_; }
  void answer(const TxtLookup& lookup);
  // Valid once next_query() is empty.
  const Discovered& result() const { return result_; }

 private:
  std::string from_domain_;
  std::string org_domain_;
  std::string next_query_;
  Discovered result_;
};

// The RFC5322.From domain (6.6.1), lower case. Exactly one From field with
// mailboxes of one domain gives that domain (several addresses of one
// domain make one DMARC check, the same for each). Otherwise (no From, two
// From fields, no address, addresses of different domains, an address
// that does not parse, a domain literal) the message cannot be evaluated:
// false, and the evaluation reports permerror, which a receiver may reject
// as RFC 5322 forbids such a From ("typically rejected", 6.6.1).
[[nodiscard]] bool from_domain(const std::vector<dkim::HeaderField>& fields, std::string* domain);

// Identifier alignment (3.1): strict is an exact match, relaxed the same
// organizational domain; both case-insensitive.
bool aligned(std::string_view from_domain, std::string_view other, bool strict,
             const OrgDomain& org_domain);

// An SPF or DKIM result: "pass", "fail", "softfail", "neutral", "none",
// "temperror", "permerror" (RFC 8601); only "pass" counts for DMARC.
struct AuthResult {
  std::string result;
  std::string domain;  // SPF: the MAIL FROM domain, or HELO's when MAIL FROM
                       // was null; DKIM: d=
};

struct Input {
  std::string source_ip;      // for the log record
  std::string from_domain;    // from_domain(); empty when it gave false
  std::string envelope_from;  // RFC5321.MailFrom domain (empty for <>)
  AuthResult spf;
  std::vector<AuthResult> dkim;  // one per signature
};

enum class Result : uint8_t { kNone, kPass, kFail, kTempError, kPermError };
const char* to_string(Result r);  // as in Authentication-Results: "pass", ...

struct Outcome {
  Result result = Result::kNone;
  bool spf_aligned = false;            // SPF passed for an aligned domain
  bool dkim_aligned = false;           // a DKIM signature passed for an aligned domain
  bool have_policy = false;            // a record applied (result pass or fail)
  Policy policy = Policy::kNone;       // p, or sp for a subdomain
  Policy disposition = Policy::kNone;  // what the receiver should do
  bool sampled_out = false;            // failed, but pct left the message out (6.6.4)
  Discovered discovered;
  std::string auth_results;  // "dmarc=fail (p=reject dis=reject) header.from=example.com"
  std::string log_record;    // one line for the aggregate reporter: see log_record()
};

// Evaluates a message (6.6.2, 6.6.4). `draw` is a uniform draw in 0..99:
// a failing message is subject to its policy when draw < pct; one left out
// gets the next policy down (reject -> quarantine, quarantine -> none).
Outcome evaluate(const Input& in, const Discovered& policy, const OrgDomain& org_domain, int draw);

// The log record: space-separated key=value fields, values without spaces
// (unsafe bytes as '?'):
//   dmarc ip=192.0.2.1 header_from=example.com envelope_from=bounce.example.net
//   spf=pass spf_domain=bounce.example.net dkim=pass:example.com,fail:other.org
//   result=fail spf_aligned=0 dkim_aligned=0 policy=reject disposition=quarantine
//   sampled_out=1 published_domain=example.com published=p:reject,sp:none,
//   adkim:r,aspf:r,pct:50
// (one line; "-" for an empty value).
std::string log_record(const Input& in, const Outcome& out);

}  // namespace ringmail::proto::dmarc
