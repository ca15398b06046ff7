#include "proto/unsubscribe.h"

#include <algorithm>

#include "proto/address.h"
#include "proto/ascii.h"
#include "proto/http.h"
#include "proto/sasl.h"

namespace ringmail::proto::unsubscribe {

namespace {

constexpr size_t kMacBytes = 16;
constexpr char kVersion = '\x01';

std::string mac(std::string_view payload, std::string_view secret, const HmacSha256& hmac) {
  std::string data = "ringmail unsubscribe";
  data += '\0';
  data += payload;
  std::string m = hmac(secret, data);
  if (m.size() < kMacBytes) return {};
  m.resize(kMacBytes);
  return m;
}

// base64url without padding (RFC 4648 5), through the strict base64 of
// SASL.
std::string encode(std::string_view bytes) {
  std::string s = base64_encode(bytes);
  while (!s.empty() && s.back() == '=') s.pop_back();
  for (char& c : s) c = c == '+' ? '-' : c == '/' ? '_' : c;
  return s;
}

std::optional<std::string> decode(std::string_view text) {
  std::string s(text);
  for (char& c : s) {
    if (c == '+' || c == '/' || c == '=') return std::nullopt;
    c = c == '-' ? '+' : c == '_' ? '/' : c;
  }
  if (s.size() % 4 == 1) return std::nullopt;
  while (s.size() % 4 != 0) s += '=';
  return base64_decode(s);
}

bool equal_in_constant_time(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  unsigned char d = 0;
  for (size_t i = 0; i < a.size(); ++i) d |= static_cast<unsigned char>(a[i] ^ b[i]);
  return d == 0;
}

}  // namespace

std::string make_token(const Subject& s, std::string_view secret, const HmacSha256& hmac) {
  std::string payload(1, kVersion);
  payload += s.recipient;
  payload += '\0';
  payload += s.sender_domain;
  payload += '\0';
  payload += s.stream;
  const std::string m = mac(payload, secret, hmac);
  if (m.empty()) return {};
  return encode(payload + m);
}

Result<Subject> read_token(std::string_view token, const std::vector<std::string>& secrets,
                           const HmacSha256& hmac) {
  const auto raw = decode(token);
  if (!raw || raw->size() < 1 + 2 + kMacBytes || (*raw)[0] != kVersion) {
    return Error{"not an unsubscribe token"};
  }
  const std::string_view payload = std::string_view(*raw).substr(0, raw->size() - kMacBytes);
  const std::string_view got = std::string_view(*raw).substr(raw->size() - kMacBytes);
  const bool ours = std::any_of(secrets.begin(), secrets.end(), [&](const std::string& secret) {
    const std::string want = mac(payload, secret, hmac);
    return !want.empty() && equal_in_constant_time(want, got);
  });
  if (!ours) return Error{"the token was altered or is not ours"};
  const size_t a = payload.find('\0', 1);
  const size_t b = a == std::string_view::npos ? a : payload.find('\0', a + 1);
  if (b == std::string_view::npos) return Error{"not an unsubscribe token"};
  Subject s;
  s.recipient = std::string(payload.substr(1, a - 1));
  s.sender_domain = std::string(payload.substr(a + 1, b - a - 1));
  s.stream = std::string(payload.substr(b + 1));
  if (s.recipient.find('@') == std::string::npos) return Error{"not an unsubscribe token"};
  return s;
}

std::string header_fields(std::string_view token, std::string_view url_prefix,
                          std::string_view mailto) {
  std::string f = "List-Unsubscribe: <" + std::string(url_prefix) + std::string(token) + ">";
  const size_t at = mailto.rfind('@');
  if (at != std::string_view::npos) {
    const std::string_view local = mailto.substr(0, at), domain = mailto.substr(at + 1);
    // Folded between the two URIs: each may be long.
    f += ",\r\n\t<mailto:";
    if (local.size() + 1 + token.size() <= kLocalPartBytesMax) {
      f += std::string(local) + "+" + std::string(token) + "@" + std::string(domain) + ">";
    } else {
      f += std::string(mailto) + "?subject=" + std::string(token) + ">";
    }
  }
  f += "\r\nList-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n";
  return f;
}

std::string token_from_mail(std::string_view recipient_local, std::string_view subject) {
  if (const size_t plus = recipient_local.find('+'); plus != std::string_view::npos) {
    return std::string(recipient_local.substr(plus + 1));
  }
  subject = trim_space(subject);
  const size_t space = subject.find_last_of(" \t");
  return std::string(space == std::string_view::npos ? subject : subject.substr(space + 1));
}

bool is_one_click_body(std::string_view content_type, std::string_view body) {
  const std::string type = ascii_lower(content_type.substr(0, content_type.find(';')));
  if (trim_space(type) == "multipart/form-data") {
    // A part named List-Unsubscribe whose content is One-Click.
    const std::string lower = ascii_lower(body);
    for (size_t at = lower.find("name=\"list-unsubscribe\""); at != std::string::npos;
         at = lower.find("name=\"list-unsubscribe\"", at + 1)) {
      const size_t start = body.find("\r\n\r\n", at);
      if (start != std::string_view::npos && body.substr(start + 4, 9) == "One-Click") {
        const std::string_view rest = body.substr(start + 13);
        if (rest.empty() || rest[0] == '\r' || rest[0] == '\n') return true;
      }
    }
    return false;
  }
  std::vector<std::pair<std::string, std::string>> pairs;
  std::string bad;
  if (!parse_query(trim_space(body), &pairs, &bad)) return false;
  return std::any_of(pairs.begin(), pairs.end(), [](const auto& p) {
    return p.first == "List-Unsubscribe" && p.second == "One-Click";
  });
}

}  // namespace ringmail::proto::unsubscribe
