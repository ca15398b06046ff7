#include "proto/spf.h"

#include <algorithm>
#include <cstring>

#include "proto/address.h"
#include "proto/ascii.h"
#include "proto/ip.h"

namespace ringmail::proto::spf {

namespace {

// RFC 7208 4.6.4.
constexpr int kDnsTermsMax = 10;     // include, a, mx, ptr, exists, redirect
constexpr int kVoidLookupsMax = 2;   // terms whose query found nothing
constexpr size_t kMxNamesMax = 10;   // more is a permerror
constexpr size_t kPtrNamesMax = 10;  // more are ignored
// RFC 7208 7.3: expanded names are cut from the left to this length.
constexpr size_t kNameBytesMax = 253;
constexpr size_t kLabelBytesMax = 63;
constexpr unsigned kMacroPartsMax = 1000;  // more parts than a name can have

std::string canonical_name(std::string_view name) {
  if (!name.empty() && name.back() == '.') name.remove_suffix(1);
  return ascii_lower(name);
}

// Labels of 1 to 63 bytes, 253 in all (RFC 1035 2.3.4); `name` canonical.
bool valid_dns_name(std::string_view name) {
  if (name.empty() || name.size() > kNameBytesMax) return false;
  size_t start = 0;
  while (true) {
    const size_t dot = name.find('.', start);
    const size_t len = (dot == std::string_view::npos ? name.size() : dot) - start;
    if (len == 0 || len > kLabelBytesMax) return false;
    if (dot == std::string_view::npos) return true;
    start = dot + 1;
  }
}

// RFC 7208 4.3: the first <domain> must also have two labels or more and
// not be an address literal; otherwise the result is none.
bool valid_initial_domain(std::string_view domain) {
  const std::string name = canonical_name(domain);
  return valid_dns_name(name) && name.find('.') != std::string::npos && name[0] != '[';
}

// --- Macros (RFC 7208 7) ---

bool is_macro_literal(char c, bool exp_text) {
  return (c >= 0x21 && c <= 0x7e && c != '%') || (exp_text && c == ' ');
}

// One item of a macro-string: a run of literal bytes (or the expansion of
// "%%", "%_", "%-"), or a macro "%{...}".
struct MacroItem {
  std::string_view literal;  // empty for a macro
  char letter = 0;           // lower case; 0 for a literal
  bool url_escape = false;   // the letter was upper case (7.3)
  unsigned keep_parts = 0;   // the DIGIT transformer; 0 keeps all
  bool reverse = false;
  std::string_view delimiters;   // empty means "."
  bool is_macro_expand = false;  // "%..." of any kind (a domain-end)
};

// Reads the item at s[*pos] and moves *pos past it. False on a syntax
// error. `exp_text`: explanation text, where c, r, t and spaces are allowed.
bool next_macro_item(std::string_view s, size_t* pos, bool exp_text, MacroItem* m) {
  *m = {};
  size_t i = *pos;
  if (s[i] != '%') {
    size_t j = i;
    while (j < s.size() && is_macro_literal(s[j], exp_text)) ++j;
    if (j == i) return false;
    m->literal = s.substr(i, j - i);
    *pos = j;
    return true;
  }
  m->is_macro_expand = true;
  if (i + 1 >= s.size()) return false;
  switch (s[i + 1]) {
    case '%':
      m->literal = "%";
      *pos = i + 2;
      return true;
    case '_':
      m->literal = " ";
      *pos = i + 2;
      return true;
    case '-':
      m->literal = "%20";
      *pos = i + 2;
      return true;
    case '{':
      break;
    default:
      return false;
  }
  i += 2;
  if (i >= s.size()) return false;
  const char letter = to_lower(s[i]);
  if (letter == 0 || !std::strchr(exp_text ? "slodipvhcrt" : "slodipvh", letter)) return false;
  m->letter = letter;
  m->url_escape = s[i] != letter;
  ++i;
  size_t digits = 0;
  while (i < s.size() && is_digit(s[i])) {
    m->keep_parts =
        std::min(kMacroPartsMax, m->keep_parts * 10 + static_cast<unsigned>(s[i] - '0'));
    ++i, ++digits;
  }
  if (digits > 0 && m->keep_parts == 0) return false;  // 7.3: must be nonzero
  if (i < s.size() && (s[i] == 'r' || s[i] == 'R')) m->reverse = true, ++i;
  const size_t delim = i;
  while (i < s.size() && s[i] != 0 && std::strchr(".-+,/_=", s[i])) ++i;
  m->delimiters = s.substr(delim, i - delim);
  if (i >= s.size() || s[i] != '}') return false;
  *pos = i + 1;
  return true;
}

bool valid_macro_string(std::string_view s, bool exp_text, bool* ends_with_macro = nullptr) {
  MacroItem m;
  for (size_t i = 0; i < s.size();) {
    if (!next_macro_item(s, &i, exp_text, &m)) return false;
  }
  if (ends_with_macro) *ends_with_macro = m.is_macro_expand;
  return true;
}

// toplabel = ( *alphanum ALPHA *alphanum ) /
//            ( 1*alphanum "-" *( alphanum / "-" ) alphanum )
bool valid_toplabel(std::string_view l) {
  if (l.empty() || !is_alnum(l.front()) || !is_alnum(l.back())) return false;
  bool alpha_or_dash = false;
  for (char c : l) {
    if (!is_alnum(c) && c != '-') return false;
    alpha_or_dash |= is_alpha(c) || c == '-';
  }
  return alpha_or_dash;
}

// domain-spec = macro-string domain-end
// domain-end  = ( "." toplabel [ "." ] ) / macro-expand
bool valid_domain_spec(std::string_view s) {
  bool ends_with_macro = false;
  if (s.empty() || !valid_macro_string(s, false, &ends_with_macro)) return false;
  if (ends_with_macro) return true;
  if (s.back() == '.') s.remove_suffix(1);
  const size_t dot = s.rfind('.');
  return dot != std::string_view::npos && valid_toplabel(s.substr(dot + 1));
}

// Splits on any of `delimiters`, reverses when asked, keeps the rightmost
// parts, joins with dots (7.3).
std::string transform(std::string_view value, const MacroItem& m) {
  const std::string_view delims = m.delimiters.empty() ? "." : m.delimiters;
  std::vector<std::string_view> parts;
  size_t start = 0;
  for (size_t i = 0; i <= value.size(); ++i) {
    if (i == value.size() || delims.find(value[i]) != std::string_view::npos) {
      parts.push_back(value.substr(start, i - start));
      start = i + 1;
    }
  }
  if (m.reverse) std::reverse(parts.begin(), parts.end());
  size_t first = 0;
  if (m.keep_parts != 0 && m.keep_parts < parts.size()) first = parts.size() - m.keep_parts;
  std::string out;
  for (size_t i = first; i < parts.size(); ++i) {
    if (i > first) out += '.';
    out.append(parts[i]);
  }
  return out;
}

// RFC 3986 2.3: everything but the unreserved characters as %XX.
std::string url_escape(std::string_view s) {
  static const char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (char c : s) {
    if (is_alnum(c) || c == '-' || c == '.' || c == '_' || c == '~') {
      out += c;
    } else {
      const auto b = static_cast<unsigned char>(c);
      out += '%';
      out += kHex[b >> 4];
      out += kHex[b & 15];
    }
  }
  return out;
}

// %{i}: the dotted quad, or for IPv6 the 32 nibbles separated by dots
// (7.3), lower case as in 7.4's example.
std::string dotted_ip(const IpAddress& ip) {
  if (!ip.v6) return ip.to_string();
  std::string out;
  for (uint8_t b : ip.bytes) {
    if (!out.empty()) out += '.';
    out += kHexDigits[b >> 4];
    out += '.';
    out += kHexDigits[b & 15];
  }
  return out;
}

// The name whose PTR records map `ip` back to names (5.5).
std::string reverse_name(const IpAddress& ip) {
  MacroItem reversed;
  reversed.reverse = true;
  return transform(dotted_ip(ip), reversed) + (ip.v6 ? ".ip6.arpa" : ".in-addr.arpa");
}

// `name` is `domain` or one of its subdomains.
bool within(std::string_view name, std::string_view domain) {
  const std::string n = canonical_name(name), d = canonical_name(domain);
  return n == d || (n.size() > d.size() && n.ends_with(d) && n[n.size() - d.size() - 1] == '.');
}

// --- Records (RFC 7208 4.5, 4.6, 5, 6) ---

enum class Mechanism : uint8_t { kAll, kInclude, kA, kMx, kPtr, kIp4, kIp6, kExists };

struct Directive {
  Result qualifier = Result::kPass;
  Mechanism mechanism = Mechanism::kAll;
  std::string_view text;         // as written
  std::string_view domain_spec;  // empty: the current domain
  IpAddress network;             // ip4, ip6
  unsigned cidr4 = 32;
  unsigned cidr6 = 128;

  bool counts_as_lookup() const {
    return mechanism != Mechanism::kAll && mechanism != Mechanism::kIp4 &&
           mechanism != Mechanism::kIp6;
  }
};

// Views into the TXT record's text, which outlives the evaluation.
struct Record {
  std::vector<Directive> directives;
  std::optional<std::string_view> redirect;
  std::optional<std::string_view> exp;
};

bool is_spf_record(std::string_view txt) {
  return txt.size() >= 6 && iequals(txt.substr(0, 6), "v=spf1") &&
         (txt.size() == 6 || txt[6] == ' ');
}

// "/N" with N in 0..max, no leading zeros (ip4-cidr-length, ip6-cidr-length).
bool parse_cidr(std::string_view digits, unsigned max, unsigned* out) {
  if (digits.empty() || digits.size() > 3 || (digits.size() > 1 && digits[0] == '0')) return false;
  unsigned v = 0;
  for (char c : digits) {
    if (!is_digit(c)) return false;
    v = v * 10 + static_cast<unsigned>(c - '0');
  }
  if (v > max) return false;
  *out = v;
  return true;
}

// Takes a dual-cidr-length ("/N", "//N", "/N//M") off the end of `arg`.
// False when one is there but malformed.
bool strip_dual_cidr(std::string_view* arg, Directive* d) {
  auto digits_start = [](std::string_view s) {
    size_t i = s.size();
    while (i > 0 && is_digit(s[i - 1])) --i;
    return i;
  };
  size_t i = digits_start(*arg);
  if (i < arg->size() && i >= 2 && arg->substr(i - 2, 2) == "//") {
    if (!parse_cidr(arg->substr(i), 128, &d->cidr6)) return false;
    *arg = arg->substr(0, i - 2);
    i = digits_start(*arg);
  }
  if (i < arg->size() && i >= 1 && (*arg)[i - 1] == '/') {
    if (!parse_cidr(arg->substr(i), 32, &d->cidr4)) return false;
    *arg = arg->substr(0, i - 1);
  }
  return true;
}

// ":" domain-spec, required or optional.
bool parse_domain_arg(std::string_view arg, bool required, Directive* d) {
  if (arg.empty()) return !required;
  if (arg[0] != ':' || !valid_domain_spec(arg.substr(1))) return false;
  d->domain_spec = arg.substr(1);
  return true;
}

// ":" address [ "/" N ]
bool parse_network_arg(std::string_view arg, bool v6, Directive* d) {
  if (arg.empty() || arg[0] != ':') return false;
  arg.remove_prefix(1);
  const size_t slash = v6 ? arg.find('/') : arg.rfind('/');
  const auto net = v6 ? parse_ipv6(arg.substr(0, slash)) : parse_ipv4(arg.substr(0, slash));
  if (!net) return false;
  d->network = *net;
  if (slash == std::string_view::npos) return true;
  return parse_cidr(arg.substr(slash + 1), v6 ? 128 : 32, v6 ? &d->cidr6 : &d->cidr4);
}

bool parse_directive(std::string_view term, Directive* d, std::string* error) {
  d->text = term;
  switch (term[0]) {
    case '+':
      d->qualifier = Result::kPass;
      term.remove_prefix(1);
      break;
    case '-':
      d->qualifier = Result::kFail;
      term.remove_prefix(1);
      break;
    case '~':
      d->qualifier = Result::kSoftfail;
      term.remove_prefix(1);
      break;
    case '?':
      d->qualifier = Result::kNeutral;
      term.remove_prefix(1);
      break;
    default:
      break;
  }
  const size_t name_end = std::min(term.find_first_of(":/"), term.size());
  const std::string name = ascii_lower(term.substr(0, name_end));
  std::string_view arg = term.substr(name_end);
  bool ok = false;
  if (name == "all") {
    d->mechanism = Mechanism::kAll;
    ok = arg.empty();
  } else if (name == "include" || name == "exists") {
    d->mechanism = name == "include" ? Mechanism::kInclude : Mechanism::kExists;
    ok = parse_domain_arg(arg, true, d);
  } else if (name == "a" || name == "mx") {
    d->mechanism = name == "a" ? Mechanism::kA : Mechanism::kMx;
    ok = strip_dual_cidr(&arg, d) && parse_domain_arg(arg, false, d);
  } else if (name == "ptr") {
    d->mechanism = Mechanism::kPtr;
    ok = parse_domain_arg(arg, false, d);
  } else if (name == "ip4" || name == "ip6") {
    d->mechanism = name == "ip4" ? Mechanism::kIp4 : Mechanism::kIp6;
    ok = parse_network_arg(arg, name == "ip6", d);
  } else {
    *error = "unknown mechanism \"" + std::string(d->text) + "\"";
    return false;
  }
  if (!ok) *error = "syntax error in \"" + std::string(d->text) + "\"";
  return ok;
}

// The whole record is checked before anything is evaluated: a syntax
// error anywhere is a permerror (4.6).
bool parse_record(std::string_view text, Record* out, std::string* error) {
  for (char c : text) {
    if (c < 0x20 || c > 0x7e) {
      *error = "a control or non-ASCII character in the record";  // 3.1, 4.6.1
      return false;
    }
  }
  text.remove_prefix(6);  // "v=spf1"
  size_t i = 0;
  while (i < text.size()) {
    if (text[i] == ' ') {
      ++i;
      continue;
    }
    const size_t end = std::min(text.find(' ', i), text.size());
    const std::string_view term = text.substr(i, end - i);
    i = end;
    // A modifier is name "=" ...; name = ALPHA *( ALPHA / DIGIT / "-" / "_" / "." )
    size_t n = 0;
    if (is_alpha(term[0])) {
      n = 1;
      while (n < term.size() &&
             (is_alnum(term[n]) || term[n] == '-' || term[n] == '_' || term[n] == '.'))
        ++n;
    }
    if (n > 0 && n < term.size() && term[n] == '=') {
      const std::string name = ascii_lower(term.substr(0, n));
      const std::string_view value = term.substr(n + 1);
      std::optional<std::string_view>* known = name == "redirect" ? &out->redirect
                                               : name == "exp"    ? &out->exp
                                                                  : nullptr;
      if (known) {
        if (known->has_value()) {
          *error = name + "= given twice";  // 6
          return false;
        }
        if (!valid_domain_spec(value)) {
          *error = "syntax error in \"" + std::string(term) + "\"";
          return false;
        }
        *known = value;
      } else if (!valid_macro_string(value, false)) {  // unknown modifiers are ignored (6)
        *error = "syntax error in \"" + std::string(term) + "\"";
        return false;
      }
      continue;
    }
    Directive d;
    if (!parse_directive(term, &d, error)) return false;
    out->directives.push_back(d);
  }
  return true;
}

bool is_dns_error(const Answer& a) { return a.status == DnsStatus::kTempFail; }
bool is_void(const Answer& a) {
  return a.status == DnsStatus::kNoData || a.status == DnsStatus::kNxDomain ||
         (a.status == DnsStatus::kOk && a.records.empty());
}

// --- Evaluation ---

class Evaluator {
 public:
  Evaluator(const Request& req, const Dns& dns, Query* missing)
      : req_(req), dns_(dns), missing_(missing) {}
  std::optional<Verdict> run();

 private:
  // A step of the evaluation. kNeed: blocked on *missing_, unwind.
  enum class Flow : uint8_t { kMatch, kNoMatch, kNeed, kTemperror, kPermerror };

  // nullptr when the answer is not known yet (*missing_ then names it).
  // Names that cannot be in the DNS are not asked: they do not exist.
  const Answer* lookup(QueryType type, std::string_view name);
  std::optional<Result> check_host(const std::string& domain, int include_depth);
  Flow match(const Directive& d, const std::string& domain, int include_depth);
  Flow match_addresses(const std::string& name, const Directive& d, bool term_query);
  Flow match_ptr(const std::string& target);
  Flow void_lookup(std::string_view name);
  Flow dns_error(QueryType type, std::string_view name);
  // The domain-spec expanded (7.3 truncation included), or `domain` when
  // there is none. False: blocked.
  bool target_name(std::string_view spec, const std::string& domain, std::string* out);
  bool expand(std::string_view text, const std::string& domain, bool exp_text, std::string* out);
  std::optional<std::string> validated_name(const std::string& domain);
  bool explain(std::string_view exp_spec, const std::string& domain);
  void problem(std::string text) {
    if (verdict_.problem.empty()) verdict_.problem = std::move(text);
  }

  const Request& req_;
  const Dns& dns_;
  Query* missing_;
  IpAddress ip_;
  std::string local_;          // %{l}
  std::string sender_domain_;  // %{o}
  int lookup_terms_ = 0;
  int void_lookups_ = 0;
  Verdict verdict_;
};

const Answer* Evaluator::lookup(QueryType type, std::string_view name) {
  static const Answer kNonexistent{DnsStatus::kNxDomain, {}};
  const std::string canonical = canonical_name(name);
  if (!valid_dns_name(canonical)) return &kNonexistent;
  if (const Answer* a = dns_.find(type, canonical)) return a;
  *missing_ = Query{type, canonical};
  return nullptr;
}

Evaluator::Flow Evaluator::void_lookup(std::string_view name) {
  if (++void_lookups_ <= kVoidLookupsMax) return Flow::kNoMatch;
  problem("more than 2 void lookups (the last for " + std::string(name) + ")");
  return Flow::kPermerror;
}

Evaluator::Flow Evaluator::dns_error(QueryType type, std::string_view name) {
  problem(std::string("DNS failure looking up ") + query_type_name(type) + " " + std::string(name));
  return Flow::kTemperror;
}

std::optional<Verdict> Evaluator::run() {
  const auto ip = parse_ip(req_.client_ip);
  const bool helo_check = req_.identity == Identity::kHelo || req_.mail_from.empty();
  std::string domain;
  if (helo_check) {
    local_ = "postmaster";  // 2.3, 2.4
    domain = req_.helo;
  } else {
    const size_t at = req_.mail_from.rfind('@');
    local_ = at == std::string::npos ? "" : req_.mail_from.substr(0, at);
    if (local_.empty()) local_ = "postmaster";  // 4.3
    domain = req_.mail_from.substr(at == std::string::npos ? 0 : at + 1);
  }
  if (domain.ends_with('.')) domain.pop_back();
  sender_domain_ = domain;
  verdict_.domain = domain;
  verdict_.sender = local_ + "@" + domain;
  if (!ip) {
    verdict_.problem = "the client address is not an IP address";
    return verdict_;
  }
  ip_ = ip->unmapped();
  if (!valid_initial_domain(domain)) {
    verdict_.problem = "not a valid domain name: " + domain;
    return verdict_;  // none (4.3)
  }
  const auto r = check_host(domain, 0);
  if (!r) return std::nullopt;
  verdict_.result = *r;
  return verdict_;
}

std::optional<Result> Evaluator::check_host(const std::string& domain, int include_depth) {
  const Answer* txt = lookup(QueryType::kTxt, domain);
  if (!txt) return std::nullopt;
  if (is_dns_error(*txt)) {
    dns_error(QueryType::kTxt, domain);
    return Result::kTemperror;
  }
  std::string_view text;
  int found = 0;
  if (txt->status == DnsStatus::kOk) {
    for (const auto& r : txt->records) {
      if (is_spf_record(r)) ++found, text = r;
    }
  }
  if (found == 0) return Result::kNone;  // 4.5
  if (found > 1) {
    problem("more than one SPF record at " + domain);
    return Result::kPermerror;
  }
  Record record;
  std::string error;
  if (!parse_record(text, &record, &error)) {
    problem(error + " (SPF record of " + domain + ")");
    return Result::kPermerror;
  }
  for (const Directive& d : record.directives) {
    if (d.counts_as_lookup() && ++lookup_terms_ > kDnsTermsMax) {
      problem("more than 10 DNS lookups");
      return Result::kPermerror;
    }
    switch (match(d, domain, include_depth)) {
      case Flow::kNeed:
        return std::nullopt;
      case Flow::kTemperror:
        return Result::kTemperror;
      case Flow::kPermerror:
        return Result::kPermerror;
      case Flow::kNoMatch:
        continue;
      case Flow::kMatch:
        break;
    }
    if (include_depth == 0) {
      verdict_.mechanism = d.text;
      // 6.2: only the record that decides explains, and never an included one.
      if (d.qualifier == Result::kFail && record.exp && !explain(*record.exp, domain)) {
        return std::nullopt;
      }
    }
    return d.qualifier;
  }
  if (record.redirect) {
    if (++lookup_terms_ > kDnsTermsMax) {
      problem("more than 10 DNS lookups");
      return Result::kPermerror;
    }
    std::string target;
    if (!target_name(*record.redirect, domain, &target)) return std::nullopt;
    const auto r = check_host(target, include_depth);
    if (r == Result::kNone) {
      problem("redirect=" + target + " has no SPF record");  // 6.1
      return Result::kPermerror;
    }
    return r;
  }
  if (include_depth == 0) verdict_.mechanism = "default";
  return Result::kNeutral;  // 4.7
}

Evaluator::Flow Evaluator::match(const Directive& d, const std::string& domain, int include_depth) {
  if (d.mechanism == Mechanism::kAll) return Flow::kMatch;
  if (d.mechanism == Mechanism::kIp4 || d.mechanism == Mechanism::kIp6) {
    const bool v6 = d.mechanism == Mechanism::kIp6;
    return ip_.v6 == v6 && same_prefix(ip_, d.network, v6 ? d.cidr6 : d.cidr4) ? Flow::kMatch
                                                                               : Flow::kNoMatch;
  }
  std::string target;
  if (!target_name(d.domain_spec, domain, &target)) return Flow::kNeed;
  switch (d.mechanism) {
    case Mechanism::kA:
      return match_addresses(target, d, true);
    case Mechanism::kMx: {
      const Answer* mx = lookup(QueryType::kMx, target);
      if (!mx) return Flow::kNeed;
      if (is_dns_error(*mx)) return dns_error(QueryType::kMx, target);
      if (is_void(*mx)) return void_lookup(target);
      if (mx->records.size() > kMxNamesMax) {
        problem("more than 10 MX names at " + target);
        return Flow::kPermerror;
      }
      for (const auto& host : mx->records) {
        const Flow f = match_addresses(host, d, false);
        if (f != Flow::kNoMatch) return f;
      }
      return Flow::kNoMatch;
    }
    case Mechanism::kPtr:
      return match_ptr(target);
    case Mechanism::kExists: {
      // Always an A query, whatever the client's family (5.7).
      const Answer* a = lookup(QueryType::kA, target);
      if (!a) return Flow::kNeed;
      if (is_dns_error(*a)) return dns_error(QueryType::kA, target);
      if (is_void(*a)) return void_lookup(target);
      return Flow::kMatch;
    }
    case Mechanism::kInclude: {
      const auto r = check_host(target, include_depth + 1);
      if (!r) return Flow::kNeed;
      switch (*r) {  // 5.2's table
        case Result::kPass:
          return Flow::kMatch;
        case Result::kFail:
        case Result::kSoftfail:
        case Result::kNeutral:
          return Flow::kNoMatch;
        case Result::kTemperror:
          return Flow::kTemperror;
        case Result::kNone:
          problem("include:" + target + " has no SPF record");
          return Flow::kPermerror;
        case Result::kPermerror:
          return Flow::kPermerror;
      }
      return Flow::kPermerror;
    }
    default:
      return Flow::kNoMatch;  // handled above
  }
}

// `term_query`: the query is the term's own (a), not one per MX name, so
// it counts as a void lookup when it finds nothing (4.6.4 counts terms).
Evaluator::Flow Evaluator::match_addresses(const std::string& name, const Directive& d,
                                           bool term_query) {
  const QueryType type = ip_.v6 ? QueryType::kAaaa : QueryType::kA;
  const Answer* a = lookup(type, name);
  if (!a) return Flow::kNeed;
  if (is_dns_error(*a)) return dns_error(type, name);
  if (is_void(*a)) return term_query ? void_lookup(name) : Flow::kNoMatch;
  for (const auto& text : a->records) {
    const auto addr = parse_ip(text);
    if (addr && same_prefix(ip_, *addr, ip_.v6 ? d.cidr6 : d.cidr4)) return Flow::kMatch;
  }
  return Flow::kNoMatch;
}

// 5.5: a name from the client's PTR records that is within `target` and
// whose addresses include the client's. DNS errors only skip names.
Evaluator::Flow Evaluator::match_ptr(const std::string& target) {
  const std::string rev = reverse_name(ip_);
  const Answer* ptr = lookup(QueryType::kPtr, rev);
  if (!ptr) return Flow::kNeed;
  if (is_void(*ptr)) return void_lookup(rev);
  if (ptr->status != DnsStatus::kOk) return Flow::kNoMatch;
  const QueryType type = ip_.v6 ? QueryType::kAaaa : QueryType::kA;
  const size_t n = std::min(ptr->records.size(), kPtrNamesMax);
  for (size_t i = 0; i < n; ++i) {
    const std::string& name = ptr->records[i];
    if (!within(name, target)) continue;
    const Answer* a = lookup(type, name);
    if (!a) return Flow::kNeed;
    if (a->status != DnsStatus::kOk) continue;
    for (const auto& text : a->records) {
      if (parse_ip(text) == ip_) return Flow::kMatch;
    }
  }
  return Flow::kNoMatch;
}

// %{p} (7.3): a validated name of the client, preferring `domain` itself,
// then a subdomain of it; "unknown" when there is none.
std::optional<std::string> Evaluator::validated_name(const std::string& domain) {
  const Answer* ptr = lookup(QueryType::kPtr, reverse_name(ip_));
  if (!ptr) return std::nullopt;
  if (ptr->status != DnsStatus::kOk) return "unknown";
  const QueryType type = ip_.v6 ? QueryType::kAaaa : QueryType::kA;
  std::vector<std::string> valid;
  const size_t n = std::min(ptr->records.size(), kPtrNamesMax);
  for (size_t i = 0; i < n; ++i) {
    const Answer* a = lookup(type, ptr->records[i]);
    if (!a) return std::nullopt;
    if (a->status != DnsStatus::kOk) continue;
    for (const auto& text : a->records) {
      if (parse_ip(text) == ip_) {
        valid.push_back(canonical_name(ptr->records[i]));
        break;
      }
    }
  }
  const std::string d = canonical_name(domain);
  if (std::find(valid.begin(), valid.end(), d) != valid.end()) return d;
  for (const auto& v : valid) {
    if (within(v, d)) return v;
  }
  return valid.empty() ? "unknown" : valid.front();
}

bool Evaluator::expand(std::string_view text, const std::string& domain, bool exp_text,
                       std::string* out) {
  MacroItem m;
  for (size_t i = 0; i < text.size();) {
    if (!next_macro_item(text, &i, exp_text, &m)) break;  // checked before: not reached
    if (m.letter == 0) {
      out->append(m.literal);
      continue;
    }
    std::string value;
    switch (m.letter) {
      case 's':
        value = local_ + "@" + sender_domain_;
        break;
      case 'l':
        value = local_;
        break;
      case 'o':
        value = sender_domain_;
        break;
      case 'd':
        value = domain;
        break;
      case 'i':
        value = dotted_ip(ip_);
        break;
      case 'p': {
        auto name = validated_name(domain);
        if (!name) return false;
        value = std::move(*name);
        break;
      }
      case 'v':
        value = ip_.v6 ? "ip6" : "in-addr";
        break;
      case 'h':
        value = req_.helo;
        break;
      case 'c':
        value = ip_.to_string();
        break;
      case 'r':
        value = req_.receiver.empty() ? "unknown" : req_.receiver;
        break;
      case 't':
        value = std::to_string(req_.now_s);
        break;
      default:
        break;
    }
    value = transform(value, m);
    out->append(m.url_escape ? url_escape(value) : value);
  }
  return true;
}

bool Evaluator::target_name(std::string_view spec, const std::string& domain, std::string* out) {
  if (spec.empty()) {
    *out = domain;
    return true;
  }
  std::string name;
  if (!expand(spec, domain, false, &name)) return false;
  if (name.ends_with('.')) name.pop_back();
  // 7.3: drop labels from the left until the name fits.
  while (name.size() > kNameBytesMax) {
    const size_t dot = name.find('.');
    if (dot == std::string::npos) break;
    name.erase(0, dot + 1);
  }
  *out = std::move(name);
  return true;
}

// 6.2: any trouble with the explanation means there is none.
bool Evaluator::explain(std::string_view exp_spec, const std::string& domain) {
  std::string target;
  if (!target_name(exp_spec, domain, &target)) return false;
  const Answer* txt = lookup(QueryType::kTxt, target);
  if (!txt) return false;
  if (txt->status != DnsStatus::kOk || txt->records.size() != 1) return true;
  const std::string& text = txt->records[0];
  for (char c : text) {
    if (c < 0x20 || c > 0x7e) return true;  // 7-bit text only
  }
  if (!valid_macro_string(text, true)) return true;
  std::string out;
  if (!expand(text, domain, true, &out)) return false;
  // The text goes into an SMTP reply: macros must not bring in line breaks
  // or other bytes the record itself may not hold.
  for (char c : out) {
    if (c < 0x20 || c > 0x7e) return true;
  }
  verdict_.explanation = std::move(out);
  return true;
}

// Header text: a comment's contents, with ( ) \ quoted and controls gone.
std::string comment_text(std::string_view s) {
  std::string out;
  for (char c : s) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) continue;
    if (c == '(' || c == ')' || c == '\\') out += '\\';
    out += c;
  }
  return out;
}

bool is_dot_atom(std::string_view s) {
  static const char kAtextSpecials[] = "!#$%&'*+-/=?^_`{|}~";
  bool atom =
      !s.empty() && s.front() != '.' && s.back() != '.' && s.find("..") == std::string_view::npos;
  for (char c : s) atom &= is_alnum(c) || c == '.' || (c != 0 && std::strchr(kAtextSpecials, c));
  return atom;
}

// A dot-atom (RFC 5322 3.2.3) as it is, anything else as a quoted-string.
std::string header_value(std::string_view s, bool always_quote = false) {
  if (is_dot_atom(s) && !always_quote) return std::string(s);
  std::string out = "\"";
  for (char c : s) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) continue;
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out + "\"";
}

}  // namespace

const char* result_name(Result r) {
  switch (r) {
    case Result::kNone:
      return "none";
    case Result::kNeutral:
      return "neutral";
    case Result::kPass:
      return "pass";
    case Result::kFail:
      return "fail";
    case Result::kSoftfail:
      return "softfail";
    case Result::kTemperror:
      return "temperror";
    case Result::kPermerror:
      return "permerror";
  }
  return "none";
}

const char* query_type_name(QueryType t) {
  switch (t) {
    case QueryType::kTxt:
      return "TXT";
    case QueryType::kA:
      return "A";
    case QueryType::kAaaa:
      return "AAAA";
    case QueryType::kMx:
      return "MX";
    case QueryType::kPtr:
      return "PTR";
  }
  return "TXT";
}

void Dns::add(const Query& q, Answer a) {
  answers_[{q.type, canonical_name(q.name)}] = std::move(a);
}

const Answer* Dns::find(QueryType type, std::string_view name) const {
  const auto it = answers_.find(std::pair{type, canonical_name(name)});
  return it == answers_.end() ? nullptr : &it->second;
}

std::optional<Verdict> evaluate(const Request& req, const Dns& known, Query* missing) {
  return Evaluator(req, known, missing).run();
}

std::string received_spf(const Request& req, const Verdict& v) {
  const std::string who = req.receiver.empty() ? "unknown" : req.receiver;
  const auto ip = parse_ip(req.client_ip);
  const std::string addr = ip ? ip->unmapped().to_string() : req.client_ip;
  std::string comment;
  switch (v.result) {
    case Result::kPass:
      comment = "domain of " + v.sender + " designates " + addr + " as permitted sender";
      break;
    case Result::kFail:
      comment = "domain of " + v.sender + " does not designate " + addr + " as permitted sender";
      break;
    case Result::kSoftfail:
      comment = "domain of transitioning " + v.sender + " does not designate " + addr +
                " as permitted sender";
      break;
    case Result::kNeutral:
      comment = addr + " is neither permitted nor denied by domain of " + v.sender;
      break;
    case Result::kNone:
      comment = "domain of " + v.sender + " does not designate permitted sender hosts";
      break;
    case Result::kTemperror:
      comment = "temporary error checking domain of " + v.sender + ": " + v.problem;
      break;
    case Result::kPermerror:
      comment = "permanent error in the SPF policy of " + v.sender + ": " + v.problem;
      break;
  }
  const bool helo = req.identity == Identity::kHelo;
  std::string out =
      std::string(result_name(v.result)) + " (" + comment_text(who + ": " + comment) + ")";
  out += " client-ip=" + header_value(addr);
  out += "; envelope-from=" + header_value(helo ? req.mail_from : v.sender, true);
  out += "; helo=" + header_value(req.helo);
  out += "; receiver=" + header_value(who);
  out += std::string("; identity=") + (helo ? "helo" : "mailfrom");
  if (!v.mechanism.empty()) out += "; mechanism=" + header_value(v.mechanism);
  if (!v.problem.empty() && (v.result == Result::kTemperror || v.result == Result::kPermerror)) {
    out += "; problem=" + header_value(v.problem);
  }
  return out;
}

std::string auth_results(const Request& req, const Verdict& v) {
  std::string out = std::string("spf=") + result_name(v.result);
  if (req.identity == Identity::kHelo || req.mail_from.empty())
    return out + " smtp.helo=" + header_value(req.helo);
  // RFC 8601's pvalue takes local-part@domain as it is; others are quoted.
  const size_t at = v.sender.rfind('@');
  const bool plain = at != std::string::npos &&
                     is_dot_atom(std::string_view(v.sender).substr(0, at)) &&
                     is_dot_atom(std::string_view(v.sender).substr(at + 1));
  return out + " smtp.mailfrom=" + (plain ? v.sender : header_value(v.sender, true));
}

}  // namespace ringmail::proto::spf
