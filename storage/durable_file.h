// Small files written whole and made durable: configuration written by the
// tools, users files, DKIM keys, the SRS secret. The contents are fsynced,
// and so is the directory, so the name survives a power loss too.
#pragma once

#include <sys/types.h>

#include <string>
#include <string_view>

namespace ringmail::storage {

enum class Existing : unsigned char {
  kRefuse,   // the path must not exist (O_EXCL): -EEXIST if it does
  kReplace,  // written beside it, then renamed over it: readers see the old
             // file or the new one, never a part
};

// Writes `data` to `path` with `mode` (set exactly, whatever the umask).
// Returns 0, or -errno of the step that failed. A failure before the file
// has its name leaves nothing behind (no partial file, no temporary one).
[[nodiscard]] int write_durable_file(const std::string& path, std::string_view data, mode_t mode,
                                     Existing existing);

}  // namespace ringmail::storage
