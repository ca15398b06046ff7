#include "proto/sasl.h"

#include <array>
#include <cstdint>

namespace ringmail::proto {

namespace {

constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
constexpr size_t kFieldMax = 255;

constexpr std::array<int8_t, 256> make_table() {
  std::array<int8_t, 256> t{};
  for (auto& v : t) v = -1;
  for (int i = 0; i < 64; ++i) t[static_cast<uint8_t>(kAlphabet[i])] = static_cast<int8_t>(i);
  return t;
}
constexpr auto kTable = make_table();

bool field_ok(std::string_view s) {
  return !s.empty() && s.size() <= kFieldMax && s.find('\0') == std::string_view::npos;
}

}  // namespace

std::optional<std::string> base64_decode(std::string_view in) {
  if (in.size() % 4 != 0) return std::nullopt;
  std::string out;
  out.reserve(in.size() / 4 * 3);
  for (size_t i = 0; i < in.size(); i += 4) {
    const bool last = i + 4 == in.size();
    int v[4];
    int pad = 0;
    for (int j = 0; j < 4; ++j) {
      const char c = in[i + static_cast<size_t>(j)];
      if (c == '=' && last && j >= 2) {
        ++pad;
        v[j] = 0;
        continue;
      }
      if (pad > 0) return std::nullopt;  // data after padding
      v[j] = kTable[static_cast<uint8_t>(c)];
      if (v[j] < 0) return std::nullopt;
    }
    const uint32_t n = (static_cast<uint32_t>(v[0]) << 18) | (static_cast<uint32_t>(v[1]) << 12) |
                       (static_cast<uint32_t>(v[2]) << 6) | static_cast<uint32_t>(v[3]);
    out += static_cast<char>(n >> 16);
    if (pad < 2) out += static_cast<char>((n >> 8) & 0xff);
    if (pad < 1) out += static_cast<char>(n & 0xff);
    // Bits that the padding says are unused must be zero (canonical form).
    if ((pad == 1 && (n & 0xff) != 0) || (pad == 2 && (n & 0xffff) != 0)) return std::nullopt;
  }
  return out;
}

std::string base64_encode(std::string_view in) {
  std::string out;
  out.reserve((in.size() + 2) / 3 * 4);
  size_t i = 0;
  for (; i + 3 <= in.size(); i += 3) {
    const uint32_t n = (static_cast<uint8_t>(in[i]) << 16) |
                       (static_cast<uint8_t>(in[i + 1]) << 8) | static_cast<uint8_t>(in[i + 2]);
    out += kAlphabet[n >> 18];
    out += kAlphabet[(n >> 12) & 63];
    out += kAlphabet[(n >> 6) & 63];
    out += kAlphabet[n & 63];
  }
  if (i < in.size()) {
    uint32_t n = static_cast<uint32_t>(static_cast<uint8_t>(in[i])) << 16;
    if (i + 1 < in.size()) n |= static_cast<uint32_t>(static_cast<uint8_t>(in[i + 1])) << 8;
    out += kAlphabet[n >> 18];
    out += kAlphabet[(n >> 12) & 63];
    out += i + 1 < in.size() ? kAlphabet[(n >> 6) & 63] : '=';
    out += '=';
  }
  return out;
}

SaslError decode_plain(std::string_view b64, Credentials* out) {
  auto raw = base64_decode(b64);
  if (!raw) return SaslError::kBadBase64;
  const std::string_view s = *raw;
  const size_t a = s.find('\0');
  if (a == std::string_view::npos) return SaslError::kMalformed;
  const size_t b = s.find('\0', a + 1);
  if (b == std::string_view::npos) return SaslError::kMalformed;
  const std::string_view authzid = s.substr(0, a);
  const std::string_view user = s.substr(a + 1, b - a - 1);
  const std::string_view pass = s.substr(b + 1);
  if (authzid.size() > kFieldMax || !field_ok(user) || !field_ok(pass))
    return SaslError::kMalformed;
  out->authzid.assign(authzid);
  out->user.assign(user);
  out->password.assign(pass);
  return SaslError::kNone;
}

SaslError decode_login_field(std::string_view b64, std::string* out) {
  auto raw = base64_decode(b64);
  if (!raw) return SaslError::kBadBase64;
  if (!field_ok(*raw)) return SaslError::kMalformed;
  *out = std::move(*raw);
  return SaslError::kNone;
}

}  // namespace ringmail::proto
