// Files of secrets ringmaild makes itself on first start (SRS, one-click
// unsubscribe tokens): one secret a line, the first signs, every line
// verifies, so a new line on top rotates without breaking what the old
// one signed. '#' lines are comments.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "proto/result.h"

namespace ringmail::engine {

// A secret file's lines, shared by the shards.
struct SecretKeys {
  std::vector<std::string> secrets;  // the first signs, all verify
};

// The secrets of `path`; when it does not exist, makes it first (32
// random bytes as hex, mode 0600, fsynced) under a comment line
// `# <what>: the first line signs, ...`. An error says why it could be
// neither read nor made, or that it holds no secret.
Result<std::vector<std::string>> load_secret_file(const std::string& path, std::string_view what);

}  // namespace ringmail::engine
