// Which configuration an operator command works on, so that `ringmail
// user-add` writes where the running ringmaild reads: --config FILE when
// given, else $RINGMAIL_CONFIG, else /etc/ringmail/ringmail.toml; when that
// file does not exist and the command runs in a ringmail checkout (where
// `tools/dev run` starts the daemon on its embedded dev configuration), the
// same embedded configuration, said on stderr. Parsed by the daemon's own
// parser (config/config.h), defaults and all.
#pragma once

#include <memory>
#include <string>

#include "config/config.h"

namespace ringmail::tools {

struct ToolConfig {
  std::shared_ptr<const config::Config> cfg;  // null: no configuration found
  std::string path;                           // the file; "" for the embedded one
  std::string note;  // the line to print when the embedded dev configuration is used
};

// $RINGMAIL_CONFIG, else /etc/ringmail/ringmail.toml.
std::string default_config_path();

// True when `dir` is the top of a ringmail source checkout.
bool is_checkout(const std::string& dir);

// `given` is --config's value ("" when not given). A one-line error when a
// file that exists (or was given) cannot be read or does not parse; else
// the configuration, `cfg` null when there is none at all. `note` says
// when the embedded dev configuration is used; `dev_fallback` false leaves
// that out (dns-check looks at a real domain: the dev host name means
// nothing).
Result<ToolConfig> load_tool_config(const std::string& given, bool dev_fallback);

}  // namespace ringmail::tools
