// Session-ticket sealing keys shared by every TLS context of the process
// (RFC 5077 tickets for TLS 1.2, RFC 8446 PSK tickets for TLS 1.3). A ticket
// issued by one shard resumes on any other, and certificate reloads, which
// build new contexts, keep the keys: tickets issued before a reload still
// resume after it.
//
// Tickets are sealed with ChaCha20-Poly1305 (wolfCrypt) under a random
// 256-bit key made at start; the 16-byte key name in each ticket says which
// key sealed it. Immutable after construction, so shards use it without
// locks.
#pragma once

#include <array>
#include <cstdint>
#include <memory>

struct WOLFSSL_CTX;

namespace ringmail::tls {

class TicketKeys {
 public:
  // Random keys; null if the system's random source fails.
  static std::shared_ptr<TicketKeys> create();

  // Makes `ctx` issue and accept tickets sealed with these keys. The keys
  // must outlive the context (TlsContext holds a reference).
  void attach(WOLFSSL_CTX* ctx);

  // Ticket sealing, as wolfSSL's SessionTicketEncCb asks for it (public for
  // the callback and the tests): seals in place (enc != 0) or checks and
  // opens. Returns a WOLFSSL_TICKET_RET_* value.
  int seal_or_open(unsigned char key_name[16], unsigned char iv[16], unsigned char mac[32], int enc,
                   unsigned char* ticket, int in_len, int* out_len) const;

 private:
  TicketKeys() = default;
  std::array<unsigned char, 16> name_{};
  std::array<unsigned char, 32> key_{};
};

}  // namespace ringmail::tls
