// SPF (RFC 7208) and DMARC (RFC 7489) for mail arriving on port 25, driven
// through the shard's resolver: proto/spf.h and proto/dmarc.h say which
// lookup they need next, these look it up and go on. Callbacks run on the
// shard's thread; `alive` turns false when the connection that asked is
// gone (then nothing is called).
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "engine/resolver.h"
#include "proto/dmarc.h"
#include "proto/spf.h"

namespace ringmail::engine {

// One query of SPF's (TXT, A, AAAA, MX, PTR) through the resolver: the
// addresses of one family, MX names ordered by preference.
void spf_lookup(Resolver* r, const proto::spf::Query& q,
                std::function<void(proto::spf::Answer)> done);

void run_spf(Resolver* resolver, proto::spf::Request request, std::weak_ptr<bool> alive,
             std::function<void(proto::spf::Verdict)> done);

void run_dmarc_discovery(Resolver* resolver, const std::string& from_domain,
                         std::weak_ptr<bool> alive,
                         std::function<void(proto::dmarc::Discovered)> done);

}  // namespace ringmail::engine
