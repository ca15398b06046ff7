#include "tools/admin_client.h"

#include <simdjson.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <ctime>

#include "config/version_text.h"
#include "tools/queue_format.h"

namespace ringmail::tools {

namespace {

// Closes the descriptor on every way out.
struct Fd {
  int fd;
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
};

}  // namespace

Result<AdminReply> admin_request(const std::string& socket_path, const std::string& method,
                                 const std::string& target, bool* down,
                                 std::string_view json_body) {
  *down = false;
  sockaddr_un sa{};
  sa.sun_family = AF_UNIX;
  if (socket_path.size() >= sizeof sa.sun_path) return Error{socket_path + ": path too long"};
  std::memcpy(sa.sun_path, socket_path.data(), socket_path.size());
  Fd s{::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)};
  if (s.fd < 0) return Error{std::string("socket: ") + std::strerror(errno)};
  if (::connect(s.fd, reinterpret_cast<const sockaddr*>(&sa), sizeof sa) != 0) {
    const int e = errno;
    *down = e == ENOENT || e == ECONNREFUSED;
    return Error{(*down ? "ringmaild is not running (" : "cannot reach ringmaild (") + socket_path +
                 ": " + std::strerror(e) + ")"};
  }
  timeval tv{30, 0};
  ::setsockopt(s.fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  std::string req = method + " " + target + " HTTP/1.1\r\nHost: ringmaild\r\nConnection: close\r\n";
  if (!json_body.empty()) req += "Content-Type: application/json\r\n";
  req += "Content-Length: " + std::to_string(json_body.size()) + "\r\n\r\n";
  req += json_body;
  for (size_t off = 0; off < req.size();) {
    const ssize_t n = ::send(s.fd, req.data() + off, req.size() - off, MSG_NOSIGNAL);
    if (n <= 0) return Error{socket_path + ": " + std::strerror(errno)};
    off += static_cast<size_t>(n);
  }
  std::string in;
  char buf[65536];
  while (true) {
    const ssize_t n = ::recv(s.fd, buf, sizeof buf, 0);
    if (n == 0) break;
    if (n < 0) {
      if (errno == EINTR) continue;
      return Error{socket_path + ": " + std::strerror(errno)};
    }
    in.append(buf, static_cast<size_t>(n));
  }
  // "HTTP/1.1 200 OK\r\n...\r\n\r\nbody" (the daemon closes after it).
  const size_t head_end = in.find("\r\n\r\n");
  if (in.rfind("HTTP/1.", 0) != 0 || head_end == std::string::npos || in.size() < 12) {
    return Error{socket_path + ": not an HTTP answer"};
  }
  AdminReply r;
  r.status = std::atoi(in.c_str() + 9);
  r.body = in.substr(head_end + 4);
  return r;
}

AdminCall admin_call(const char* prog, const std::string& socket_path, const std::string& method,
                     const std::string& target, std::string_view json_body) {
  bool down = false;
  auto r = admin_request(socket_path, method, target, &down, json_body);
  if (!r) {
    std::fprintf(stderr, "%s: %s\n", prog, r.error().c_str());
    return {down ? kDaemonDown : 1, ""};
  }
  if (r->status < 200 || r->status > 299) {
    std::fprintf(stderr, "%s: %s\n", prog, answer_error(r->status, r->body).c_str());
    return {1, ""};
  }
  return {0, std::move(r->body)};
}

int admin_pages(const char* prog, const std::string& socket_path, const std::string& target,
                size_t max_total, const std::function<Result<void>(std::string_view page)>& each,
                size_t* messages) {
  const char sep = target.find('?') == std::string::npos ? '?' : '&';
  std::string cursor;
  size_t got = 0;
  while (true) {
    const size_t want = max_total == 0 ? kPageSize : std::min(kPageSize, max_total - got);
    std::string page_target = target + sep + "limit=" + std::to_string(want);
    if (!cursor.empty()) page_target += "&cursor=" + url_encode(cursor);
    AdminCall page = admin_call(prog, socket_path, "GET", page_target);
    if (page.exit != 0) return page.exit;
    auto info = page_info(page.body);
    if (!info) {
      std::fprintf(stderr, "%s: %s\n", prog, info.error().c_str());
      return 1;
    }
    if (auto done = each(page.body); !done) {
      std::fprintf(stderr, "%s: %s\n", prog, done.error().c_str());
      return 1;
    }
    got += info->messages;
    if (messages != nullptr) *messages = got;
    if (!info->next_cursor || (max_total != 0 && got >= max_total)) return 0;
    if (*info->next_cursor == cursor || info->next_cursor->empty()) {
      std::fprintf(stderr, "%s: ringmaild's next_cursor does not move on (%s)\n", prog,
                   info->next_cursor->c_str());
      return 1;
    }
    cursor = std::move(*info->next_cursor);
  }
}

int status_command(const config::Config& cfg, bool json) {
  if (cfg.admin_socket.empty()) {
    std::fprintf(stderr, "ringmail: no [admin] socket in %s: the daemon has no admin API\n",
                 cfg.source.c_str());
    return config::kConfigExit;
  }
  bool down = false;
  auto r = admin_request(cfg.admin_socket, "GET", "/api/status", &down);
  if (!r) {
    std::fprintf(stderr, "ringmail: %s\n", r.error().c_str());
    return down ? kDaemonDown : 1;
  }
  if (r->status != 200) {
    std::fprintf(stderr, "ringmail: ringmaild answered %d: %s", r->status, r->body.c_str());
    return 1;
  }
  if (json) {
    std::fputs(r->body.c_str(), stdout);
    return 0;
  }
  simdjson::dom::parser parser;
  simdjson::dom::element st;
  if (parser.parse(r->body).get(st) != simdjson::SUCCESS) {
    std::fprintf(stderr, "ringmail: ringmaild's status is not JSON\n");
    return 1;
  }
  std::string_view version, hostname, backend, data_dir;
  int64_t pid = 0, started = 0, uptime = 0;
  uint64_t spool = 0;
  bool stopping = false;
  if (st["version"].get(version) || st["hostname"].get(hostname) || st["backend"].get(backend) ||
      st["data_dir"].get(data_dir) || st["pid"].get(pid) || st["started_unix"].get(started) ||
      st["uptime_s"].get(uptime) || st["spool_bytes"].get(spool) || st["stopping"].get(stopping)) {
    std::fprintf(stderr, "ringmail: ringmaild's status lacks a field (another version?)\n");
    return 1;
  }
  simdjson::dom::array shards, listeners;
  if (st["shards"].get(shards) || st["listeners"].get(listeners)) {
    std::fprintf(stderr, "ringmail: ringmaild's status lacks a field (another version?)\n");
    return 1;
  }
  std::printf("ringmaild %.*s on %.*s, pid %lld, up %s (since %s)%s\n",
              static_cast<int>(version.size()), version.data(), static_cast<int>(hostname.size()),
              hostname.data(), static_cast<long long>(pid), span_text(uptime).c_str(),
              utc_text(started).c_str(), stopping ? ", STOPPING" : "");
  std::printf("backend %.*s, %zu shard%s, spool %.1f MiB under %.*s\n",
              static_cast<int>(backend.size()), backend.data(), shards.size(),
              shards.size() == 1 ? "" : "s", double(spool) / (1 << 20),
              static_cast<int>(data_dir.size()), data_dir.data());
  int64_t outbound = 0, local = 0, oldest_age = 0;
  if (!st["queue"]["outbound_messages"].get(outbound) &&
      !st["queue"]["local_deliveries"].get(local) &&
      !st["queue"]["oldest_outbound_age_s"].get(oldest_age)) {
    std::printf("queue: %lld message%s for remote recipients%s, %lld local deliver%s\n",
                static_cast<long long>(outbound), outbound == 1 ? "" : "s",
                outbound > 0 ? (", the oldest waiting " + span_text(oldest_age)).c_str() : "",
                static_cast<long long>(local), local == 1 ? "y" : "ies");
  }
  std::printf("%-6s %12s %10s %10s\n", "shard", "connections", "accepted", "loop busy");
  for (simdjson::dom::element s : shards) {
    uint64_t index = 0, conns = 0, accepted = 0;
    double util = 0;
    if (s["index"].get(index) || s["connections_open"].get(conns) ||
        s["messages_accepted"].get(accepted) || s["loop_utilisation"].get(util)) {
      continue;
    }
    std::printf("%-6llu %12llu %10llu %9.1f%%\n", static_cast<unsigned long long>(index),
                static_cast<unsigned long long>(conns), static_cast<unsigned long long>(accepted),
                util * 100);
  }
  simdjson::dom::array certificates;
  if (!st["certificates"].get(certificates)) {
    for (simdjson::dom::element cert : certificates) {
      simdjson::dom::array names;
      std::string_view key;
      int64_t not_after = 0, days = 0;
      if (cert["names"].get(names) || cert["key"].get(key) ||
          cert["not_after_unix"].get(not_after) || cert["days_left"].get(days)) {
        continue;
      }
      std::string list;
      for (simdjson::dom::element n : names) {
        std::string_view s;
        if (!n.get(s)) list += (list.empty() ? "" : ", ") + std::string(s);
      }
      std::printf("certificate %s (%s), expires %s (%lld days)%s\n", list.c_str(),
                  key == "ecdsa" ? "ECDSA" : "RSA", utc_text(not_after).c_str(),
                  static_cast<long long>(days), days < 14 ? ": RENEW IT" : "");
    }
  }
  std::printf("listening on:");
  for (simdjson::dom::element l : listeners) {
    std::string_view addr, kind;
    if (l["address"].get(addr) || l["kind"].get(kind)) continue;
    std::printf(" %.*s (%.*s)", static_cast<int>(addr.size()), addr.data(),
                static_cast<int>(kind.size()), kind.data());
  }
  std::printf("\n");
  return 0;
}

}  // namespace ringmail::tools
