#include "engine/blocking_dns.h"

#include <chrono>

#include "engine/backend.h"
#include "engine/mail_auth.h"
#include "engine/resolver.h"
#include "proto/address.h"

namespace ringmail::engine {

namespace {

// Per try and tries per server, as the daemon's resolver.
constexpr int kTimeoutMs = 2000;
constexpr int kTries = 2;
// A lookup is given up (temporary failure) after this long in all.
constexpr auto kLookupMax = std::chrono::seconds(30);

}  // namespace

Result<std::unique_ptr<BlockingDns>> BlockingDns::create(const std::string& servers) {
  std::unique_ptr<BlockingDns> d(new BlockingDns());
  std::string why;
  d->backend_ = make_backend(config::BackendKind::kEpoll, &why);
  if (d->backend_ == nullptr) return Error{why};
  auto resolver = AresResolver::create(*d->backend_, servers, kTimeoutMs, kTries);
  if (!resolver) return Error{resolver.error()};
  d->resolver_ = std::move(*resolver);
  return d;
}

BlockingDns::~BlockingDns() {
  resolver_.reset();  // before the backend it uses
  backend_.reset();
}

proto::spf::Answer BlockingDns::query(proto::spf::QueryType type, const std::string& name) {
  const auto key = std::make_pair(type, proto::ascii_lower(name));
  if (auto it = cache_.find(key); it != cache_.end()) return it->second;
  proto::spf::Answer out{proto::DnsStatus::kTempFail, {}};
  bool done = false;
  spf_lookup(resolver_.get(), proto::spf::Query{type, key.second}, [&](proto::spf::Answer a) {
    out = std::move(a);
    done = true;
  });
  const auto end = std::chrono::steady_clock::now() + kLookupMax;
  while (!done && std::chrono::steady_clock::now() < end) {
    backend_->wait(50);
    resolver_->tick();
  }
  if (type == proto::spf::QueryType::kMx || type == proto::spf::QueryType::kPtr) {
    for (auto& r : out.records) {
      r = proto::ascii_lower(r);
      if (!r.empty() && r.back() == '.') r.pop_back();
    }
  }
  cache_[key] = out;
  return out;
}

}  // namespace ringmail::engine
