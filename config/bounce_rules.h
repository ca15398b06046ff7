// Bounce classification rules in TOML (docs/bounce-classes.md), read into
// a proto::BounceClassifier, and the default set shipped in
// config/bounce_rules.toml, embedded into the binary at build time.
//
//   [[rule]]
//   class = "InvalidRecipient"
//   patterns = ['^5\d\d 5\.1\.1\b', 'user unknown']
//
// Rules are tried in file order; the first whose pattern matches wins.
#pragma once

#include <string>
#include <string_view>

#include "proto/bounce_class.h"
#include "proto/result.h"

namespace ringmail::config {

// The rules in `text`. An error is one line: `source`, the rule (counted
// from 1 in file order), its line when known, and what is wrong.
Result<proto::BounceClassifier> parse_bounce_rules(std::string_view text,
                                                   const std::string& source);

// The text of config/bounce_rules.toml as built in.
std::string_view default_bounce_rules_text();

// The built-in rules, parsed on first use (thread-safe) and kept for the
// life of the process. The shipped file is checked by the unit tests, so a
// failure to parse it is a bug and aborts.
const proto::BounceClassifier& default_bounce_classifier();

}  // namespace ringmail::config
