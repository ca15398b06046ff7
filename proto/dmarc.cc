#include "proto/dmarc.h"

#include "proto/address.h"
#include "proto/ascii.h"

namespace ringmail::proto::dmarc {

namespace {

// Splits on `sep`; parts are trimmed.
std::vector<std::string_view> split(std::string_view s, char sep) {
  std::vector<std::string_view> out;
  while (true) {
    const size_t at = s.find(sep);
    out.push_back(trim_space(s.substr(0, at)));
    if (at == std::string_view::npos) return out;
    s.remove_prefix(at + 1);
  }
}

bool parse_policy(std::string_view v, Policy* out) {
  if (iequals(v, "none")) {
    *out = Policy::kNone;
  } else if (iequals(v, "quarantine")) {
    *out = Policy::kQuarantine;
  } else if (iequals(v, "reject")) {
    *out = Policy::kReject;
  } else {
    return false;
  }
  return true;
}

// Digits only, at most `max`.
bool parse_uint(std::string_view v, uint64_t max, uint64_t* out) {
  if (v.empty() || v.size() > 10) return false;
  uint64_t n = 0;
  for (char c : v) {
    if (!is_digit(c)) return false;
    n = n * 10 + static_cast<uint64_t>(c - '0');
  }
  if (n > max) return false;
  *out = n;
  return true;
}

// dmarc-uri (6.4): an absolute URI, optionally followed by "!" and a size
// with an optional unit. Only the shape is checked: a scheme, a colon,
// something after it, no whitespace.
bool valid_uri(std::string_view u) {
  const size_t bang = u.rfind('!');
  if (bang != std::string_view::npos) {
    std::string_view size = u.substr(bang + 1);
    if (!size.empty() && std::string_view("kmgtKMGT").find(size.back()) != std::string_view::npos)
      size.remove_suffix(1);
    uint64_t n = 0;
    if (!parse_uint(size, UINT32_MAX, &n)) return false;
    u = u.substr(0, bang);
  }
  const size_t colon = u.find(':');
  if (colon == 0 || colon == std::string_view::npos || colon + 1 == u.size() || !is_alpha(u[0]))
    return false;
  for (size_t i = 0; i < colon; ++i) {
    const char c = u[i];
    if (!is_alpha(c) && !is_digit(c) && c != '+' && c != '-' && c != '.') return false;
  }
  for (char c : u)
    if (static_cast<unsigned char>(c) <= ' ' || c == ',' || c == ';') return false;
  return true;
}

// A colon-separated list whose every entry passes `ok`, lower-cased.
template <typename Ok>
bool parse_colon_list(std::string_view v, Ok ok, std::string* out) {
  for (std::string_view e : split(v, ':'))
    if (e.empty() || !ok(e)) return false;
  std::string s;
  for (char c : v)
    if (!is_space(c)) s.push_back(c);
  *out = ascii_lower(s);
  return true;
}

bool parse_alignment(std::string_view v, bool* strict) {
  if (iequals(v, "r") || iequals(v, "s")) {
    *strict = iequals(v, "s");
    return true;
  }
  return false;
}

// The domain as compared: lower case, without a trailing dot.
std::string normalize(std::string_view d) {
  std::string s = ascii_lower(d);
  if (!s.empty() && s.back() == '.') s.pop_back();
  return s;
}

Policy next_lower(Policy p) { return p == Policy::kReject ? Policy::kQuarantine : Policy::kNone; }

// A log field's value: "-" when empty, bytes that could break the line or
// its separators as '?'.
std::string field(std::string_view v) {
  if (v.empty()) return "-";
  std::string out(v);
  for (char& c : out) {
    const bool ok = is_alpha(c) || is_digit(c) || c == '.' || c == '-' || c == '_' || c == '@' ||
                    c == ':' || c == '[' || c == ']' || c == '+';
    if (!ok) c = '?';
  }
  return out;
}

}  // namespace

const char* to_string(Policy p) {
  switch (p) {
    case Policy::kNone:
      return "none";
    case Policy::kQuarantine:
      return "quarantine";
    case Policy::kReject:
      return "reject";
  }
  return "none";
}

const char* to_string(Result r) {
  switch (r) {
    case Result::kNone:
      return "none";
    case Result::kPass:
      return "pass";
    case Result::kFail:
      return "fail";
    case Result::kTempError:
      return "temperror";
    case Result::kPermError:
      return "permerror";
  }
  return "none";
}

ParseResult parse_record(std::string_view txt, Record* out) {
  const std::vector<std::string_view> tags = split(txt, ';');
  Record r;
  bool have_p = false, p_ok = false, sp_seen = false, sp_ok = true;
  for (size_t i = 0; i < tags.size(); ++i) {
    const std::string_view tag = tags[i];
    const size_t eq = tag.find('=');
    const std::string_view name =
        eq == std::string_view::npos ? tag : trim_space(tag.substr(0, eq));
    const std::string_view value =
        eq == std::string_view::npos ? "" : trim_space(tag.substr(eq + 1));
    if (i == 0) {
      // v must come first and match exactly (6.3, 6.4).
      if (eq == std::string_view::npos || !iequals(name, "v") || value != "DMARC1")
        return ParseResult::kNotDmarc;
      continue;
    }
    if (iequals(name, "p")) {
      if (have_p) continue;  // the first of repeated tags counts
      have_p = true;
      p_ok = parse_policy(value, &r.p);
    } else if (iequals(name, "sp")) {
      if (sp_seen) continue;
      sp_seen = true;
      sp_ok = parse_policy(value, &r.sp);
    } else if (iequals(name, "adkim")) {
      (void)parse_alignment(value, &r.adkim_strict);
    } else if (iequals(name, "aspf")) {
      (void)parse_alignment(value, &r.aspf_strict);
    } else if (iequals(name, "pct")) {
      uint64_t n = 0;
      if (parse_uint(value, 100, &n)) r.pct = static_cast<int>(n);
    } else if (iequals(name, "ri")) {
      uint64_t n = 0;
      if (parse_uint(value, UINT32_MAX, &n)) r.ri = static_cast<uint32_t>(n);
    } else if (iequals(name, "rua") || iequals(name, "ruf")) {
      auto& uris = iequals(name, "rua") ? r.rua : r.ruf;
      if (!uris.empty()) continue;
      for (std::string_view u : split(value, ','))
        if (valid_uri(u)) uris.emplace_back(u);
    } else if (iequals(name, "fo")) {
      (void)parse_colon_list(
          value,
          [](std::string_view e) {
            return e.size() == 1 && std::string_view("01dsDS").find(e[0]) != std::string_view::npos;
          },
          &r.fo);
    } else if (iequals(name, "rf")) {
      (void)parse_colon_list(
          value,
          [](std::string_view e) {
            for (char c : e)
              if (!is_alpha(c) && !is_digit(c) && c != '-') return false;
            return true;
          },
          &r.rf);
    }
    // Other tags are ignored (6.3).
  }
  if (!sp_seen || !sp_ok) r.sp = r.p;
  if (!have_p || !p_ok || !sp_ok) {
    if (r.rua.empty()) return ParseResult::kInvalid;
    r.p = r.sp = Policy::kNone;  // 6.6.3 step 6: as if p=none had been published
    r.policy_defaulted = true;
  }
  *out = std::move(r);
  return ParseResult::kOk;
}

PolicyDiscovery::PolicyDiscovery(std::string_view from_domain, const OrgDomain& org_domain)
    : from_domain_(normalize(from_domain)) {
  if (from_domain_.empty()) return;  // nothing to look up: result() says none
  org_domain_ = normalize(org_domain(from_domain_));
  next_query_ = "_dmarc." + from_domain_;
}

void PolicyDiscovery::answer(const TxtLookup& lookup) {
  if (next_query_.empty()) return;
  const bool at_org = next_query_ != "_dmarc." + from_domain_;
  const std::string domain = next_query_.substr(7);
  next_query_.clear();
  if (lookup.status == DnsStatus::kTempFail) {
    result_.status = Discovered::Status::kTempError;
    return;
  }
  // Records that are not DMARC's are discarded (6.6.3 steps 2 and 4).
  size_t count = 0;
  Record record;
  ParseResult parsed = ParseResult::kNotDmarc;
  if (lookup.status == DnsStatus::kOk) {
    for (const std::string& txt : lookup.records) {
      Record r;
      const ParseResult p = parse_record(txt, &r);
      if (p == ParseResult::kNotDmarc) continue;
      ++count;
      parsed = p;
      record = std::move(r);
    }
  }
  if (count == 0 && !at_org && !org_domain_.empty() && org_domain_ != from_domain_) {
    next_query_ = "_dmarc." + org_domain_;  // step 3
    return;
  }
  if (count != 1) {  // step 5: none, or more than one
    result_.status = Discovered::Status::kNone;
    return;
  }
  result_.domain = domain;
  if (parsed == ParseResult::kInvalid) {
    result_.status = Discovered::Status::kInvalid;
    return;
  }
  result_.status = Discovered::Status::kFound;
  result_.record = std::move(record);
  result_.subdomain = at_org;
}

bool from_domain(const std::vector<dkim::HeaderField>& fields, std::string* domain) {
  const dkim::HeaderField* from = nullptr;
  for (const auto& f : fields) {
    if (!iequals(trim_space(f.name), "from")) continue;
    if (from != nullptr) return false;  // two From fields
    from = &f;
  }
  if (from == nullptr) return false;

  // The mailbox list (RFC 5322 3.4): comments dropped, quoted strings kept
  // whole, the address in angle brackets when there is one, groups'
  // display names dropped. Only each address's domain matters.
  std::string found;
  size_t mailboxes = 0;
  std::string token, angle;
  bool in_angle = false, have_angle = false;
  auto end_mailbox = [&]() {
    const std::string_view addr = trim_space(have_angle ? angle : token);
    token.clear();
    angle.clear();
    have_angle = false;
    if (addr.empty()) return true;  // an empty list element (obs-mbox-list)
    const size_t at = addr.rfind('@');
    if (at == std::string_view::npos || at == 0) return false;
    const std::string_view d = trim_space(addr.substr(at + 1));
    if (d.empty() || d.front() == '[' || !is_valid_domain(d)) return false;
    const std::string norm = ascii_lower(d);
    if (mailboxes++ > 0 && norm != found) return false;  // two domains
    found = norm;
    return true;
  };
  const std::string_view v = from->value;
  for (size_t i = 0; i < v.size(); ++i) {
    const char c = v[i];
    std::string& cur = in_angle ? angle : token;
    if (c == '(') {  // a comment, maybe nested
      int depth = 0;
      for (; i < v.size(); ++i) {
        if (v[i] == '\\') {
          ++i;
        } else if (v[i] == '(') {
          ++depth;
        } else if (v[i] == ')' && --depth == 0) {
          break;
        }
      }
      if (depth != 0) return false;
      cur.push_back(' ');
    } else if (c == '"') {
      cur.push_back(c);
      for (++i; i < v.size() && v[i] != '"'; ++i) {
        if (v[i] == '\\' && i + 1 < v.size()) cur.push_back(v[i++]);
        cur.push_back(v[i]);
      }
      if (i == v.size()) return false;  // unterminated
      cur.push_back('"');
    } else if (c == '<' && !in_angle) {
      if (have_angle) return false;
      in_angle = true;
    } else if (c == '>' && in_angle) {
      in_angle = false;
      have_angle = true;
    } else if (in_angle) {
      angle.push_back(c);
    } else if (c == ',' || c == ';') {
      if (!end_mailbox()) return false;
    } else if (c == ':') {
      token.clear();  // a group's display name
    } else {
      token.push_back(c);
    }
  }
  if (in_angle || !end_mailbox() || mailboxes == 0) return false;
  *domain = found;
  return true;
}

bool aligned(std::string_view from_domain, std::string_view other, bool strict,
             const OrgDomain& org_domain) {
  const std::string a = normalize(from_domain), b = normalize(other);
  if (a.empty() || b.empty()) return false;
  if (a == b) return true;
  return !strict && normalize(org_domain(a)) == normalize(org_domain(b));
}

Outcome evaluate(const Input& in, const Discovered& policy, const OrgDomain& org_domain, int draw) {
  Outcome out;
  out.discovered = policy;
  if (in.from_domain.empty()) {
    out.result = Result::kPermError;
  } else {
    switch (policy.status) {
      case Discovered::Status::kNone:
        out.result = Result::kNone;
        break;
      case Discovered::Status::kInvalid:
        out.result = Result::kPermError;
        break;
      case Discovered::Status::kTempError:
        out.result = Result::kTempError;
        break;
      case Discovered::Status::kFound: {
        const Record& r = policy.record;
        out.spf_aligned = iequals(in.spf.result, "pass") &&
                          aligned(in.from_domain, in.spf.domain, r.aspf_strict, org_domain);
        for (const AuthResult& d : in.dkim)
          out.dkim_aligned =
              out.dkim_aligned || (iequals(d.result, "pass") &&
                                   aligned(in.from_domain, d.domain, r.adkim_strict, org_domain));
        out.result = out.spf_aligned || out.dkim_aligned ? Result::kPass : Result::kFail;
        out.have_policy = true;
        out.policy = policy.subdomain ? r.sp : r.p;
        if (out.result == Result::kFail) {
          out.sampled_out = draw >= r.pct && out.policy != Policy::kNone;
          out.disposition = out.sampled_out ? next_lower(out.policy) : out.policy;
        }
        break;
      }
    }
  }
  out.auth_results = std::string("dmarc=") + to_string(out.result);
  if (out.have_policy) {
    out.auth_results +=
        std::string(" (p=") + to_string(out.policy) + " dis=" + to_string(out.disposition) + ")";
  }
  if (!in.from_domain.empty()) out.auth_results += " header.from=" + field(in.from_domain);
  out.log_record = log_record(in, out);
  return out;
}

std::string log_record(const Input& in, const Outcome& out) {
  std::string dkim;
  for (const AuthResult& d : in.dkim) {
    if (!dkim.empty()) dkim += ',';
    dkim += field(d.result) + ":" + field(d.domain);
  }
  std::string s =
      "dmarc ip=" + field(in.source_ip) + " header_from=" + field(in.from_domain) +
      " envelope_from=" + field(in.envelope_from) + " spf=" + field(in.spf.result) +
      " spf_domain=" + field(in.spf.domain) + " dkim=" + (dkim.empty() ? "-" : dkim) +
      " result=" + to_string(out.result) + " spf_aligned=" + (out.spf_aligned ? "1" : "0") +
      " dkim_aligned=" + (out.dkim_aligned ? "1" : "0") + " policy=" + to_string(out.policy) +
      " disposition=" + to_string(out.disposition) +
      " sampled_out=" + (out.sampled_out ? "1" : "0") +
      " published_domain=" + field(out.discovered.domain);
  if (out.have_policy) {
    const Record& r = out.discovered.record;
    s += std::string(" published=p:") + to_string(r.p) + ",sp:" + to_string(r.sp) +
         ",adkim:" + (r.adkim_strict ? "s" : "r") + ",aspf:" + (r.aspf_strict ? "s" : "r") +
         ",pct:" + std::to_string(r.pct);
  } else {
    s += " published=-";
  }
  return s;
}

}  // namespace ringmail::proto::dmarc
