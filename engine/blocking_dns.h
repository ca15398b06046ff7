// DNS for the tools (`ringmail dns-check`): the daemon's own c-ares
// resolver (engine/resolver.h) on an epoll backend of its own, driven until
// each answer is in, and the same mapping onto SPF's queries that inbound
// checks use (engine/mail_auth.h). So a tool and the daemon ask and read
// DNS the same way. The one part of the engine the tools may use
// (tools/check_layering.py).
#pragma once

#include <map>
#include <memory>
#include <string>
#include <utility>

#include "proto/result.h"
#include "proto/spf.h"

namespace ringmail::engine {

class Backend;
class AresResolver;

class BlockingDns {
 public:
  // `servers`: "host:port,..." as dns_servers takes them, or "" for the
  // system's resolver (/etc/resolv.conf). An error says why it cannot run.
  static Result<std::unique_ptr<BlockingDns>> create(const std::string& servers);
  ~BlockingDns();

  // One lookup, answered from a cache when asked before. Names in MX and
  // PTR answers come in lower case without the trailing dot.
  proto::spf::Answer query(proto::spf::QueryType type, const std::string& name);

 private:
  BlockingDns() = default;
  std::unique_ptr<Backend> backend_;
  std::unique_ptr<AresResolver> resolver_;
  std::map<std::pair<proto::spf::QueryType, std::string>, proto::spf::Answer> cache_;
};

}  // namespace ringmail::engine
