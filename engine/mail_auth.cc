#include "engine/mail_auth.h"

#include <sys/socket.h>

#include <algorithm>

#include "engine/psl.h"

namespace ringmail::engine {

void spf_lookup(Resolver* r, const proto::spf::Query& q,
                std::function<void(proto::spf::Answer)> done) {
  using T = proto::spf::QueryType;
  switch (q.type) {
    case T::kTxt:
    case T::kPtr: {
      auto cb = [done = std::move(done)](TxtAnswer a) {
        done(proto::spf::Answer{a.status, std::move(a.records)});
      };
      if (q.type == T::kTxt) {
        r->txt(q.name, std::move(cb));
      } else {
        r->ptr(q.name, std::move(cb));
      }
      return;
    }
    case T::kA:
    case T::kAaaa:
      r->addresses(q.name, [v6 = q.type == T::kAaaa, done = std::move(done)](AddrAnswer a) {
        proto::spf::Answer out{a.status, {}};
        for (const auto& ss : a.addrs) {
          if ((ss.ss_family == AF_INET6) == v6) out.records.push_back(ip_text(ss));
        }
        // The name has addresses, none of this family: no data for it.
        if (out.status == proto::spf::DnsStatus::kOk && out.records.empty()) {
          out.status = proto::spf::DnsStatus::kNoData;
        }
        done(std::move(out));
      });
      return;
    case T::kMx:
      r->mx(q.name, [done = std::move(done)](MxAnswer a) {
        std::stable_sort(a.records.begin(), a.records.end(),
                         [](const auto& x, const auto& y) { return x.preference < y.preference; });
        proto::spf::Answer out{a.status, {}};
        for (auto& m : a.records) {
          std::string h = m.host;
          if (!h.empty() && h.back() == '.') h.pop_back();
          out.records.push_back(std::move(h));
        }
        done(std::move(out));
      });
      return;
  }
}

namespace {

struct SpfRun : std::enable_shared_from_this<SpfRun> {
  Resolver* resolver;
  proto::spf::Request request;
  proto::spf::Dns dns;
  std::weak_ptr<bool> alive;
  std::function<void(proto::spf::Verdict)> done;

  void step() {
    proto::spf::Query missing;
    if (auto v = proto::spf::evaluate(request, dns, &missing)) {
      done(std::move(*v));
      return;
    }
    spf_lookup(resolver, missing, [self = shared_from_this(), missing](proto::spf::Answer a) {
      if (self->alive.expired()) return;
      self->dns.add(missing, std::move(a));
      self->step();
    });
  }
};

}  // namespace

void run_spf(Resolver* resolver, proto::spf::Request request, std::weak_ptr<bool> alive,
             std::function<void(proto::spf::Verdict)> done) {
  if (resolver == nullptr) {
    proto::spf::Verdict v;
    v.result = proto::spf::Result::kTemperror;
    v.problem = "no DNS resolver";
    done(std::move(v));
    return;
  }
  auto run = std::make_shared<SpfRun>();
  run->resolver = resolver;
  run->request = std::move(request);
  run->alive = std::move(alive);
  run->done = std::move(done);
  run->step();
}

namespace {

struct DmarcRun : std::enable_shared_from_this<DmarcRun> {
  Resolver* resolver;
  proto::dmarc::PolicyDiscovery discovery;
  std::weak_ptr<bool> alive;
  std::function<void(proto::dmarc::Discovered)> done;

  DmarcRun(Resolver* r, const std::string& from, std::weak_ptr<bool> a,
           std::function<void(proto::dmarc::Discovered)> d)
      : resolver(r),
        discovery(from, [](std::string_view x) { return organizational_domain(x); }),
        alive(std::move(a)),
        done(std::move(d)) {}

  void step() {
    if (discovery.next_query().empty()) {
      done(discovery.result());
      return;
    }
    resolver->txt(discovery.next_query(), [self = shared_from_this()](TxtAnswer a) {
      if (self->alive.expired()) return;
      proto::dmarc::TxtLookup l;
      l.status = a.status;
      l.records = std::move(a.records);
      self->discovery.answer(l);
      self->step();
    });
  }
};

}  // namespace

void run_dmarc_discovery(Resolver* resolver, const std::string& from_domain,
                         std::weak_ptr<bool> alive,
                         std::function<void(proto::dmarc::Discovered)> done) {
  if (resolver == nullptr) {
    proto::dmarc::Discovered d;
    d.status = proto::dmarc::Discovered::Status::kTempError;
    done(std::move(d));
    return;
  }
  auto run = std::make_shared<DmarcRun>(resolver, from_domain, std::move(alive), std::move(done));
  run->step();
}

}  // namespace ringmail::engine
