#include "tools/aliases.h"

#include <cstdio>

#include "config/version_text.h"
#include "proto/address.h"
#include "storage/domains.h"
#include "storage/file_io.h"

namespace ringmail::tools {

int aliases_resolve(const AliasSettings& s, const std::string& address) {
  const size_t at = address.rfind('@');
  if (at == std::string::npos || at == 0 || at + 1 == address.size()) {
    std::fprintf(stderr, "ringmail: %s: not an address (local@domain)\n", address.c_str());
    return config::kUsageExit;
  }
  proto::AliasOptions opt;
  opt.suffix_separators = s.suffix_separators;
  opt.drop_chars = s.drop_characters;
  storage::PosixFileIo io;
  std::vector<std::string> problems;
  auto domains = storage::Domains::load(io, s.domains_dir, s.local_domains, opt, &problems);
  for (const auto& p : problems) std::fprintf(stderr, "ringmail: %s\n", p.c_str());
  const std::string local = address.substr(0, at);
  const std::string domain = proto::ascii_lower(address.substr(at + 1));
  if (domains->broken(domain)) {
    std::fprintf(
        stderr, "ringmail: %s: its domain's users or aliases file has an error (451 until fixed)\n",
        address.c_str());
    return 1;
  }
  const proto::Resolution r = domains->resolve(local, domain);
  switch (r.status) {
    case proto::Resolution::Status::kOk:
      break;
    case proto::Resolution::Status::kUnknown:
      std::fprintf(stderr, "ringmail: %s: no such user (550 5.1.1)\n", address.c_str());
      return 1;
    case proto::Resolution::Status::kLoop:
    case proto::Resolution::Status::kTooDeep:
      std::fprintf(stderr, "ringmail: %s: the aliases %s at %s (451 4.3.0)\n", address.c_str(),
                   r.status == proto::Resolution::Status::kLoop ? "loop" : "go more than 10 deep",
                   r.detail.c_str());
      return 1;
  }
  for (const auto& d : r.destinations) {
    switch (d.kind) {
      case proto::Destination::Kind::kMailbox:
        std::printf("mailbox  %s\n", d.address.c_str());
        break;
      case proto::Destination::Kind::kRemote:
        std::printf("forward  %s\n", d.address.c_str());
        break;
      case proto::Destination::Kind::kPipe:
        std::printf("pipe     %s   (alias %s)\n", d.command.c_str(), d.address.c_str());
        break;
    }
  }
  return 0;
}

}  // namespace ringmail::tools
