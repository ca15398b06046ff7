// The users of one domain: <domains_dir>/<domain>/users, a text file that
// is safe to keep in a private git repository (docs/users-format.md).
//
// ringmail's format, one user per line, sorted, '#' comments:
//   alice $scrypt$ln=14,r=8,p=1$<salt, base64>$<key, base64>
// chasquid's users file (protobuf text: users { key: "alice" value { scrypt
// { logN: 14 r: 8 p: 1 keyLen: 32 salt: "..." encrypted: "..." } } }) is read
// as it is, so a chasquid setup's passwords keep working; it is rewritten in
// ringmail's format only when a tool changes it.
//
// Parsing and formatting only: hashing is tls/password.h's.
#pragma once

#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "proto/result.h"

namespace ringmail::storage {

struct UserEntry {
  enum class Scheme { kScrypt, kPlain, kDenied };
  Scheme scheme = Scheme::kDenied;
  // kScrypt
  int log_n = 0;
  int r = 0;
  int p = 0;
  std::string salt;
  std::string key;  // its length is the scrypt key length
  // kPlain: chasquid's debugging scheme (read, never written by ringmail)
  std::string password;

  bool operator==(const UserEntry&) const = default;
};

class UserDb {
 public:
  // Either format; an error says "line N: reason".
  static Result<UserDb> parse(std::string_view text);
  // ringmail's format.
  std::string serialize() const;

  const UserEntry* find(const std::string& local) const;
  void set(const std::string& local, UserEntry e) { users_[local] = std::move(e); }
  bool remove(const std::string& local) { return users_.erase(local) > 0; }
  std::vector<std::string> names() const;
  size_t size() const { return users_.size(); }
  bool from_chasquid() const { return from_chasquid_; }
  void set_from_chasquid() { from_chasquid_ = true; }

 private:
  std::map<std::string, UserEntry> users_;  // by normalized local part
  bool from_chasquid_ = false;
};

// "alice@Example.TEST" -> local "alice", domain "example.test": local part
// lower-cased (ASCII), domain to its IDNA ASCII form in lower case. The same
// on user-add and on AUTH. An error is one line.
struct UserName {
  std::string local;
  std::string domain;
};
Result<UserName> normalize_user(std::string_view address);

std::string users_file(const std::string& domains_dir, const std::string& domain);

}  // namespace ringmail::storage
