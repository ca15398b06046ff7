// Per-client counts shared by every shard of the process. A client is an
// IPv4 address or an IPv6 /64: one host can use a whole /64, so a limit per
// IPv6 address would be no limit. SO_REUSEPORT spreads one client's
// connections over all shards, so a count per shard would multiply every
// limit by the number of shards.
#pragma once

#include <cstdint>
#include <mutex>
#include <string>
#include <unordered_map>

namespace ringmail::engine {

// The key a client is counted under, from its address literal as
// connection.cc keeps it ("[192.0.2.1]", "[IPv6:2001:db8::1]"): the literal
// itself, or for IPv6 "[IPv6:<its /64>::/64]".
std::string client_key(const std::string& literal);

// Open SMTP connections of the process: in all, and per client ([limits]
// connections_per_ip_max). Guarded by its own mutex, taken once at accept
// and once at close; never held across anything else.
class ConnectionsPerClient {
 public:
  enum class Verdict : uint8_t { kOk, kClientFull, kAllFull };
  // The limit in all (default: none). ringmaild sets it below the open-file
  // limit, so that accepting never runs out of descriptors: a client past
  // it is still accepted and told 421.
  void set_total_max(uint64_t n) { total_max_ = n; }
  uint64_t total_max() const { return total_max_; }
  // Counts one more connection, of client `key` ("": a client that is not
  // limited, counted only in all), unless the client has `per_client_max`
  // or the process total_max(): nothing counted then.
  [[nodiscard]] Verdict try_add(const std::string& key, uint32_t per_client_max);
  // A connection counted by try_add() closed (the same key).
  void remove(const std::string& key);
  uint32_t count(const std::string& key) const;
  uint64_t total() const;

 private:
  uint64_t total_max_ = UINT64_MAX;  // set before the shards start
  mutable std::mutex mu_;
  uint64_t total_ = 0;                              // guarded by mu_
  std::unordered_map<std::string, uint32_t> open_;  // guarded by mu_; no zeros kept
};

}  // namespace ringmail::engine
