// `ringmail events`: the event log (docs/events.md) from the command line.
//
//   ringmail events tail [--lines N] [--type T]... [--follow] [--json] [--dir DIR]
//
// The last N events (10) of every shard's segments, oldest first, as one
// line each (or the log's JSON lines with --json); --follow then prints
// new events as they are written until interrupted. --type keeps only
// those types (repeatable). Exit 0; 1 when the log cannot be read; 64 for
// a usage error (an unknown type).
#pragma once

#include <string>
#include <vector>

#include "config/config.h"

namespace CLI {
class App;
}  // namespace CLI

namespace ringmail::tools {

class EventsCli {
 public:
  explicit EventsCli(CLI::App& app);
  EventsCli(const EventsCli&) = delete;
  EventsCli& operator=(const EventsCli&) = delete;

  bool parsed() const;
  int run(const config::Config& cfg) const;

 private:
  CLI::App* events_ = nullptr;
  CLI::App* tail_ = nullptr;
  size_t lines_ = 10;
  std::vector<std::string> types_;
  bool follow_ = false;
  bool json_ = false;
  std::string dir_;
};

// One event's JSON line as `ringmail events tail` prints it:
// "2026-12-07T03:45:36Z Delivery 1K20C7FRQ3S00 <a@x> -> <b@y> 250 2.0.0 Ok
// (mx1.peer.test)"; the line itself when it is not an event.
std::string event_line(const std::string& json);

}  // namespace ringmail::tools
