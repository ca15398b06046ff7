#include "tls/context.h"

// wolfSSL's options.h must come first: it carries the build's feature macros.
#include <cpuid.h>
#include <wolfssl/options.h>
#include <wolfssl/ssl.h>
#include <wolfssl/wolfcrypt/asn.h>  // ECDSAk, NID_commonName

#include <cstdio>
#include <ctime>
#include <mutex>

#include "tls/ticket_keys.h"

namespace ringmail::tls {

const char* const kChachaFirstList =
    "TLS13-CHACHA20-POLY1305-SHA256:TLS13-AES128-GCM-SHA256:TLS13-AES256-GCM-SHA384:"
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:"
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384";

namespace {
const char* const kAesFirstList =
    "TLS13-AES128-GCM-SHA256:TLS13-AES256-GCM-SHA384:TLS13-CHACHA20-POLY1305-SHA256:"
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305";
}  // namespace

bool aes_is_fast() {
#if defined(WOLFSSL_AESNI)
  unsigned a = 0, b = 0, c = 0, d = 0;
  return __get_cpuid(1, &a, &b, &c, &d) != 0 && (c & bit_AES) != 0;
#else
  return false;  // AES in C: ChaCha20 is the faster cipher then
#endif
}

const char* cipher_list() {
  static const bool fast = aes_is_fast();
  return fast ? kAesFirstList : kChachaFirstList;
}

void init_library() {
  static std::once_flag once;
  std::call_once(once, [] { wolfSSL_Init(); });
}

namespace {

int64_t to_unix(const WOLFSSL_ASN1_TIME* t) {
  struct tm tm {};
  if (t == nullptr || wolfSSL_ASN1_TIME_to_tm(t, &tm) != WOLFSSL_SUCCESS) return 0;
  return static_cast<int64_t>(timegm(&tm));
}

std::string lower(std::string s) {
  for (char& c : s) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return s;
}

struct X509Deleter {
  void operator()(WOLFSSL_X509* x) const { wolfSSL_X509_free(x); }
};

}  // namespace

Result<std::shared_ptr<const TlsContext>> TlsContext::load(const std::string& cert_path,
                                                           const std::string& key_path,
                                                           int64_t now_unix,
                                                           std::shared_ptr<TicketKeys> tickets) {
  init_library();
  std::shared_ptr<TlsContext> c(new TlsContext());
  c->cert_path_ = cert_path;
  c->tickets_ = std::move(tickets);
  c->ctx_ = wolfSSL_CTX_new(wolfSSLv23_server_method());
  if (c->ctx_ == nullptr) {
    return Error{"cannot create a TLS context"};
  }
  if (wolfSSL_CTX_SetMinVersion(c->ctx_, WOLFSSL_TLSV1_2) != WOLFSSL_SUCCESS ||
      wolfSSL_CTX_set_cipher_list(c->ctx_, cipher_list()) != WOLFSSL_SUCCESS) {
    return Error{"cannot set the TLS versions or cipher suites"};
  }
  if (wolfSSL_CTX_use_certificate_chain_file(c->ctx_, cert_path.c_str()) != WOLFSSL_SUCCESS) {
    return Error{cert_path + ": not a readable PEM certificate chain"};
  }
  if (wolfSSL_CTX_use_PrivateKey_file(c->ctx_, key_path.c_str(), WOLFSSL_FILETYPE_PEM) !=
      WOLFSSL_SUCCESS) {
    return Error{key_path + ": not a readable PEM private key"};
  }
  if (wolfSSL_CTX_check_private_key(c->ctx_) != WOLFSSL_SUCCESS) {
    return Error{key_path + ": the key does not match the certificate " + cert_path};
  }
  std::unique_ptr<WOLFSSL_X509, X509Deleter> x509(
      wolfSSL_X509_load_certificate_file(cert_path.c_str(), WOLFSSL_FILETYPE_PEM));
  if (!x509) {
    return Error{cert_path + ": cannot parse the certificate"};
  }
  c->not_before_ = to_unix(wolfSSL_X509_get_notBefore(x509.get()));
  c->not_after_ = to_unix(wolfSSL_X509_get_notAfter(x509.get()));
  if (now_unix < c->not_before_) {
    return Error{cert_path + ": the certificate is not valid yet"};
  }
  if (now_unix > c->not_after_) {
    return Error{cert_path + ": the certificate has expired"};
  }
  while (const char* n = wolfSSL_X509_get_next_altname(x509.get())) {
    c->names_.push_back(lower(n));
  }
  if (c->names_.empty()) {
    char cn[256] = {};
    WOLFSSL_X509_NAME* subject = wolfSSL_X509_get_subject_name(x509.get());
    if (subject != nullptr &&
        wolfSSL_X509_NAME_get_text_by_NID(subject, NID_commonName, cn, sizeof cn) > 0) {
      c->names_.push_back(lower(cn));
    }
  }
  c->ecdsa_ = wolfSSL_X509_get_pubkey_type(x509.get()) == ECDSAk;
  unsigned char serial[64];
  int serial_len = sizeof serial;
  if (wolfSSL_X509_get_serial_number(x509.get(), serial, &serial_len) == WOLFSSL_SUCCESS) {
    char hex[3];
    for (int i = 0; i < serial_len; ++i) {
      std::snprintf(hex, sizeof hex, "%02x", serial[i]);
      c->serial_hex_ += hex;
    }
  }
  // Resumption only by ticket: wolfSSL's session-ID cache is one table for
  // the process behind a lock, and it would not survive a restart anyway.
  wolfSSL_CTX_set_session_cache_mode(c->ctx_, WOLFSSL_SESS_CACHE_OFF);
  if (c->tickets_) c->tickets_->attach(c->ctx_);
  return c;
}

namespace {
// A verifying context's callback: records the first failed check on the
// session (its PeerCheck) and returns preverify_ok unchanged. Returning 1
// for a failure would override it, and wolfSSL would then add a failing
// chain CA to the context's trusted CAs (see TlsContext::client()).
int record_verify(int preverify_ok, WOLFSSL_X509_STORE_CTX* store) {
  if (preverify_ok == 0 && store != nullptr && store->userCtx != nullptr) {
    auto* check = static_cast<PeerCheck*>(store->userCtx);
    if (!check->failed) {
      check->failed = true;
      check->error = store->error;
      check->depth = store->error_depth;
    }
  }
  return preverify_ok;
}
}  // namespace

Result<std::shared_ptr<const TlsContext>> TlsContext::client(ClientMode mode,
                                                             const std::string& ca_file) {
  init_library();
  std::shared_ptr<TlsContext> c(new TlsContext());
  c->ctx_ = wolfSSL_CTX_new(wolfSSLv23_client_method());
  if (c->ctx_ == nullptr ||
      wolfSSL_CTX_SetMinVersion(c->ctx_, WOLFSSL_TLSV1_2) != WOLFSSL_SUCCESS ||
      wolfSSL_CTX_set_cipher_list(c->ctx_, cipher_list()) != WOLFSSL_SUCCESS) {
    return Error{"cannot create the outbound TLS context"};
  }
  if (mode == ClientMode::kOpportunistic) {
    if (!ca_file.empty()) {
      return Error{"a CA file needs a verifying TLS context"};
    }
    // No CA store, no callback: nothing is checked and nothing is learned.
    wolfSSL_CTX_set_verify(c->ctx_, WOLFSSL_VERIFY_NONE, nullptr);
    return c;
  }
  c->verifying_ = true;
  if (!ca_file.empty()) {
    if (wolfSSL_CTX_load_verify_locations(c->ctx_, ca_file.c_str(), nullptr) != WOLFSSL_SUCCESS) {
      return Error{"cannot load CA certificates from " + ca_file};
    }
  } else if (wolfSSL_CTX_load_system_CA_certs(c->ctx_) != WOLFSSL_SUCCESS) {
    // Without a CA store no server verifies: every handshake fails.
    return Error{"cannot load the system's CA certificates"};
  }
  wolfSSL_CTX_set_verify(c->ctx_, WOLFSSL_VERIFY_PEER, &record_verify);
  return c;
}

TlsContext::~TlsContext() {
  if (ctx_ != nullptr) wolfSSL_CTX_free(ctx_);
}

bool TlsContext::covers(const std::string& host) const {
  for (const auto& n : names_) {
    if (n == host) return true;
    if (n.size() > 2 && n[0] == '*' && n[1] == '.') {
      // One label: "a.example.com" matches "*.example.com", "a.b.example.com" not.
      const size_t dot = host.find('.');
      if (dot != std::string::npos && dot > 0 && host.compare(dot, std::string::npos, n, 1) == 0) {
        return true;
      }
    }
  }
  return false;
}

}  // namespace ringmail::tls
