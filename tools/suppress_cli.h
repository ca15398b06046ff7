// `ringmail suppress`: the suppression list (docs/suppression.md).
//
//   ringmail suppress add ADDRESS [--scope DOMAIN] [--reason TEXT]
//   ringmail suppress remove ADDRESS [--scope DOMAIN]
//   ringmail suppress check ADDRESS [--sender-domain DOMAIN]
//   ringmail suppress list [--scope DOMAIN] [--json]
//
// add, remove and check go through the running daemon's admin API (so
// every shard sees the change at once); list reads the list's file
// (<data_dir>/suppression). Exit 0 (check: 0 when suppressed, 1 when
// not); 75 when the daemon is not running; 1 for an error; 64 for a
// usage error.
#pragma once

#include <string>

#include "config/config.h"

namespace CLI {
class App;
}  // namespace CLI

namespace ringmail::tools {

class SuppressCli {
 public:
  explicit SuppressCli(CLI::App& app);
  SuppressCli(const SuppressCli&) = delete;
  SuppressCli& operator=(const SuppressCli&) = delete;

  bool parsed() const;
  int run(const config::Config& cfg) const;

 private:
  CLI::App* suppress_ = nullptr;
  CLI::App* add_ = nullptr;
  CLI::App* remove_ = nullptr;
  CLI::App* check_ = nullptr;
  CLI::App* list_ = nullptr;
  std::string address_, scope_, reason_, sender_domain_;
  bool json_ = false;
};

}  // namespace ringmail::tools
