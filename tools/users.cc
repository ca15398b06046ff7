#include "tools/users.h"

#include <fcntl.h>
#include <termios.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <optional>

#include "storage/durable_file.h"
#include "storage/file_io.h"
#include "storage/userdb.h"
#include "tls/password.h"

namespace ringmail::tools {

namespace {

namespace fs = std::filesystem;
using storage::UserDb;
using storage::UserEntry;

int fail(const std::string& msg) {
  std::fprintf(stderr, "ringmail: %s\n", msg.c_str());
  return 1;
}

std::optional<std::string> prompt(const char* what) {
  std::fprintf(stderr, "%s", what);
  termios old{};
  const bool tty = ::tcgetattr(0, &old) == 0;
  if (tty) {
    termios quiet = old;
    quiet.c_lflag &= ~static_cast<tcflag_t>(ECHO);
    ::tcsetattr(0, TCSANOW, &quiet);
  }
  std::string line;
  const bool ok = static_cast<bool>(std::getline(std::cin, line));
  if (tty) {
    ::tcsetattr(0, TCSANOW, &old);
    std::fprintf(stderr, "\n");
  }
  if (!ok) return std::nullopt;
  return line;
}

// The password, or nullopt after saying why not.
std::optional<std::string> read_password(PasswordSource src, bool confirm) {
  std::string pw;
  if (src.from_stdin) {
    if (!std::getline(std::cin, pw)) {
      fail("no password on standard input");
      return std::nullopt;
    }
    if (!pw.empty() && pw.back() == '\r') pw.pop_back();
  } else {
    if (!::isatty(0)) {
      fail("standard input is not a terminal: use --password-stdin");
      return std::nullopt;
    }
    auto a = prompt("Password: ");
    if (!a) return std::nullopt;
    if (confirm) {
      auto b = prompt("Password again: ");
      if (!b || *a != *b) {
        fail("the passwords do not match");
        return std::nullopt;
      }
    }
    pw = *a;
  }
  if (pw.empty()) {
    fail("the password is empty");
    return std::nullopt;
  }
  return pw;
}

// Loads a domain's users; a missing file is an empty database.
std::optional<UserDb> load(const std::string& path, bool* exists) {
  storage::PosixFileIo io;
  std::string text;
  *exists = io.exists(path);
  if (!*exists) return UserDb{};
  if (int r = io.read_file(path, &text); r < 0) {
    fail("cannot read " + path + ": " + std::strerror(-r));
    return std::nullopt;
  }
  auto db = UserDb::parse(text);
  if (!db) {
    fail(path + ": " + db.error());
    return std::nullopt;
  }
  return std::move(*db);
}

// Replaces the file atomically and durably (temporary file, fsync, rename,
// directory fsync), mode 0600: it holds password hashes.
bool save(const std::string& path, const UserDb& db) {
  const fs::path dir = fs::path(path).parent_path();
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) return fail("cannot create " + dir.string() + ": " + ec.message()) == 0;
  if (const int r =
          storage::write_durable_file(path, db.serialize(), 0600, storage::Existing::kReplace);
      r < 0) {
    return fail("cannot write " + path + ": " + std::strerror(-r)) == 0;
  }
  return true;
}

// One user's domain file, loaded: the normalized name, the file's path and
// its users (nullopt after saying what is wrong).
struct DomainFile {
  std::string local, domain, path;
  std::optional<UserDb> db;
};
DomainFile open_for(const std::string& domains_dir, const std::string& address) {
  DomainFile f;
  auto name = storage::normalize_user(address);
  if (!name) {
    fail(name.error());
    return f;
  }
  f.local = std::move(name->local);
  f.domain = std::move(name->domain);
  f.path = storage::users_file(domains_dir, f.domain);
  bool exists = false;
  f.db = load(f.path, &exists);
  return f;
}

}  // namespace

std::optional<std::string> password(PasswordSource src, bool confirm) {
  return read_password(src, confirm);
}

int user_add(const std::string& domains_dir, const std::string& address, PasswordSource src) {
  auto [local, domain, path, db] = open_for(domains_dir, address);
  if (!db) return 1;
  auto pw = read_password(src, true);
  if (!pw) return 1;
  UserEntry e;
  const tls::ScryptParams params;
  if (!tls::random_salt(&e.salt) || !tls::scrypt_key(*pw, e.salt, params, &e.key)) {
    return fail("cannot hash the password");
  }
  e.scheme = UserEntry::Scheme::kScrypt;
  e.log_n = params.log_n;
  e.r = params.r;
  e.p = params.p;
  const bool replaced = db->find(local) != nullptr;
  const bool converted = db->from_chasquid();
  db->set(local, std::move(e));
  if (!save(path, *db)) return 1;
  std::printf("%s %s@%s in %s%s\n", replaced ? "updated" : "added", local.c_str(), domain.c_str(),
              path.c_str(), converted ? " (rewritten from chasquid's format)" : "");
  return 0;
}

int user_remove(const std::string& domains_dir, const std::string& address) {
  auto [local, domain, path, db] = open_for(domains_dir, address);
  if (!db) return 1;
  if (!db->remove(local)) return fail("no user " + local + "@" + domain + " in " + path);
  if (!save(path, *db)) return 1;
  std::printf("removed %s@%s from %s\n", local.c_str(), domain.c_str(), path.c_str());
  return 0;
}

int user_list(const std::string& domains_dir, const std::string& only) {
  std::error_code ec;
  std::vector<std::string> domains;
  for (fs::directory_iterator it(domains_dir, ec), end; !ec && it != end; it.increment(ec)) {
    if (it->is_directory(ec)) domains.push_back(it->path().filename().string());
  }
  if (ec && domains.empty()) return fail("cannot read " + domains_dir + ": " + ec.message());
  std::sort(domains.begin(), domains.end());
  int rc = 0;
  for (const auto& d : domains) {
    if (!only.empty() && d != only) continue;
    bool exists = false;
    auto db = load(storage::users_file(domains_dir, d), &exists);
    if (!db) {
      rc = 1;
      continue;
    }
    for (const auto& n : db->names()) {
      const bool denied = db->find(n)->scheme == UserEntry::Scheme::kDenied;
      std::printf("%s@%s%s\n", n.c_str(), d.c_str(), denied ? " (may not log in)" : "");
    }
  }
  return rc;
}

int authenticate(const std::string& domains_dir, const std::string& address, PasswordSource src) {
  auto [local, domain, path, db] = open_for(domains_dir, address);
  if (!db) return 1;
  auto pw = read_password(src, false);
  if (!pw) return 1;
  const UserEntry* e = db->find(local);
  bool ok = false;
  if (e != nullptr && e->scheme == UserEntry::Scheme::kScrypt) {
    ok = tls::scrypt_matches(
        *pw, e->salt, tls::ScryptParams{e->log_n, e->r, e->p, static_cast<int>(e->key.size())},
        e->key);
  } else if (e != nullptr && e->scheme == UserEntry::Scheme::kPlain) {
    ok = *pw == e->password;
  }
  if (ok) {
    std::printf("ok: %s@%s\n", local.c_str(), domain.c_str());
    return 0;
  }
  std::printf("failed: %s@%s: %s\n", local.c_str(), domain.c_str(),
              e == nullptr                              ? "no such user"
              : e->scheme == UserEntry::Scheme::kDenied ? "may not log in"
                                                        : "wrong password");
  return 1;
}

int check_users(const std::string& domains_dir) {
  std::error_code ec;
  std::vector<std::string> files;
  for (fs::directory_iterator it(domains_dir, ec), end; !ec && it != end; it.increment(ec)) {
    const fs::path f = it->path() / "users";
    if (fs::exists(f, ec)) files.push_back(f.string());
  }
  if (ec && files.empty()) return fail("cannot read " + domains_dir + ": " + ec.message());
  std::sort(files.begin(), files.end());
  int rc = 0;
  for (const auto& f : files) {
    bool exists = false;
    auto db = load(f, &exists);
    if (!db) {
      rc = 1;
      continue;
    }
    std::printf("%s: %zu user%s%s\n", f.c_str(), db->size(), db->size() == 1 ? "" : "s",
                db->from_chasquid() ? " (chasquid's format)" : "");
  }
  if (files.empty()) std::printf("no users files under %s\n", domains_dir.c_str());
  return rc;
}

}  // namespace ringmail::tools
