// AUTH checks for one shard: finds the user in its domain's users file
// (storage/userdb.h; re-read when the file changes, at most once a second,
// so user-add needs no restart) and runs the scrypt check on a backend
// worker thread (tls/password.h), never on the shard's thread. Unknown and
// denied users cost the same hash as real ones, so timing does not tell
// which user names exist.
//
// Also counts failures per client address for the slow-down and cut-off
// of connection.cc.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>

#include "proto/sasl.h"
#include "storage/file_io.h"
#include "storage/userdb.h"
#include "tls/password.h"

namespace ringmail::engine {

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

  Authenticator(storage::FileIo& io, std::string domains_dir)
      : io_(io), domains_dir_(std::move(domains_dir)) {}

  // Starts checking `creds`; `c->on_result` runs later with the verdict.
  void start(Check* c, const proto::Credentials& creds, int64_t now_s);

  // Failures from one client address in the last 10 minutes, after adding
  // this one.
  uint32_t note_failure(const std::string& client, int64_t now_s);

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
  struct Failures {
    uint32_t count = 0;
    int64_t last_s = 0;
  };
  std::unordered_map<std::string, Failures> failures_;
};

}  // namespace ringmail::engine
