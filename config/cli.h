// The command line of every binary (CLI11): --version, and EX_USAGE for
// a bad command line. Header only; the includer depends on CLI11.
#pragma once

#include <CLI/CLI.hpp>
#include <optional>
#include <string>

#include "config/version_text.h"

namespace ringmail::config {

// Adds --version (version_line(program)) to `app`.
inline void add_version_flag(CLI::App& app, const std::string& program) {
  app.set_version_flag("--version", version_line(program));
}

// Parses; on --help, --version or an error returns the exit status (0, or
// kUsageExit after CLI11 printed the error), else nothing.
inline std::optional<int> parse_command_line(CLI::App& app, int argc, char** argv) {
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int r = app.exit(e);
    return r == 0 ? 0 : kUsageExit;
  }
  return std::nullopt;
}

}  // namespace ringmail::config
