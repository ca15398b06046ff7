// AUTH checks for one shard: finds the user in its domain's users file
// (storage/userdb.h; re-read when the file changes, at most once a second,
// so user-add needs no restart) and runs the scrypt check on a backend
// worker thread (tls/password.h), never on the shard's thread. Unknown and
// denied users cost the same hash as real ones, so timing does not tell
// which user names exist.
//
// Failures are counted per client address in AuthFailures, one table for
// the whole process, for the slow-down and lock-out of connection.cc.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>

#include "proto/sasl.h"
#include "storage/file_io.h"
#include "storage/userdb.h"
#include "tls/password.h"

namespace ringmail::engine {

// Failed AUTH attempts per client in the last 10 minutes, shared by every
// shard: a client spreading its connections over N shards gets no more
// tries than on one. A client is an IPv4 address or an IPv6 /64 (what one
// host can use). Guarded by its own mutex: taken once per AUTH attempt,
// beside a password hash that costs tens of milliseconds; never held
// across anything else.
class AuthFailures {
 public:
  static constexpr int64_t kWindowS = 600;
  static constexpr size_t kTableMax = 100000;  // clients remembered at most

  // Adds a failure of `client_literal` ("[192.0.2.1]", "[IPv6:2001:db8::1]")
  // and returns its failures in the window, this one included.
  uint32_t note(const std::string& client_literal, int64_t now_s);
  // Its failures in the window now.
  uint32_t count(const std::string& client_literal, int64_t now_s) const;
  // The key failures are counted under: the literal, or for IPv6 its /64.
  static std::string key_of(const std::string& client_literal);

 private:
  struct Entry {
    uint32_t count = 0;
    int64_t last_s = 0;
  };
  mutable std::mutex mu_;
  std::unordered_map<std::string, Entry> table_;  // guarded by mu_
};

class Authenticator {
 public:
  // A check in flight; caller-owned until `done` runs (on the shard thread).
  struct Check : storage::BlockingOp {
    void (*on_result)(Check* c, bool ok) = nullptr;
    std::string user;  // as the user database spells it: local@domain
    // Internal: what the worker compares.
    storage::UserEntry entry;
    std::string password;
    bool match_required = false;  // false: compute, then fail anyway
    bool ok = false;
  };

  // `failures`: the process's table (null: one of its own, for tests).
  Authenticator(storage::FileIo& io, std::string domains_dir,
                std::shared_ptr<AuthFailures> failures = nullptr)
      : io_(io),
        domains_dir_(std::move(domains_dir)),
        failures_(failures ? std::move(failures) : std::make_shared<AuthFailures>()) {}

  // Starts checking `creds`; `c->on_result` runs later with the verdict.
  void start(Check* c, const proto::Credentials& creds, int64_t now_s);

  // Failures from one client in the last 10 minutes, after adding this one.
  uint32_t note_failure(const std::string& client, int64_t now_s) {
    return failures_->note(client, now_s);
  }
  // Failures from one client in the last 10 minutes.
  uint32_t failures(const std::string& client, int64_t now_s) const {
    return failures_->count(client, now_s);
  }

 private:
  struct DomainUsers {
    int64_t checked_s = -1;
    int64_t mtime_ns = -1;
    int64_t size = -1;
    std::shared_ptr<const storage::UserDb> db;
  };
  const storage::UserDb* users_of(const std::string& domain, int64_t now_s);
  static int work(storage::BlockingOp* op);
  static void done(storage::BlockingOp* op, int result);

  storage::FileIo& io_;
  std::string domains_dir_;
  std::unordered_map<std::string, DomainUsers> domains_;
  std::shared_ptr<AuthFailures> failures_;
};

}  // namespace ringmail::engine
