// One TLS session, server side (inbound STARTTLS and implicit TLS) or client
// side (outbound delivery, send-test, smtp-blaster), driven as a byte
// transformer: ciphertext from the peer goes in with feed(), plaintext comes out of pump();
// plaintext to send goes in with write(), ciphertext to send comes out of output(). wolfSSL sees
// only these buffers through its I/O callbacks: it never gets a file descriptor and the callbacks
// make no syscall, so the engine keeps all socket I/O on its ring.
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>

#include "tls/context.h"

struct WOLFSSL;

namespace ringmail::tls {

class TlsSession {
 public:
  enum class Status {
    kOk,      // progress made or more bytes needed
    kClosed,  // the peer sent close_notify
    kError,   // handshake or record error: drop the connection
  };

  enum class Role : uint8_t { kServer, kClient };
  // A client session sends `server_name` as SNI; under a verifying context
  // (TlsContext::ClientMode::kVerify) the certificate must also be for that
  // name, or the handshake fails.
  explicit TlsSession(std::shared_ptr<const TlsContext> ctx, Role role = Role::kServer,
                      const std::string& server_name = "");
  ~TlsSession();
  TlsSession(const TlsSession&) = delete;
  TlsSession& operator=(const TlsSession&) = delete;

  // A server session for a client that asks for ChaCha20 first (it has no
  // AES hardware): ChaCha20 goes first for it. Before the handshake.
  void prefer_chacha();
  // Ciphertext received from the peer.
  void feed(std::string_view in);
  // Runs the handshake as far as the input allows, then decrypts every
  // complete record, appending the plaintext to *plain.
  Status pump(std::string* plain);
  bool handshake_done() const { return handshake_done_; }

  // Encrypts `plain` into output(). False on error (session unusable).
  bool write(std::string_view plain);
  // Starts an orderly close (close_notify into output()).
  void close();

  // Ciphertext to send; the caller sends it and erases what was sent.
  std::string& output() { return out_; }

  // After the handshake: "TLSv1.3", the cipher suite name, and whether a
  // ticket resumed an earlier session.
  std::string version() const;
  std::string cipher() const;
  bool resumed() const;
  // Client sessions: the handshake is done under a verifying context, and
  // the server's certificate chain, dates and name (the server_name given)
  // checked out. Never under an opportunistic context, which checks nothing.
  bool peer_verified() const;
  // Client sessions under a verifying context: a check of the server's
  // certificate failed, which ends the handshake (pump() returns kError).
  bool certificate_failed() const { return check_.failed; }
  // Which check failed, in plain words ("untrusted issuer: ...", "name
  // mismatch: ...", "expired"...); empty when none did.
  std::string certificate_problem() const;
  const TlsContext& context() const { return *ctx_; }
  // The last wolfSSL error, for the log.
  const std::string& error() const { return error_; }

 private:
  static int on_recv(WOLFSSL* ssl, char* buf, int sz, void* self);
  static int on_send(WOLFSSL* ssl, char* buf, int sz, void* self);
  Status fail(int ret);

  std::shared_ptr<const TlsContext> ctx_;
  WOLFSSL* ssl_ = nullptr;
  std::string in_;
  size_t in_pos_ = 0;
  std::string out_;
  bool handshake_done_ = false;
  Role role_ = Role::kServer;
  std::string server_name_;
  bool name_checked_ = false;  // wolfSSL checks the certificate against server_name_
  PeerCheck check_;            // filled by a verifying context's callback
  std::string error_;
};

}  // namespace ringmail::tls
