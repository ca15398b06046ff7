// A string in double quotes with '"', '\' and control characters escaped
// (\uXXXX): valid both as a JSON string and as a TOML basic string, for
// the tools that write configuration files and JSON reports.
#pragma once

#include <string>
#include <string_view>

namespace ringmail::proto {

std::string quoted(std::string_view s);

}  // namespace ringmail::proto
