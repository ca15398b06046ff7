// SPF evaluation over a scripted DNS: the macro examples of RFC 7208 7.4
// (seen as the names the evaluator asks for), the limits of 4.6.4, the
// asynchronous driving contract, and the header texts. The openspf suite
// runs in tests/spf_rfc7208_test.cc.
#include "proto/spf.h"

#include <gtest/gtest.h>

#include <map>

namespace ringmail::proto::spf {
namespace {

// A zone: (type, name) -> answer; what is not in it does not exist.
class Zone {
 public:
  Zone& txt(const std::string& name, std::vector<std::string> records) {
    return set(QueryType::kTxt, name, std::move(records));
  }
  Zone& a(const std::string& name, std::vector<std::string> addresses) {
    return set(QueryType::kA, name, std::move(addresses));
  }
  Zone& set(QueryType t, const std::string& name, std::vector<std::string> records) {
    answers_[{t, name}] = Answer{DnsStatus::kOk, std::move(records)};
    return *this;
  }
  Zone& fail(QueryType t, const std::string& name, DnsStatus status) {
    answers_[{t, name}] = Answer{status, {}};
    return *this;
  }
  Answer resolve(const Query& q) const {
    const auto it = answers_.find({q.type, q.name});
    return it != answers_.end() ? it->second : Answer{DnsStatus::kNxDomain, {}};
  }

 private:
  std::map<std::pair<QueryType, std::string>, Answer> answers_;
};

struct Trace {
  Verdict verdict;
  std::vector<Query> queries;  // in the order they were asked
};

// Drives evaluate() the way the daemon does: one query per round.
Trace drive(const Request& req, const Zone& zone) {
  Trace r;
  Dns dns;
  Query q;
  std::optional<Verdict> v;
  while (!(v = evaluate(req, dns, &q))) {
    EXPECT_EQ(dns.find(q.type, q.name), nullptr) << "asked twice: " << q.name;
    if (r.queries.size() > 300) {
      ADD_FAILURE() << "no verdict after 300 queries";
      return r;
    }
    r.queries.push_back(q);
    dns.add(q, zone.resolve(q));
  }
  r.verdict = *v;
  return r;
}

Request request(const std::string& ip = "192.0.2.3",
                const std::string& mail_from = "strong-bad@email.example.com") {
  Request req;
  req.client_ip = ip;
  req.mail_from = mail_from;
  req.helo = "mx.example.org";
  req.receiver = "mx.example.net";
  req.now_s = 1700000000;
  return req;
}

// The name "exists:<macro>" looks up: the macro's expansion (7.4).
std::string expanded(const std::string& macro, const std::string& ip = "192.0.2.3") {
  Zone zone;
  zone.txt("email.example.com", {"v=spf1 exists:" + macro + " -all"});
  const Trace r = drive(request(ip), zone);
  EXPECT_EQ(r.queries.size(), 2u) << macro;
  if (r.queries.size() < 2) return "";
  EXPECT_EQ(r.queries[1].type, QueryType::kA);
  return r.queries[1].name;
}

TEST(SpfMacros, Rfc7208Section7_4Examples) {
  EXPECT_EQ(expanded("%{s}"), "strong-bad@email.example.com");
  EXPECT_EQ(expanded("%{o}"), "email.example.com");
  EXPECT_EQ(expanded("%{d}"), "email.example.com");
  EXPECT_EQ(expanded("%{d4}"), "email.example.com");
  EXPECT_EQ(expanded("%{d3}"), "email.example.com");
  EXPECT_EQ(expanded("%{d2}"), "example.com");
  EXPECT_EQ(expanded("%{d1}"), "com");
  EXPECT_EQ(expanded("%{dr}"), "com.example.email");
  EXPECT_EQ(expanded("%{d2r}"), "example.email");
  EXPECT_EQ(expanded("%{l}"), "strong-bad");
  EXPECT_EQ(expanded("%{l-}"), "strong.bad");
  EXPECT_EQ(expanded("%{lr}"), "strong-bad");
  EXPECT_EQ(expanded("%{lr-}"), "bad.strong");
  EXPECT_EQ(expanded("%{l1r-}"), "strong");
  EXPECT_EQ(expanded("%{ir}.%{v}._spf.%{d2}"), "3.2.0.192.in-addr._spf.example.com");
  EXPECT_EQ(expanded("%{lr-}.lp._spf.%{d2}"), "bad.strong.lp._spf.example.com");
  EXPECT_EQ(expanded("%{lr-}.lp.%{ir}.%{v}._spf.%{d2}"),
            "bad.strong.lp.3.2.0.192.in-addr._spf.example.com");
  EXPECT_EQ(expanded("%{ir}.%{v}.%{l1r-}.lp._spf.%{d2}"),
            "3.2.0.192.in-addr.strong.lp._spf.example.com");
  EXPECT_EQ(expanded("%{d2}.trusted-domains.example.net"),
            "example.com.trusted-domains.example.net");
  EXPECT_EQ(expanded("%{ir}.%{v}._spf.%{d2}", "2001:db8::cb01"),
            "1.0.b.c.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6._spf.example.com");
}

TEST(SpfMacros, EscapesDelimitersAndHelo) {
  EXPECT_EQ(expanded("%%%_%-x.example.com"), "% %20x.example.com");
  EXPECT_EQ(expanded("%{h}"), "mx.example.org");
  EXPECT_EQ(expanded("%{d999}"), "email.example.com");  // more parts than there are
  EXPECT_EQ(expanded("%{L}.example.com"), "strong-bad.example.com");
  EXPECT_EQ(expanded("%{S}"), "strong-bad%40email.example.com");  // upper case: URL-escaped
  EXPECT_EQ(expanded("%{i}", "::ffff:192.0.2.3"), "192.0.2.3");   // IPv4-mapped is IPv4
}

TEST(SpfMacros, SyntaxErrorsArePermerrors) {
  for (const char* bad :
       {"%{d0}", "%{x}", "%{c}", "%{r}", "%{t}", "%{d", "%d", "foo%", "%{d2r!}"}) {
    Zone zone;
    zone.txt("email.example.com", {std::string("v=spf1 exists:") + bad + ".example.com -all"});
    const Trace r = drive(request(), zone);
    EXPECT_EQ(r.verdict.result, Result::kPermerror) << bad;
    EXPECT_EQ(r.queries.size(), 1u) << bad;  // the whole record is checked first
  }
}

TEST(SpfMacros, ExplanationMacros) {
  Zone zone;
  zone.txt("email.example.com", {"v=spf1 -all exp=why.%{d}"})
      .txt("why.email.example.com", {"%{c} via %{r} at %{t}: see http://x/?s=%{S}"});
  const Trace r = drive(request("2001:DB8::CB01"), zone);
  EXPECT_EQ(r.verdict.result, Result::kFail);
  EXPECT_EQ(r.verdict.explanation,
            "2001:db8::cb01 via mx.example.net at 1700000000: see "
            "http://x/?s=strong-bad%40email.example.com");
  EXPECT_EQ(r.verdict.mechanism, "-all");
}

// The explanation goes into an SMTP reply: a sender's control bytes must
// not reach it through a macro.
TEST(SpfMacros, ExplanationWithControlBytesIsDropped) {
  Zone zone;
  zone.txt("email.example.com", {"v=spf1 -all exp=why.%{d}"})
      .txt("why.email.example.com", {"%{l} denied"});
  EXPECT_EQ(drive(request("192.0.2.3", "ok@email.example.com"), zone).verdict.explanation,
            "ok denied");
  const Verdict v = drive(request("192.0.2.3", "a\r\nb@email.example.com"), zone).verdict;
  EXPECT_EQ(v.result, Result::kFail);
  EXPECT_EQ(v.explanation, "");
}

TEST(SpfMacros, ValidatedNamePrefersTheDomain) {
  Zone zone;
  zone.txt("email.example.com", {"v=spf1 exists:%{p}.x.example.com -all"})
      .set(QueryType::kPtr, "3.2.0.192.in-addr.arpa",
           {"other.example.net", "bogus.email.example.com", "mx.email.example.com"})
      .a("other.example.net", {"192.0.2.3"})
      .a("bogus.email.example.com", {"192.0.2.99"})  // does not point back: not validated
      .a("mx.email.example.com", {"192.0.2.3"});
  const Trace r = drive(request(), zone);
  ASSERT_FALSE(r.queries.empty());
  EXPECT_EQ(r.queries.back().name, "mx.email.example.com.x.example.com");
}

TEST(SpfLimits, TenLookupTermsAndNoMore) {
  auto record = [](int terms) {
    std::string r = "v=spf1";
    for (int i = 0; i < terms; ++i) r += " a:h" + std::to_string(i) + ".example.com";
    return r + " ip4:192.0.2.3";
  };
  Zone ten, eleven;
  ten.txt("email.example.com", {record(10)});
  eleven.txt("email.example.com", {record(11)});
  for (int i = 0; i < 11; ++i) {
    ten.a("h" + std::to_string(i) + ".example.com", {"192.0.2.200"});
    eleven.a("h" + std::to_string(i) + ".example.com", {"192.0.2.200"});
  }
  EXPECT_EQ(drive(request(), ten).verdict.result, Result::kPass);
  const Trace r = drive(request(), eleven);
  EXPECT_EQ(r.verdict.result, Result::kPermerror);
  EXPECT_EQ(r.queries.size(), 11u);  // the 11th term asks nothing
  EXPECT_NE(r.verdict.problem.find("10 DNS lookups"), std::string::npos);
}

TEST(SpfLimits, RedirectAndIncludeCount) {
  Zone zone;  // a loop through redirect: stopped by the lookup limit
  zone.txt("email.example.com", {"v=spf1 include:loop.example.com"})
      .txt("loop.example.com", {"v=spf1 redirect=loop.example.com"});
  EXPECT_EQ(drive(request(), zone).verdict.result, Result::kPermerror);
}

TEST(SpfLimits, TwoVoidLookupsAndNoMore) {
  Zone two, three;
  two.txt("email.example.com", {"v=spf1 a:n1.example.com mx:n2.example.com ?all"});
  three.txt("email.example.com",
            {"v=spf1 a:n1.example.com mx:n2.example.com exists:n3.example.com ?all"});
  three.fail(QueryType::kA, "n3.example.com", DnsStatus::kNoData);  // no data is void too
  EXPECT_EQ(drive(request(), two).verdict.result, Result::kNeutral);
  EXPECT_EQ(drive(request(), three).verdict.result, Result::kPermerror);
}

TEST(SpfLimits, TenMxNamesAndNoMore) {
  for (size_t names : {10u, 11u}) {
    Zone zone;
    zone.txt("email.example.com", {"v=spf1 mx -all"});
    std::vector<std::string> mx;
    for (size_t i = 0; i < names; ++i) {
      mx.push_back("mx" + std::to_string(i) + ".example.com");
      zone.a(mx.back(), {i == 9 ? "192.0.2.3" : "192.0.2.100"});
    }
    zone.set(QueryType::kMx, "email.example.com", mx);
    EXPECT_EQ(drive(request(), zone).verdict.result,
              names == 10 ? Result::kPass : Result::kPermerror);
  }
}

TEST(SpfLimits, PtrNamesBeyondTenAreIgnored) {
  for (size_t names : {10u, 11u}) {
    Zone zone;
    zone.txt("email.example.com", {"v=spf1 ptr -all"});
    std::vector<std::string> ptr;
    for (size_t i = 0; i < names; ++i)
      ptr.push_back("h" + std::to_string(i) + ".email.example.com");
    zone.a(ptr.back(), {"192.0.2.3"});  // only the last one validates
    zone.set(QueryType::kPtr, "3.2.0.192.in-addr.arpa", ptr);
    EXPECT_EQ(drive(request(), zone).verdict.result, names == 10 ? Result::kPass : Result::kFail);
  }
}

TEST(SpfEvaluate, OneQueryAtATimeInOrder) {
  Zone zone;
  zone.txt("email.example.com",
           {"not spf", "v=spf1 ip4:198.51.100.0/24 include:_spf.example.com ~all"})
      .txt("_spf.example.com", {"v=spf1 a:out.example.com/24 -all"})
      .a("out.example.com", {"192.0.2.77"});
  const Trace r = drive(request(), zone);
  EXPECT_EQ(r.verdict.result, Result::kPass);
  EXPECT_EQ(r.verdict.mechanism, "include:_spf.example.com");
  ASSERT_EQ(r.queries.size(), 3u);
  EXPECT_EQ(r.queries[0], (Query{QueryType::kTxt, "email.example.com"}));
  EXPECT_EQ(r.queries[1], (Query{QueryType::kTxt, "_spf.example.com"}));
  EXPECT_EQ(r.queries[2], (Query{QueryType::kA, "out.example.com"}));
}

TEST(SpfEvaluate, DnsFailuresAndMissingRecords) {
  Zone zone;
  zone.fail(QueryType::kTxt, "email.example.com", DnsStatus::kTempFail);
  EXPECT_EQ(drive(request(), zone).verdict.result, Result::kTemperror);
  EXPECT_EQ(drive(request(), Zone()).verdict.result, Result::kNone);
  Zone two;
  two.txt("email.example.com", {"v=spf1 -all", "v=spf1 +all"});
  EXPECT_EQ(drive(request(), two).verdict.result, Result::kPermerror);
}

TEST(SpfEvaluate, HeloIdentityAndNullSender) {
  Zone zone;
  zone.txt("mx.example.org", {"v=spf1 exists:%{l}.%{o}.example.com -all"});
  Request helo = request();
  helo.identity = Identity::kHelo;
  const Trace r = drive(helo, zone);
  ASSERT_EQ(r.queries.size(), 2u);
  EXPECT_EQ(r.queries[1].name, "postmaster.mx.example.org.example.com");
  EXPECT_EQ(r.verdict.sender, "postmaster@mx.example.org");
  // MAIL FROM:<> checks the same.
  EXPECT_EQ(drive(request("192.0.2.3", ""), zone).queries, r.queries);
  EXPECT_EQ(drive(request("192.0.2.3", "x@y"), zone).verdict.result, Result::kNone);  // one label
}

TEST(SpfEvaluate, DualCidrAndMappedAddresses) {
  Zone zone;
  zone.txt("email.example.com", {"v=spf1 a/24//64 -all"})
      .a("email.example.com", {"192.0.2.200"})
      .set(QueryType::kAaaa, "email.example.com", {"2001:db8:0:0:ffff::1"});
  EXPECT_EQ(drive(request("192.0.2.3"), zone).verdict.result, Result::kPass);
  EXPECT_EQ(drive(request("::ffff:192.0.2.3"), zone).verdict.result, Result::kPass);
  EXPECT_EQ(drive(request("192.0.3.3"), zone).verdict.result, Result::kFail);
  EXPECT_EQ(drive(request("2001:db8::1"), zone).verdict.result, Result::kPass);
  EXPECT_EQ(drive(request("2001:db8:0:1::1"), zone).verdict.result, Result::kFail);
}

TEST(SpfText, ReceivedSpfAndAuthenticationResults) {
  Zone zone;
  zone.txt("email.example.com", {"v=spf1 ip4:192.0.2.0/24 -all"});
  const Request req = request();
  const Verdict v = drive(req, zone).verdict;
  EXPECT_EQ(
      received_spf(req, v),
      "pass (mx.example.net: domain of strong-bad@email.example.com designates 192.0.2.3 as "
      "permitted sender) client-ip=192.0.2.3; envelope-from=\"strong-bad@email.example.com\"; "
      "helo=mx.example.org; receiver=mx.example.net; identity=mailfrom; "
      "mechanism=\"ip4:192.0.2.0/24\"");
  EXPECT_EQ(auth_results(req, v), "spf=pass smtp.mailfrom=strong-bad@email.example.com");

  Zone broken;
  broken.txt("email.example.com", {"v=spf1 a:(x) -all"});
  Request helo = request("2001:db8::1");
  helo.identity = Identity::kHelo;
  helo.helo = "email.example.com";
  const Verdict e = drive(helo, broken).verdict;
  EXPECT_EQ(e.result, Result::kPermerror);
  EXPECT_EQ(received_spf(helo, e),
            "permerror (mx.example.net: permanent error in the SPF policy of "
            "postmaster@email.example.com: syntax error in \"a:\\(x\\)\" \\(SPF record of "
            "email.example.com\\)) client-ip=\"2001:db8::1\"; "
            "envelope-from=\"strong-bad@email.example.com\"; helo=email.example.com; "
            "receiver=mx.example.net; identity=helo; "
            "problem=\"syntax error in \\\"a:(x)\\\" (SPF record of email.example.com)\"");
  EXPECT_EQ(auth_results(helo, e), "spf=permerror smtp.helo=email.example.com");
  Zone neutral;
  neutral.txt("email.example.com", {"v=spf1 ip4:198.51.100.1"});
  const Verdict n = drive(req, neutral).verdict;
  EXPECT_EQ(received_spf(req, n),
            "neutral (mx.example.net: 192.0.2.3 is neither permitted nor denied by domain of "
            "strong-bad@email.example.com) client-ip=192.0.2.3; "
            "envelope-from=\"strong-bad@email.example.com\"; helo=mx.example.org; "
            "receiver=mx.example.net; identity=mailfrom; mechanism=default");
  Request odd = request("192.0.2.3", "\"a b\"@email.example.com");
  EXPECT_EQ(auth_results(odd, drive(odd, zone).verdict),
            "spf=pass smtp.mailfrom=\"\\\"a b\\\"@email.example.com\"");
}

}  // namespace
}  // namespace ringmail::proto::spf
