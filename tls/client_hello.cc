#include "tls/client_hello.h"

#include <cstdint>

namespace ringmail::tls {

namespace {

constexpr uint8_t kRecordHandshake = 22;
constexpr uint8_t kHandshakeClientHello = 1;
constexpr size_t kRecordHeader = 5;
constexpr size_t kRecordMax = 16384 + 2048;  // TLSCiphertext limit

constexpr uint16_t kExtServerName = 0;
constexpr uint16_t kExtSignatureAlgorithms = 13;
constexpr uint16_t kExtSupportedVersions = 43;
constexpr uint16_t kSigEcdsaP256Sha256 = 0x0403;
constexpr uint16_t kVersionTls13 = 0x0304;

// Bounds-checked big-endian reader; any overrun clears ok.
struct Reader {
  std::string_view in;
  bool ok = true;

  bool has(size_t n) const { return ok && in.size() >= n; }
  uint32_t num(size_t n) {
    if (!has(n)) {
      ok = false;
      return 0;
    }
    uint32_t v = 0;
    for (size_t i = 0; i < n; ++i) v = (v << 8) | static_cast<uint8_t>(in[i]);
    in.remove_prefix(n);
    return v;
  }
  std::string_view take(size_t n) {
    if (!has(n)) {
      ok = false;
      return {};
    }
    std::string_view v = in.substr(0, n);
    in.remove_prefix(n);
    return v;
  }
  // A vector with an n-byte length prefix.
  Reader vec(size_t n) { return Reader{take(num(n)), ok}; }
};

bool is_chacha_suite(uint16_t s) {
  return s == 0x1303      // TLS_CHACHA20_POLY1305_SHA256
         || s == 0xCCA8   // ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256
         || s == 0xCCA9;  // ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256
}

bool is_aes_gcm_suite(uint16_t s) {
  return s == 0x1301 || s == 0x1302  // TLS_AES_128_GCM_SHA256, TLS_AES_256_GCM_SHA384
         || s == 0xC02B || s == 0xC02C || s == 0xC02F || s == 0xC030;  // ECDHE ... GCM
}

bool is_ecdsa_suite(uint16_t s) {
  switch (s) {
    case 0xC02B:  // ECDHE_ECDSA_WITH_AES_128_GCM_SHA256
    case 0xC02C:  // ECDHE_ECDSA_WITH_AES_256_GCM_SHA384
    case 0xCCA9:  // ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256
    case 0xC023:  // ECDHE_ECDSA_WITH_AES_128_CBC_SHA256
    case 0xC024:  // ECDHE_ECDSA_WITH_AES_256_CBC_SHA384
    case 0xC009:  // ECDHE_ECDSA_WITH_AES_128_CBC_SHA
    case 0xC00A:  // ECDHE_ECDSA_WITH_AES_256_CBC_SHA
      return true;
    default:
      return false;
  }
}

// A DNS host name (LDH labels), folded to lower case; empty if invalid.
std::string host_name(std::string_view raw) {
  if (!raw.empty() && raw.back() == '.') raw.remove_suffix(1);
  if (raw.empty() || raw.size() > 253) return {};
  std::string out;
  out.reserve(raw.size());
  size_t label = 0;
  for (char c : raw) {
    if (c == '.') {
      if (label == 0 || out.back() == '-') return {};
      label = 0;
      out += c;
      continue;
    }
    const bool alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
    if (!alnum && !(c == '-' && label > 0)) return {};
    if (++label > 63) return {};
    out += static_cast<char>(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
  }
  if (out.back() == '-') return {};
  return out;
}

bool parse_body(std::string_view body, ClientHelloInfo* info) {
  Reader r{body};
  r.num(2);    // legacy_version
  r.take(32);  // random
  Reader session = r.vec(1);
  if (session.in.size() > 32) return false;
  Reader suites = r.vec(2);
  if (!r.ok || suites.in.empty() || suites.in.size() % 2 != 0) return false;
  bool ecdsa_suite = false;
  bool seen_aead = false;  // the first AES-GCM or ChaCha20 suite decides
  while (suites.has(2)) {
    const auto s = static_cast<uint16_t>(suites.num(2));
    ecdsa_suite |= is_ecdsa_suite(s);
    if (!seen_aead && (is_chacha_suite(s) || is_aes_gcm_suite(s))) {
      seen_aead = true;
      info->prefers_chacha = is_chacha_suite(s);
    }
  }
  Reader compression = r.vec(1);
  if (!r.ok || compression.in.empty()) return false;
  bool sig_ecdsa = false;
  bool have_sigalgs = false;
  if (r.has(2)) {
    Reader exts = r.vec(2);
    if (!r.ok || !r.in.empty()) return false;  // nothing may follow the extensions
    while (exts.ok && !exts.in.empty()) {
      const uint16_t type = static_cast<uint16_t>(exts.num(2));
      Reader ext = exts.vec(2);
      if (!exts.ok) return false;
      switch (type) {
        case kExtServerName: {
          Reader list = ext.vec(2);
          while (list.ok && !list.in.empty()) {
            const uint32_t name_type = list.num(1);
            std::string_view name = list.vec(2).in;
            if (list.ok && name_type == 0 && info->server_name.empty()) {
              info->server_name = host_name(name);
            }
          }
          if (!list.ok) return false;
          break;
        }
        case kExtSignatureAlgorithms: {
          have_sigalgs = true;
          Reader list = ext.vec(2);
          if (!list.ok || list.in.size() % 2 != 0) return false;
          while (list.has(2)) sig_ecdsa |= list.num(2) == kSigEcdsaP256Sha256;
          break;
        }
        case kExtSupportedVersions: {
          Reader list = ext.vec(1);
          if (!list.ok || list.in.size() % 2 != 0) return false;
          while (list.has(2)) info->tls13 |= list.num(2) == kVersionTls13;
          break;
        }
        default:
          break;
      }
    }
    if (!exts.ok) return false;
  } else if (!r.in.empty()) {
    return false;
  }
  // Without signature_algorithms a TLS 1.2 client accepts SHA-1 signatures
  // with the suite's key type (RFC 5246 7.4.1.4.1): the suite decides.
  const bool sig_ok = have_sigalgs ? sig_ecdsa : true;
  info->ecdsa = sig_ok && (info->tls13 || ecdsa_suite);
  return true;
}

}  // namespace

HelloStatus parse_client_hello(std::string_view in, ClientHelloInfo* info) {
  *info = ClientHelloInfo{};
  std::string handshake;  // fragments of the handshake message, joined
  size_t need = 0;        // length of the whole handshake message, once known
  while (true) {
    if (in.size() < kRecordHeader) {
      // The first byte already tells a TLS handshake from anything else.
      if (!in.empty() && static_cast<uint8_t>(in[0]) != kRecordHandshake)
        return HelloStatus::kNotTls;
      return HelloStatus::kNeedMore;
    }
    Reader rec{in};
    const uint32_t type = rec.num(1);
    const uint32_t major = rec.num(1);
    rec.num(1);  // minor
    const uint32_t len = rec.num(2);
    if (type != kRecordHandshake || major != 3 || len == 0 || len > kRecordMax) {
      return HelloStatus::kNotTls;
    }
    if (in.size() < kRecordHeader + len) return HelloStatus::kNeedMore;
    handshake.append(in.substr(kRecordHeader, len));
    in.remove_prefix(kRecordHeader + len);
    if (need == 0 && handshake.size() >= 4) {
      Reader h{handshake};
      if (h.num(1) != kHandshakeClientHello) return HelloStatus::kNotTls;
      need = 4 + h.num(3);
      if (need > kClientHelloMaxBytes) return HelloStatus::kNotTls;
    }
    if (need != 0 && handshake.size() >= need) {
      if (!parse_body(std::string_view(handshake).substr(4, need - 4), info)) {
        *info = ClientHelloInfo{};
        return HelloStatus::kNotTls;
      }
      return HelloStatus::kOk;
    }
    if (handshake.size() > kClientHelloMaxBytes) return HelloStatus::kNotTls;
  }
}

}  // namespace ringmail::tls
