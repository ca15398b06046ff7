// `--version` of every binary, and the usage exit status of every
// command-line parser.
#pragma once

#include <string>
#include <string_view>

namespace ringmail::config {

// "ringmaild 0.1.0 (git 1823854), wolfSSL 5.5.4, liburing 2.3".
std::string version_line(std::string_view program);

// Exit status for a bad command line: EX_USAGE (sysexits.h), as
// sendmail and Postfix use; CLI11's own codes (105-109) mean nothing to
// scripts.
inline constexpr int kUsageExit = 64;
// sysexits(3) EX_CONFIG: no configuration, or one that lacks what the
// command needs (say an [admin] socket).
inline constexpr int kConfigExit = 78;

}  // namespace ringmail::config
