#include "tls/password.h"

#include <wolfssl/options.h>
#include <wolfssl/wolfcrypt/pwdbased.h>
#include <wolfssl/wolfcrypt/random.h>

namespace ringmail::tls {

bool scrypt_key(std::string_view password, std::string_view salt, const ScryptParams& params,
                std::string* key) {
  // Bounds that keep a hostile users file from asking for gigabytes.
  if (params.log_n < 1 || params.log_n > 20 || params.r < 1 || params.r > 32 || params.p < 1 ||
      params.p > 16 || params.key_len < 16 || params.key_len > 64 || salt.empty()) {
    return false;
  }
  key->assign(static_cast<size_t>(params.key_len), '\0');
  return wc_scrypt(
             reinterpret_cast<byte*>(key->data()), reinterpret_cast<const byte*>(password.data()),
             static_cast<int>(password.size()), reinterpret_cast<const byte*>(salt.data()),
             static_cast<int>(salt.size()), params.log_n, params.r, params.p, params.key_len) == 0;
}

bool scrypt_matches(std::string_view password, std::string_view salt, const ScryptParams& params,
                    std::string_view key) {
  std::string got;
  if (!scrypt_key(password, salt, params, &got) || got.size() != key.size()) return false;
  unsigned char diff = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    diff |= static_cast<unsigned char>(got[i] ^ key[i]);
  }
  return diff == 0;
}

bool random_salt(std::string* salt) {
  WC_RNG rng;
  if (wc_InitRng(&rng) != 0) return false;
  salt->assign(16, '\0');
  const bool ok = wc_RNG_GenerateBlock(&rng, reinterpret_cast<byte*>(salt->data()), 16) == 0;
  wc_FreeRng(&rng);
  return ok;
}

}  // namespace ringmail::tls
