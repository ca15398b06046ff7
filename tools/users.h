// ringmail's user commands (tools/ringmail.cc): the users files under
// domains_dir, <domains_dir>/<domain>/users (storage/userdb.h).
#pragma once

#include <optional>
#include <string>

namespace ringmail::tools {

struct PasswordSource {
  bool from_stdin = false;  // one line from standard input, else prompt twice
};

// The password (asked twice when `confirm`), or nullopt after saying why not.
std::optional<std::string> password(PasswordSource src, bool confirm);

int user_add(const std::string& domains_dir, const std::string& address, PasswordSource pw);
int user_remove(const std::string& domains_dir, const std::string& address);
int user_list(const std::string& domains_dir, const std::string& domain);
int authenticate(const std::string& domains_dir, const std::string& address, PasswordSource pw);
int check_users(const std::string& domains_dir);

}  // namespace ringmail::tools
