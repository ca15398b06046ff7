// Which wolfSSL ringmail runs on. The TLS byte transformer (STARTTLS,
// implicit TLS) builds on this library in the next milestone; for now this
// reports the build so the start-up log and the tests can check that the
// bundled, assembly-enabled build is the one linked.
#pragma once

#include <string>

namespace ringmail::tls {

struct WolfsslInfo {
  std::string version;  // e.g. "5.5.4"
  bool aesni = false;   // AES-NI / AVX assembly (--enable-aesni --enable-intelasm)
  bool sp_asm = false;  // single-precision x86_64 assembly (--enable-sp-asm)
  bool tls13 = false;
  bool ed25519 = false;
};

WolfsslInfo wolfssl_info();
std::string describe(const WolfsslInfo& info);

}  // namespace ringmail::tls
