#include "tls/wolfssl_info.h"

#include <wolfssl/options.h>
#include <wolfssl/ssl.h>
#include <wolfssl/version.h>

namespace ringmail::tls {

WolfsslInfo wolfssl_info() {
  WolfsslInfo i;
  i.version = wolfSSL_lib_version();
#if defined(WOLFSSL_AESNI)
  i.aesni = true;
#endif
#if defined(WOLFSSL_SP_X86_64_ASM)
  i.sp_asm = true;
#endif
#if defined(WOLFSSL_TLS13)
  i.tls13 = true;
#endif
#if defined(HAVE_ED25519)
  i.ed25519 = true;
#endif
  return i;
}

std::string describe(const WolfsslInfo& i) {
  std::string s = "wolfSSL " + i.version;
  s += i.aesni ? ", AES-NI" : ", no AES-NI";
  s += i.sp_asm ? ", SP x86_64 asm" : ", no SP asm";
  if (i.tls13) s += ", TLS 1.3";
  if (i.ed25519) s += ", Ed25519";
  return s;
}

}  // namespace ringmail::tls
