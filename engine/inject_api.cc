#include "engine/inject_api.h"

#include <algorithm>
#include <chrono>
#include <cstring>
#include <nlohmann/json.hpp>
#include <optional>
#include <random>

#include "engine/dkim.h"
#include "engine/json_text.h"
#include "engine/local_delivery.h"
#include "engine/log.h"
#include "engine/shard.h"
#include "proto/address.h"
#include "proto/ascii.h"
#include "proto/dkim.h"
#include "proto/dmarc.h"
#include "proto/inject_request.h"
#include "proto/message_builder.h"
#include "tls/api_token.h"

namespace ringmail::engine {

std::shared_ptr<const InjectRates> InjectRates::make(const config::Config& cfg,
                                                     const InjectRates* previous) {
  auto r = std::make_shared<InjectRates>();
  for (const auto& t : cfg.api_tokens) {
    if (t.recipients_per_second == 0) continue;
    Budget b;
    b.per_second = t.recipients_per_second;
    if (previous != nullptr) {
      auto it = previous->budgets_.find(t.name);
      if (it != previous->budgets_.end()) b.tat = it->second.tat;
    }
    if (!b.tat) b.tat = std::make_shared<std::atomic<int64_t>>(0);
    r->budgets_.emplace(t.name, std::move(b));
  }
  return r;
}

int64_t InjectRates::take(const std::string& token, uint64_t n, int64_t now_ns) const {
  auto it = budgets_.find(token);
  if (it == budgets_.end()) return 0;
  constexpr int64_t kSecond = 1'000'000'000;
  const int64_t per = kSecond / it->second.per_second;  // ns a recipient
  const int64_t cost =
      static_cast<int64_t>(std::min<uint64_t>(n, 1u << 30)) * std::max<int64_t>(per, 1);
  std::atomic<int64_t>& tat = *it->second.tat;
  int64_t seen = tat.load(std::memory_order_relaxed);
  for (;;) {
    const int64_t start = std::max(seen, now_ns);
    const int64_t next = start + cost;
    // Within one second's worth of burst, or nothing owed at all.
    if (next - now_ns > kSecond && seen > now_ns) {
      const int64_t wait = next - now_ns - kSecond;
      return std::max<int64_t>(1, (wait + kSecond - 1) / kSecond);
    }
    if (tat.compare_exchange_weak(seen, next, std::memory_order_relaxed)) return 0;
  }
}

const config::ApiToken* bearer_token(const config::Config& cfg, const proto::HttpRequest& req) {
  if (cfg.api_tokens.empty()) return nullptr;
  const std::string auth = req.header("authorization");
  const std::string_view scheme = "Bearer ";
  if (auth.size() <= scheme.size() || auth.compare(0, scheme.size(), scheme) != 0) return nullptr;
  const std::string hash = tls::api_token_hash(std::string_view(auth).substr(scheme.size()));
  const config::ApiToken* who = nullptr;
  for (const auto& t : cfg.api_tokens) {
    if (tls::api_token_hash_equal(hash, t.sha256)) who = &t;
  }
  return who;
}

bool may_send_as(const config::ApiToken& token, const config::Config& cfg,
                 std::string_view domain) {
  if (token.sender_domains.empty()) return cfg.local_domains.count(std::string(domain)) != 0;
  for (const std::string& d : token.sender_domains) {
    if (domain == d) return true;
    if (domain.size() > d.size() && domain.substr(domain.size() - d.size()) == d &&
        domain[domain.size() - d.size() - 1] == '.') {
      return true;
    }
  }
  return false;
}

namespace {

using nlohmann::json;

ApiReply failure(int status, const std::string& why) {
  return {status, json_text(json{{"error", why}}) + "\n"};
}

ApiReply bad_field(const proto::FieldError& e) {
  const std::string text = e.pointer.empty() ? e.reason : e.pointer + ": " + e.reason;
  return {400, json_text(json{{"error", text}, {"pointer", e.pointer}}) + "\n"};
}

json value_json(const proto::tmpl::Value& v) {
  if (const auto* b = v.as_bool()) return *b;
  if (const auto* i = v.as_int()) return *i;
  if (const auto* d = v.as_double()) return *d;
  if (const auto* s = v.as_string()) return *s;
  if (const auto* o = v.as_object()) {
    json j = json::object();
    for (const auto& [k, x] : *o) j[k] = value_json(x);
    return j;
  }
  if (const auto* a = v.as_array()) {
    json j = json::array();
    for (const auto& x : *a) j.push_back(value_json(x));
    return j;
  }
  return nullptr;
}

// "IP:PORT" or "[V6]:PORT" as an SMTP address literal (RFC 5321 4.1.3).
std::string client_literal(const std::string& peer) {
  if (!peer.empty() && peer[0] == '[') {
    const size_t close = peer.find(']');
    return "[IPv6:" + peer.substr(1, close == std::string::npos ? std::string::npos : close - 1) +
           "]";
  }
  return "[" + peer.substr(0, peer.rfind(':')) + "]";
}

bool has_8bit(std::string_view s) { return !proto::is_ascii(s); }

// What one recipient's message takes at least: the content's text as the
// request gives it (attachments as sent, base64 or not).
uint64_t content_bytes(const proto::Content& content) {
  if (const auto* whole = std::get_if<std::string>(&content)) return whole->size();
  const auto& c = std::get<proto::StructuredContent>(content);
  uint64_t n = c.from.email.size() + c.from.name.size() + c.subject.size();
  for (const auto* body : {&c.text_body, &c.html_body, &c.amp_html_body}) {
    if (*body) n += (*body)->size();
  }
  for (const auto& h : c.headers) n += h.name.size() + h.value.size();
  for (const auto& a : c.attachments) n += a.data.size();
  return n;
}

proto::Address email_address(std::string_view email) {
  // parse_inject_request checked it already (proto::is_valid_email).
  proto::Address a;
  size_t consumed = 0;
  const std::string path = "<" + std::string(email) + ">";
  (void)proto::parse_path(path, false, false, a, consumed);
  return a;
}

// One request from its checks to its answer. Owned by itself: the worker
// job, then the spool batch, then the answer.
struct InjectJob : storage::BlockingOp {
  struct Commit : storage::Spool::Batch {
    InjectJob* job = nullptr;
  };
  Shard* shard = nullptr;
  std::function<void(ApiReply)> reply;
  std::string peer;
  config::ApiToken token;
  std::shared_ptr<const config::Config> cfg;
  std::shared_ptr<const DkimKeys> keys;
  std::shared_ptr<const SecretKeys> unsubscribe;  // null: no [[unsubscribe]]
  proto::InjectRequest req;
  int64_t now_unix = 0;
  // Per usable recipient (req.recipients order): its envelope (id and
  // addresses made on the shard's thread), and from the worker its
  // message, or why it has none.
  std::vector<proto::Envelope> envs;
  std::vector<std::string> messages;
  std::vector<std::string> failures;
  std::optional<proto::FieldError> fatal;
  std::vector<std::string> warnings;
  Commit commit;
  std::vector<size_t> stored;  // indices (into envs) in the batch

  static int build(storage::BlockingOp* op);
  static void built(storage::BlockingOp* op, int result);
  static void committed(storage::Spool::Batch* b, proto::CommitResult r);
  void answer(ApiReply r) {
    shard->inject_finished();
    reply(std::move(r));
    delete this;
  }
};

int InjectJob::build(storage::BlockingOp* op) {
  auto* j = static_cast<InjectJob*>(op);
  thread_local std::mt19937_64 rng{std::random_device{}()};
  proto::BuildContext ctx{j->cfg->hostname, j->now_unix, [] { return rng(); }};
  const bool structured = std::holds_alternative<proto::StructuredContent>(j->req.content);
  const std::string from_pointer = structured ? "/content/from/email" : "/content";
  proto::MessageBuilder builder(j->req.content, j->req.substitutions, j->req.dialect,
                                std::move(ctx));
  // One-click unsubscribe: the rule of the token, or of the envelope
  // sender's domain (the suppression list's scope).
  const std::string sender_domain =
      j->envs.empty() ? std::string() : proto::ascii_lower(j->envs.front().from.domain);
  const config::UnsubscribeRule* unsub_rule =
      j->unsubscribe == nullptr ? nullptr : unsubscribe_rule(*j->cfg, j->token.name, sender_domain);
  for (size_t i = 0; i < j->envs.size(); ++i) {
    if (!j->failures[i].empty()) continue;  // refused on the shard (a local user)
    const auto& r = j->req.recipients[i];
    const std::string pointer = "/recipients/" + std::to_string(r.index);
    proto::BuildResult b = builder.build(r.recipient, pointer, &j->warnings);
    if (!b) {
      const auto& e = b.error();
      if (e.pointer == pointer || e.pointer.rfind(pointer + "/", 0) == 0) {
        j->failures[i] = e.pointer + ": " + e.reason;
        continue;
      }
      j->fatal = e;  // the content itself: every recipient would fail
      return 0;
    }
    std::string m = std::move(b).message();
    size_t body = 0;
    std::string from_domain;
    if (!proto::dmarc::from_domain(proto::dkim::split_header(m, &body), &from_domain)) {
      j->fatal = proto::FieldError{from_pointer, "the From header names no single domain"};
      return 0;
    }
    from_domain = proto::ascii_lower(from_domain);
    if (!may_send_as(j->token, *j->cfg, from_domain)) {
      j->fatal = proto::FieldError{
          from_pointer, "the token \"" + j->token.name + "\" may not send as " + from_domain};
      return 0;
    }
    const proto::Envelope& env = j->envs[i];
    if (unsub_rule != nullptr && !has_list_unsubscribe(m)) {
      // RFC 8058: on top, so that the signature below covers it.
      m.insert(0, unsubscribe_fields(*j->unsubscribe, *unsub_rule, env.rcpts[0].to_string(),
                                     sender_domain));
    }
    if (j->keys != nullptr && j->keys->size() > 0) {
      const std::string domain = signing_domain(m, env.from, *j->keys);
      if (!domain.empty()) {
        auto fields = dkim_sign(m, *j->keys->find(domain), j->now_unix, j->cfg->dkim_sha256);
        if (!fields) {
          j->failures[i] = "DKIM signing failed: " + fields.error();
          continue;
        }
        m.insert(0, *fields);
      }
    }
    // RFC 5321 4.4 trace field, as for mail by SMTP.
    m.insert(0, "Received: from " + env.client + "\r\n\tby " + j->cfg->hostname +
                    " (ringmail) with HTTP id " + env.id + "\r\n\tfor <" +
                    env.rcpts[0].to_string() + ">; " + proto::rfc5322_date(env.arrival_unix) +
                    "\r\n");
    j->envs[i].body_8bit = has_8bit(m);
    j->messages[i] = std::move(m);
  }
  return 0;
}

void InjectJob::built(storage::BlockingOp* op, int) {
  auto* j = static_cast<InjectJob*>(op);
  if (j->fatal) return j->answer(bad_field(*j->fatal));
  j->commit.job = j;
  j->commit.done = &InjectJob::committed;
  for (size_t i = 0; i < j->envs.size(); ++i) {
    if (j->messages[i].empty()) continue;
    proto::Envelope& env = j->envs[i];
    // Local recipients through the aliases, as for mail by SMTP.
    env.rcpts = j->shard->policy().expand_recipients(env);
    j->stored.push_back(i);
    j->commit.items.push_back({&env, j->messages[i]});
  }
  if (j->stored.empty()) return committed(&j->commit, proto::CommitResult::kOk);
  j->shard->commit_batch(&j->commit);
}

void InjectJob::committed(storage::Spool::Batch* b, proto::CommitResult r) {
  InjectJob* j = static_cast<Commit*>(b)->job;
  Shard& shard = *j->shard;
  if (r != proto::CommitResult::kOk) {
    shard.counters().commit_failures.fetch_add(1, std::memory_order_relaxed);
    log_line("api client=" + j->peer + " token=" + j->token.name + ": " +
                 std::to_string(j->stored.size()) + " messages not queued (" +
                 (r == proto::CommitResult::kNoSpace ? "disk full" : "spool write failed") + ")",
             LogLevel::kError);
    return j->answer(
        failure(503, r == proto::CommitResult::kNoSpace
                         ? "the spool's disk is full: nothing of this request was queued"
                         : "the spool could not be written: nothing of this request was queued"));
  }
  json ids = json::array(), failed = json::array();
  std::vector<const char*> id_of(j->req.recipients.size() + j->req.rejected.size(), nullptr);
  for (size_t k = 0; k < j->stored.size(); ++k) {
    const size_t i = j->stored[k];
    const proto::Envelope& env = j->envs[i];
    const auto& item = j->commit.items[k];
    log_line(env.id + ": queued client=" + j->peer + " api=" + j->token.name + " from=<" +
             env.from.to_string() + "> bytes=" + std::to_string(item.message.size()) +
             log_recipient(env, 0));
    if (Events* events = shard.events()) {
      Events::Detail d;
      d.protocol = "HTTP";
      d.size = item.message.size();
      for (size_t r = 0; r < env.rcpts.size(); ++r) {
        events->record(Events::Type::kReception, env, r, d, env.arrival_unix);
      }
    }
    auto* job = new DeliveryJob();
    job->rec.env = env;
    job->rec.message = std::move(j->messages[i]);
    job->rec.segment = b->segment;
    job->rec.offset = item.offset;
    job->rec.length = item.length;
    shard.deliver(job);
    id_of[j->req.recipients[i].index] = env.id.c_str();
  }
  shard.counters().messages_queued.fetch_add(j->stored.size(), std::memory_order_relaxed);
  shard.counters().inject_queued.fetch_add(j->stored.size(), std::memory_order_relaxed);
  // Recipients in request order: the address refused at parsing, and
  // those refused here or by the builder.
  std::vector<std::pair<size_t, json>> fails;
  for (const auto& x : j->req.rejected) {
    fails.emplace_back(x.index, json{{"email", x.email}, {"reason", x.reason}});
  }
  for (size_t i = 0; i < j->envs.size(); ++i) {
    if (!j->failures[i].empty()) {
      fails.emplace_back(
          j->req.recipients[i].index,
          json{{"email", j->req.recipients[i].recipient.email}, {"reason", j->failures[i]}});
    }
  }
  std::sort(fails.begin(), fails.end(),
            [](const auto& a, const auto& b) { return a.first < b.first; });
  for (auto& [index, f] : fails) failed.push_back(std::move(f));
  shard.counters().inject_failed.fetch_add(failed.size(), std::memory_order_relaxed);
  for (const char* id : id_of) ids.push_back(id == nullptr ? json(nullptr) : json(id));
  json out = {{"success_count", j->stored.size()},
              {"fail_count", failed.size()},
              {"failed_recipients", std::move(failed)},
              {"errors", json::array()},
              {"warnings", j->warnings},
              {"ids", std::move(ids)}};
  // The ids of the messages stored, and their recipients, are the same
  // objects as in j: everything is said before j goes.
  j->answer({200, json_text(out) + "\n"});
}

}  // namespace

void inject_api(Shard& shard, const proto::HttpRequest& req, const std::string& peer,
                std::function<void(ApiReply)> done) {
  const config::Config& cfg = shard.config();
  const bool any = std::any_of(cfg.api_tokens.begin(), cfg.api_tokens.end(),
                               [](const auto& t) { return t.has(config::ApiToken::kInject); });
  if (!any) {
    return done(failure(404, "no [[api.token]] has the inject scope: the injection API is off"));
  }
  if (req.method != "POST") return done(failure(405, "use POST"));
  const config::ApiToken* token = bearer_token(cfg, req);
  if (token == nullptr) {
    return done(
        failure(401, "a bearer token of an [[api.token]] is needed (Authorization: Bearer ...)"));
  }
  if (!token->has(config::ApiToken::kInject)) {
    return done(failure(403, "the token \"" + token->name + "\" has no inject scope"));
  }
  const std::string type = proto::ascii_lower(req.header("content-type"));
  const std::string_view media = std::string_view(type).substr(0, type.find(';'));
  if (proto::trim_space(media) != "application/json") {
    return done(failure(415, "the body must be application/json, not \"" + type + "\""));
  }
  if (shard.stopping()) return done(failure(503, "ringmaild is stopping"));
  auto parsed = proto::parse_inject_request(req.body);
  if (auto* e = std::get_if<proto::FieldError>(&parsed)) return done(bad_field(*e));
  auto j = std::make_unique<InjectJob>();
  j->req = std::move(std::get<proto::InjectRequest>(parsed));
  const proto::Address from = email_address(j->req.envelope_sender);
  if (!may_send_as(*token, cfg, proto::ascii_lower(from.domain))) {
    return done(
        bad_field({"/envelope_sender", "the token \"" + token->name + "\" may not send as " +
                                           proto::ascii_lower(from.domain)}));
  }
  // Back-pressure before any work: the spool's high-water mark, then the
  // token's rate (taken only for a request that goes ahead).
  uint64_t spooled = 0;
  for (const Shard* s : shard.peers()) spooled += s->stats().spool_bytes.load();
  if (spooled > cfg.inject_spool_high_water_bytes) {
    ApiReply r =
        failure(429, "the spool holds " + std::to_string(spooled) +
                         " bytes, over [inject] spool_high_water_bytes (" +
                         std::to_string(cfg.inject_spool_high_water_bytes) + "): try again later");
    r.headers = "Retry-After: 10\r\n";
    return done(std::move(r));
  }
  const uint64_t n = j->req.recipients.size();
  const uint64_t total = n * content_bytes(j->req.content);
  if (total > cfg.inject_request_messages_bytes_max) {
    return done(failure(413, "the request's " + std::to_string(n) + " messages would take " +
                                 std::to_string(total) +
                                 " bytes, more than [inject] "
                                 "request_messages_bytes_max (" +
                                 std::to_string(cfg.inject_request_messages_bytes_max) +
                                 "): split it"));
  }
  if (shard.inject_rates() != nullptr) {
    const int64_t now_ns = std::chrono::duration_cast<std::chrono::nanoseconds>(
                               std::chrono::steady_clock::now().time_since_epoch())
                               .count();
    if (const int64_t wait = shard.inject_rates()->take(token->name, n, now_ns); wait > 0) {
      ApiReply r =
          failure(429, "the token \"" + token->name + "\" may inject " +
                           std::to_string(token->recipients_per_second) +
                           " recipients a second: try again in " + std::to_string(wait) + " s");
      r.headers = "Retry-After: " + std::to_string(wait) + "\r\n";
      return done(std::move(r));
    }
  }
  j->shard = &shard;
  j->reply = std::move(done);
  j->peer = peer;
  j->token = *token;
  j->cfg = shard.config_ptr();
  j->keys = shard.dkim_keys_ptr();
  j->unsubscribe = shard.unsubscribe_keys_ptr();
  j->now_unix = shard.clock_s();
  j->envs.resize(n);
  j->messages.resize(n);
  j->failures.resize(n);
  std::string metadata;
  for (size_t i = 0; i < n; ++i) {
    const auto& r = j->req.recipients[i];
    proto::Envelope& env = j->envs[i];
    env.id = shard.new_message_id();
    env.arrival_unix = j->now_unix;
    env.client = client_literal(peer);
    env.helo = "api";
    env.from = from;
    env.rcpts = {email_address(r.recipient.email)};
    env.smtputf8 = has_8bit(j->req.envelope_sender) || has_8bit(r.recipient.email);
    env.auth_user = "api:" + token->name;
    if (!r.metadata.empty()) {
      env.metadata = json_text(value_json(proto::tmpl::Value(r.metadata)), -1, true);
    }
    const std::string domain = proto::ascii_lower(env.rcpts[0].domain);
    if (shard.policy().is_local_domain(domain)) {
      std::string why = shard.check_local_recipient(env.rcpts[0]);
      if (!why.empty()) {
        while (!why.empty() && (why.back() == '\n' || why.back() == '\r')) why.pop_back();
        j->failures[i] = why;
      }
    } else if (shard.refuse_suppressed(env, env.rcpts[0])) {
      // Never dropped silently: a failed recipient, and a Suppressed event.
      j->failures[i] = "550 5.1.1 recipient is on the suppression list";
    }
  }
  shard.inject_started();
  j->kind = storage::BlockingOp::Kind::kCall;
  j->work = &InjectJob::build;
  j->done = &InjectJob::built;
  storage::BlockingOp* op = j.release();
  shard.file_io().submit(op);
}

}  // namespace ringmail::engine
