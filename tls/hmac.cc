#include "tls/hmac.h"

#include <wolfssl/options.h>
#include <wolfssl/wolfcrypt/hmac.h>

namespace ringmail::tls {

namespace {

std::string hmac(int type, size_t digest_bytes, std::string_view key, std::string_view data) {
  Hmac h;
  if (wc_HmacInit(&h, nullptr, INVALID_DEVID) != 0) return {};
  // wolfCrypt wants a non-null key pointer even for an empty key.
  static const byte kEmpty = 0;
  const byte* k = key.empty() ? &kEmpty : reinterpret_cast<const byte*>(key.data());
  std::string out(digest_bytes, '\0');
  const bool ok = wc_HmacSetKey(&h, type, k, static_cast<word32>(key.size())) == 0 &&
                  wc_HmacUpdate(&h, reinterpret_cast<const byte*>(data.data()),
                                static_cast<word32>(data.size())) == 0 &&
                  wc_HmacFinal(&h, reinterpret_cast<byte*>(out.data())) == 0;
  wc_HmacFree(&h);
  if (!ok) out.clear();
  return out;
}

}  // namespace

std::string hmac_sha1(std::string_view key, std::string_view data) {
  return hmac(WC_SHA, WC_SHA_DIGEST_SIZE, key, data);
}

std::string hmac_sha256(std::string_view key, std::string_view data) {
  return hmac(WC_SHA256, WC_SHA256_DIGEST_SIZE, key, data);
}

}  // namespace ringmail::tls
