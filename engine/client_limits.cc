#include "engine/client_limits.h"

#include <arpa/inet.h>

#include <cstring>
#include <string_view>

namespace ringmail::engine {

std::string client_key(const std::string& literal) {
  static constexpr std::string_view kV6 = "[IPv6:";
  if (literal.size() < kV6.size() + 2 || literal.compare(0, kV6.size(), kV6) != 0) return literal;
  const std::string text = literal.substr(kV6.size(), literal.size() - kV6.size() - 1);
  in6_addr a{};
  if (::inet_pton(AF_INET6, text.c_str(), &a) != 1) return literal;
  std::memset(a.s6_addr + 8, 0, 8);
  char out[INET6_ADDRSTRLEN] = {};
  ::inet_ntop(AF_INET6, &a, out, sizeof out);
  return std::string(kV6) + out + "/64]";
}

ConnectionsPerClient::Verdict ConnectionsPerClient::try_add(const std::string& key,
                                                            uint32_t per_client_max) {
  std::lock_guard<std::mutex> lock(mu_);
  if (total_ >= total_max_) return Verdict::kAllFull;
  if (!key.empty()) {
    auto [it, added] = open_.try_emplace(key, 0);
    if (it->second >= per_client_max) {
      if (added) open_.erase(it);
      return Verdict::kClientFull;
    }
    ++it->second;
  }
  ++total_;
  return Verdict::kOk;
}

uint64_t ConnectionsPerClient::total() const {
  std::lock_guard<std::mutex> lock(mu_);
  return total_;
}

void ConnectionsPerClient::remove(const std::string& key) {
  std::lock_guard<std::mutex> lock(mu_);
  if (total_ > 0) --total_;
  if (key.empty()) return;
  auto it = open_.find(key);
  if (it == open_.end()) return;
  if (--it->second == 0) open_.erase(it);
}

uint32_t ConnectionsPerClient::count(const std::string& key) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = open_.find(key);
  return it == open_.end() ? 0 : it->second;
}

}  // namespace ringmail::engine
