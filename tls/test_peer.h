// Test helper: a wolfSSL client wired to in-memory buffers, the peer of a
// TlsSession in unit tests (and the source of real ClientHello bytes).
#pragma once

#include <wolfssl/options.h>
#include <wolfssl/ssl.h>

#include <string>

#include "tls/context.h"

namespace ringmail::tls {

class TestClient {
 public:
  // `max_version`: WOLFSSL_TLSV1_2 or WOLFSSL_TLSV1_3. `ciphers` may be
  // empty (wolfSSL's default list).
  explicit TestClient(int max_version, const std::string& sni = "",
                      const std::string& ciphers = "") {
    init_library();
    ctx_ = wolfSSL_CTX_new(max_version == WOLFSSL_TLSV1_3 ? wolfTLSv1_3_client_method()
                                                          : wolfTLSv1_2_client_method());
    wolfSSL_CTX_set_verify(ctx_, WOLFSSL_VERIFY_NONE, nullptr);
    if (!ciphers.empty()) wolfSSL_CTX_set_cipher_list(ctx_, ciphers.c_str());
    ssl_ = wolfSSL_new(ctx_);
    wolfSSL_SSLSetIORecv(ssl_, &TestClient::on_recv);
    wolfSSL_SSLSetIOSend(ssl_, &TestClient::on_send);
    wolfSSL_SetIOReadCtx(ssl_, this);
    wolfSSL_SetIOWriteCtx(ssl_, this);
    wolfSSL_UseSessionTicket(ssl_);  // as mail clients do
    if (!sni.empty()) {
      wolfSSL_UseSNI(ssl_, WOLFSSL_SNI_HOST_NAME, sni.data(),
                     static_cast<unsigned short>(sni.size()));
    }
  }
  ~TestClient() {
    wolfSSL_free(ssl_);
    wolfSSL_CTX_free(ctx_);
  }
  // Runs the client's side as far as it can; true once connected.
  bool step() {
    if (connected_) return true;
    connected_ = wolfSSL_connect(ssl_) == WOLFSSL_SUCCESS;
    return connected_;
  }
  void write(const std::string& s) { wolfSSL_write(ssl_, s.data(), static_cast<int>(s.size())); }
  std::string read() {
    std::string out;
    char buf[4096];
    int n;
    while ((n = wolfSSL_read(ssl_, buf, sizeof buf)) > 0) out.append(buf, static_cast<size_t>(n));
    return out;
  }
  WOLFSSL* ssl() { return ssl_; }
  std::string in;   // from the server
  std::string out;  // to the server

 private:
  static int on_recv(WOLFSSL*, char* buf, int sz, void* p) {
    auto* self = static_cast<TestClient*>(p);
    if (self->in.empty()) return WOLFSSL_CBIO_ERR_WANT_READ;
    const size_t n = self->in.size() < static_cast<size_t>(sz) ? self->in.size() : sz;
    self->in.copy(buf, n);
    self->in.erase(0, n);
    return static_cast<int>(n);
  }
  static int on_send(WOLFSSL*, char* buf, int sz, void* p) {
    static_cast<TestClient*>(p)->out.append(buf, static_cast<size_t>(sz));
    return sz;
  }
  WOLFSSL_CTX* ctx_ = nullptr;
  WOLFSSL* ssl_ = nullptr;
  bool connected_ = false;
};

}  // namespace ringmail::tls
