#include "tls/ticket_keys.h"

#include <wolfssl/options.h>
#include <wolfssl/ssl.h>
#include <wolfssl/wolfcrypt/chacha20_poly1305.h>
#include <wolfssl/wolfcrypt/random.h>

#include <array>
#include <cstring>

namespace ringmail::tls {

namespace {

bool random_bytes(unsigned char* out, size_t n) {
  WC_RNG rng;
  if (wc_InitRng(&rng) != 0) return false;
  const bool ok = wc_RNG_GenerateBlock(&rng, out, static_cast<word32>(n)) == 0;
  wc_FreeRng(&rng);
  return ok;
}

// The key name and nonce are authenticated along with the ticket.
std::array<unsigned char, 32> ticket_aad(const unsigned char key_name[16],
                                         const unsigned char iv[16]) {
  std::array<unsigned char, 32> aad;
  std::memcpy(aad.data(), key_name, 16);
  std::memcpy(aad.data() + 16, iv, 16);
  return aad;
}

int ticket_cb(WOLFSSL* /*ssl*/, unsigned char key_name[WOLFSSL_TICKET_NAME_SZ],
              unsigned char iv[WOLFSSL_TICKET_IV_SZ], unsigned char mac[WOLFSSL_TICKET_MAC_SZ],
              int enc, unsigned char* ticket, int in_len, int* out_len, void* user) {
  return static_cast<const TicketKeys*>(user)->seal_or_open(key_name, iv, mac, enc, ticket, in_len,
                                                            out_len);
}

}  // namespace

std::shared_ptr<TicketKeys> TicketKeys::create() {
  std::shared_ptr<TicketKeys> k(new TicketKeys());
  if (!random_bytes(k->name_.data(), k->name_.size()) ||
      !random_bytes(k->key_.data(), k->key_.size())) {
    return nullptr;
  }
  return k;
}

void TicketKeys::attach(WOLFSSL_CTX* ctx) {
  wolfSSL_CTX_set_TicketEncCb(ctx, &ticket_cb);
  wolfSSL_CTX_set_TicketEncCtx(ctx, this);
}

int TicketKeys::seal_or_open(unsigned char key_name[16], unsigned char iv[16],
                             unsigned char mac[32], int enc, unsigned char* ticket, int in_len,
                             int* out_len) const {
  static_assert(CHACHA20_POLY1305_AEAD_IV_SIZE <= 16 && CHACHA20_POLY1305_AEAD_AUTHTAG_SIZE <= 32);
  if (in_len < 0) return WOLFSSL_TICKET_RET_FATAL;
  const auto len = static_cast<word32>(in_len);
  if (enc) {
    std::memcpy(key_name, name_.data(), name_.size());
    if (!random_bytes(iv, 16)) return WOLFSSL_TICKET_RET_FATAL;
    std::memset(mac, 0, 32);
    const auto aad = ticket_aad(key_name, iv);
    if (wc_ChaCha20Poly1305_Encrypt(key_.data(), iv, aad.data(), aad.size(), ticket, len, ticket,
                                    mac) != 0) {
      return WOLFSSL_TICKET_RET_FATAL;
    }
    *out_len = in_len;
    return WOLFSSL_TICKET_RET_OK;
  }
  // A ticket sealed under another key (another process, or forged): not an
  // error, the client just does a full handshake.
  if (std::memcmp(key_name, name_.data(), name_.size()) != 0) return WOLFSSL_TICKET_RET_REJECT;
  const auto aad = ticket_aad(key_name, iv);
  if (wc_ChaCha20Poly1305_Decrypt(key_.data(), iv, aad.data(), aad.size(), ticket, len, mac,
                                  ticket) != 0) {
    return WOLFSSL_TICKET_RET_REJECT;
  }
  *out_len = in_len;
  return WOLFSSL_TICKET_RET_OK;
}

}  // namespace ringmail::tls
