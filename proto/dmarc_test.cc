// DMARC (RFC 7489): record parsing, policy discovery, alignment and the
// evaluation, with a small fixed organizational-domain function in place
// of the Public Suffix List (engine/psl_test.cc tests the real one).
#include "proto/dmarc.h"

#include <gtest/gtest.h>

#include <map>

namespace ringmail::proto::dmarc {
namespace {

// The last two labels, or three under .co.uk: enough for these tests.
std::string org(std::string_view d) {
  const int labels = d.ends_with(".co.uk") ? 3 : 2;
  size_t start = d.size();
  for (int i = 0; i < labels; ++i) {
    const size_t dot = start == 0 ? std::string_view::npos : d.rfind('.', start - 1);
    if (dot == std::string_view::npos) return std::string(d);
    start = dot;
  }
  return std::string(d.substr(start + 1));
}

Record parsed(std::string_view txt) {
  Record r;
  EXPECT_EQ(parse_record(txt, &r), ParseResult::kOk) << txt;
  return r;
}

TEST(Org, TestHelper) {
  EXPECT_EQ(org("a.b.example.com"), "example.com");
  EXPECT_EQ(org("example.com"), "example.com");
  EXPECT_EQ(org("mail.example.co.uk"), "example.co.uk");
  EXPECT_EQ(org("com"), "com");
}

TEST(Record, Good) {
  const Record r = parsed(
      "v=DMARC1; p=reject; sp=quarantine; adkim=s; aspf=s; pct=25; "
      "rua=mailto:agg@example.com,mailto:x@example.net!10m; ruf=mailto:f@example.com; "
      "fo=1:d; rf=afrf; ri=3600");
  EXPECT_EQ(r.p, Policy::kReject);
  EXPECT_EQ(r.sp, Policy::kQuarantine);
  EXPECT_TRUE(r.adkim_strict);
  EXPECT_TRUE(r.aspf_strict);
  EXPECT_EQ(r.pct, 25);
  EXPECT_EQ(r.rua,
            (std::vector<std::string>{"mailto:agg@example.com", "mailto:x@example.net!10m"}));
  EXPECT_EQ(r.ruf, std::vector<std::string>{"mailto:f@example.com"});
  EXPECT_EQ(r.fo, "1:d");
  EXPECT_EQ(r.rf, "afrf");
  EXPECT_EQ(r.ri, 3600u);
}

TEST(Record, Defaults) {
  const Record r = parsed("v=DMARC1; p=quarantine");
  EXPECT_EQ(r.p, Policy::kQuarantine);
  EXPECT_EQ(r.sp, Policy::kQuarantine);  // sp defaults to p
  EXPECT_FALSE(r.adkim_strict);
  EXPECT_FALSE(r.aspf_strict);
  EXPECT_EQ(r.pct, 100);
  EXPECT_TRUE(r.rua.empty());
  EXPECT_EQ(r.fo, "0");
  EXPECT_EQ(r.ri, 86400u);
}

TEST(Record, WhitespaceCaseAndUnknownTags) {
  const Record r = parsed("  v = DMARC1 ;P = Reject\t; ADKIM=S ; x-future=1;foo ;  pct = 50 ; ");
  EXPECT_EQ(r.p, Policy::kReject);
  EXPECT_TRUE(r.adkim_strict);
  EXPECT_EQ(r.pct, 50);
}

TEST(Record, NotDmarc) {
  Record r;
  EXPECT_EQ(parse_record("v=spf1 -all", &r), ParseResult::kNotDmarc);
  EXPECT_EQ(parse_record("p=reject; v=DMARC1", &r), ParseResult::kNotDmarc);  // v not first
  EXPECT_EQ(parse_record("v=dmarc1; p=reject", &r), ParseResult::kNotDmarc);  // DMARC1 is exact
  EXPECT_EQ(parse_record("v=DMARC2; p=reject", &r), ParseResult::kNotDmarc);
  EXPECT_EQ(parse_record("", &r), ParseResult::kNotDmarc);
}

TEST(Record, MissingOrBadPolicy) {
  Record r;
  EXPECT_EQ(parse_record("v=DMARC1", &r), ParseResult::kInvalid);
  EXPECT_EQ(parse_record("v=DMARC1; sp=reject", &r), ParseResult::kInvalid);
  EXPECT_EQ(parse_record("v=DMARC1; p=block", &r), ParseResult::kInvalid);
  EXPECT_EQ(parse_record("v=DMARC1; p=reject; sp=maybe", &r), ParseResult::kInvalid);
  EXPECT_EQ(parse_record("v=DMARC1; p=block; rua=not a uri", &r), ParseResult::kInvalid);
}

// 6.6.3 step 6: a bad p with a usable rua is p=none, so reports still flow.
TEST(Record, BadPolicyWithRuaIsNone) {
  Record r = parsed("v=DMARC1; p=block; rua=mailto:d@example.com");
  EXPECT_EQ(r.p, Policy::kNone);
  EXPECT_TRUE(r.policy_defaulted);  // dns-check says so (issue 19, defect 12)
  EXPECT_FALSE(parsed("v=DMARC1; p=quarantine; rua=mailto:d@example.com").policy_defaulted);
  EXPECT_EQ(r.sp, Policy::kNone);
  EXPECT_EQ(r.rua, std::vector<std::string>{"mailto:d@example.com"});
  r = parsed("v=DMARC1; p=reject; sp=bogus; rua=mailto:d@example.com");
  EXPECT_EQ(r.p, Policy::kNone);
  r = parsed("v=DMARC1; rua=mailto:d@example.com");
  EXPECT_EQ(r.p, Policy::kNone);
}

// 6.3: bad values of other tags fall back to their defaults.
TEST(Record, BadOptionalValuesGetDefaults) {
  const Record r =
      parsed("v=DMARC1; p=reject; adkim=x; aspf=; pct=101; ri=-5; fo=2; rf=a f; rua=mailto:a@b!9q");
  EXPECT_FALSE(r.adkim_strict);
  EXPECT_FALSE(r.aspf_strict);
  EXPECT_EQ(r.pct, 100);
  EXPECT_EQ(r.ri, 86400u);
  EXPECT_EQ(r.fo, "0");
  EXPECT_EQ(r.rf, "afrf");
  EXPECT_TRUE(r.rua.empty());
  EXPECT_EQ(parsed("v=DMARC1; p=none; pct=0").pct, 0);
}

TxtLookup ok(std::vector<std::string> records) { return {DnsStatus::kOk, std::move(records)}; }
const TxtLookup kNoRecord{DnsStatus::kNxDomain, {}};
const TxtLookup kTempFail{DnsStatus::kTempFail, {}};

// Runs discovery against `dns` (name -> answer; names not in it: no record)
// and returns the names asked, in order.
std::vector<std::string> discover(std::string_view from,
                                  const std::map<std::string, TxtLookup>& dns, Discovered* result) {
  PolicyDiscovery d(from, org);
  std::vector<std::string> asked;
  while (!d.next_query().empty()) {
    asked.push_back(d.next_query());
    const auto it = dns.find(d.next_query());
    d.answer(it == dns.end() ? kNoRecord : it->second);
  }
  *result = d.result();
  return asked;
}

TEST(Discovery, RecordAtFromDomain) {
  Discovered r;
  EXPECT_EQ(discover("Example.COM",
                     {{"_dmarc.example.com", ok({"v=spf1 -all", "v=DMARC1; p=reject"})}}, &r),
            std::vector<std::string>{"_dmarc.example.com"});
  EXPECT_EQ(r.status, Discovered::Status::kFound);
  EXPECT_EQ(r.domain, "example.com");
  EXPECT_FALSE(r.subdomain);
  EXPECT_EQ(r.record.p, Policy::kReject);
}

TEST(Discovery, FallsBackToOrganizationalDomain) {
  Discovered r;
  EXPECT_EQ(discover("a.b.example.com",
                     {{"_dmarc.a.b.example.com", ok({"not dmarc"})},
                      {"_dmarc.example.com", ok({"v=DMARC1; p=none; sp=reject"})}},
                     &r),
            (std::vector<std::string>{"_dmarc.a.b.example.com", "_dmarc.example.com"}));
  EXPECT_EQ(r.status, Discovered::Status::kFound);
  EXPECT_EQ(r.domain, "example.com");
  EXPECT_TRUE(r.subdomain);
}

TEST(Discovery, MissingRecords) {
  Discovered r;
  EXPECT_EQ(discover("mail.example.com", {}, &r),
            (std::vector<std::string>{"_dmarc.mail.example.com", "_dmarc.example.com"}));
  EXPECT_EQ(r.status, Discovered::Status::kNone);
  // The From domain is its own organizational domain: one query.
  EXPECT_EQ(discover("example.com", {}, &r), std::vector<std::string>{"_dmarc.example.com"});
  EXPECT_EQ(r.status, Discovered::Status::kNone);
}

// Step 5: two DMARC records is none, without falling back.
TEST(Discovery, SeveralRecordsIsNone) {
  Discovered r;
  EXPECT_EQ(discover("mail.example.com",
                     {{"_dmarc.mail.example.com", ok({"v=DMARC1; p=reject", "v=DMARC1; p=none"})},
                      {"_dmarc.example.com", ok({"v=DMARC1; p=reject"})}},
                     &r),
            std::vector<std::string>{"_dmarc.mail.example.com"});
  EXPECT_EQ(r.status, Discovered::Status::kNone);
}

TEST(Discovery, TempFail) {
  Discovered r;
  discover("example.com", {{"_dmarc.example.com", kTempFail}}, &r);
  EXPECT_EQ(r.status, Discovered::Status::kTempError);
  discover("mail.example.com", {{"_dmarc.example.com", kTempFail}}, &r);
  EXPECT_EQ(r.status, Discovered::Status::kTempError);
}

TEST(Discovery, InvalidRecord) {
  Discovered r;
  discover("example.com", {{"_dmarc.example.com", ok({"v=DMARC1; p=bogus"})}}, &r);
  EXPECT_EQ(r.status, Discovered::Status::kInvalid);
}

TEST(Alignment, RelaxedAndStrict) {
  EXPECT_TRUE(aligned("example.com", "EXAMPLE.com", true, org));
  EXPECT_TRUE(aligned("example.com", "example.com.", true, org));
  EXPECT_FALSE(aligned("example.com", "mail.example.com", true, org));
  EXPECT_TRUE(aligned("example.com", "mail.example.com", false, org));
  EXPECT_TRUE(aligned("news.example.com", "bounce.Example.com", false, org));
  EXPECT_FALSE(aligned("example.com", "example.net", false, org));
  EXPECT_FALSE(aligned("example.co.uk", "other.co.uk", false, org));
  EXPECT_FALSE(aligned("example.com", "", false, org));
}

std::vector<dkim::HeaderField> fields(std::string_view header) {
  size_t body = 0;
  return dkim::split_header(header, &body);
}

std::string domain_of(std::string_view header) {
  std::string d;
  if (!from_domain(fields(header), &d)) return "<error>";
  return d;
}

TEST(FromDomain, OneAddress) {
  EXPECT_EQ(domain_of("From: a@Example.COM\r\n\r\n"), "example.com");
  EXPECT_EQ(domain_of("To: x@y.org\r\nfrom:  \"Doe, John (x@evil.test)\" <john@example.com>\r\n"),
            "example.com");
  EXPECT_EQ(domain_of("From: John (comment@evil.test) <john@example.com> (more)\r\n"),
            "example.com");
  EXPECT_EQ(domain_of("From: \"quoted@local\"@example.com\r\n"), "example.com");
  EXPECT_EQ(domain_of("From: Doe\r\n <john@\r\n example.com>\r\n"), "example.com");
  EXPECT_EQ(domain_of("From: a@example.com, b@example.com\r\n"), "example.com");
  EXPECT_EQ(domain_of("From: Team: a@example.com, b@example.com;\r\n"), "example.com");
}

TEST(FromDomain, CannotBeEvaluated) {
  EXPECT_EQ(domain_of("To: a@example.com\r\n"), "<error>");                           // no From
  EXPECT_EQ(domain_of("From: a@example.com\r\nFrom: b@example.com\r\n"), "<error>");  // two
  EXPECT_EQ(domain_of("From: a@example.com, b@example.net\r\n"), "<error>");          // two domains
  EXPECT_EQ(domain_of("From: undisclosed:;\r\n"), "<error>");
  EXPECT_EQ(domain_of("From: John Doe\r\n"), "<error>");
  EXPECT_EQ(domain_of("From: a@[192.0.2.1]\r\n"), "<error>");
  EXPECT_EQ(domain_of("From: <a@example.com\r\n"), "<error>");
  EXPECT_EQ(domain_of("From: \"open <a@example.com>\r\n"), "<error>");
  EXPECT_EQ(domain_of("From: (open <a@example.com>\r\n"), "<error>");
  EXPECT_EQ(domain_of("From: @example.com\r\n"), "<error>");
  EXPECT_EQ(domain_of("From: a@exa mple.com\r\n"), "<error>");
}

Discovered found(std::string_view txt, bool subdomain = false) {
  Discovered d;
  d.status = Discovered::Status::kFound;
  d.record = parsed(txt);
  d.domain = "example.com";
  d.subdomain = subdomain;
  return d;
}

Input message(std::string from, AuthResult spf, std::vector<AuthResult> dkim) {
  Input in;
  in.source_ip = "192.0.2.1";
  in.from_domain = std::move(from);
  in.envelope_from = spf.domain;
  in.spf = std::move(spf);
  in.dkim = std::move(dkim);
  return in;
}

TEST(Evaluate, AlignedSpfPasses) {
  const Outcome o = evaluate(message("example.com", {"pass", "bounce.example.com"}, {}),
                             found("v=DMARC1; p=reject"), org, 0);
  EXPECT_EQ(o.result, Result::kPass);
  EXPECT_TRUE(o.spf_aligned);
  EXPECT_FALSE(o.dkim_aligned);
  EXPECT_EQ(o.disposition, Policy::kNone);
  EXPECT_EQ(o.auth_results, "dmarc=pass (p=reject dis=none) header.from=example.com");
}

TEST(Evaluate, AlignedDkimPasses) {
  const Outcome o = evaluate(message("example.com", {"fail", "example.com"},
                                     {{"fail", "example.com"}, {"pass", "mail.example.com"}}),
                             found("v=DMARC1; p=reject"), org, 0);
  EXPECT_EQ(o.result, Result::kPass);
  EXPECT_FALSE(o.spf_aligned);
  EXPECT_TRUE(o.dkim_aligned);
}

TEST(Evaluate, UnalignedFails) {
  // Both pass, for other organizations' domains.
  const Outcome o =
      evaluate(message("example.com", {"pass", "mailer.example.net"}, {{"pass", "example.net"}}),
               found("v=DMARC1; p=reject"), org, 0);
  EXPECT_EQ(o.result, Result::kFail);
  EXPECT_EQ(o.policy, Policy::kReject);
  EXPECT_EQ(o.disposition, Policy::kReject);
  EXPECT_EQ(o.auth_results, "dmarc=fail (p=reject dis=reject) header.from=example.com");
  EXPECT_EQ(o.log_record,
            "dmarc ip=192.0.2.1 header_from=example.com envelope_from=mailer.example.net "
            "spf=pass spf_domain=mailer.example.net dkim=pass:example.net result=fail "
            "spf_aligned=0 dkim_aligned=0 policy=reject disposition=reject sampled_out=0 "
            "published_domain=example.com published=p:reject,sp:reject,adkim:r,aspf:r,pct:100");
}

TEST(Evaluate, StrictAlignment) {
  const Input in =
      message("example.com", {"pass", "bounce.example.com"}, {{"pass", "mail.example.com"}});
  EXPECT_EQ(evaluate(in, found("v=DMARC1; p=quarantine; aspf=s"), org, 0).result, Result::kPass);
  EXPECT_EQ(evaluate(in, found("v=DMARC1; p=quarantine; adkim=s"), org, 0).result, Result::kPass);
  const Outcome o = evaluate(in, found("v=DMARC1; p=quarantine; adkim=s; aspf=s"), org, 0);
  EXPECT_EQ(o.result, Result::kFail);
  EXPECT_EQ(o.disposition, Policy::kQuarantine);
}

TEST(Evaluate, SubdomainPolicy) {
  const Input in = message("news.example.com", {"fail", "news.example.com"}, {});
  Outcome o = evaluate(in, found("v=DMARC1; p=reject; sp=none", true), org, 0);
  EXPECT_EQ(o.result, Result::kFail);
  EXPECT_EQ(o.policy, Policy::kNone);
  EXPECT_EQ(o.disposition, Policy::kNone);
  EXPECT_EQ(o.auth_results, "dmarc=fail (p=none dis=none) header.from=news.example.com");
  // Without sp, p covers subdomains.
  o = evaluate(in, found("v=DMARC1; p=reject", true), org, 0);
  EXPECT_EQ(o.disposition, Policy::kReject);
  // A record at the From domain itself is its p, whatever sp says.
  o = evaluate(in, found("v=DMARC1; p=reject; sp=none", false), org, 0);
  EXPECT_EQ(o.disposition, Policy::kReject);
}

TEST(Evaluate, PctSampling) {
  const Input in = message("example.com", {"fail", "example.com"}, {});
  const Discovered reject = found("v=DMARC1; p=reject; pct=30");
  for (int draw : {0, 29}) {
    const Outcome o = evaluate(in, reject, org, draw);
    EXPECT_EQ(o.disposition, Policy::kReject) << draw;
    EXPECT_FALSE(o.sampled_out);
  }
  for (int draw : {30, 99}) {
    const Outcome o = evaluate(in, reject, org, draw);
    EXPECT_EQ(o.disposition, Policy::kQuarantine) << draw;  // the next policy down
    EXPECT_TRUE(o.sampled_out);
    EXPECT_EQ(o.auth_results, "dmarc=fail (p=reject dis=quarantine) header.from=example.com");
  }
  EXPECT_EQ(evaluate(in, found("v=DMARC1; p=quarantine; pct=30"), org, 30).disposition,
            Policy::kNone);
  EXPECT_EQ(evaluate(in, found("v=DMARC1; p=quarantine; pct=0"), org, 0).disposition,
            Policy::kNone);
  EXPECT_EQ(evaluate(in, found("v=DMARC1; p=quarantine"), org, 99).disposition,
            Policy::kQuarantine);
}

TEST(Evaluate, NoPolicyOrErrors) {
  const Input in = message("example.com", {"fail", "example.com"}, {});
  Discovered d;
  d.status = Discovered::Status::kNone;
  Outcome o = evaluate(in, d, org, 0);
  EXPECT_EQ(o.result, Result::kNone);
  EXPECT_EQ(o.disposition, Policy::kNone);
  EXPECT_EQ(o.auth_results, "dmarc=none header.from=example.com");
  d.status = Discovered::Status::kTempError;
  EXPECT_EQ(evaluate(in, d, org, 0).auth_results, "dmarc=temperror header.from=example.com");
  d.status = Discovered::Status::kInvalid;
  EXPECT_EQ(evaluate(in, d, org, 0).auth_results, "dmarc=permerror header.from=example.com");
  // No usable From: permerror whatever the DNS said.
  Input no_from = in;
  no_from.from_domain.clear();
  o = evaluate(no_from, found("v=DMARC1; p=reject"), org, 0);
  EXPECT_EQ(o.result, Result::kPermError);
  EXPECT_EQ(o.disposition, Policy::kNone);
  EXPECT_EQ(o.auth_results, "dmarc=permerror");
}

TEST(Evaluate, LogRecordFieldsStayOnOneLine) {
  Input in = message("example.com", {"pass", "evil\r\nx y"}, {{"pass", "a,b:c"}});
  in.source_ip = "2001:db8::1";
  const Outcome o = evaluate(in, found("v=DMARC1; p=none"), org, 0);
  EXPECT_EQ(o.log_record.find_first_of("\r\n,"), o.log_record.find(",sp:"));
  EXPECT_NE(o.log_record.find(" ip=2001:db8::1 "), std::string::npos);
  EXPECT_NE(o.log_record.find(" spf_domain=evil??x?y "), std::string::npos);
  EXPECT_NE(o.log_record.find(" dkim=pass:a?b:c "), std::string::npos);
}

// The whole path for the cases of the issue: DNS answers to discovery,
// discovery to the evaluation.
TEST(Evaluate, EndToEnd) {
  const std::map<std::string, TxtLookup> dns = {
      {"_dmarc.example.com", ok({"v=DMARC1; p=reject; sp=quarantine; rua=mailto:r@example.com"})}};
  struct Case {
    std::string from;
    AuthResult spf;
    std::string want;
  } cases[] = {
      {"example.com",
       {"pass", "example.com"},
       "dmarc=pass (p=reject dis=none) header.from=example.com"},
      {"example.com",
       {"pass", "example.org"},
       "dmarc=fail (p=reject dis=reject) header.from=example.com"},
      {"sub.example.com",
       {"fail", "sub.example.com"},
       "dmarc=fail (p=quarantine dis=quarantine) header.from=sub.example.com"},
      {"example.org", {"fail", "example.org"}, "dmarc=none header.from=example.org"},
  };
  for (const Case& c : cases) {
    Discovered d;
    discover(c.from, dns, &d);
    EXPECT_EQ(evaluate(message(c.from, c.spf, {}), d, org, 0).auth_results, c.want);
  }
}

}  // namespace
}  // namespace ringmail::proto::dmarc
