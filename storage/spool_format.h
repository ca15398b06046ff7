// Encoding of one spooled message, as specified in docs/spool-format.md.
// Pure functions: no I/O.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "proto/smtp_server.h"

namespace ringmail::storage {

inline constexpr std::string_view kSpoolMagic = "ringmail-spool 1\n";

struct SpoolRecord {
  proto::Envelope env;
  std::string message;  // Received header + content, CRLF line endings
};

// The file is header + message + trailer; the message is not copied.
struct EncodedRecord {
  std::string header;
  std::string trailer;
};
EncodedRecord encode_record(const proto::Envelope& env, std::string_view message);

enum class DecodeError { kNone, kBadMagic, kBadHeader, kTruncated, kBadChecksum, kTrailingBytes };
const char* to_string(DecodeError e);

// Validates the whole file (structure, lengths, checksum) and fills `out`.
DecodeError decode_record(std::string_view file, SpoolRecord& out);

}  // namespace ringmail::storage
