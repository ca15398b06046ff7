// AUTH checks for one shard: finds the user in its domain's users file
// (storage/userdb.h; re-read when the file changes, at most once a second,
// so user-add needs no restart) and runs the scrypt check on a backend
// worker thread (tls/password.h), never on the shard's thread. Unknown and
// denied users cost the same hash as real ones, so timing does not tell
// which user names exist.
//
// Failures are counted per client address in AuthFailures, one table for
// the whole process, for the slow-down and lock-out of connection.cc.
//
// A verification cache (Dovecot's auth_cache is the model) spares the
// scrypt of a repeated login: after a successful check the shard keeps,
// for cache_ttl_s, the user, HMAC-SHA256 of the password under a random
// key made at start (never written anywhere), and the users-file entry it
// matched. A later AUTH of that user with an HMAC that matches, against an
// entry that has not changed, is accepted without the hash. A changed or
// removed user drops the entry; a mismatch runs the full check; failures
// are never kept. The HMAC cannot be attacked offline without the key, and
// the key dies with the process.
#pragma once

#include <atomic>
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

// Counted per shard, read by /metrics from any thread.
struct AuthCounters {
  std::atomic<uint64_t> scrypt_checks{0};  // full password hashes run
  std::atomic<uint64_t> cache_hits{0};     // logins accepted from the cache
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
    bool cached = false;          // accepted from the cache: no hash to run
    std::string mac;              // HMAC of the password (cache on)
    bool ok = false;
    Authenticator* owner = nullptr;
    int64_t started_s = 0;
  };

  // `failures`: the process's table (null: one of its own, for tests).
  Authenticator(storage::FileIo& io, std::string domains_dir,
                std::shared_ptr<AuthFailures> failures = nullptr);

  // Keeps successful checks for `ttl_s` seconds (0: no cache; the entries
  // kept go). SIGHUP may change it.
  void set_cache_ttl(uint32_t ttl_s);
  void set_counters(AuthCounters* c) { counters_ = c; }

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
  struct Cached {
    std::string mac;
    storage::UserEntry entry;  // what the password matched
    int64_t expires_s = 0;
  };
  static constexpr size_t kCacheMax = 100000;  // users remembered at most

  const storage::UserDb* users_of(const std::string& domain, int64_t now_s);
  // True when the cache holds `c->mac` for `c->user` with the same entry.
  bool cache_matches(const Check& c, int64_t now_s);
  static int work(storage::BlockingOp* op);
  static void done(storage::BlockingOp* op, int result);

  storage::FileIo& io_;
  std::string domains_dir_;
  std::unordered_map<std::string, DomainUsers> domains_;
  std::shared_ptr<AuthFailures> failures_;
  uint32_t cache_ttl_s_ = 0;
  std::string cache_key_;  // random, made at start
  std::unordered_map<std::string, Cached> cache_;
  AuthCounters own_counters_;
  AuthCounters* counters_ = &own_counters_;
};

}  // namespace ringmail::engine
