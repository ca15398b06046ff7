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

struct WOLFSSL_CTX;

namespace ringmail::tls {

// Called once per process before anything else in tls/ (idempotent).
void init_library();

class TicketKeys;

class TlsContext {
 public:
  // Loads `cert_path` (PEM chain, leaf first) and `key_path` (PEM key,
  // PKCS#8 or traditional) as of `now_unix`. On failure returns null and a
  // one-line reason in *error. With `tickets`, session tickets are sealed
  // with those keys (shared by every context, so they survive reloads).
  static std::shared_ptr<const TlsContext> load(const std::string& cert_path,
                                                const std::string& key_path, int64_t now_unix,
                                                std::shared_ptr<TicketKeys> tickets,
                                                std::string* error);
  // The context for outbound sessions (delivery to other servers): the same
  // versions and suites; server certificates are checked against the
  // system's CA store and the result is recorded per session, but never
  // stops delivery (opportunistic TLS, RFC 3207 and 7435). With `ca_file`
  // (PEM), certificates are checked against those CAs instead (a route to
  // a relay with a private CA).
  static std::shared_ptr<const TlsContext> client(std::string* error,
                                                  const std::string& ca_file = "");
  ~TlsContext();
  TlsContext(const TlsContext&) = delete;
  TlsContext& operator=(const TlsContext&) = delete;

  WOLFSSL_CTX* raw() const { return ctx_; }
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
  std::vector<std::string> names_;
  bool ecdsa_ = false;
  int64_t not_before_ = 0;
  int64_t not_after_ = 0;
  std::string serial_hex_;
  std::string cert_path_;
  std::shared_ptr<TicketKeys> tickets_;
};

// The cipher suites, in server preference order.
extern const char* const kCipherList;

}  // namespace ringmail::tls
