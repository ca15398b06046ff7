#include "engine/resolver.h"

#include <ares.h>
#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <mutex>

namespace ringmail::engine {

std::string ip_text(const sockaddr_storage& ss) {
  char buf[INET6_ADDRSTRLEN] = {};
  if (ss.ss_family == AF_INET6) {
    ::inet_ntop(AF_INET6, &reinterpret_cast<const sockaddr_in6*>(&ss)->sin6_addr, buf, sizeof buf);
  } else {
    ::inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in*>(&ss)->sin_addr, buf, sizeof buf);
  }
  return buf;
}

namespace {

DnsStatus status_of(int ares_status) {
  switch (ares_status) {
    case ARES_SUCCESS:
      return DnsStatus::kOk;
    case ARES_ENODATA:
      return DnsStatus::kNoData;
    case ARES_ENOTFOUND:
      return DnsStatus::kNxDomain;
    default:
      return DnsStatus::kTempFail;  // timeouts, SERVFAIL, refused, no memory...
  }
}

struct AddrQuery {
  AresResolver* self;
  std::function<void(AddrAnswer)> done;
};

}  // namespace

Result<std::unique_ptr<AresResolver>> AresResolver::create(Backend& backend,
                                                           const std::string& servers,
                                                           int timeout_ms, int tries) {
  static std::once_flag once;
  static int lib_status = ARES_SUCCESS;
  std::call_once(once, [] { lib_status = ares_library_init(ARES_LIB_INIT_ALL); });
  if (lib_status != ARES_SUCCESS) return Error{std::string("c-ares: ") + ares_strerror(lib_status)};
  std::unique_ptr<AresResolver> r(new AresResolver(backend));
  r->timeout_ms_ = timeout_ms;
  r->tries_ = tries;
  auto channel = r->new_channel(servers);
  if (!channel) return Error{channel.error()};
  r->channel_ = *channel;
  return r;
}

Result<ares_channeldata*> AresResolver::new_channel(const std::string& servers) {
  ares_options opts{};
  opts.sock_state_cb = &AresResolver::on_sock_state;
  opts.sock_state_cb_data = this;
  opts.timeout = timeout_ms_;
  opts.tries = tries_;
  ares_channeldata* ch = nullptr;
  const int st =
      ares_init_options(&ch, &opts, ARES_OPT_SOCK_STATE_CB | ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES);
  if (st != ARES_SUCCESS) return Error{std::string("c-ares: ") + ares_strerror(st)};
  if (!servers.empty()) {
    const int s = ares_set_servers_ports_csv(ch, servers.c_str());
    if (s != ARES_SUCCESS) {
      ares_destroy(ch);
      return Error{"DNS servers '" + servers + "': " + ares_strerror(s)};
    }
  }
  return ch;
}

void AresResolver::set_servers(const std::string& servers,
                               std::function<void(const std::string&)> applied) {
  switching_ = true;
  next_servers_ = servers;
  on_switched_ = std::move(applied);
  switch_servers();
}

void AresResolver::switch_servers() {
  if (!switching_ || pending_ > 0 || channel_ == nullptr) return;
  switching_ = false;
  // A new channel rather than ares_set_servers on this one: c-ares changes
  // servers only while nothing is pending, and "" (the system's servers)
  // means reading resolv.conf again, which only a new channel does.
  const auto fresh = new_channel(next_servers_);
  if (fresh) {
    ares_destroy(channel_);  // idle: its sockets close (on_sock_state marks them dead)
    channel_ = *fresh;
  }
  if (on_switched_) on_switched_(fresh ? std::string() : fresh.error());
  on_switched_ = nullptr;
  // The lookups held meanwhile go out now, in order, to the new servers
  // (or the old ones when the new could not be set).
  auto held = std::move(held_);
  held_.clear();
  for (auto& start : held) start();
}

std::string dns_servers_problem(const std::string& servers) {
  if (servers.empty()) return "";
  ares_channeldata* ch = nullptr;
  ares_options opts{};
  if (ares_library_init(ARES_LIB_INIT_ALL) != ARES_SUCCESS ||
      ares_init_options(&ch, &opts, 0) != ARES_SUCCESS) {
    return "c-ares cannot start";
  }
  const int s = ares_set_servers_ports_csv(ch, servers.c_str());
  ares_destroy(ch);
  ares_library_cleanup();
  return s == ARES_SUCCESS ? "" : "[dns] servers '" + servers + "': " + ares_strerror(s);
}

AresResolver::~AresResolver() {
  if (channel_ == nullptr) return;
  // Pending lookups end with ARES_EDESTRUCTION; their callbacks only free.
  ares_destroy(channel_);
  channel_ = nullptr;
  // Polls withdrawn just now still complete on the backend: wait for them
  // before the Sock objects go.
  for (int i = 0; i < 200; ++i) {
    bool armed = false;
    for (const auto& s : dead_) armed |= s->armed;
    for (const auto& [fd, s] : socks_) armed |= s->armed;
    if (!armed) break;
    backend_.wait(5);
  }
}

void AresResolver::on_sock_state(void* data, int fd, int readable, int writable) {
  auto* self = static_cast<AresResolver*>(data);
  auto it = self->socks_.find(fd);
  if (!readable && !writable) {
    if (it == self->socks_.end()) return;
    Sock* s = it->second.get();
    s->dead = true;
    s->want_read = s->want_write = false;
    // Always: an epoll backend must forget the descriptor before c-ares
    // closes it (the number will be reused).
    self->backend_.cancel(fd, s);
    self->dead_.push_back(std::move(it->second));
    self->socks_.erase(it);
    return;
  }
  Sock* s;
  if (it == self->socks_.end()) {
    auto fresh = std::make_unique<Sock>();
    fresh->owner = self;
    fresh->fd = fd;
    s = fresh.get();
    self->socks_.emplace(fd, std::move(fresh));
  } else {
    s = it->second.get();
  }
  const bool changed =
      s->want_read != static_cast<bool>(readable) || s->want_write != static_cast<bool>(writable);
  s->want_read = readable;
  s->want_write = writable;
  if (!s->armed) {
    self->arm(s);
  } else if (changed) {
    self->backend_.cancel(fd, s);  // re-armed with the new events on completion
  }
}

void AresResolver::arm(Sock* s) {
  uint32_t events = 0;
  if (s->want_read) events |= POLLIN;
  if (s->want_write) events |= POLLOUT;
  if (events == 0) return;
  s->armed = true;
  backend_.poll(s->fd, events, s);
}

void AresResolver::Sock::complete(const Event& ev) {
  armed = false;
  if (dead || owner->channel_ == nullptr) return;
  if (ev.res > 0) {
    const ares_socket_t rfd = (ev.res & (POLLIN | POLLERR | POLLHUP)) ? fd : ARES_SOCKET_BAD;
    const ares_socket_t wfd = (ev.res & (POLLOUT | POLLERR | POLLHUP)) ? fd : ARES_SOCKET_BAD;
    // May call on_sock_state, which may mark this socket dead (it is then
    // kept in dead_, not freed, until collect_dead()).
    ares_process_fd(owner->channel_, rfd, wfd);
  }
  if (!dead && !armed && (want_read || want_write)) owner->arm(this);
}

void AresResolver::collect_dead() {
  for (auto it = dead_.begin(); it != dead_.end();) {
    it = (*it)->armed ? std::next(it) : dead_.erase(it);
  }
}

void AresResolver::tick() {
  if (channel_ == nullptr) return;
  ares_process_fd(channel_, ARES_SOCKET_BAD, ARES_SOCKET_BAD);  // timeouts
  switch_servers();  // here, never from inside a c-ares callback
  collect_dead();
}

namespace {

// The records of one answer into `a` (status set from the parse). Each
// returns the c-ares parse status.
int parse_mx(unsigned char* abuf, int alen, MxAnswer* a) {
  ares_mx_reply* mx = nullptr;
  const int p = ares_parse_mx_reply(abuf, alen, &mx);
  for (ares_mx_reply* m = mx; m != nullptr; m = m->next) {
    a->records.push_back(proto::MxRecord{m->priority, m->host ? m->host : ""});
  }
  if (mx != nullptr) ares_free_data(mx);
  return p;
}

int parse_txt(unsigned char* abuf, int alen, TxtAnswer* a) {
  ares_txt_ext* txt = nullptr;
  const int p = ares_parse_txt_reply_ext(abuf, alen, &txt);
  // One record is several strings: record_start marks each first.
  for (ares_txt_ext* t = txt; t != nullptr; t = t->next) {
    if (t->record_start || a->records.empty()) a->records.emplace_back();
    a->records.back().append(reinterpret_cast<const char*>(t->txt), t->length);
  }
  if (txt != nullptr) ares_free_data(txt);
  return p;
}

int parse_ptr(unsigned char* abuf, int alen, TxtAnswer* a) {
  hostent* h = nullptr;
  const unsigned char none[4] = {};
  const int p = ares_parse_ptr_reply(abuf, alen, none, 4, AF_INET, &h);
  if (h != nullptr) {
    // The first name is h_name, the others aliases.
    if (h->h_name != nullptr) a->records.emplace_back(h->h_name);
    for (char** al = h->h_aliases; al != nullptr && *al != nullptr; ++al)
      a->records.emplace_back(*al);
    ares_free_hostent(h);
  }
  return p;
}

}  // namespace

template <typename Answer>
void AresResolver::query(const std::string& name, int type,
                         int (*parse)(unsigned char*, int, Answer*),
                         std::function<void(Answer)> done) {
  struct Q {
    AresResolver* self;
    int (*parse)(unsigned char*, int, Answer*);
    std::function<void(Answer)> done;
  };
  ++pending_;
  ares_query(
      channel_, name.c_str(), 1 /* C_IN */, type,
      [](void* arg, int status, int, unsigned char* abuf, int alen) {
        std::unique_ptr<Q> q(static_cast<Q*>(arg));
        if (status == ARES_EDESTRUCTION) return;
        --q->self->pending_;
        Answer a;
        a.status = status_of(status);
        if (status == ARES_SUCCESS) {
          a.status = status_of(q->parse(abuf, alen, &a));
          if (a.status == DnsStatus::kOk && a.records.empty()) a.status = DnsStatus::kNoData;
        }
        if (a.status != DnsStatus::kTempFail && abuf != nullptr && alen > 0) {
          const auto ttls = proto::read_ttls({abuf, static_cast<size_t>(alen)});
          if (ttls)
            a.ttl_s = (a.status == DnsStatus::kOk ? ttls->answer : ttls->negative).value_or(0);
        }
        q->done(std::move(a));
      },
      new Q{this, parse, std::move(done)});
}

void AresResolver::mx(const std::string& domain, std::function<void(MxAnswer)> done) {
  if (switching_) {
    held_.push_back(
        [this, domain, done = std::move(done)]() mutable { mx(domain, std::move(done)); });
    return;
  }
  query<MxAnswer>(domain, 15 /* T_MX */, &parse_mx, std::move(done));
}

void AresResolver::txt(const std::string& name, std::function<void(TxtAnswer)> done) {
  if (switching_) {
    held_.push_back([this, name, done = std::move(done)]() mutable { txt(name, std::move(done)); });
    return;
  }
  query<TxtAnswer>(name, 16 /* T_TXT */, &parse_txt, std::move(done));
}

void AresResolver::ptr(const std::string& name, std::function<void(TxtAnswer)> done) {
  if (switching_) {
    held_.push_back([this, name, done = std::move(done)]() mutable { ptr(name, std::move(done)); });
    return;
  }
  query<TxtAnswer>(name, 12 /* T_PTR */, &parse_ptr, std::move(done));
}

void AresResolver::addresses(const std::string& host, std::function<void(AddrAnswer)> done) {
  if (switching_) {
    held_.push_back(
        [this, host, done = std::move(done)]() mutable { addresses(host, std::move(done)); });
    return;
  }
  ++pending_;
  auto* q = new AddrQuery{this, std::move(done)};
  ares_addrinfo_hints hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_flags = ARES_AI_NOSORT;
  ares_getaddrinfo(
      channel_, host.c_str(), nullptr, &hints,
      [](void* arg, int status, int, ares_addrinfo* res) {
        std::unique_ptr<AddrQuery> q(static_cast<AddrQuery*>(arg));
        if (status == ARES_EDESTRUCTION) {
          if (res != nullptr) ares_freeaddrinfo(res);
          return;
        }
        --q->self->pending_;
        AddrAnswer a;
        a.status = status_of(status);
        std::vector<sockaddr_storage> v4;
        bool first = true;
        for (auto* n = res != nullptr ? res->nodes : nullptr; n != nullptr; n = n->ai_next) {
          const uint32_t ttl = n->ai_ttl > 0 ? static_cast<uint32_t>(n->ai_ttl) : 0;
          a.ttl_s = first ? ttl : std::min(a.ttl_s, ttl);
          first = false;
          sockaddr_storage ss{};
          if (n->ai_addrlen > sizeof ss) continue;
          std::memcpy(&ss, n->ai_addr, n->ai_addrlen);
          (n->ai_family == AF_INET6 ? a.addrs : v4).push_back(ss);
        }
        a.addrs.insert(a.addrs.end(), v4.begin(), v4.end());
        if (res != nullptr) ares_freeaddrinfo(res);
        if (a.status == DnsStatus::kOk && a.addrs.empty()) a.status = DnsStatus::kNoData;
        q->done(std::move(a));
      },
      q);
}

}  // namespace ringmail::engine
