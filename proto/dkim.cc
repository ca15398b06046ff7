#include "proto/dkim.h"

#include <algorithm>

#ifdef __SSE2__
#include <emmintrin.h>
#endif

#include "proto/address.h"
#include "proto/ascii.h"
#include "proto/sasl.h"

namespace ringmail::proto::dkim {

namespace {}  // namespace

std::vector<HeaderField> split_header(std::string_view m, size_t* body_offset) {
  std::vector<HeaderField> out;
  size_t pos = 0;
  while (pos < m.size()) {
    if (m.compare(pos, 2, "\r\n") == 0) {  // the empty line
      *body_offset = pos + 2;
      return out;
    }
    // A field runs to a CRLF not followed by WSP.
    size_t end = pos;
    while (true) {
      end = m.find("\r\n", end);
      if (end == std::string_view::npos) {
        end = m.size();
        break;
      }
      if (end + 2 < m.size() && is_wsp(m[end + 2])) {
        end += 2;
        continue;
      }
      break;
    }
    const std::string_view line = m.substr(pos, end - pos);
    const size_t colon = line.find(':');
    if (colon == std::string_view::npos || colon == 0) break;  // not a field: the body starts
    out.push_back(HeaderField{line.substr(0, colon), line.substr(colon + 1)});
    pos = end + 2;
  }
  *body_offset = std::min(pos, m.size());
  return out;
}

bool BodyStart::scan(std::string_view m) {
  while (!found_) {
    if (m.size() < line_ + 2) return false;  // is it the empty line?
    if (m.compare(line_, 2, "\r\n") == 0) {
      offset_ = line_ + 2;
      found_ = true;
      break;
    }
    // The field runs to a CRLF not followed by WSP: that needs the byte
    // after the CRLF.
    const size_t crlf = m.find("\r\n", next_);
    const size_t seen = crlf == std::string_view::npos ? m.size() - 1 : crlf;
    if (colon_ == std::string_view::npos && seen > next_) {
      const size_t c = m.substr(0, seen).find(':', next_);
      if (c != std::string_view::npos) colon_ = c;
    }
    if (crlf == std::string_view::npos || crlf + 2 >= m.size()) {
      next_ = std::max(next_, seen);
      return false;
    }
    if (is_wsp(m[crlf + 2])) {
      next_ = crlf + 2;
      continue;
    }
    if (colon_ == std::string_view::npos || colon_ == line_) {  // not a field: the body starts
      offset_ = line_;
      found_ = true;
      break;
    }
    line_ = next_ = crlf + 2;
    colon_ = std::string_view::npos;
  }
  return true;
}

size_t BodyStart::finish(std::string_view m) {
  if (!found_) {
    // The rest from the field being read, with the end of input known.
    size_t rest = 0;
    split_header(m.substr(std::min(line_, m.size())), &rest);
    offset_ = std::min(line_, m.size()) + rest;
    found_ = true;
  }
  return offset_;
}

void append_relaxed_header(const HeaderField& f, std::string* out) {
  std::string_view name = f.name;
  while (!name.empty() && is_wsp(name.back())) name.remove_suffix(1);
  for (char c : name) out->push_back(to_lower(c));
  out->push_back(':');
  bool wsp = false, started = false;
  for (size_t i = 0; i < f.value.size(); ++i) {
    const char c = f.value[i];
    if (c == '\r' && i + 1 < f.value.size() && f.value[i + 1] == '\n') {
      ++i;  // unfold
      continue;
    }
    if (is_wsp(c)) {
      wsp = true;
      continue;
    }
    if (wsp && started) out->push_back(' ');
    wsp = false;
    started = true;
    out->push_back(c);
  }
  out->append("\r\n");
}

std::string relaxed_header(const HeaderField& f) {
  std::string s;
  append_relaxed_header(f, &s);
  return s;
}

namespace {

bool special(char c) { return c == ' ' || c == '\t' || c == '\r'; }

// The end of a run relaxed canonicalization keeps as it is, from `i` (not
// SP, HTAB or CR): up to the next HTAB or CR, or an SP that is not a lone
// SP between two such bytes (text's usual spaces stay inside the run).
// Sixteen bytes at a time where SSE2 is there: a byte ends the run when it
// is HTAB or CR, or SP with SP, HTAB or CR after it.
size_t plain_run_end(std::string_view in, size_t i) {
  const size_t n = in.size();
  size_t j = i;
#ifdef __SSE2__
  const __m128i sp = _mm_set1_epi8(' '), tab = _mm_set1_epi8('\t'), cr = _mm_set1_epi8('\r');
  auto specials = [&](const __m128i v, __m128i* is_sp) {
    *is_sp = _mm_cmpeq_epi8(v, sp);
    return _mm_or_si128(*is_sp, _mm_or_si128(_mm_cmpeq_epi8(v, tab), _mm_cmpeq_epi8(v, cr)));
  };
  for (; j + 17 <= n; j += 16) {
    __m128i here_sp, next_sp;
    const __m128i here =
        specials(_mm_loadu_si128(reinterpret_cast<const __m128i*>(in.data() + j)), &here_sp);
    const __m128i next =
        specials(_mm_loadu_si128(reinterpret_cast<const __m128i*>(in.data() + j + 1)), &next_sp);
    // Special, except an SP whose next byte is not.
    const __m128i ends = _mm_andnot_si128(_mm_andnot_si128(next, here_sp), here);
    const int m = _mm_movemask_epi8(ends);
    if (m != 0) return j + static_cast<size_t>(__builtin_ctz(static_cast<unsigned>(m)));
  }
#endif
  for (; j < n; ++j) {
    if (!special(in[j])) continue;
    if (in[j] == ' ' && j + 1 < n && !special(in[j + 1])) {
      ++j;  // a lone SP: the byte after it is plain too
      continue;
    }
    break;
  }
  return j;
}

}  // namespace

void RelaxedBody::emit(std::string_view s) {
  buf_.append(s);
  emitted_ += s.size();
}

void RelaxedBody::content(char c) {
  if (!in_line_) {
    for (; empty_lines_ > 0; --empty_lines_) emit("\r\n");
    in_line_ = true;
  }
  if (wsp_) {
    buf_.push_back(' ');
    ++emitted_;
    wsp_ = false;
  }
  buf_.push_back(c);
  ++emitted_;
}

void RelaxedBody::feed(std::string_view in) {
  size_t i = 0;
  const size_t n = in.size();
  while (i < n) {
    if (cr_) {
      cr_ = false;
      if (in[i] == '\n') {
        ++i;
        wsp_ = false;  // WSP at the end of a line goes
        if (in_line_) {
          emit("\r\n");
          in_line_ = false;
        } else {
          ++empty_lines_;
        }
        continue;
      }
      content('\r');  // a CR on its own is content
    }
    // A run of ordinary bytes is copied at once.
    const size_t j = special(in[i]) ? i : plain_run_end(in, i);
    if (j > i) {
      content(in[i]);
      buf_.append(in.data() + i + 1, j - i - 1);
      emitted_ += j - i - 1;
      i = j;
      continue;
    }
    if (in[i] == '\r') {
      cr_ = true;
    } else {
      wsp_ = true;
    }
    ++i;
  }
  if (!buf_.empty()) {
    out_(buf_);
    buf_.clear();
  }
}

void RelaxedBody::finish() {
  if (cr_) {
    cr_ = false;
    content('\r');
  }
  // A last line without CRLF gets one; WSP at its end goes as at the end
  // of any line (dkimpy keeps one SP there; the signer never meets the
  // case: a message is always sent, and signed, ending in CRLF).
  wsp_ = false;
  if (in_line_) {
    emit("\r\n");
    in_line_ = false;
  }
  empty_lines_ = 0;
  if (!buf_.empty()) {
    out_(buf_);
    buf_.clear();
  }
}

const std::vector<std::string>& default_signed_headers() {
  static const std::vector<std::string> h = {
      "from", "to", "cc", "subject", "date", "message-id", "reply-to", "in-reply-to", "references",
      "mime-version", "content-type", "content-transfer-encoding",
      // RFC 8058 4: a one-click unsubscribe must be signed.
      "list-unsubscribe", "list-unsubscribe-post"};
  return h;
}

std::vector<std::string> choose_signed_headers(const std::vector<HeaderField>& fields,
                                               const std::vector<std::string>& wanted) {
  std::vector<std::string> h;
  for (const auto& w : wanted) {
    size_t n = 0;
    for (const auto& f : fields) n += iequals(f.name, w) ? 1 : 0;
    if (iequals(w, "from")) ++n;  // over-signed
    for (size_t i = 0; i < n; ++i) h.push_back(ascii_lower(w));
  }
  return h;
}

std::string signed_header_data(const std::vector<HeaderField>& fields,
                               const std::vector<std::string>& h, std::string_view sig_field,
                               bool relaxed) {
  std::string out;
  auto add = [&](const HeaderField& f) {
    if (relaxed) {
      append_relaxed_header(f, &out);
    } else {
      out.append(f.name);
      out += ':';
      out.append(f.value);
      out += "\r\n";
    }
  };
  // How many instances of each name were used so far (from the bottom).
  std::vector<std::pair<std::string, size_t>> used;
  for (const auto& name : h) {
    auto u = std::find_if(used.begin(), used.end(),
                          [&](const auto& p) { return iequals(p.first, name); });
    if (u == used.end()) {
      used.emplace_back(name, 0);
      u = used.end() - 1;
    }
    size_t skip = u->second++;
    for (size_t i = fields.size(); i-- > 0;) {
      if (!iequals(fields[i].name, name)) continue;
      if (skip-- == 0) {
        add(fields[i]);
        break;
      }
    }
  }
  // The signature field itself, canonicalized, without the final CRLF.
  const size_t colon = sig_field.find(':');
  add(HeaderField{sig_field.substr(0, colon), sig_field.substr(colon + 1)});
  out.resize(out.size() - 2);
  return out;
}

const char* algorithm_name(Algorithm a) {
  return a == Algorithm::kRsaSha256 ? "rsa-sha256" : "ed25519-sha256";
}

std::string signature_field(const SignatureParams& p) {
  std::string s = "DKIM-Signature: v=1; a=";
  s += algorithm_name(p.algorithm);
  s += "; c=relaxed/relaxed; d=" + p.domain + "; s=" + p.selector +
       "; t=" + std::to_string(p.timestamp) + ";\r\n\th=";
  size_t line = 3;
  for (size_t i = 0; i < p.headers.size(); ++i) {
    const std::string item = p.headers[i] + (i + 1 < p.headers.size() ? ":" : ";");
    if (line + item.size() > 76) {
      s += "\r\n\t ";
      line = 2;
    }
    s += item;
    line += item.size();
  }
  s += "\r\n\tbh=" + p.body_hash_b64 + ";\r\n\tb=";
  return s;
}

std::string fold_b64(std::string_view b64, size_t first_line_room) {
  std::string out;
  size_t room = first_line_room;
  while (!b64.empty()) {
    const size_t n = std::min(room, b64.size());
    out.append(b64.substr(0, n));
    b64.remove_prefix(n);
    if (!b64.empty()) out += "\r\n\t ";
    room = 72;
  }
  return out;
}

void SimpleBody::feed(std::string_view in) {
  std::string out;
  size_t i = 0;
  while (i < in.size()) {
    if (cr_) {
      cr_ = false;
      if (in[i] == '\n') {
        ++held_crlf_;
        ++i;
        continue;
      }
      // A lone CR is content.
      for (; held_crlf_ > 0; --held_crlf_) out += "\r\n";
      out += '\r';
      any_ = true;
    }
    const size_t cr = in.find('\r', i);
    const size_t end = cr == std::string_view::npos ? in.size() : cr;
    if (end > i) {
      for (; held_crlf_ > 0; --held_crlf_) out += "\r\n";
      out.append(in.substr(i, end - i));
      any_ = true;
    }
    if (cr != std::string_view::npos) cr_ = true;
    i = end + (cr != std::string_view::npos ? 1 : 0);
  }
  if (!out.empty()) out_(out);
}

void SimpleBody::finish() {
  std::string out;
  if (cr_) {
    for (; held_crlf_ > 0; --held_crlf_) out += "\r\n";
    out += '\r';
    any_ = true;
    cr_ = false;
  }
  // Content ends with one CRLF (added if missing); the empty body is CRLF.
  out += "\r\n";
  out_(out);
}

namespace {

// Tag-list (3.2): name=value pairs separated by ';', FWS allowed around
// them; values keep inner spaces except where the caller strips them.
bool tag_list(std::string_view v, std::vector<std::pair<std::string, std::string>>* out) {
  while (!v.empty()) {
    const size_t semi = v.find(';');
    std::string_view item = v.substr(0, semi);
    v = semi == std::string_view::npos ? std::string_view() : v.substr(semi + 1);
    auto trim = [](std::string_view s) {
      while (!s.empty() && (is_wsp(s.front()) || s.front() == '\r' || s.front() == '\n'))
        s.remove_prefix(1);
      while (!s.empty() && (is_wsp(s.back()) || s.back() == '\r' || s.back() == '\n'))
        s.remove_suffix(1);
      return s;
    };
    item = trim(item);
    if (item.empty()) continue;  // a trailing ';'
    const size_t eq = item.find('=');
    if (eq == std::string_view::npos) return false;
    const std::string name(trim(item.substr(0, eq)));
    if (name.empty()) return false;
    for (const auto& [n, val] : *out) {
      if (n == name) return false;  // a tag twice: invalid (3.2)
    }
    out->emplace_back(name, std::string(trim(item.substr(eq + 1))));
  }
  return true;
}

std::string no_fws(std::string_view s) {
  std::string o;
  for (char c : s) {
    if (!is_wsp(c) && c != '\r' && c != '\n') o += c;
  }
  return o;
}

bool number(std::string_view s, int64_t* out) {
  if (s.empty() || s.size() > 18 || s.find_first_not_of("0123456789") != std::string_view::npos)
    return false;
  *out = std::stoll(std::string(s));
  return true;
}

}  // namespace

Result<Signature> parse_signature(std::string_view value) {
  std::vector<std::pair<std::string, std::string>> tags;
  if (!tag_list(value, &tags)) {
    return Error{"signature syntax"};
  }
  Signature s;
  bool have_v = false, have_a = false, have_b = false, have_bh = false, have_d = false,
       have_h = false, have_s = false;
  for (const auto& [n, v] : tags) {
    if (n == "v") {
      have_v = true;
      if (v != "1") {
        return Error{"unknown signature version " + v};
      }
    } else if (n == "a") {
      have_a = true;
      if (v == "rsa-sha256") {
        s.algorithm = Algorithm::kRsaSha256;
      } else if (v == "ed25519-sha256") {
        s.algorithm = Algorithm::kEd25519Sha256;
      } else {
        return Error{"unsupported algorithm " + v};  // rsa-sha1 included (RFC 8301)
      }
    } else if (n == "b") {
      have_b = true;
      s.b_tag = no_fws(v);
      auto d = base64_decode(s.b_tag);
      if (!d || d->empty()) {
        return Error{"b= is not base64"};
      }
      s.signature = std::move(*d);
    } else if (n == "bh") {
      have_bh = true;
      auto d = base64_decode(no_fws(v));
      if (!d || d->size() != 32) {
        return Error{"bh= is not a base64 SHA-256 hash"};
      }
      s.body_hash = std::move(*d);
    } else if (n == "c") {
      const std::string c = ascii_lower(no_fws(v));
      const size_t slash = c.find('/');
      const std::string hc = c.substr(0, slash);
      const std::string bc = slash == std::string::npos ? "simple" : c.substr(slash + 1);
      if ((hc != "simple" && hc != "relaxed") || (bc != "simple" && bc != "relaxed")) {
        return Error{"unknown canonicalization " + c};
      }
      s.header_relaxed = hc == "relaxed";
      s.body_relaxed = bc == "relaxed";
    } else if (n == "d") {
      have_d = true;
      s.domain = ascii_lower(no_fws(v));
    } else if (n == "h") {
      have_h = true;
      std::string_view hv = v;
      while (true) {
        const size_t colon = hv.find(':');
        std::string name = ascii_lower(no_fws(hv.substr(0, colon)));
        if (name.empty()) {
          return Error{"empty name in h="};
        }
        s.headers.push_back(std::move(name));
        if (colon == std::string_view::npos) break;
        hv.remove_prefix(colon + 1);
      }
    } else if (n == "i") {
      s.identity = no_fws(v);
    } else if (n == "l") {
      if (!number(no_fws(v), &s.length)) {
        return Error{"bad l="};
      }
    } else if (n == "q") {
      if (no_fws(v).find("dns/txt") == std::string::npos) {
        return Error{"unknown query method " + v};
      }
    } else if (n == "s") {
      have_s = true;
      s.selector = no_fws(v);
    } else if (n == "t") {
      if (!number(no_fws(v), &s.timestamp)) {
        return Error{"bad t="};
      }
    } else if (n == "x") {
      if (!number(no_fws(v), &s.expires)) {
        return Error{"bad x="};
      }
    }
    // Unknown tags are ignored (3.2).
  }
  if (!(have_v && have_a && have_b && have_bh && have_d && have_h && have_s)) {
    return Error{"a required tag is missing"};
  }
  if (std::find(s.headers.begin(), s.headers.end(), "from") == s.headers.end()) {
    return Error{"From is not signed"};
  }
  if (s.domain.empty() || s.selector.empty()) {
    return Error{"empty d= or s="};
  }
  if (s.identity.empty()) {
    s.identity = "@" + s.domain;
  } else {
    // i= must be in d= or a subdomain of it (6.1.1).
    const size_t at = s.identity.rfind('@');
    const std::string idom = ascii_lower(at == std::string::npos ? "" : s.identity.substr(at + 1));
    if (idom != s.domain &&
        !(idom.size() > s.domain.size() &&
          idom.compare(idom.size() - s.domain.size(), s.domain.size(), s.domain) == 0 &&
          idom[idom.size() - s.domain.size() - 1] == '.')) {
      return Error{"i= is not in d="};
    }
  }
  if (s.expires >= 0 && s.timestamp >= 0 && s.expires < s.timestamp) {
    return Error{"x= before t="};
  }
  return s;
}

std::string without_b_value(const HeaderField& f) {
  std::string v(f.value);
  // The b= tag (not bh=): at the start or after ';', FWS allowed before it.
  size_t pos = 0;
  while (pos < v.size()) {
    size_t p = pos;
    while (p < v.size() && (is_wsp(v[p]) || v[p] == '\r' || v[p] == '\n')) ++p;
    if (p + 1 < v.size() && v[p] == 'b' && (v[p + 1] == '=' || is_wsp(v[p + 1]))) {
      size_t eq = v.find('=', p);
      const size_t end = v.find(';', eq);
      v.erase(eq + 1, end == std::string::npos ? std::string::npos : end - eq - 1);
      break;
    }
    const size_t semi = v.find(';', pos);
    if (semi == std::string::npos) break;
    pos = semi + 1;
  }
  return std::string(f.name) + ":" + v;
}

Result<KeyRecord> parse_key_record(std::string_view txt) {
  std::vector<std::pair<std::string, std::string>> tags;
  if (!tag_list(txt, &tags)) {
    return Error{"key record syntax"};
  }
  KeyRecord k;
  bool have_p = false;
  for (const auto& [n, v] : tags) {
    if (n == "v" && v != "DKIM1") {
      return Error{"key record version " + v};
    }
    if (n == "k") {
      const std::string kv = ascii_lower(no_fws(v));
      if (kv == "ed25519") {
        k.ed25519 = true;
      } else if (kv != "rsa") {
        return Error{"unknown key type " + kv};
      }
    } else if (n == "p") {
      have_p = true;
      const std::string p = no_fws(v);
      if (!p.empty()) {
        auto d = base64_decode(p);
        if (!d) {
          return Error{"p= is not base64"};
        }
        k.public_key = std::move(*d);
      }
    } else if (n == "h") {
      k.sha256_allowed = ascii_lower(v).find("sha256") != std::string::npos;
    } else if (n == "t") {
      const std::string t = no_fws(v);
      for (size_t i = 0; i < t.size(); i += 2) {
        k.testing |= t[i] == 'y';
        k.strict_identity |= t[i] == 's';
      }
    }
  }
  if (!have_p) {
    return Error{"no p= in the key record"};
  }
  return k;
}

std::string dns_record(Algorithm a, std::string_view public_key_b64) {
  return std::string("v=DKIM1; k=") + (a == Algorithm::kRsaSha256 ? "rsa" : "ed25519") +
         "; p=" + std::string(public_key_b64);
}

std::string zone_line(const std::string& selector, const std::string& domain,
                      std::string_view record) {
  std::string out = selector + "._domainkey." + domain + ". 3600 IN TXT";
  while (!record.empty()) {
    const size_t n = std::min<size_t>(255, record.size());
    out += " \"" + std::string(record.substr(0, n)) + "\"";
    record.remove_prefix(n);
  }
  return out;
}

}  // namespace ringmail::proto::dkim
