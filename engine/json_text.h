// JSON text for the HTTP answers. Strings in them can carry bytes that are
// not UTF-8: a client's path or header, the 8-bit header of a queued
// message. nlohmann-json's dump() throws on those, and an exception on a
// shard's thread ends the process; here they become U+FFFD instead.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

namespace ringmail::engine {

inline std::string json_text(const nlohmann::json& j, int indent = -1, bool ascii = false) {
  return j.dump(indent, ' ', ascii, nlohmann::json::error_handler_t::replace);
}

}  // namespace ringmail::engine
