#include "engine/socket_activation.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include <array>
#include <cstdlib>
#include <cstring>

namespace ringmail::engine {
namespace {

// An address reduced to what matching compares: IPv4 (also when written
// IPv4-mapped) or IPv6 with its scope, and the port.
struct Endpoint {
  int family = AF_UNSPEC;
  std::array<uint8_t, 16> ip{};
  uint32_t scope = 0;
  uint16_t port = 0;

  bool any() const {
    for (uint8_t b : ip) {
      if (b != 0) return false;
    }
    return true;
  }
  bool operator==(const Endpoint&) const = default;
};

Endpoint endpoint(const sockaddr_storage& ss) {
  Endpoint e;
  if (ss.ss_family == AF_INET) {
    const auto* a = reinterpret_cast<const sockaddr_in*>(&ss);
    e.family = AF_INET;
    std::memcpy(e.ip.data(), &a->sin_addr, 4);
    e.port = ntohs(a->sin_port);
  } else if (ss.ss_family == AF_INET6) {
    const auto* a = reinterpret_cast<const sockaddr_in6*>(&ss);
    e.port = ntohs(a->sin6_port);
    if (IN6_IS_ADDR_V4MAPPED(&a->sin6_addr)) {
      e.family = AF_INET;
      std::memcpy(e.ip.data(), &a->sin6_addr.s6_addr[12], 4);
    } else {
      e.family = AF_INET6;
      std::memcpy(e.ip.data(), &a->sin6_addr, 16);
      e.scope = a->sin6_scope_id;
    }
  }
  return e;
}

bool exact(const config::ListenerConfig& l, const PassedSocket& p) {
  return endpoint(l.addr) == endpoint(p.addr);
}

// A [::]:P socket that takes IPv4 too serves a listener on 0.0.0.0:P.
bool dual_stack_covers(const config::ListenerConfig& l, const PassedSocket& p) {
  const Endpoint le = endpoint(l.addr);
  const Endpoint pe = endpoint(p.addr);
  return le.family == AF_INET && le.any() && pe.family == AF_INET6 && pe.any() && !p.v6only &&
         le.port == pe.port;
}

bool same_kind(const config::ListenerConfig& a, const config::ListenerConfig& b) {
  return a.kind == b.kind && a.implicit_tls == b.implicit_tls && a.http == b.http;
}

}  // namespace

std::string describe(const PassedSocket& s) {
  char buf[INET6_ADDRSTRLEN] = "?";
  if (s.addr.ss_family == AF_INET) {
    const auto* a = reinterpret_cast<const sockaddr_in*>(&s.addr);
    ::inet_ntop(AF_INET, &a->sin_addr, buf, sizeof buf);
    return std::string(buf) + ":" + std::to_string(ntohs(a->sin_port));
  }
  const auto* a = reinterpret_cast<const sockaddr_in6*>(&s.addr);
  ::inet_ntop(AF_INET6, &a->sin6_addr, buf, sizeof buf);
  return std::string("[") + buf + "]:" + std::to_string(ntohs(a->sin6_port));
}

std::vector<PassedSocket> take_passed_sockets(std::vector<std::string>* problems) {
  char** names = nullptr;
  const int n = sd_listen_fds_with_names(1, &names);
  std::vector<PassedSocket> out;
  if (n < 0) {
    problems->push_back(std::string("LISTEN_FDS: ") + std::strerror(-n));
  }
  for (int i = 0; i < n; ++i) {
    const int fd = SD_LISTEN_FDS_START + i;
    PassedSocket s;
    s.fd = fd;
    s.name = names != nullptr && names[i] != nullptr ? names[i] : "";
    const std::string what =
        "descriptor " + std::to_string(fd) + (s.name.empty() ? "" : " (" + s.name + ")");
    s.addr_len = sizeof s.addr;
    if (sd_is_socket_inet(fd, AF_UNSPEC, SOCK_STREAM, 1, 0) <= 0 ||
        ::getsockname(fd, reinterpret_cast<sockaddr*>(&s.addr), &s.addr_len) != 0) {
      problems->push_back(what +
                          " from systemd is not a listening TCP socket (ListenStream= with an "
                          "IP address and port): closed");
      ::close(fd);
      continue;
    }
    if (s.addr.ss_family == AF_INET6) {
      int only = 1;
      socklen_t len = sizeof only;
      if (::getsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &only, &len) == 0) s.v6only = only != 0;
    }
    out.push_back(std::move(s));
  }
  if (names != nullptr) {
    for (int i = 0; i < n; ++i) std::free(names[i]);
    std::free(names);
  }
  return out;
}

Result<SocketPlan> plan_sockets(const std::vector<config::ListenerConfig>& listeners,
                                const std::vector<PassedSocket>& passed) {
  SocketPlan plan;
  plan.for_listener.assign(listeners.size(), -1);
  for (size_t i = 0; i < listeners.size(); ++i) {
    for (size_t j = 0; j < passed.size() && plan.for_listener[i] < 0; ++j) {
      if (exact(listeners[i], passed[j])) plan.for_listener[i] = static_cast<int>(j);
    }
    for (size_t j = 0; j < passed.size() && plan.for_listener[i] < 0; ++j) {
      if (dual_stack_covers(listeners[i], passed[j])) plan.for_listener[i] = static_cast<int>(j);
    }
  }
  for (size_t j = 0; j < passed.size(); ++j) {
    const config::ListenerConfig* first = nullptr;
    for (size_t i = 0; i < listeners.size(); ++i) {
      if (plan.for_listener[i] != static_cast<int>(j)) continue;
      if (first == nullptr) {
        first = &listeners[i];
      } else if (!same_kind(*first, listeners[i])) {
        return Error{"the socket " + describe(passed[j]) +
                     " from systemd takes IPv4 and IPv6 and would serve the listeners " +
                     first->address + " (" + config::kind_name(*first) + ") and " +
                     listeners[i].address + " (" + config::kind_name(listeners[i]) +
                     "): set BindIPv6Only=ipv6-only in the socket unit, or give both the "
                     "same kind"};
      }
    }
    if (first == nullptr) plan.unused.push_back(j);
  }
  return plan;
}

}  // namespace ringmail::engine
