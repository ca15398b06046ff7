// The HTTP injection API, POST /api/inject/v1 (issue 24, docs/inject.md):
// one request names a content and many recipients; each recipient gets
// its own message, built (proto::build_message: templates and MIME),
// DKIM-signed and stored with the others in one spool batch before the
// answer. A 200 means every message it counts is on disk and fsynced; a
// request that cannot be stored is stored not at all (503).
//
// The path of a request: the token (Authorization: Bearer, an
// [[api.token]] with the inject scope), the content type, the body
// (proto::parse_inject_request), the token's sender domains, its
// recipients_per_second budget and the spool's high-water mark are
// checked on the shard's thread; building and signing run as one job on
// a worker thread of the shard's backend; the batch commit and the
// hand-over to delivery run on the shard's thread again.
#pragma once

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <string>

#include "config/config.h"
#include "engine/admin_api.h"
#include "proto/http.h"

namespace ringmail::engine {

class Shard;

// The recipients_per_second budgets of the tokens that have one, shared
// by every shard (a token's requests may reach any of them). Each budget
// is a GCRA over one atomic: no lock, and a reload keeps the state of
// the tokens it keeps.
class InjectRates {
 public:
  static std::shared_ptr<const InjectRates> make(const config::Config& cfg,
                                                 const InjectRates* previous);
  // Takes `n` recipients from `token`'s budget at `now_ns` (monotonic
  // nanoseconds). 0: taken; else nothing is taken and the answer is the
  // seconds to wait (at least 1). A budget holds one second's worth; a
  // request for more passes when nothing is owed, and the token then
  // waits it off. Tokens without a limit always pass.
  int64_t take(const std::string& token, uint64_t n, int64_t now_ns) const;

 private:
  struct Budget {
    uint32_t per_second = 0;
    std::shared_ptr<std::atomic<int64_t>> tat;  // theoretical arrival time, ns
  };
  std::map<std::string, Budget> budgets_;
};

// The token the request's "Authorization: Bearer ..." names, or null
// (hashed once; each configured hash compared in constant time).
const config::ApiToken* bearer_token(const config::Config& cfg, const proto::HttpRequest& req);

// Whether `token` may send as `domain` (lower case): one of its
// sender_domains or a subdomain of one, or without any, a local domain.
bool may_send_as(const config::ApiToken& token, const config::Config& cfg, std::string_view domain);

// POST /api/inject/v1 on `shard`'s thread; `done` gets the answer on it,
// once the messages are durable (or refused). `peer` is "IP:PORT".
void inject_api(Shard& shard, const proto::HttpRequest& req, const std::string& peer,
                std::function<void(ApiReply)> done);

}  // namespace ringmail::engine
