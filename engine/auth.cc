#include "engine/auth.h"

#include <sys/stat.h>

#include "engine/client_limits.h"
#include "engine/log.h"
#include "tls/hmac.h"

namespace ringmail::engine {

namespace {

// The cost of a real check, for users that do not exist or may not log in.
const storage::UserEntry& dummy_entry() {
  static const storage::UserEntry e = [] {
    storage::UserEntry d;
    d.scheme = storage::UserEntry::Scheme::kScrypt;
    const tls::ScryptParams p;
    d.log_n = p.log_n;
    d.r = p.r;
    d.p = p.p;
    d.salt = std::string(16, 'x');
    d.key = std::string(static_cast<size_t>(p.key_len), '\0');
    return d;
  }();
  return e;
}
}  // namespace

Authenticator::Authenticator(storage::FileIo& io, std::string domains_dir,
                             std::shared_ptr<AuthFailures> failures)
    : io_(io),
      domains_dir_(std::move(domains_dir)),
      failures_(failures ? std::move(failures) : std::make_shared<AuthFailures>()) {
  std::string a, b;
  // Without randomness there is no cache (set_cache_ttl keeps it off).
  if (tls::random_salt(&a) && tls::random_salt(&b)) cache_key_ = a + b;
}

void Authenticator::set_cache_ttl(uint32_t ttl_s) {
  cache_ttl_s_ = cache_key_.empty() ? 0 : ttl_s;
  if (cache_ttl_s_ == 0) cache_.clear();
}

bool Authenticator::cache_matches(const Check& c, int64_t now_s) {
  auto it = cache_.find(c.user);
  if (it == cache_.end()) return false;
  const Cached& k = it->second;
  // A changed user (new password, new hash, now denied) drops the entry.
  if (!c.match_required || now_s >= k.expires_s || !(k.entry == c.entry)) {
    cache_.erase(it);
    return false;
  }
  return !c.mac.empty() && tls::equal_in_constant_time(k.mac, c.mac);
}

const storage::UserDb* Authenticator::users_of(const std::string& domain, int64_t now_s) {
  DomainUsers& d = domains_[domain];
  if (d.checked_s == now_s) return d.db.get();
  d.checked_s = now_s;
  const std::string path = storage::users_file(domains_dir_, domain);
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    d.db.reset();
    d.mtime_ns = d.size = -1;
    return nullptr;
  }
  const int64_t mtime = static_cast<int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec;
  if (d.db && mtime == d.mtime_ns && st.st_size == d.size) return d.db.get();
  std::string text;
  if (io_.read_file(path, &text) != 0) return d.db.get();
  auto db = storage::UserDb::parse(text);
  d.mtime_ns = mtime;
  d.size = st.st_size;
  if (!db) {
    // Keep what worked before; say once per change what is wrong.
    log_line("auth: " + path + ": " + db.error() + " (keeping the previous users)",
             LogLevel::kWarning);
    return d.db.get();
  }
  log_line("auth: loaded " + std::to_string(db->size()) + " users from " + path);
  d.db = std::make_shared<const storage::UserDb>(std::move(*db));
  return d.db.get();
}

void Authenticator::start(Check* c, const proto::Credentials& creds, int64_t now_s) {
  c->kind = storage::BlockingOp::Kind::kCall;
  c->work = &Authenticator::work;
  c->done = &Authenticator::done;
  c->password = creds.password;
  c->entry = dummy_entry();
  c->match_required = false;
  c->cached = false;
  c->mac.clear();
  c->ok = false;
  c->owner = this;
  c->started_s = now_s;
  c->user.clear();
  // Acting as someone else (a PLAIN authzid) is not offered.
  const bool proxy = !creds.authzid.empty() && creds.authzid != creds.user;
  if (!proxy) {
    if (const auto name = storage::normalize_user(creds.user)) {
      const auto& [local, domain] = *name;
      c->user = local + "@" + domain;
      if (const storage::UserDb* db = users_of(domain, now_s)) {
        if (const storage::UserEntry* e = db->find(local)) {
          if (e->scheme != storage::UserEntry::Scheme::kDenied) {
            c->entry = *e;
            c->match_required = true;
          }
        }
      }
    }
  }
  if (cache_ttl_s_ > 0 && !c->user.empty()) {
    c->mac = tls::hmac_sha256(cache_key_, c->password);
    if (cache_matches(*c, now_s)) {
      // Still through the worker: the verdict comes later, as always.
      c->cached = true;
      c->password.assign(c->password.size(), '\0');
      c->password.clear();
      counters_->cache_hits.fetch_add(1, std::memory_order_relaxed);
    }
  }
  if (!c->cached) counters_->scrypt_checks.fetch_add(1, std::memory_order_relaxed);
  io_.submit(c);
}

int Authenticator::work(storage::BlockingOp* op) {
  auto* c = static_cast<Check*>(op);
  if (c->cached) {
    c->ok = true;
    return 0;
  }
  bool match = false;
  if (c->entry.scheme == storage::UserEntry::Scheme::kPlain) {
    // chasquid's plain scheme: still pay for a hash, then compare.
    const auto& d = dummy_entry();
    tls::scrypt_matches(c->password, d.salt, tls::ScryptParams{d.log_n, d.r, d.p, 32}, d.key);
    match = tls::equal_in_constant_time(c->password, c->entry.password);
  } else {
    const auto& e = c->entry;
    match = tls::scrypt_matches(
        c->password, e.salt, tls::ScryptParams{e.log_n, e.r, e.p, static_cast<int>(e.key.size())},
        e.key);
  }
  c->ok = match && c->match_required;
  c->password.assign(c->password.size(), '\0');
  c->password.clear();
  return 0;
}

void Authenticator::done(storage::BlockingOp* op, int result) {
  auto* c = static_cast<Check*>(op);
  const bool ok = result == 0 && c->ok;
  Authenticator* self = c->owner;
  if (ok && !c->cached && self->cache_ttl_s_ > 0 && !c->mac.empty()) {
    if (self->cache_.size() >= kCacheMax) self->cache_.clear();
    // The clock of the check's start is good enough for a TTL.
    Cached& k = self->cache_[c->user];
    k.mac = c->mac;
    k.entry = c->entry;
    k.expires_s = c->started_s + self->cache_ttl_s_;
  }
  c->mac.clear();
  c->on_result(c, ok);
}

std::string AuthFailures::key_of(const std::string& literal) { return client_key(literal); }

uint32_t AuthFailures::note(const std::string& client_literal, int64_t now_s) {
  const std::string key = key_of(client_literal);
  std::lock_guard<std::mutex> lock(mu_);
  if (table_.size() >= kTableMax) {
    for (auto it = table_.begin(); it != table_.end();) {
      it = now_s - it->second.last_s > kWindowS ? table_.erase(it) : std::next(it);
    }
    // Still full of live entries: forget all (an attacker with 100,000
    // addresses gains little from one reset).
    if (table_.size() >= kTableMax) table_.clear();
  }
  Entry& e = table_[key];
  if (now_s - e.last_s > kWindowS) e.count = 0;
  e.last_s = now_s;
  return ++e.count;
}

uint32_t AuthFailures::count(const std::string& client_literal, int64_t now_s) const {
  const std::string key = key_of(client_literal);
  std::lock_guard<std::mutex> lock(mu_);
  auto it = table_.find(key);
  if (it == table_.end() || now_s - it->second.last_s > kWindowS) return 0;
  return it->second.count;
}

}  // namespace ringmail::engine
