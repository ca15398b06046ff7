// DNS for outbound delivery. `Resolver` is the interface the queue uses;
// `AresResolver` is c-ares (Debian's libc-ares) driven from the shard's
// backend: c-ares says which sockets it wants watched (its socket state
// callback), the backend polls them (one-shot polls, re-armed), completions
// run ares_process_fd, and the shard's one-second tick runs c-ares'
// timeouts. One resolver per shard, used on that shard's thread only.
#pragma once

#include <sys/socket.h>

#include <functional>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "engine/backend.h"
#include "proto/dns.h"
#include "proto/mx.h"
#include "proto/result.h"

struct ares_channeldata;

namespace ringmail::engine {

using proto::DnsStatus;  // proto/dns.h
// "192.0.2.1" or "2001:db8::1".
std::string ip_text(const sockaddr_storage& ss);

// Every answer says how long it may be kept (`ttl_s`): the smallest TTL of
// its records, or for a negative answer the SOA's (RFC 2308); 0 when the
// server said nothing (and for temporary failures).
struct MxAnswer {
  DnsStatus status = DnsStatus::kTempFail;
  std::vector<proto::MxRecord> records;
  uint32_t ttl_s = 0;
};

struct AddrAnswer {
  DnsStatus status = DnsStatus::kTempFail;
  std::vector<sockaddr_storage> addrs;  // IPv6 first, then IPv4
  uint32_t ttl_s = 0;
};

struct TxtAnswer {
  DnsStatus status = DnsStatus::kTempFail;
  std::vector<std::string> records;  // each record's strings joined
  uint32_t ttl_s = 0;
};

class Resolver {
 public:
  virtual ~Resolver() = default;
  virtual void txt(const std::string& name, std::function<void(TxtAnswer)> done) = 0;
  virtual void mx(const std::string& domain, std::function<void(MxAnswer)> done) = 0;
  virtual void addresses(const std::string& host, std::function<void(AddrAnswer)> done) = 0;
  // PTR records of `name` ("4.3.2.1.in-addr.arpa"): the host names, in
  // `records`. Resolvers for tests that have none answer a temporary failure.
  virtual void ptr(const std::string& /*name*/, std::function<void(TxtAnswer)> done) {
    done(TxtAnswer{});
  }
  // About once a second: timeouts and retries.
  virtual void tick() = 0;
  // `done` never runs inside the call that asked: always later, from the
  // shard's loop (callers count their lookups before they are answered).
};

// "" when c-ares takes `servers` ("host:port,..." as in dns_servers; ""
// for the system's), else why not (--check-config).
std::string dns_servers_problem(const std::string& servers);

class AresResolver final : public Resolver {
 public:
  // `servers`: "host:port,host:port" for c-ares, or empty for the system's
  // (/etc/resolv.conf). `timeout_ms` per try, `tries` per server.
  static Result<std::unique_ptr<AresResolver>> create(Backend& backend, const std::string& servers,
                                                      int timeout_ms, int tries);
  ~AresResolver() override;

  void mx(const std::string& domain, std::function<void(MxAnswer)> done) override;
  void addresses(const std::string& host, std::function<void(AddrAnswer)> done) override;
  void txt(const std::string& name, std::function<void(TxtAnswer)> done) override;
  void ptr(const std::string& name, std::function<void(TxtAnswer)> done) override;
  void tick() override;
  // Lookups not answered yet (tests, shutdown).
  size_t pending() const { return pending_ + held_.size(); }
  // Asks the servers `servers` ("" = the system's) from now on (SIGHUP).
  // Lookups in flight finish on the old ones; new ones are held, in order,
  // until they have (a few seconds at most: every lookup has a timeout),
  // then go to the new ones. `applied` runs then, with "" or the reason the
  // new servers could not be set (the old ones stay).
  void set_servers(const std::string& servers,
                   std::function<void(const std::string& error)> applied);

 private:
  explicit AresResolver(Backend& b) : backend_(b) {}
  struct Sock final : Completion {
    AresResolver* owner = nullptr;
    int fd = -1;
    bool want_read = false;
    bool want_write = false;
    bool armed = false;
    bool dead = false;  // c-ares is done with it (and will close it)
    void complete(const Event& ev) override;
  };
  static void on_sock_state(void* data, int fd, int readable, int writable);
  // One query of `type` whose answer `parse` reads (mx, txt, ptr).
  template <typename Answer>
  void query(const std::string& name, int type, int (*parse)(unsigned char*, int, Answer*),
             std::function<void(Answer)> done);
  void arm(Sock* s);
  void collect_dead();
  Result<ares_channeldata*> new_channel(const std::string& servers);
  void switch_servers();  // set_servers(), once nothing is pending

  Backend& backend_;
  ares_channeldata* channel_ = nullptr;
  std::unordered_map<int, std::unique_ptr<Sock>> socks_;
  std::vector<std::unique_ptr<Sock>> dead_;  // waiting for their last completion
  size_t pending_ = 0;
  int timeout_ms_ = 2000;
  int tries_ = 2;
  bool switching_ = false;  // set_servers() waits for pending_ to drain
  std::string next_servers_;
  std::function<void(const std::string&)> on_switched_;
  std::vector<std::function<void()>> held_;  // lookups started while switching
};

}  // namespace ringmail::engine
