// libFuzzer target: SPF evaluation (proto/spf.cc) over a DNS made from the
// input. Lines: client IP, MAIL FROM, HELO, then records, each
// "<type><name> <value>" with type T(XT) A Q(AAAA) M(X) P(TR), or
// "<type><name> !<status>" with status n(odata) x(nxdomain) s(ervfail)
// t(imeout). A name with no line does not exist. The evaluation must end
// within the limits' bound, never ask the same query twice, and give
// header and reply texts without line breaks or other controls.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "proto/spf.h"

namespace {

using namespace ringmail::proto::spf;

struct Line {
  QueryType type;
  std::string name;
  std::string value;
};

bool type_of(char c, QueryType* t) {
  switch (c) {
    case 'T':
      *t = QueryType::kTxt;
      return true;
    case 'A':
      *t = QueryType::kA;
      return true;
    case 'Q':
      *t = QueryType::kAaaa;
      return true;
    case 'M':
      *t = QueryType::kMx;
      return true;
    case 'P':
      *t = QueryType::kPtr;
      return true;
    default:
      return false;
  }
}

Answer resolve(const std::vector<Line>& zone, const Query& q) {
  Answer a{DnsStatus::kNxDomain, {}};
  for (const auto& l : zone) {
    if (l.type != q.type || l.name != q.name) continue;
    if (l.value.size() == 2 && l.value[0] == '!') {
      switch (l.value[1]) {
        case 'n':
          return {DnsStatus::kNoData, {}};
        case 's':
          return {DnsStatus::kTempFail, {}};
        case 't':
          return {DnsStatus::kTempFail, {}};
        default:
          return {DnsStatus::kNxDomain, {}};
      }
    }
    a.status = DnsStatus::kOk;
    a.records.push_back(l.value);
  }
  return a;
}

void check_header_text(const std::string& s) {
  for (char c : s) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) std::abort();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  std::vector<std::string_view> lines;
  while (!in.empty()) {
    const size_t nl = in.find('\n');
    lines.push_back(in.substr(0, nl));
    in = nl == std::string_view::npos ? std::string_view() : in.substr(nl + 1);
  }
  if (lines.size() < 3) return 0;
  Request req;
  req.client_ip = lines[0];
  req.mail_from = lines[1];
  req.helo = lines[2];
  req.receiver = "mx.example.net";
  req.identity = req.mail_from == "-" ? Identity::kHelo : Identity::kMailFrom;
  std::vector<Line> zone;
  for (size_t i = 3; i < lines.size(); ++i) {
    Line l;
    const std::string_view s = lines[i];
    const size_t sp = s.find(' ');
    if (s.empty() || !type_of(s[0], &l.type) || sp == std::string_view::npos) continue;
    l.name = s.substr(1, sp - 1);
    l.value = s.substr(sp + 1);
    zone.push_back(std::move(l));
  }
  Dns dns;
  Query q;
  std::optional<Verdict> v;
  size_t rounds = 0;
  while (!(v = evaluate(req, dns, &q))) {
    if (dns.find(q.type, q.name) != nullptr) std::abort();  // asked again
    if (++rounds > 1000) std::abort();  // the limits bound the queries far below this
    dns.add(q, resolve(zone, q));
  }
  if (v->result != Result::kFail && !v->explanation.empty()) std::abort();
  check_header_text(v->explanation);  // it goes into an SMTP reply
  check_header_text(received_spf(req, *v));
  check_header_text(auth_results(req, *v));
  return 0;
}
