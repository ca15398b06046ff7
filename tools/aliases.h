// ringmail aliases-resolve (tools/ringmail.cc): where an address ends up,
// from the same files and rules ringmaild uses (storage::Domains; the
// daemon reads the files again within 2 s of a change, so both agree).
#pragma once

#include <string>
#include <vector>

namespace ringmail::tools {

struct AliasSettings {
  std::string domains_dir;
  std::vector<std::string> local_domains;
  std::string suffix_separators = "+";
  std::string drop_characters = ".";
};

// Prints the destinations of `address`; 0 when it resolves, 1 otherwise.
int aliases_resolve(const AliasSettings& s, const std::string& address);

}  // namespace ringmail::tools
