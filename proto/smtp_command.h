// SMTP command lines (RFC 5321 4.1): verb recognition and argument parsing,
// reading the line in place (string_views into the caller's buffer).
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>
#include <vector>

#include "proto/address.h"

namespace ringmail::proto {

inline constexpr size_t kCommandLineBytesMax = 2048;  // Postfix's line_length_limit

enum class Verb : uint8_t {
  kUnknown,
  kHelo,
  kEhlo,
  kMail,
  kRcpt,
  kData,
  kBdat,
  kRset,
  kNoop,
  kQuit,
  kHelp,
  kVrfy,
  kExpn,
  kStarttls,
  kAuth,
  kHttp,
};

struct Command {
  Verb verb = Verb::kUnknown;
  std::string_view args;  // after the verb and one space, trailing spaces removed
};

// `line` excludes the CRLF. Never fails: unknown verbs give kUnknown, and an
// HTTP request line ("GET / HTTP/1.1", "POST ...") gives kHttp.
Command parse_command(std::string_view line);

// "FROM:<path> params" / "TO:<path> params".
struct PathArgs {
  Address address;
  std::vector<std::pair<std::string_view, std::string_view>> params;  // KEY, VALUE ("" if none)
};
enum class PathError { kNone, kNoPrefix, kBadAddress, kTooLong, kBadParams };
// `prefix` is "FROM:" or "TO:" (matched case-insensitively; one optional space
// after the colon is accepted, as many clients send it).
PathError parse_path_args(std::string_view args, std::string_view prefix, bool is_mail,
                          PathArgs& out);

// "BDAT <size> [LAST]"
struct BdatArgs {
  uint64_t size = 0;
  bool last = false;
};
[[nodiscard]] bool parse_bdat_args(std::string_view args, BdatArgs& out);

// HELO/EHLO argument: printable ASCII (or UTF-8) without spaces, 1..255 octets.
bool is_valid_helo(std::string_view name);

}  // namespace ringmail::proto
