#include "config/version_text.h"

#include "config/version.h"
#include "tls/wolfssl_info.h"

namespace ringmail::config {

std::string version_line(std::string_view program) {
  std::string git = kGitDescribe;
  return std::string(program) + " " + kRingmailVersion +
         (git.empty() || git == kRingmailVersion ? "" : " (git " + git + ")") + ", wolfSSL " +
         tls::wolfssl_info().version + ", liburing " + kLiburingVersion;
}

}  // namespace ringmail::config
