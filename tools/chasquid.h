// ringmail import-chasquid (tools/ringmail.cc): a chasquid configuration
// directory turned into a ringmail one. domains/ (users, aliases,
// dkim:<selector>.pem) and certs/ (<name>/fullchain.pem + privkey.pem) are
// read by ringmaild as they are, so they are copied; chasquid.conf becomes
// ringmail.toml; whatever has no equivalent is reported, one line each.
#pragma once

#include <string>
#include <vector>

#include "proto/result.h"

namespace ringmail::tools {

// One `key: value` of chasquid.conf (protobuf text format, flat: chasquid's
// Config message has no nested messages). Strings are unescaped; numbers
// and identifiers (true, false) are kept as written.
struct TextField {
  std::string key;
  std::string value;
  bool is_string = false;
  int line = 0;
};

// Parses the text format subset chasquid.conf uses: `key: value` and
// `key: "string"` (adjacent strings joined, C escapes), `key: [v, ...]` for
// repeated fields, optional ',' or ';' after a field, # comments. An error
// says "SOURCE:LINE: reason".
Result<std::vector<TextField>> parse_text_format(const std::string& text,
                                                 const std::string& source);

// Go's time.ParseDuration ("20h", "1h30m", "90s", "1.5h") in whole seconds
// (rounded up); false when it is not one.
bool parse_go_duration(const std::string& s, double* seconds);

struct ImportOptions {
  std::string from;                  // chasquid's configuration directory
  std::string to = "/etc/ringmail";  // ringmail's
  std::string data_dir = "/var/spool/ringmail";
  bool force = false;  // overwrite existing files
};

// 0: written and usable (the report on stdout); 1 with a one-line reason on
// stderr otherwise.
int import_chasquid(const ImportOptions& o);

}  // namespace ringmail::tools
