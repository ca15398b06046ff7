#include "engine/admin_api.h"

#include <simdjson.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>

#include "config/version.h"
#include "engine/gather.h"
#include "engine/inject_api.h"
#include "engine/json_text.h"
#include "engine/log.h"
#include "proto/address.h"
#include "proto/ascii.h"
#include "storage/durable_file.h"
#include "tls/cert_store.h"

namespace ringmail::engine {

namespace {

using nlohmann::json;

ApiReply error(int status, const std::string& why) {
  return {status, json_text(json{{"error", why}}) + "\n"};
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
  const json j = {{"version", config::kRingmailVersion},
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
  return json_text(j, 2) + "\n";
}

namespace {

// Messages each shard looks at in one loop turn while it lists or
// summarises (bench/admin_queue.py measures the longest turn).
constexpr size_t kSlice = 2000;
constexpr size_t kPageDefault = 100, kPageMax = 10000;
constexpr int64_t kSuspendMaxS = 365 * 86400;

using Part = std::function<void(Shard&, std::function<void(json)>)>;
void gather(Shard& origin, Part part, std::function<void(std::vector<json>)> done) {
  engine::gather<json>(origin, std::move(part), std::move(done));
}

json message_json(const OutboundQueue::MessageView& m) {
  json rcpts = json::array();
  for (const auto& r : m.rcpts) {
    rcpts.push_back({{"address", r.address},
                     {"state", r.state},
                     {"attempts", m.attempts},
                     {"next_attempt_unix", m.next_attempt_unix},
                     {"last_reply", r.last_reply}});
  }
  return {{"id", m.id},
          {"arrival_unix", m.arrival_unix},
          {"sender", m.sender},
          {"size", m.size},
          {"held", m.held},
          {"attempts", m.attempts},
          {"next_attempt_unix", m.next_attempt_unix},
          {"recipients", std::move(rcpts)}};
}

// --- GET /api/queue ---------------------------------------------------------

void summary_slices(Shard& s, std::shared_ptr<OutboundQueue::Summary> acc, std::string after,
                    int64_t now, std::function<void(json)> reply) {
  if (s.outbound() != nullptr) after = s.outbound()->summarize(now, after, kSlice, acc.get());
  if (s.outbound() != nullptr && !after.empty()) {
    s.later([&s, acc, after, now, reply] { summary_slices(s, acc, after, now, reply); });
    return;
  }
  json domains = json::object();
  for (auto& [d, ds] : acc->domains) {
    domains[d] = {{"messages", ds.messages},     {"recipients", ds.recipients},
                  {"bytes", ds.bytes},           {"held", ds.held},
                  {"in_flight", ds.in_flight},   {"ages", ds.ages},
                  {"last_error", ds.last_error}, {"last_error_unix", ds.last_error_unix}};
  }
  reply({{"messages", acc->messages},
         {"recipients", acc->recipients},
         {"bytes", acc->bytes},
         {"domains", std::move(domains)}});
}

void queue_summary(Shard& shard, std::function<void(ApiReply)> done) {
  const int64_t now = shard.clock_s();
  gather(
      shard,
      [now](Shard& s, std::function<void(json)> reply) {
        summary_slices(s, std::make_shared<OutboundQueue::Summary>(), "", now, std::move(reply));
      },
      [&shard, now, done](std::vector<json> parts) {
        uint64_t messages = 0, recipients = 0, bytes = 0;
        std::map<std::string, json> merged;
        for (auto& p : parts) {
          messages += p["messages"].get<uint64_t>();
          recipients += p["recipients"].get<uint64_t>();
          bytes += p["bytes"].get<uint64_t>();
          for (auto& [d, ds] : p["domains"].items()) {
            auto [m, fresh] = merged.emplace(d, ds);
            if (fresh) continue;
            json& t = m->second;
            for (const char* k : {"messages", "recipients", "bytes", "held", "in_flight"}) {
              t[k] = t[k].get<uint64_t>() + ds[k].get<uint64_t>();
            }
            for (size_t b = 0; b < OutboundQueue::kAgeBuckets; ++b) {
              t["ages"][b] = t["ages"][b].get<uint64_t>() + ds["ages"][b].get<uint64_t>();
            }
            if (ds["last_error_unix"].get<int64_t>() > t["last_error_unix"].get<int64_t>()) {
              t["last_error"] = ds["last_error"];
              t["last_error_unix"] = ds["last_error_unix"];
            }
          }
        }
        const auto& sus = shard.suspensions();
        json suspended = json::array();
        for (const auto& [d, su] : sus) {
          if (su.until_unix <= now) continue;
          suspended.push_back(
              {{"domain", d}, {"until_unix", su.until_unix}, {"reason", su.reason}});
        }
        std::vector<json> domains;
        for (auto& [d, ds] : merged) {
          ds.erase("last_error_unix");
          ds["domain"] = d;
          auto su = sus.find(d);
          ds["suspended"] =
              su == sus.end() || su->second.until_unix <= now
                  ? json(nullptr)
                  : json{{"until_unix", su->second.until_unix}, {"reason", su->second.reason}};
          domains.push_back(std::move(ds));
        }
        std::stable_sort(domains.begin(), domains.end(), [](const json& a, const json& b) {
          return a["recipients"].get<uint64_t>() > b["recipients"].get<uint64_t>();
        });
        const json j = {
            {"now_unix", now},
            {"messages", messages},
            {"recipients", recipients},
            {"bytes", bytes},
            {"buckets", {"0-5m", "5-10m", "10-20m", "20-40m", "40-80m", "80-160m", "160m+"}},
            {"domains", std::move(domains)},
            {"suspended", std::move(suspended)}};
        done({200, json_text(j) + "\n"});
      });
}

// --- GET /api/queue/messages ------------------------------------------------

struct ListQuery {
  OutboundQueue::Filter filter;
  std::string cursor;
  size_t limit = kPageDefault;
};

// The query's fields; the error names the field.
Result<ListQuery> parse_list_query(const std::string& query, int64_t now) {
  std::vector<std::pair<std::string, std::string>> params;
  std::string bad;
  if (!proto::parse_query(query, &params, &bad)) return Error{"broken %-escape in \"" + bad + "\""};
  ListQuery q;
  for (auto& [k, v] : params) {
    const auto number = [&](int64_t lo, int64_t hi) -> Result<int64_t> {
      char* end = nullptr;
      errno = 0;
      const long long n = std::strtoll(v.c_str(), &end, 10);
      if (v.empty() || *end != '\0' || errno != 0 || n < lo || n > hi) {
        return Error{k + ": a number from " + std::to_string(lo) + " to " + std::to_string(hi) +
                     " is needed, not \"" + v + "\""};
      }
      return static_cast<int64_t>(n);
    };
    if (k == "domain") {
      q.filter.domain = proto::ascii_lower(v);
      if (!proto::is_valid_domain(q.filter.domain))
        return Error{"domain: not a domain: \"" + v + "\""};
    } else if (k == "sender") {
      q.filter.by_sender = true;
      q.filter.sender = v == "<>" ? "" : OutboundQueue::address_key(v);
    } else if (k == "rcpt") {
      q.filter.rcpt = OutboundQueue::address_key(v);
      if (q.filter.rcpt.find('@') == std::string::npos) {
        return Error{"rcpt: not an address: \"" + v + "\""};
      }
    } else if (k == "older_than") {
      auto n = number(0, int64_t{1} << 40);
      if (!n) return Error{n.error()};
      q.filter.arrived_before = now - *n;
    } else if (k == "state") {
      using S = OutboundQueue::Filter::State;
      if (v == "waiting") {
        q.filter.state = S::kWaiting;
      } else if (v == "in_flight") {
        q.filter.state = S::kInFlight;
      } else if (v == "held") {
        q.filter.state = S::kHeld;
      } else {
        return Error{"state: waiting, in_flight or held, not \"" + v + "\""};
      }
    } else if (k == "limit") {
      auto n = number(1, kPageMax);
      if (!n) return Error{n.error()};
      q.limit = static_cast<size_t>(*n);
    } else if (k == "cursor") {
      q.cursor = v;
    } else {
      return Error{"unknown parameter \"" + k +
                   "\" (domain, sender, rcpt, older_than, state, limit, cursor)"};
    }
  }
  return q;
}

void list_slices(Shard& s, std::shared_ptr<ListQuery> q,
                 std::shared_ptr<std::vector<OutboundQueue::MessageView>> acc, std::string after,
                 std::function<void(json)> reply) {
  if (s.outbound() != nullptr) {
    after = s.outbound()->list(q->filter, after, q->limit, kSlice, acc.get());
    if (!after.empty()) {
      s.later([&s, q, acc, after, reply] { list_slices(s, q, acc, after, reply); });
      return;
    }
  }
  json msgs = json::array();
  for (const auto& m : *acc) msgs.push_back(message_json(m));
  reply(std::move(msgs));
}

void queue_messages(Shard& shard, const proto::HttpRequest& req,
                    std::function<void(ApiReply)> done) {
  auto q = parse_list_query(req.query, shard.clock_s());
  if (!q) {
    done(error(400, q.error()));
    return;
  }
  auto shared = std::make_shared<ListQuery>(std::move(*q));
  gather(
      shard,
      [shared](Shard& s, std::function<void(json)> reply) {
        list_slices(s, shared, std::make_shared<std::vector<OutboundQueue::MessageView>>(),
                    shared->cursor, std::move(reply));
      },
      [shared, done](std::vector<json> parts) {
        std::vector<json> all;
        for (auto& p : parts) {
          for (auto& m : p) all.push_back(std::move(m));
        }
        std::sort(all.begin(), all.end(), [](const json& a, const json& b) {
          return a["id"].get_ref<const std::string&>() < b["id"].get_ref<const std::string&>();
        });
        // Each shard gave its first `limit` after the cursor: the first
        // `limit` of them all are this page.
        const bool more = all.size() >= shared->limit;
        if (all.size() > shared->limit) all.resize(shared->limit);
        json j = {{"messages", all}};
        j["next_cursor"] = more && !all.empty() ? json(all.back()["id"]) : json(nullptr);
        done({200, json_text(j) + "\n"});
      });
}

// --- GET /api/queue/messages/ID ---------------------------------------------

void queue_message(Shard& shard, const std::string& id, bool body,
                   std::function<void(ApiReply)> done) {
  gather(
      shard,
      [id, body](Shard& s, std::function<void(json)> reply) {
        OutboundQueue::MessageView v;
        const storage::SpoolRecord* rec =
            s.outbound() != nullptr ? s.outbound()->find(id, &v) : nullptr;
        if (rec == nullptr) {
          reply(nullptr);
          return;
        }
        json j = message_json(v);
        j["client"] = v.client;
        j["helo"] = v.helo;
        // The HTTP injection API's metadata, as the request gave it.
        if (!rec->env.metadata.empty()) {
          j["metadata"] = json::parse(rec->env.metadata, nullptr, false);
        }
        storage::SpoolRecord copy = *rec;
        if (copy.message.empty() && s.spool().load(copy) < 0) {
          j["error"] = "cannot read the message back from the spool";
        } else {
          const size_t end = copy.message.find("\r\n\r\n");
          j["headers"] = copy.message.substr(0, end == std::string::npos ? end : end + 2);
          if (body) j["content"] = copy.message;
        }
        reply(std::move(j));
      },
      [id, done](std::vector<json> parts) {
        for (auto& p : parts) {
          if (!p.is_null()) {
            done({200, json_text(p) + "\n"});
            return;
          }
        }
        done(error(404, "no message " + id + " in the queue"));
      });
}

// --- POST /api/queue/ACTION -------------------------------------------------

Result<OutboundQueue::Selector> parse_selector(const std::string& body) {
  if (body.empty()) {
    return Error{
        "a JSON body is needed: {\"ids\": [...]}, {\"domain\": ...}, {\"sender\": ...} "
        "or {\"all\": true}"};
  }
  simdjson::dom::parser parser;
  simdjson::dom::element doc;
  simdjson::dom::object obj;
  if (parser.parse(body).get(doc) || doc.get(obj)) return Error{"the body is not a JSON object"};
  OutboundQueue::Selector sel;
  int given = 0;
  for (auto field : obj) {
    const std::string_view k = field.key;
    if (k == "ids") {
      simdjson::dom::array ids;
      if (field.value.get(ids)) return Error{"ids: an array of message ids is needed"};
      for (auto e : ids) {
        std::string_view id;
        if (e.get(id) || id.empty() || id.size() > 64) {
          return Error{"ids: each id must be a string"};
        }
        sel.ids.emplace_back(id);
      }
      if (sel.ids.empty()) return Error{"ids: the list is empty"};
      ++given;
    } else if (k == "domain") {
      std::string_view d;
      if (field.value.get(d) || !proto::is_valid_domain(proto::ascii_lower(d))) {
        return Error{"domain: a domain name is needed"};
      }
      sel.domain = proto::ascii_lower(d);
      ++given;
    } else if (k == "sender") {
      std::string_view a;
      if (field.value.get(a))
        return Error{"sender: an address is needed (\"<>\": the null sender)"};
      sel.by_sender = true;
      sel.sender = a == "<>" ? "" : OutboundQueue::address_key(a);
      ++given;
    } else if (k == "all") {
      bool all = false;
      if (field.value.get(all) || !all) return Error{"all: must be true"};
      sel.all = true;
      ++given;
    } else {
      return Error{"unknown field \"" + std::string(k) + "\" (ids, domain, sender, all)"};
    }
  }
  if (given != 1) {
    return Error{"give exactly one of ids, domain, sender or all"};
  }
  return sel;
}

void queue_action(Shard& shard, OutboundQueue::Action action, const std::string& body,
                  std::function<void(ApiReply)> done) {
  auto sel = parse_selector(body);
  if (!sel) {
    done(error(400, sel.error()));
    return;
  }
  auto shared = std::make_shared<OutboundQueue::Selector>(std::move(*sel));
  gather(
      shard,
      [shared, action](Shard& s, std::function<void(json)> reply) {
        if (s.outbound() == nullptr) {
          reply({{"messages", 0}, {"recipients", 0}, {"found", json::array()}});
          return;
        }
        const auto c = s.outbound()->apply(action, *shared, s.clock_s());
        json part = {{"messages", c.messages}, {"recipients", c.recipients}, {"found", c.found}};
        if (action == OutboundQueue::Action::kFlush || c.messages == 0) {
          reply(std::move(part));
          return;
        }
        // Answered only once the change is on disk.
        s.spool().sync([part = std::move(part), reply](int r) mutable {
          if (r < 0)
            part["error"] = std::string("the spool could not record it: ") + std::strerror(-r);
          reply(std::move(part));
        });
      },
      [shared, action, done](std::vector<json> parts) {
        uint64_t messages = 0, recipients = 0;
        std::set<std::string> found;
        for (auto& p : parts) {
          if (p.contains("error")) {
            done(error(500, p["error"].get<std::string>()));
            return;
          }
          messages += p["messages"].get<uint64_t>();
          recipients += p["recipients"].get<uint64_t>();
          for (auto& id : p["found"]) found.insert(id.get<std::string>());
        }
        json j = {{"messages", messages}};
        if (action == OutboundQueue::Action::kDelete || action == OutboundQueue::Action::kBounce) {
          j["recipients"] = recipients;
        }
        if (!shared->ids.empty()) {
          json unknown = json::array();
          for (const auto& id : shared->ids) {
            if (!found.count(id)) unknown.push_back(id);
          }
          if (found.empty()) {
            done(error(404, "no message " + unknown[0].get<std::string>() + " in the queue" +
                                (unknown.size() > 1 ? " (nor the other ids)" : "")));
            return;
          }
          if (!unknown.empty()) j["unknown"] = std::move(unknown);
        }
        done({200, json_text(j) + "\n"});
      });
}

// --- POST /api/destinations/DOMAIN/suspend|resume ----------------------------

// Writes the new set to disk and hands it to every shard; `flush` (a
// resume) makes that domain's waiting mail due everywhere.
int publish_suspensions(Shard& shard, Shard::Suspensions next, const std::string& flush) {
  const std::string path = shard.config().data_dir + "/suspended";
  if (const int r = storage::write_durable_file(path, suspensions_text(next), 0640,
                                                storage::Existing::kReplace);
      r < 0) {
    return r;
  }
  auto snap = std::make_shared<const Shard::Suspensions>(std::move(next));
  for (Shard* peer : shard.peers()) {
    auto fn = [snap, flush](Shard& s) {
      s.set_suspensions(snap);
      if (!flush.empty() && s.outbound() != nullptr) {
        OutboundQueue::Selector sel;
        sel.domain = flush;
        s.outbound()->apply(OutboundQueue::Action::kFlush, sel, s.clock_s());
      }
    };
    if (peer == &shard) {
      fn(shard);
    } else {
      peer->post_from_shard(shard, msg::Run{std::move(fn)});
    }
  }
  return 0;
}

ApiReply destination(Shard& shard, const std::string& domain, const std::string& verb,
                     const std::string& body) {
  const int64_t now = shard.clock_s();
  Shard::Suspensions next;
  for (const auto& [d, su] : shard.suspensions()) {
    if (su.until_unix > now) next[d] = su;  // expired ones go
  }
  if (verb == "resume") {
    const bool was = next.erase(domain) > 0;
    if (const int r = publish_suspensions(shard, std::move(next), domain); r < 0) {
      return error(500,
                   "cannot write " + shard.config().data_dir + "/suspended: " + std::strerror(-r));
    }
    log_line("admin: destination " + domain + " resumed");
    return {200, json_text(json{{"domain", domain}, {"resumed", was}}) + "\n"};
  }
  simdjson::dom::parser parser;
  simdjson::dom::element doc;
  simdjson::dom::object obj;
  if (body.empty() || parser.parse(body).get(doc) || doc.get(obj)) {
    return error(400, "a JSON body is needed: {\"duration_s\": N, \"reason\": \"...\"}");
  }
  int64_t duration = -1;
  std::string reason;
  for (auto field : obj) {
    const std::string_view k = field.key;
    if (k == "duration_s") {
      if (field.value.get(duration) || duration < 1 || duration > kSuspendMaxS) {
        return error(400, "duration_s: a number of seconds from 1 to " +
                              std::to_string(kSuspendMaxS) + " is needed");
      }
    } else if (k == "reason") {
      std::string_view r;
      if (field.value.get(r) || r.size() > 500) {
        return error(400, "reason: a string of at most 500 characters is needed");
      }
      for (char c : r) reason.push_back(static_cast<unsigned char>(c) < 0x20 ? ' ' : c);
    } else {
      return error(400, "unknown field \"" + std::string(k) + "\" (duration_s, reason)");
    }
  }
  if (duration < 0) return error(400, "duration_s: missing");
  next[domain] = {now + duration, reason};
  if (const int r = publish_suspensions(shard, std::move(next), ""); r < 0) {
    return error(500,
                 "cannot write " + shard.config().data_dir + "/suspended: " + std::strerror(-r));
  }
  log_line("admin: destination " + domain + " suspended for " + std::to_string(duration) + "s" +
           (reason.empty() ? "" : ": " + reason));
  return {200,
          json_text(json{{"domain", domain}, {"until_unix", now + duration}, {"reason", reason}}) +
              "\n"};
}

// --- /api/suppression -------------------------------------------------------

// "local@domain" that RCPT would take, without angle brackets; empty when
// it is not one.
std::string mailbox(std::string_view text) {
  if (text.empty() || text.size() > 512) return "";
  const std::string path = "<" + std::string(text) + ">";
  proto::Address a;
  size_t consumed = 0;
  if (proto::parse_path(path, false, false, a, consumed) != proto::AddressError::kNone ||
      consumed != path.size() || a.domain.empty()) {
    return "";
  }
  return a.to_string();
}

// POST /api/suppression/add|remove {"address", "scope", "reason"}.
void suppression_change(Shard& shard, bool add, const std::string& body,
                        std::function<void(ApiReply)> done) {
  simdjson::dom::parser parser;
  simdjson::dom::element doc;
  simdjson::dom::object obj;
  if (body.empty() || parser.parse(body).get(doc) || doc.get(obj)) {
    return done(error(400, "a JSON body is needed: {\"address\": \"a@b\", \"scope\": \"*\"" +
                               std::string(add ? ", \"reason\": \"...\"}" : "}")));
  }
  storage::SuppressionChange c;
  c.add = add;
  c.scope = std::string(storage::kGlobalScope);
  c.unix_time = shard.clock_s();
  for (auto field : obj) {
    const std::string_view k = field.key;
    std::string_view v;
    if (k != "address" && k != "scope" && !(add && k == "reason")) {
      return done(error(400, "unknown field \"" + std::string(k) + "\" (address, scope" +
                                 (add ? ", reason)" : ")")));
    }
    if (field.value.get(v)) return done(error(400, std::string(k) + ": a string is needed"));
    if (k == "address") {
      c.address = proto::ascii_lower(mailbox(v));  // entries do not depend on case
      if (c.address.empty()) {
        return done(error(400, "address: \"" + std::string(v) + "\" is not a mail address"));
      }
    } else if (k == "scope") {
      c.scope = proto::ascii_lower(v);
      if (c.scope != storage::kGlobalScope && !proto::is_valid_domain(c.scope)) {
        return done(error(400, "scope: \"*\" (every sender) or a sender domain is needed"));
      }
    } else {
      if (v.size() > 500) return done(error(400, "reason: at most 500 characters"));
      for (char ch : v) c.reason.push_back(static_cast<unsigned char>(ch) < 0x20 ? ' ' : ch);
    }
  }
  if (c.address.empty()) return done(error(400, "address: missing"));
  if (c.reason.empty()) c.reason = "by the administrator";
  const bool was = shard.suppressions() != nullptr &&
                   shard.suppressions()->contains(shard.suppressions()->key(c.scope, c.address));
  const std::string what = c.scope + " " + c.address;
  json answer{{"address", c.address}, {"scope", c.scope}, {add ? "added" : "removed", add != was}};
  if (add == was) return done({200, json_text(answer) + "\n"});  // nothing to change
  shard.change_suppression(std::move(c), [add, what, answer, done](int r) {
    if (r < 0) {
      return done(
          error(500, "cannot write the suppression list: " + std::string(std::strerror(-r))));
    }
    log_line(std::string("admin: suppression ") + (add ? "added " : "removed ") + what);
    done({200, json_text(answer) + "\n"});
  });
}

// GET /api/suppression/check?address=A&sender_domain=D
ApiReply suppression_check(Shard& shard, const proto::HttpRequest& req) {
  std::vector<std::pair<std::string, std::string>> params;
  std::string bad, address, sender_domain;
  if (!proto::parse_query(req.query, &params, &bad)) return error(400, "bad query: " + bad);
  for (auto& [k, v] : params) {
    if (k == "address") {
      address = mailbox(v);
      if (address.empty()) return error(400, "address: \"" + v + "\" is not a mail address");
    } else if (k == "sender_domain") {
      sender_domain = proto::ascii_lower(v);
      if (!proto::is_valid_domain(sender_domain)) {
        return error(400, "sender_domain: \"" + v + "\" is not a domain");
      }
    } else {
      return error(400, "unknown parameter \"" + k + "\" (address, sender_domain)");
    }
  }
  if (address.empty()) return error(400, "address: missing");
  const Suppressions* s = shard.suppressions();
  json j{{"address", address},
         {"suppressed", s != nullptr && s->suppressed(sender_domain, address)}};
  if (!sender_domain.empty()) j["sender_domain"] = sender_domain;
  return {200, json_text(j) + "\n"};
}

}  // namespace

Result<Shard::Suspensions> read_suspensions(const std::string& path, int64_t now_s) {
  Shard::Suspensions out;
  std::ifstream in(path);
  if (!in) {
    if (errno == ENOENT) return out;
    return Error{path + ": " + std::strerror(errno)};
  }
  std::string line;
  for (int n = 1; std::getline(in, line); ++n) {
    if (line.empty() || line[0] == '#') continue;
    std::istringstream fields(line);
    std::string domain;
    long long until = 0;
    if (!(fields >> domain >> until) || !proto::is_valid_domain(domain)) {
      return Error{path + ":" + std::to_string(n) + ": not \"DOMAIN UNTIL_UNIX REASON\""};
    }
    std::string reason;
    std::getline(fields >> std::ws, reason);
    if (until > now_s) out[domain] = {until, reason};
  }
  return out;
}

std::string suspensions_text(const Shard::Suspensions& s) {
  std::string out =
      "# Destinations suspended with `ringmail queue suspend` (DOMAIN UNTIL_UNIX REASON).\n";
  for (const auto& [d, su] : s) {
    out += d + " " + std::to_string(su.until_unix) + " " + su.reason + "\n";
  }
  return out;
}

void admin_api(Shard& shard, const proto::HttpRequest& req, HttpAccess access,
               std::function<void(ApiReply)> done) {
  if (access == HttpAccess::kTokens) {
    const config::ApiToken* who = bearer_token(shard.config(), req);
    if (who == nullptr) {
      done(error(401, "a bearer token of an [[api.token]] is needed (Authorization: Bearer ...)"));
      return;
    }
    if (!who->has(config::ApiToken::kAdmin)) {
      done(error(403, "the token \"" + who->name + "\" has no admin scope"));
      return;
    }
  }
  const std::string& path = req.path;
  const bool get = req.method == "GET" || req.method == "HEAD";
  const bool post = req.method == "POST";
  if (path == "/api/status") {
    done(get ? ApiReply{200, status_json(shard)} : error(405, "use GET"));
    return;
  }
  const std::string queue = "/api/queue", messages = "/api/queue/messages/",
                    dest = "/api/destinations/";
  const bool queue_path = path == queue || path.rfind(queue + "/", 0) == 0;
  if ((queue_path || path.rfind(dest, 0) == 0) && shard.stopping()) {
    done(error(503, "ringmaild is stopping"));
    return;
  }
  if (path == queue) {
    if (!get) return done(error(405, "use GET"));
    return queue_summary(shard, std::move(done));
  }
  if (path == "/api/queue/messages") {
    if (!get) return done(error(405, "use GET"));
    return queue_messages(shard, req, std::move(done));
  }
  if (path.rfind(messages, 0) == 0) {
    if (!get) return done(error(405, "use GET"));
    std::string id;
    if (!proto::percent_decode(path.substr(messages.size()), &id)) {
      return done(error(400, "broken %-escape in the path: " + path));
    }
    std::vector<std::pair<std::string, std::string>> params;
    std::string bad;
    bool body = false;
    if (proto::parse_query(req.query, &params, &bad)) {
      for (auto& [k, v] : params) body = body || (k == "body" && v != "0" && !v.empty());
    }
    if (id.empty() || id.find('/') != std::string::npos) {
      return done(error(404, "no such path: " + path));
    }
    return queue_message(shard, id, body, std::move(done));
  }
  static const std::pair<const char*, OutboundQueue::Action> kActions[] = {
      {"flush", OutboundQueue::Action::kFlush},
      {"hold", OutboundQueue::Action::kHold},
      {"release", OutboundQueue::Action::kRelease},
      {"delete", OutboundQueue::Action::kDelete},
      {"bounce", OutboundQueue::Action::kBounce}};
  for (const auto& [name, action] : kActions) {
    if (path == queue + "/" + name) {
      if (!post) return done(error(405, "use POST"));
      return queue_action(shard, action, req.body, std::move(done));
    }
  }
  if (path == "/api/suppression/add" || path == "/api/suppression/remove") {
    if (!post) return done(error(405, "use POST"));
    if (shard.stopping()) return done(error(503, "ringmaild is stopping"));
    return suppression_change(shard, path.back() == 'd', req.body, std::move(done));
  }
  if (path == "/api/suppression/check") {
    if (!get) return done(error(405, "use GET"));
    return done(suppression_check(shard, req));
  }
  if (path.rfind(dest, 0) == 0) {
    const std::string rest = path.substr(dest.size());
    const size_t slash = rest.find('/');
    std::string domain;
    if (!proto::percent_decode(slash == std::string::npos ? rest : rest.substr(0, slash),
                               &domain)) {
      return done(error(400, "broken %-escape in the path: " + path));
    }
    domain = proto::ascii_lower(domain);
    const std::string verb = slash == std::string::npos ? "" : rest.substr(slash + 1);
    if (!proto::is_valid_domain(domain))
      return done(error(400, "not a domain: \"" + domain + "\""));
    if (verb != "suspend" && verb != "resume") {
      return done(error(404, "no such path: " + path + " (suspend or resume)"));
    }
    if (!post) return done(error(405, "use POST"));
    // One shard (the first) changes the set and writes the file, so two
    // changes through different listeners never race.
    Shard* first = shard.peers().front();
    if (first == &shard) return done(destination(shard, domain, verb, req.body));
    first->post_from_shard(shard, msg::Run{[&shard, domain, verb, body = req.body, done](Shard& f) {
                             ApiReply r = destination(f, domain, verb, body);
                             shard.post_from_shard(f, msg::Run{[r, done](Shard&) { done(r); }});
                           }});
    return;
  }
  done(error(404, "no such path: " + path +
                      " (try /api/status, /api/queue, /api/queue/messages, /api/destinations/)"));
}

}  // namespace ringmail::engine
