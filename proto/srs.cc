#include "proto/srs.h"

#include <initializer_list>

#include "proto/address.h"
#include "proto/sasl.h"

namespace ringmail::proto::srs {

namespace {

constexpr std::string_view kBase32 = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
constexpr int64_t kDaySeconds = 86400;
constexpr int64_t kStampSlots = 1024;  // two base32 characters
constexpr size_t kHashChars = 4;

bool is_separator(char c) { return c == '=' || c == '-' || c == '+'; }

// "SRS0" or "SRS1" in any case, then a separator.
bool has_tag(std::string_view local, char digit) {
  return local.size() >= 5 && iequals(local.substr(0, 3), "SRS") && local[3] == digit &&
         is_separator(local[4]);
}

// Splits `s` at its first `n - 1` '=' into `n` non-empty fields (the last
// one takes the rest, '=' included).
bool split_fields(std::string_view s, std::initializer_list<std::string_view*> fields) {
  size_t i = 0;
  for (std::string_view* f : fields) {
    if (++i == fields.size()) {
      *f = s;
    } else {
      const size_t eq = s.find('=');
      if (eq == std::string_view::npos) return false;
      *f = s.substr(0, eq);
      s.remove_prefix(eq + 1);
    }
    if (f->empty()) return false;
  }
  return true;
}

std::string stamp(int64_t now_s) {
  const auto day = static_cast<uint64_t>(now_s / kDaySeconds);
  return {kBase32[(day >> 5) & 31], kBase32[day & 31]};
}

// HHHH for secret `secret` over the lower-cased fields; empty when the
// HMAC fails.
std::string hash(const Config& c, const std::string& secret,
                 std::initializer_list<std::string_view> fields) {
  std::string data;
  for (std::string_view f : fields) data += ascii_lower(f);
  const std::string mac = c.hmac(secret, data);
  if (mac.size() < 3) return {};  // four base64 characters need three bytes
  return base64_encode(mac.substr(0, 3));
}

Error check_hash(const Config& c, std::string_view given,
                 std::initializer_list<std::string_view> fields) {
  if (given.size() < kHashChars) return Error::kBadHash;
  for (const std::string& secret : c.secrets) {
    const std::string h = hash(c, secret, fields);
    if (h.empty()) return Error::kHmac;
    if (iequals(given.substr(0, kHashChars), h)) return Error::kNone;
  }
  return Error::kBadHash;
}

// The stamp's day (mod 1024), or -1 when it is not two base32 characters.
int64_t stamp_day(std::string_view s) {
  if (s.size() != 2) return -1;
  int64_t day = 0;
  for (char ch : s) {
    const char upper = ch >= 'a' && ch <= 'z' ? static_cast<char>(ch - 'a' + 'A') : ch;
    const size_t v = kBase32.find(upper);
    if (v == std::string_view::npos) return -1;
    day = day << 5 | static_cast<int64_t>(v);
  }
  return day;
}

}  // namespace

const char* to_string(Error e) {
  switch (e) {
    case Error::kNone:
      return "ok";
    case Error::kNotSrs:
      return "not an SRS address of ours";
    case Error::kMalformed:
      return "malformed SRS address";
    case Error::kBadHash:
      return "bad SRS hash";
    case Error::kExpired:
      return "SRS address expired";
    case Error::kNoSecret:
      return "no SRS secret configured";
    case Error::kHmac:
      return "HMAC failed";
  }
  return "unknown SRS error";
}

bool is_srs(std::string_view address) { return has_tag(address, '0') || has_tag(address, '1'); }

Error forward(const Config& c, std::string_view sender, int64_t now_s, std::string* out) {
  const size_t at = sender.rfind('@');
  if (sender.empty() ||
      (at != std::string_view::npos && iequals(sender.substr(at + 1), c.domain))) {
    *out = std::string(sender);
    return Error::kNone;
  }
  if (at == std::string_view::npos || at == 0) return Error::kMalformed;
  const std::string_view user = sender.substr(0, at), host = sender.substr(at + 1);
  // A '=' in the host would move the field boundaries on the way back.
  if (!is_valid_domain(host)) return Error::kMalformed;
  if (c.secrets.empty()) return Error::kNoSecret;
  const std::string& secret = c.secrets.front();

  std::string h;
  if (has_tag(user, '1')) {
    // Already SRS1: keep the first forwarder and its SRS0 part, sign anew.
    std::string_view old_hash, first_host, first_user;
    if (!split_fields(user.substr(5), {&old_hash, &first_host, &first_user}))
      return Error::kMalformed;
    if ((h = hash(c, secret, {first_host, first_user})).empty()) return Error::kHmac;
    *out = "SRS1=" + h + "=" + std::string(first_host) + "=" + std::string(first_user) + "@" +
           c.domain;
  } else if (has_tag(user, '0')) {
    // The previous forwarder's SRS0 address: its local part after the tag
    // (separator included) and its host go into an SRS1 address.
    const std::string_view rest = user.substr(4);
    if ((h = hash(c, secret, {host, rest})).empty()) return Error::kHmac;
    *out = "SRS1=" + h + "=" + std::string(host) + "=" + std::string(rest) + "@" + c.domain;
  } else {
    const std::string ts = stamp(now_s);
    if ((h = hash(c, secret, {ts, host, user})).empty()) return Error::kHmac;
    *out =
        "SRS0=" + h + "=" + ts + "=" + std::string(host) + "=" + std::string(user) + "@" + c.domain;
  }
  return Error::kNone;
}

Error reverse(const Config& c, std::string_view address, int64_t now_s, std::string* out) {
  const size_t at = address.rfind('@');
  if (at == std::string_view::npos || !iequals(address.substr(at + 1), c.domain) ||
      !is_srs(address))
    return Error::kNotSrs;
  if (c.secrets.empty()) return Error::kNoSecret;
  const std::string_view local = address.substr(0, at);

  std::string_view h, ts, host, user;
  if (has_tag(local, '1')) {
    if (!split_fields(local.substr(5), {&h, &host, &user})) return Error::kMalformed;
    if (const Error e = check_hash(c, h, {host, user}); e != Error::kNone) return e;
    *out = "SRS0" + std::string(user) + "@" + std::string(host);
    return Error::kNone;
  }
  if (!split_fields(local.substr(5), {&h, &ts, &host, &user})) return Error::kMalformed;
  const int64_t then = stamp_day(ts);
  if (then < 0) return Error::kMalformed;
  if (const Error e = check_hash(c, h, {ts, host, user}); e != Error::kNone) return e;
  // The stamp wraps every 1024 days: the newest day with its value that is
  // not after today.
  int64_t today = now_s / kDaySeconds % kStampSlots;
  if (today < then) today += kStampSlots;
  if (today - then > c.max_age_days) return Error::kExpired;
  *out = std::string(user) + "@" + std::string(host);
  return Error::kNone;
}

}  // namespace ringmail::proto::srs
