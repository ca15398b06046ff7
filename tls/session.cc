#include "tls/session.h"

// wolfSSL's options.h must come first: it carries the build's feature macros.
// clang-format off
#include <wolfssl/options.h>
#include <wolfssl/error-ssl.h>  // DOMAIN_NAME_MISMATCH
#include <wolfssl/ssl.h>
// clang-format on

namespace ringmail::tls {

TlsSession::TlsSession(std::shared_ptr<const TlsContext> ctx, Role role,
                       const std::string& server_name)
    : ctx_(std::move(ctx)), role_(role), server_name_(server_name) {
  ssl_ = wolfSSL_new(ctx_->raw());
  if (ssl_ == nullptr) {
    error_ = "cannot create a TLS session";
    return;
  }
  if (role_ == Role::kClient) {
    if (!server_name.empty()) {
      wolfSSL_UseSNI(ssl_, WOLFSSL_SNI_HOST_NAME, server_name.data(),
                     static_cast<unsigned short>(server_name.size()));
    }
    if (ctx_->verifying()) {
      wolfSSL_SetCertCbCtx(ssl_, &check_);
      // Without a name nothing is checked against: never peer_verified().
      name_checked_ = !server_name.empty() &&
                      wolfSSL_check_domain_name(ssl_, server_name.c_str()) == WOLFSSL_SUCCESS;
    }
  }
  wolfSSL_SSLSetIORecv(ssl_, &TlsSession::on_recv);
  wolfSSL_SSLSetIOSend(ssl_, &TlsSession::on_send);
  wolfSSL_SetIOReadCtx(ssl_, this);
  wolfSSL_SetIOWriteCtx(ssl_, this);
}

void TlsSession::prefer_chacha() {
  if (ssl_ != nullptr && cipher_list() != kChachaFirstList) {
    (void)wolfSSL_set_cipher_list(ssl_, kChachaFirstList);  // the context's stays on failure
  }
}

TlsSession::~TlsSession() {
  if (ssl_ != nullptr) wolfSSL_free(ssl_);
}

int TlsSession::on_recv(WOLFSSL*, char* buf, int sz, void* p) {
  auto* self = static_cast<TlsSession*>(p);
  const size_t avail = self->in_.size() - self->in_pos_;
  if (avail == 0) return WOLFSSL_CBIO_ERR_WANT_READ;
  const size_t n = avail < static_cast<size_t>(sz) ? avail : static_cast<size_t>(sz);
  self->in_.copy(buf, n, self->in_pos_);
  self->in_pos_ += n;
  if (self->in_pos_ == self->in_.size()) {
    self->in_.clear();
    self->in_pos_ = 0;
  }
  return static_cast<int>(n);
}

int TlsSession::on_send(WOLFSSL*, char* buf, int sz, void* p) {
  static_cast<TlsSession*>(p)->out_.append(buf, static_cast<size_t>(sz));
  return sz;
}

void TlsSession::feed(std::string_view in) {
  if (in_pos_ > 0 && in_pos_ * 2 > in_.size()) {
    in_.erase(0, in_pos_);
    in_pos_ = 0;
  }
  in_.append(in);
}

TlsSession::Status TlsSession::fail(int ret) {
  const int err = wolfSSL_get_error(ssl_, ret);
  if (err == WOLFSSL_ERROR_WANT_READ || err == WOLFSSL_ERROR_WANT_WRITE) return Status::kOk;
  if (err == WOLFSSL_ERROR_ZERO_RETURN) return Status::kClosed;
  char buf[128];
  wolfSSL_ERR_error_string_n(static_cast<unsigned long>(err), buf, sizeof buf);
  error_ = buf;
  return Status::kError;
}

TlsSession::Status TlsSession::pump(std::string* plain) {
  if (ssl_ == nullptr) return Status::kError;
  if (!handshake_done_) {
    const int r = role_ == Role::kClient ? wolfSSL_connect(ssl_) : wolfSSL_accept(ssl_);
    if (r != WOLFSSL_SUCCESS) return fail(r);
    handshake_done_ = true;
  }
  char buf[16384];
  while (true) {
    const int n = wolfSSL_read(ssl_, buf, sizeof buf);
    if (n <= 0) return fail(n);
    plain->append(buf, static_cast<size_t>(n));
  }
}

bool TlsSession::write(std::string_view plain) {
  if (ssl_ == nullptr || !handshake_done_) return false;
  while (!plain.empty()) {
    const int chunk = plain.size() > 16384 ? 16384 : static_cast<int>(plain.size());
    const int n = wolfSSL_write(ssl_, plain.data(), chunk);
    if (n <= 0) {
      fail(n);
      return false;
    }
    plain.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

void TlsSession::close() {
  if (ssl_ != nullptr && handshake_done_) wolfSSL_shutdown(ssl_);
}

std::string TlsSession::version() const {
  const char* v = ssl_ != nullptr ? wolfSSL_get_version(ssl_) : nullptr;
  return v != nullptr ? v : "";
}

std::string TlsSession::cipher() const {
  const char* c = ssl_ != nullptr ? wolfSSL_get_cipher_name(ssl_) : nullptr;
  return c != nullptr ? c : "";
}

bool TlsSession::peer_verified() const {
  return role_ == Role::kClient && handshake_done_ && ctx_->verifying() && name_checked_ &&
         !check_.failed;
}

std::string TlsSession::certificate_problem() const {
  if (!check_.failed) return "";
  const bool own = check_.depth == 0;
  switch (check_.error) {
    case ASN_NO_SIGNER_E:
    case ASN_SELF_SIGNED_E:
      return own ? "untrusted issuer: it is not signed by a trusted CA"
                 : "untrusted issuer: its chain does not lead to a trusted CA";
    case DOMAIN_NAME_MISMATCH:
    case IPADDR_MISMATCH:
      return "name mismatch: it is not for " + server_name_;
    case ASN_AFTER_DATE_E:
      return own ? "expired" : "expired: a CA certificate of its chain";
    case ASN_BEFORE_DATE_E:
      return own ? "not valid yet" : "not valid yet: a CA certificate of its chain";
    case ASN_SIG_CONFIRM_E:
    case ASN_SIG_OID_E:
    case ASN_SIG_HASH_E:
    case ASN_SIG_KEY_E:
      return "bad signature";
    default: {
      char buf[128];
      wolfSSL_ERR_error_string_n(static_cast<unsigned long>(check_.error), buf, sizeof buf);
      return std::string("rejected: ") + buf;
    }
  }
}

bool TlsSession::resumed() const { return ssl_ != nullptr && wolfSSL_session_reused(ssl_) == 1; }

}  // namespace ringmail::tls
