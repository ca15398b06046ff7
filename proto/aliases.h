// Aliases (docs/aliases.md): the per-domain aliases file, chasquid's format,
// and where an address ends up.
//
//   # comment
//   pepe: jose                      same domain when the target has none
//   flowers: rose@garden, lilly@pond
//   tubo: | /usr/bin/command args   the message on the command's stdin
//   *: someone@example.org          catch-all: any address that is neither
//                                   a user nor another alias
//   *: *@pond                       '*' in a target: the original local part
//
// Lookup ignores case and the drop characters (default "."), and tries the
// local part with its suffix ("user+tag", separators default "+") first,
// then without it. Order: an alias, else a user, else the catch-all.
// Pure: the users and files come from the caller (AliasDirectory).
#pragma once

#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "proto/result.h"

namespace ringmail::proto {

struct AliasTarget {
  enum class Kind : uint8_t { kAddress, kPipe };
  Kind kind = Kind::kAddress;
  std::string text;  // "local@domain" (domain may be empty: the alias's), or the command
};

// One domain's aliases file, keys normalized (lower case, drop characters
// removed; "*" is the catch-all).
class AliasTable {
 public:
  // The table, or an error "line N: reason".
  static Result<AliasTable> parse(std::string_view text, std::string_view drop_chars);
  const std::vector<AliasTarget>* find(const std::string& key) const;
  size_t size() const { return rules_.size(); }

 private:
  std::map<std::string, std::vector<AliasTarget>> rules_;
};

// What resolution needs to know about the domains (the daemon's snapshot
// of its domains folder, or the files read by a tool).
class AliasDirectory {
 public:
  virtual ~AliasDirectory() = default;
  // `domain` in lower case.
  virtual bool is_local_domain(const std::string& domain) const = 0;
  // The domain's aliases, or null when it has no aliases file.
  virtual const AliasTable* aliases(const std::string& domain) const = 0;
  // The user whose normalized name (lower case, no suffix, no drop
  // characters) is `key`: its name as in the users file, or null.
  virtual const std::string* find_user(const std::string& domain, const std::string& key) const = 0;
  // A domain with neither users nor aliases file takes mail for any
  // mailbox name (the foundation's behaviour, kept for simple setups).
  virtual bool accepts_any_mailbox(const std::string& domain) const = 0;
};

struct AliasOptions {
  std::string suffix_separators = "+";
  std::string drop_chars = ".";
  size_t max_depth = 10;
};

// Where a message for one address goes.
struct Destination {
  enum class Kind : uint8_t { kMailbox, kRemote, kPipe };
  Kind kind = Kind::kMailbox;
  std::string address;  // kMailbox: "user@domain" (normalized); kRemote: as in the target;
                        // kPipe: the alias it comes from ("alias@domain")
  std::string command;  // kPipe
  bool operator==(const Destination&) const = default;
};

struct Resolution {
  enum class Status : uint8_t { kOk, kUnknown, kLoop, kTooDeep };
  Status status = Status::kOk;
  std::vector<Destination> destinations;  // kOk: in order, without repeats
  std::string detail;                     // for errors: the address where it went wrong
};

// The local part as lookups see it: lower case, drop characters removed,
// and (when `strip_suffix`) everything from the first suffix separator on.
std::string normalize_local(std::string_view local, const AliasOptions& opt, bool strip_suffix);

// Resolves `local`@`domain` (domain lower case). An address outside the
// local domains is a kRemote destination as it is.
Resolution resolve_alias(const std::string& local, const std::string& domain,
                         const AliasDirectory& dir, const AliasOptions& opt);

}  // namespace ringmail::proto
