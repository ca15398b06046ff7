// Reads what ringmail needs from a TLS ClientHello before any TLS session
// exists: the server name (SNI, RFC 6066), whether the client can verify
// an ECDSA certificate, and whether it asks for ChaCha20 first. The
// certificate is chosen from these, and the session is created with the
// right context from the start (wolfSSL 5.5.4 cannot
// switch a session from an RSA to an ECDSA context under TLS 1.2).
//
// Pure parsing of the bytes received so far: no I/O, no allocation beyond
// the result. Fuzzed (tests/fuzz/fuzz_client_hello.cc).
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace ringmail::tls {

struct ClientHelloInfo {
  // Lower case, without a trailing dot; empty when absent or not a valid
  // host name.
  std::string server_name;
  // Offers TLS 1.3 (supported_versions).
  bool tls13 = false;
  // Can verify an ECDSA P-256 certificate: ecdsa_secp256r1_sha256 in
  // signature_algorithms and, for a client without TLS 1.3, an ECDHE-ECDSA
  // cipher suite.
  bool ecdsa = false;
  // Lists a ChaCha20-Poly1305 suite before any AES-GCM one: a client that
  // says it has no AES hardware (as phones without it do); the server then
  // puts ChaCha20 first for it.
  bool prefers_chacha = false;
};

enum class HelloStatus {
  kNeedMore,  // a prefix of a plausible ClientHello: wait for more bytes
  kOk,        // parsed; `info` filled
  kNotTls,    // not a TLS handshake, malformed, or larger than kMaxBytes
};

// The largest ClientHello (all records) this reader waits for.
inline constexpr size_t kClientHelloMaxBytes = 32 * 1024;

HelloStatus parse_client_hello(std::string_view in, ClientHelloInfo* info);

}  // namespace ringmail::tls
