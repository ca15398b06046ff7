// `ringmail queue`: the queue admin API (docs/admin-api.md) from the command
// line, through the admin socket of the configuration ([admin] socket).
//
//   ringmail queue summary [--json]
//   ringmail queue list [--domain D] [--sender A] [--rcpt A] [--older-than DURATION]
//                       [--state waiting|in_flight|held] [--limit N] [--json]
//   ringmail queue show ID [--body] [--json]
//   ringmail queue flush|hold|release [ID... | --domain D | --sender A | --all]
//   ringmail queue delete|bounce (ID... | --domain D | --sender A | --all)
//   ringmail queue suspend DOMAIN --for DURATION [--reason TEXT]
//   ringmail queue resume DOMAIN
//
// Exit 0; 75 (kDaemonDown) when the daemon is not running; 1 when it
// answers with an error (its text in one line on stderr); 2 for a usage
// error.
#pragma once

#include <string>
#include <vector>

#include "config/config.h"

namespace CLI {
class App;
}  // namespace CLI

namespace ringmail::tools {

class QueueCli {
 public:
  // Adds `queue` and its subcommands to `app`.
  explicit QueueCli(CLI::App& app);
  QueueCli(const QueueCli&) = delete;
  QueueCli& operator=(const QueueCli&) = delete;

  // `ringmail queue ...` was on the command line (after app's parse).
  bool parsed() const;
  // Runs it against the daemon of `cfg`: the exit status.
  int run(const config::Config& cfg) const;

 private:
  struct Action {
    std::string name;  // flush, hold, release, delete, bounce
    CLI::App* app;
  };
  int list(const std::string& socket) const;
  int action(const std::string& socket, const Action& a) const;
  int suspend(const std::string& socket) const;

  CLI::App* queue_ = nullptr;
  CLI::App* summary_ = nullptr;
  CLI::App* list_ = nullptr;
  CLI::App* show_ = nullptr;
  CLI::App* suspend_ = nullptr;
  CLI::App* resume_ = nullptr;
  std::vector<Action> actions_;

  bool json_ = false;
  bool body_ = false;
  bool all_ = false;
  std::string domain_, sender_, rcpt_, older_than_, state_, id_, duration_, reason_;
  size_t limit_ = 0;
  std::vector<std::string> ids_;
};

}  // namespace ringmail::tools
