// libFuzzer target: DMARC (proto/dmarc.cc). The input is a message header
// and, after its empty line, TXT records one a line. Records parse the same
// twice and within their ranges; discovery asks at most two _dmarc names;
// a From domain found is a valid, lower-case domain; the evaluation's
// Authentication-Results part and log record stay on one line, and its
// disposition is never stricter than the policy.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "proto/address.h"
#include "proto/dmarc.h"

namespace {

using namespace ringmail::proto;

// The last two labels: the shape of an organizational domain.
std::string org(std::string_view d) {
  const size_t last = d.rfind('.');
  if (last == std::string_view::npos || last == 0) return std::string(d);
  const size_t before = d.rfind('.', last - 1);
  return std::string(before == std::string_view::npos ? d : d.substr(before + 1));
}

bool one_line(const std::string& s) { return s.find_first_of("\r\n") == std::string::npos; }

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  size_t body = 0;
  const auto fields = dkim::split_header(in, &body);

  dmarc::TxtLookup answer{DnsStatus::kOk, {}};
  for (std::string_view rest = in.substr(body); !rest.empty();) {
    const size_t nl = rest.find('\n');
    answer.records.emplace_back(rest.substr(0, nl));
    rest.remove_prefix(nl == std::string_view::npos ? rest.size() : nl + 1);
  }
  for (const std::string& txt : answer.records) {
    dmarc::Record a, b;
    const auto ra = dmarc::parse_record(txt, &a);
    if (dmarc::parse_record(txt, &b) != ra) std::abort();
    if (ra == dmarc::ParseResult::kOk &&
        (a.pct < 0 || a.pct > 100 || a.rua != b.rua || a.fo.empty() || a.rf.empty()))
      std::abort();
  }

  std::string from;
  const bool have_from = dmarc::from_domain(fields, &from);
  if (have_from && (!is_valid_domain(from) || ascii_lower(from) != from)) std::abort();

  dmarc::PolicyDiscovery discovery(have_from ? from : "example.com", org);
  int queries = 0;
  while (!discovery.next_query().empty()) {
    if (++queries > 2 || !discovery.next_query().starts_with("_dmarc.")) std::abort();
    discovery.answer(answer);
  }

  dmarc::Input input;
  input.from_domain = have_from ? from : "";
  input.source_ip = std::string(in.substr(0, 16));
  input.spf = {"pass", std::string(in.substr(size / 2, 20))};
  input.dkim = {{"pass", std::string(in.substr(size / 3, 20))}, {"fail", ""}};
  const int draw = size > 0 ? data[0] % 100 : 0;
  const dmarc::Outcome out = dmarc::evaluate(input, discovery.result(), org, draw);
  if (!one_line(out.auth_results) || !one_line(out.log_record)) std::abort();
  if (out.disposition > out.policy) std::abort();
  if (out.result == dmarc::Result::kPass && out.disposition != dmarc::Policy::kNone) std::abort();
  if (out.result != dmarc::Result::kFail && out.sampled_out) std::abort();
  return 0;
}
