#include "engine/admin_api.h"

#include <unistd.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "engine/version.h"
#include "tls/api_token.h"
#include "tls/cert_store.h"

namespace ringmail::engine {

namespace {

using nlohmann::json;

ApiReply error(int status, const std::string& why) {
  return {status, json{{"error", why}}.dump() + "\n"};
}

// Bytes of the spool's segment files (a few a shard, the zero-filled
// spare ones included: what they take on disk).
uint64_t spool_bytes(const std::string& data_dir) {
  std::error_code ec;
  uint64_t total = 0;
  for (const auto& e : std::filesystem::directory_iterator(data_dir + "/spool/queue", ec)) {
    std::error_code size_ec;
    if (e.is_regular_file(size_ec)) {
      const auto n = e.file_size(size_ec);
      if (!size_ec) total += n;
    }
  }
  return total;
}

}  // namespace

std::string status_json(const Shard& shard) {
  const config::Config& cfg = shard.config();
  json shards = json::array();
  uint64_t outbound = 0, local = 0;
  int64_t oldest = 0;
  for (const Shard* s : shard.peers()) {
    outbound += s->stats().outbound.queued.load();
    local += s->stats().local_queued.load();
    const int64_t o = s->stats().outbound.oldest_arrival_unix.load();
    if (o != 0 && (oldest == 0 || o < oldest)) oldest = o;
  }
  for (const Shard* s : shard.peers()) {
    const double busy = double(s->stats().loop_busy_us.load()) / 1e6;
    const double wait = double(s->stats().loop_wait_us.load()) / 1e6;
    shards.push_back({{"index", s->index()},
                      {"connections_open", s->stats().open_connections.load()},
                      {"messages_accepted", s->stats().messages_queued.load()},
                      {"outbound_queued", s->stats().outbound.queued.load()},
                      {"local_queued", s->stats().local_queued.load()},
                      {"loop_busy_s", busy},
                      {"loop_wait_s", wait},
                      {"loop_utilisation", busy + wait > 0 ? busy / (busy + wait) : 0.0},
                      {"last_turn_age_s", double(s->mono_ms() - s->last_turn_ms()) / 1e3}});
  }
  json listeners = json::array();
  for (const auto& l : cfg.listeners) {
    listeners.push_back({{"address", l.address}, {"kind", config::kind_name(l)}});
  }
  if (!cfg.admin_socket.empty()) {
    listeners.push_back({{"address", cfg.admin_socket}, {"kind", "admin"}});
  }
  const int64_t now = shard.clock_s();
  json certificates = json::array();
  if (const tls::CertStore* store = shard.certs()) {
    for (const auto& ctx : store->contexts()) {
      certificates.push_back({{"names", ctx->names()},
                              {"key", ctx->ecdsa() ? "ecdsa" : "rsa"},
                              {"not_after_unix", ctx->not_after()},
                              {"days_left", (ctx->not_after() - now) / 86400},
                              {"file", ctx->cert_path()}});
    }
  }
  const json j = {{"version", kRingmailVersion},
                  {"hostname", cfg.hostname},
                  {"pid", ::getpid()},
                  {"started_unix", shard.started_unix()},
                  {"uptime_s", now - shard.started_unix()},
                  {"backend", config::to_string(shard.backend_kind())},
                  {"stopping", shard.stopping()},
                  {"shards", shards},
                  {"listeners", listeners},
                  {"certificates", certificates},
                  // Messages with remote recipients still to deliver, local
                  // deliveries waiting or running, and how long the oldest
                  // remote one has waited.
                  {"queue",
                   {{"outbound_messages", outbound},
                    {"local_deliveries", local},
                    {"oldest_outbound_arrival_unix", oldest},
                    {"oldest_outbound_age_s", oldest == 0 ? 0 : now - oldest}}},
                  {"data_dir", cfg.data_dir},
                  {"spool_bytes", spool_bytes(cfg.data_dir)}};
  return j.dump(2) + "\n";
}

ApiReply admin_api(Shard& shard, const proto::HttpRequest& req, HttpAccess access) {
  if (access == HttpAccess::kTokens) {
    const std::string auth = shard.config().api_tokens.empty() ? "" : req.header("authorization");
    const std::string_view scheme = "Bearer ";
    const config::ApiToken* who = nullptr;
    if (auth.size() > scheme.size() && auth.compare(0, scheme.size(), scheme) == 0) {
      const std::string_view token = std::string_view(auth).substr(scheme.size());
      for (const auto& t : shard.config().api_tokens) {
        if (tls::api_token_matches(token, t.sha256)) who = &t;
      }
    }
    if (who == nullptr) {
      return error(401, "a bearer token of an [[api.token]] is needed (Authorization: Bearer ...)");
    }
    if (!who->has(config::ApiToken::kAdmin)) {
      return error(403, "the token \"" + who->name + "\" has no admin scope");
    }
  }
  if (req.path == "/api/status") {
    if (req.method != "GET" && req.method != "HEAD") return error(405, "use GET");
    return {200, status_json(shard)};
  }
  return error(404, "no such path: " + req.path + " (try /api/status)");
}

}  // namespace ringmail::engine
