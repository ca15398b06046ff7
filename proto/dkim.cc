#include "proto/dkim.h"

#include <algorithm>

#include "proto/address.h"

namespace ringmail::proto::dkim {

namespace {

bool is_wsp(char c) { return c == ' ' || c == '\t'; }

char lower(char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; }

}  // namespace

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

void append_relaxed_header(const HeaderField& f, std::string* out) {
  std::string_view name = f.name;
  while (!name.empty() && is_wsp(name.back())) name.remove_suffix(1);
  for (char c : name) out->push_back(lower(c));
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
    size_t j = i;
    while (j < n && in[j] != ' ' && in[j] != '\t' && in[j] != '\r') ++j;
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
      "from", "to", "cc", "subject", "date", "message-id", "reply-to", "in-reply-to",
      "references", "mime-version", "content-type", "content-transfer-encoding"};
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
                               const std::vector<std::string>& h, std::string_view sig_field) {
  std::string out;
  // How many instances of each name were used so far (from the bottom).
  std::vector<std::pair<std::string, size_t>> used;
  for (const auto& name : h) {
    auto u = std::find_if(used.begin(), used.end(), [&](const auto& p) { return iequals(p.first, name); });
    if (u == used.end()) {
      used.emplace_back(name, 0);
      u = used.end() - 1;
    }
    size_t skip = u->second++;
    for (size_t i = fields.size(); i-- > 0;) {
      if (!iequals(fields[i].name, name)) continue;
      if (skip-- == 0) {
        append_relaxed_header(fields[i], &out);
        break;
      }
    }
  }
  // The signature field itself, canonicalized, without the final CRLF.
  const size_t colon = sig_field.find(':');
  append_relaxed_header(HeaderField{sig_field.substr(0, colon), sig_field.substr(colon + 1)}, &out);
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

std::string dns_record(Algorithm a, std::string_view public_key_b64) {
  return std::string("v=DKIM1; k=") + (a == Algorithm::kRsaSha256 ? "rsa" : "ed25519") +
         "; p=" + std::string(public_key_b64);
}

std::string zone_line(const std::string& selector, const std::string& domain, std::string_view record) {
  std::string out = selector + "._domainkey." + domain + ". 3600 IN TXT";
  while (!record.empty()) {
    const size_t n = std::min<size_t>(255, record.size());
    out += " \"" + std::string(record.substr(0, n)) + "\"";
    record.remove_prefix(n);
  }
  return out;
}

}  // namespace ringmail::proto::dkim
