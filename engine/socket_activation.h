// systemd socket activation (sd_listen_fds(3)): the listening sockets a
// socket unit (dist/ringmail.socket) or systemd-socket-activate passed,
// and which configured [[listener]] each one serves.
//
// A listener whose address a passed socket is bound to takes that socket
// instead of binding its own; its kind (smtp, submission, submissions,
// http) is the configuration's. The socket is one descriptor that root's
// systemd bound, so the shards cannot join it with SO_REUSEPORT sockets of
// their own (another user's group): every shard serves a copy (dup) of it.
#pragma once

#include <sys/socket.h>

#include <string>
#include <vector>

#include "config/config.h"
#include "proto/result.h"

namespace ringmail::engine {

// A listening TCP socket from systemd, as the kernel says it is bound.
struct PassedSocket {
  int fd = -1;
  std::string name;  // FileDescriptorName= (sd_listen_fds_with_names)
  sockaddr_storage addr{};
  socklen_t addr_len = 0;
  // AF_INET6: IPV6_V6ONLY. A [::] socket without it (BindIPv6Only=both, or
  // the system's default) takes IPv4 connections too.
  bool v6only = true;
};

// "127.0.0.1:25", "[::]:25".
std::string describe(const PassedSocket& s);

// Takes the sockets passed to this process: reads LISTEN_FDS for our
// LISTEN_PID (sd_listen_fds_with_names, which checks the pid, marks the
// descriptors close-on-exec and removes the variables, so no child sees
// them). A passed descriptor that is not a listening TCP socket over IPv4
// or IPv6 is closed, with a line in *problems. Without socket activation:
// nothing.
std::vector<PassedSocket> take_passed_sockets(std::vector<std::string>* problems);

// Which passed socket serves each listener.
struct SocketPlan {
  // Per configured listener, the index in `passed` of its socket, or -1:
  // nothing was passed for it and it binds its own, as without systemd.
  std::vector<int> for_listener;
  // Passed sockets no listener takes (the caller closes them).
  std::vector<size_t> unused;
};

// A listener takes the passed socket bound to exactly its address and
// port; an IPv4 listener on 0.0.0.0:P is also served by a passed [::]:P
// that takes IPv4 too (so `ListenStream=25` serves both of ringmail init's
// 0.0.0.0:25 and [::]:25). An IPv4-mapped address counts as the IPv4 one.
// One socket serving several listeners of different kinds is an error:
// which kind a connection gets would be a matter of chance.
Result<SocketPlan> plan_sockets(const std::vector<config::ListenerConfig>& listeners,
                                const std::vector<PassedSocket>& passed);

}  // namespace ringmail::engine
