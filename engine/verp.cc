#include "engine/verp.h"

#include <algorithm>
#include <cstring>
#include <nlohmann/json.hpp>

#include "engine/events.h"
#include "engine/log.h"
#include "engine/shard.h"
#include "proto/ascii.h"
#include "proto/dkim.h"
#include "proto/oob.h"
#include "proto/verp.h"
#include "storage/event_reader.h"
#include "tls/hmac.h"

namespace ringmail::engine {

namespace {

std::string hmac(std::string_view key, std::string_view data) {
  return tls::hmac_sha256(key, data);
}

// A queue id's time (µs) and shard (engine/shard.cc new_message_id()).
bool decode_id(std::string_view id, uint64_t* us, uint32_t* shard) {
  static constexpr std::string_view kAlphabet = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";
  if (id.size() != 13) return false;
  uint64_t v = 0;
  for (size_t i = 0; i < 13; ++i) {
    const size_t d = kAlphabet.find(id[i]);
    if (d == std::string_view::npos) return false;
    if (i == 11) {
      *us = v;
      v = 0;
    }
    v = v * 32 + d;
  }
  *shard = static_cast<uint32_t>(v);
  return true;
}

// One bounce to a VERP address: the lookup on a worker, the events and
// the suppression back on the shard.
struct VerpJob : storage::BlockingOp {
  Shard* shard = nullptr;
  std::string id;  // the bounce's own queue id
  std::string events_dir;
  std::shared_ptr<const SecretKeys> keys;
  std::vector<proto::verp::Parsed> wanted;
  std::string message;
  // From the worker, per wanted: the original, and what the bounce says.
  std::vector<std::optional<VerpOriginal>> found;
  std::vector<std::string> replies, statuses;
  std::string reporting_mta;

  static int run(storage::BlockingOp* op);
  static void finish(storage::BlockingOp* op, int result);
};

int VerpJob::run(storage::BlockingOp* op) {
  auto* j = static_cast<VerpJob*>(op);
  auto report = proto::parse_oob_report(j->message);
  for (const auto& w : j->wanted) {
    auto original = find_verp_original(j->events_dir, w.queue_id, w.hash, *j->keys);
    std::string reply, status;
    if (original && report && report->kind == proto::OobReport::Kind::kDsn) {
      // The DSN's block for that recipient, else its only failed one.
      const proto::OobRecipient* pick = nullptr;
      size_t failed = 0;
      for (const auto& r : report->recipients) {
        if (r.action != "failed") continue;
        ++failed;
        if (proto::ascii_lower(r.final_recipient) == proto::ascii_lower(original->recipient)) {
          pick = &r;
        }
      }
      if (pick == nullptr && failed == 1) {
        for (const auto& r : report->recipients) {
          if (r.action == "failed") pick = &r;
        }
      }
      if (pick != nullptr) {
        reply = pick->diagnostic.empty() ? pick->status : pick->diagnostic;
        status = pick->status;
      }
      j->reporting_mta = report->reporting_mta;
    }
    if (original && reply.empty()) {
      size_t body = 0;
      (void)proto::dkim::split_header(j->message, &body);
      reply = reply_in_text(std::string_view(j->message).substr(body));
    }
    j->found.push_back(std::move(original));
    j->replies.push_back(std::move(reply));
    j->statuses.push_back(std::move(status));
  }
  return 0;
}

void VerpJob::finish(storage::BlockingOp* op, int) {
  std::unique_ptr<VerpJob> j(static_cast<VerpJob*>(op));
  Shard& shard = *j->shard;
  const int64_t now = shard.clock_s();
  for (size_t i = 0; i < j->wanted.size(); ++i) {
    const auto& w = j->wanted[i];
    if (!j->found[i]) {
      log_line(j->id + ": to a VERP address for " + w.queue_id +
               ", but no recipient of it has that hash (forged, or its events are gone)");
      continue;
    }
    const VerpOriginal& o = *j->found[i];
    const std::string& reply = j->replies[i];
    log_line(j->id + ": VERP bounce: " + o.recipient + " of " + w.queue_id + " bounced later (" +
             (reply.empty() ? "no reply in it" : reply) + ")");
    proto::Envelope orig;
    orig.id = w.queue_id;
    orig.arrival_unix = o.received;
    const size_t at = o.sender.rfind('@');
    if (at != std::string::npos) orig.from = {o.sender.substr(0, at), o.sender.substr(at + 1)};
    if (Events* events = shard.events()) {
      Events::Detail d;
      d.reply = reply;
      d.status = j->statuses[i];
      d.reporting_mta = j->reporting_mta;
      events->record(Events::Type::kOob, orig, o.recipient, d, now);
    }
    const size_t rat = o.recipient.rfind('@');
    if (rat == std::string::npos || reply.empty()) continue;
    orig.rcpts = {proto::Address{o.recipient.substr(0, rat), o.recipient.substr(rat + 1)}};
    shard.suppress_after_bounce(orig, 0, reply, j->statuses[i]);
  }
}

}  // namespace

Result<std::shared_ptr<const SecretKeys>> load_verp_keys(const config::Config& cfg) {
  if (!cfg.events_verp) return nullptr;
  auto secrets = load_secret_file(cfg.data_dir + "/verp.secret", "VERP secrets");
  if (!secrets) return Error{secrets.error()};
  auto k = std::make_shared<SecretKeys>();
  k->secrets = std::move(*secrets);
  return std::shared_ptr<const SecretKeys>(std::move(k));
}

proto::Address verp_sender(const SecretKeys* keys, const config::Config& cfg,
                           const proto::Envelope& env, size_t rcpt) {
  if (keys == nullptr || !cfg.events_verp || rcpt >= env.rcpts.size()) return {};
  proto::Address a;
  a.local =
      proto::verp::local_part(env.id, env.rcpts[rcpt].to_string(), keys->secrets.front(), hmac);
  if (a.local.empty()) return {};
  a.domain = config::verp_domain(cfg);
  return a;
}

std::vector<proto::Address> verp_recipients(const config::Config& cfg,
                                            const std::vector<proto::Address>& rcpts) {
  std::vector<proto::Address> out;
  if (!cfg.events_verp) return out;
  const std::string domain = config::verp_domain(cfg);
  for (const auto& r : rcpts) {
    if (proto::ascii_lower(r.domain) == domain && proto::verp::parse_local_part(r.local)) {
      out.push_back(r);
    }
  }
  return out;
}

void read_verp_bounces(Shard& shard, const std::string& id,
                       const std::vector<proto::Address>& rcpts, std::string message) {
  const config::Config& cfg = shard.config();
  auto keys = shard.verp_keys_ptr();
  if (!keys || !cfg.events_enabled) return;
  auto j = std::make_unique<VerpJob>();
  for (const auto& r : rcpts) {
    if (auto p = proto::verp::parse_local_part(r.local)) j->wanted.push_back(std::move(*p));
  }
  if (j->wanted.empty()) return;
  j->shard = &shard;
  j->id = id;
  j->events_dir = config::events_dir(cfg);
  j->keys = std::move(keys);
  j->message = std::move(message);
  j->kind = storage::BlockingOp::Kind::kCall;
  j->work = &VerpJob::run;
  j->done = &VerpJob::finish;
  shard.file_io().submit(j.release());
}

std::optional<VerpOriginal> find_verp_original(const std::string& events_dir,
                                               const std::string& queue_id, const std::string& hash,
                                               const SecretKeys& keys) {
  uint64_t id_us = 0;
  uint32_t id_shard = 0;
  if (!decode_id(queue_id, &id_us, &id_shard)) return std::nullopt;
  auto all = storage::list_event_segments(events_dir);
  if (!all || all->count(id_shard) == 0) return std::nullopt;
  const std::vector<storage::EventSegment>& segments = all->at(id_shard);
  // The segment open when the id was made, and those after it.
  size_t from = 0;
  for (size_t i = 0; i < segments.size(); ++i) {
    if (segments[i].us <= id_us) from = i;
  }
  const std::string needle = "\"queue_id\":\"" + queue_id + "\"";
  for (size_t i = from; i < segments.size(); ++i) {
    bool seen = false;
    uint64_t offset = 0;
    while (true) {
      auto read = storage::read_event_lines(segments[i].path, offset, 4096);
      if (!read || read->lines.empty()) break;
      offset = read->ends.back();
      for (const std::string& line : read->lines) {
        if (line.find(needle) == std::string::npos ||
            storage::event_line_type(line) != "Reception") {
          continue;
        }
        seen = true;
        const auto j = nlohmann::json::parse(line, nullptr, false);
        if (j.is_discarded() || !j.contains("recipient") || !j["recipient"].is_string()) continue;
        const std::string rcpt = j["recipient"].get<std::string>();
        for (const auto& secret : keys.secrets) {
          if (proto::verp::hash(queue_id, rcpt, secret, hmac) != hash) continue;
          VerpOriginal o;
          o.recipient = rcpt;
          if (j.contains("sender") && j["sender"].is_string()) o.sender = j["sender"];
          if (j.contains("received") && j["received"].is_number_integer()) {
            o.received = j["received"];
          }
          return o;
        }
      }
    }
    if (seen) break;  // a message's Receptions are written together
  }
  return std::nullopt;
}

std::string reply_in_text(std::string_view text) {
  while (!text.empty()) {
    const size_t eol = text.find('\n');
    std::string_view line = text.substr(0, eol);
    text = eol == std::string_view::npos ? std::string_view() : text.substr(eol + 1);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    for (size_t i = 0; i + 3 <= line.size(); ++i) {
      if ((line[i] != '4' && line[i] != '5') || (i > 0 && proto::is_alnum(line[i - 1]))) continue;
      const Response r = parse_response(line.substr(i));
      if (r.code != 0 && !r.enhanced_code.empty()) return std::string(line.substr(i));
    }
  }
  return {};
}

}  // namespace ringmail::engine
