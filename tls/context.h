// One server certificate (chain + key) loaded into a wolfSSL context with
// ringmail's protocol and cipher policy: TLS 1.2 and 1.3 only, AEAD suites
// with forward secrecy, server order preferring ChaCha20-Poly1305 then
// AES-GCM.
//
// Loading validates what a broken renewal would get wrong: the files parse,
// the key matches the certificate, and the certificate is valid now.
// Contexts are immutable once loaded and shared (shared_ptr) by the sessions
// that use them, so a reload swaps in new ones while open sessions keep
// theirs.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "proto/result.h"

struct WOLFSSL_CTX;

namespace ringmail::tls {

// Called once per process before anything else in tls/ (idempotent).
void init_library();

class TicketKeys;

class TlsContext {
 public:
  // Loads `cert_path` (PEM chain, leaf first) and `key_path` (PEM key,
  // PKCS#8 or traditional) as of `now_unix`, or says in one line why not.
  // With `tickets`, session tickets are sealed with those keys (shared by
  // every context, so they survive reloads).
  static Result<std::shared_ptr<const TlsContext>> load(const std::string& cert_path,
                                                        const std::string& key_path,
                                                        int64_t now_unix,
                                                        std::shared_ptr<TicketKeys> tickets);
  // How a client context treats the server's certificate.
  enum class ClientMode : uint8_t {
    // Not checked at all (WOLFSSL_VERIFY_NONE, no CA store): encryption
    // against passive eavesdroppers only, never stops delivery
    // (opportunistic TLS, RFC 3207 and 7435). Sessions are never
    // peer_verified().
    kOpportunistic,
    // Checked (chain to a trusted CA, dates, and the session's host name):
    // any failure ends the handshake, recorded on the session
    // (TlsSession::certificate_failed()).
    kVerify,
  };
  // A context for outbound sessions (delivery to other servers, send-test):
  // the same versions and suites. kVerify trusts the system's CA store, or
  // with `ca_file` (PEM) those CAs instead (a route to a relay with a
  // private CA); kOpportunistic takes no `ca_file`.
  //
  // The two modes never share a context, and a verifying context never
  // overrides a failed check: wolfSSL (5.5.4, src/internal.c
  // ProcessPeerCerts) calls AddCA() for every CA certificate of a peer's
  // chain that passed the check, or whose failure the verify callback
  // overrode (no error left after DoVerifyCallback), putting it in the
  // WOLFSSL_CTX's certificate manager, which every later session of the
  // context trusts. A callback that overrode failures made a server's own
  // untrusted CA trusted from its second connection on. With
  // WOLFSSL_VERIFY_NONE (options.verifyNone) wolfSSL adds none.
  static Result<std::shared_ptr<const TlsContext>> client(ClientMode mode,
                                                          const std::string& ca_file = "");
  ~TlsContext();
  TlsContext(const TlsContext&) = delete;
  TlsContext& operator=(const TlsContext&) = delete;

  WOLFSSL_CTX* raw() const { return ctx_; }
  // A client context of ClientMode::kVerify.
  bool verifying() const { return verifying_; }
  // DNS names the certificate is for (subjectAltName, else the CN), lower
  // case; wildcards as "*.example.com".
  const std::vector<std::string>& names() const { return names_; }
  bool ecdsa() const { return ecdsa_; }
  int64_t not_before() const { return not_before_; }
  int64_t not_after() const { return not_after_; }
  const std::string& serial_hex() const { return serial_hex_; }
  const std::string& cert_path() const { return cert_path_; }
  // True when this certificate covers `host` (exactly, or by a wildcard one
  // label deep).
  bool covers(const std::string& host) const;

 private:
  TlsContext() = default;
  WOLFSSL_CTX* ctx_ = nullptr;
  bool verifying_ = false;
  std::vector<std::string> names_;
  bool ecdsa_ = false;
  int64_t not_before_ = 0;
  int64_t not_after_ = 0;
  std::string serial_hex_;
  std::string cert_path_;
  std::shared_ptr<TicketKeys> tickets_;
};

// What the verify callback of a verifying context found in one session
// (its wolfSSL_SetCertCbCtx).
struct PeerCheck {
  bool failed = false;
  int error = 0;  // the first failed check's wolfSSL error code
  int depth = 0;  // the certificate it failed on: 0 the server's own, 1 its issuer...
};

// The cipher suites, in server preference order: AES-GCM first where it
// is fast (wolfSSL built with AES-NI on a CPU that has it), else
// ChaCha20-Poly1305 first; kChachaFirstList for a client that asks for
// ChaCha20 first (ClientHelloInfo::prefers_chacha), whatever this CPU has.
const char* cipher_list();
extern const char* const kChachaFirstList;
// The CPU and the wolfSSL build run AES-GCM in hardware.
bool aes_is_fast();

}  // namespace ringmail::tls
