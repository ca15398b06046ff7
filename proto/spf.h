// SPF (RFC 7208): check_host() for the MAIL FROM or HELO identity, and the
// text of its results (Received-SPF, Authentication-Results). Pure: the
// evaluator never resolves anything itself. It runs over the DNS answers
// the caller knows so far and, when it needs another one, says which; the
// caller (an async resolver on the event loop) fetches it, adds it and
// calls again. Each call replays the evaluation from the start, which keeps
// no state between rounds; the limits of RFC 7208 4.6.4 bound the rounds
// (about 130 queries at worst, a handful usually).
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "proto/dns.h"

namespace ringmail::proto::spf {

enum class Result : uint8_t { kNone, kNeutral, kPass, kFail, kSoftfail, kTemperror, kPermerror };
const char* result_name(Result r);  // "none", "neutral", "pass", ... as in RFC 7208 2.6

enum class QueryType : uint8_t { kTxt, kA, kAaaa, kMx, kPtr };
const char* query_type_name(QueryType t);  // "TXT", "A", ...

struct Query {
  QueryType type = QueryType::kTxt;
  std::string name;  // lower case, no trailing dot
  bool operator==(const Query&) const = default;
};

// An empty list with kOk counts as kNoData.
using proto::DnsStatus;

struct Answer {
  DnsStatus status = DnsStatus::kOk;
  // With kOk: TXT, each record's strings joined without separator; A and
  // AAAA, the addresses as text; MX, the exchange names ordered by
  // preference; PTR, the names. Trailing dots on names are ignored.
  std::vector<std::string> records;
};

// The answers known so far. Names are compared without case and without a
// trailing dot. The answers must stay unchanged during an evaluate() call.
class Dns {
 public:
  void add(const Query& q, Answer a);
  const Answer* find(QueryType type, std::string_view name) const;
  size_t size() const { return answers_.size(); }

 private:
  std::map<std::pair<QueryType, std::string>, Answer> answers_;
};

enum class Identity : uint8_t { kMailFrom, kHelo };

struct Request {
  // IPv4 or IPv6 text; IPv4-mapped IPv6 counts as IPv4. Text that is
  // neither gives none with a problem (a caller's bug, not the sender's).
  std::string client_ip;
  std::string helo;  // the HELO/EHLO argument
  // The MAIL FROM address without angle brackets; empty for "<>", which
  // makes the sender postmaster@helo (RFC 7208 2.4). A missing local part
  // ("@example.com") is "postmaster" too (4.3).
  std::string mail_from;
  Identity identity = Identity::kMailFrom;  // kHelo checks helo (2.3)
  std::string receiver;                     // our host name, for %{r} and Received-SPF
  int64_t now_s = 0;                        // Unix time, for %{t}
};

struct Verdict {
  Result result = Result::kNone;
  std::string domain;       // the domain checked first (no trailing dot)
  std::string sender;       // <sender>: local@domain as used for macros
  std::string mechanism;    // the directive that decided, as written;
                            // "default" when none matched (9.1); empty
                            // for none and errors
  std::string explanation;  // fail only: the exp= text, empty when none
  std::string problem;      // permerror, temperror: what went wrong
};

// Runs check_host() (RFC 7208 4) for `req` over the answers in `known`.
// Returns the verdict, or nullopt when it needs an answer `known` does not
// hold: `*missing` then names the query to resolve, add to `known`, and
// call again with. `missing` must not be null.
std::optional<Verdict> evaluate(const Request& req, const Dns& known, Query* missing);

// The value of a Received-SPF header field (RFC 7208 9.1), without the
// field name or CRLF: result, comment, then the key-value pairs
// client-ip, envelope-from, helo, receiver, identity, mechanism (unless
// the result is none or an error) and problem (for errors).
std::string received_spf(const Request& req, const Verdict& v);

// The SPF part of an Authentication-Results field (RFC 8601 2.7.2):
// "spf=pass smtp.mailfrom=user@example.com", or smtp.helo=... for the HELO
// identity (and for MAIL FROM <>, whose check is a HELO one).
std::string auth_results(const Request& req, const Verdict& v);

}  // namespace ringmail::proto::spf
