// Test-only: bytes as lower-case hex, for comparing digests and keys with
// the published test vectors.
#pragma once

#include <string>
#include <string_view>

#include "proto/ascii.h"

namespace ringmail::tls {

inline std::string hex(std::string_view s) { return proto::hex_lower(s); }

}  // namespace ringmail::tls
