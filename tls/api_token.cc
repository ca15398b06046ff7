#include "tls/api_token.h"

#include <wolfssl/options.h>
#include <wolfssl/wolfcrypt/random.h>

#include <cctype>

#include "proto/ascii.h"
#include "tls/password.h"
#include "tls/sha256.h"

namespace ringmail::tls {

namespace {
constexpr char kBase64Url[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
}  // namespace

std::string new_api_token() {
  unsigned char raw[33] = {};  // 32 random bytes, one zero to round to 3-byte groups
  WC_RNG rng;
  if (wc_InitRng(&rng) != 0) return {};
  const bool ok = wc_RNG_GenerateBlock(&rng, raw, 32) == 0;
  wc_FreeRng(&rng);
  if (!ok) return {};
  std::string out = "rmt_";
  for (size_t i = 0; i < 33; i += 3) {
    const uint32_t v = (uint32_t{raw[i]} << 16) | (uint32_t{raw[i + 1]} << 8) | raw[i + 2];
    for (int s = 18; s >= 0; s -= 6) out += kBase64Url[(v >> s) & 63];
  }
  out.resize(4 + 43);  // 256 bits: the last character of 44 carries no random bits
  return out;
}

std::string api_token_hash(std::string_view token) {
  const Sha256Digest d = Sha256Job::hash(token, Sha256Backend::kWolfCrypt);
  return proto::hex_lower(std::string_view(reinterpret_cast<const char*>(d.data()), d.size()));
}

bool is_token_hash(std::string_view sha256_hex) {
  if (sha256_hex.size() != 64) return false;
  for (char c : sha256_hex) {
    if (!std::isxdigit(static_cast<unsigned char>(c))) return false;
  }
  return true;
}

bool api_token_matches(std::string_view token, std::string_view sha256_hex) {
  return api_token_hash_equal(api_token_hash(token), sha256_hex);
}

bool api_token_hash_equal(std::string_view token_hash, std::string_view sha256_hex) {
  if (!is_token_hash(sha256_hex)) return false;
  std::string want(sha256_hex);
  for (char& c : want) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return equal_in_constant_time(token_hash, want);
}

}  // namespace ringmail::tls
