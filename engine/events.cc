#include "engine/events.h"

#include <cstring>
#include <nlohmann/json.hpp>

#include "config/config.h"
#include "engine/json_text.h"
#include "engine/log.h"
#include "proto/address.h"
#include "proto/ascii.h"
#include "proto/dkim.h"

namespace ringmail::engine {
namespace {

bool is_digit(char c) { return c >= '0' && c <= '9'; }

// "d.d.d" with 1-3 digits each after the first (RFC 3463 2).
bool is_enhanced(std::string_view s) {
  size_t i = 0, part = 0;
  while (part < 3) {
    const size_t from = i;
    while (i < s.size() && is_digit(s[i])) ++i;
    const size_t n = i - from;
    if (n == 0 || n > 3 || (part == 0 && n != 1)) return false;
    if (++part < 3) {
      if (i >= s.size() || s[i] != '.') return false;
      ++i;
    }
  }
  return i == s.size();
}

// "MAIL: 550 5.1.0 ..." -> "550 5.1.0 ...": the SMTP stage a reply came
// in (proto::SmtpClient's summaries) is not part of it.
std::string_view strip_stage(std::string_view reply) {
  size_t i = 0;
  while (i < reply.size() && reply[i] >= 'A' && reply[i] <= 'Z') ++i;
  if (i >= 2 && i + 1 < reply.size() && reply[i] == ':' && reply[i + 1] == ' ') {
    return reply.substr(i + 2);
  }
  return reply;
}

}  // namespace

Response parse_response(std::string_view reply) {
  reply = strip_stage(reply);
  Response r;
  if (reply.size() >= 3 && is_digit(reply[0]) && is_digit(reply[1]) && is_digit(reply[2]) &&
      (reply.size() == 3 || reply[3] == ' ' || reply[3] == '-')) {
    r.code = (reply[0] - '0') * 100 + (reply[1] - '0') * 10 + (reply[2] - '0');
    reply.remove_prefix(std::min<size_t>(4, reply.size()));
    const size_t sp = reply.find(' ');
    const std::string_view first = reply.substr(0, sp);
    if (is_enhanced(first)) {
      r.enhanced_code = first;
      reply.remove_prefix(sp == std::string_view::npos ? reply.size() : sp + 1);
    }
  }
  r.text = reply;
  return r;
}

std::string header_metadata(std::string_view message, const std::vector<std::string>& names) {
  nlohmann::json j = nlohmann::json::object();
  size_t body = 0;
  for (const auto& f : proto::dkim::split_header(message, &body)) {
    for (const std::string& name : names) {
      if (!proto::iequals(f.name, name) || j.contains(name)) continue;
      std::string v;
      for (char c : f.value) {
        if (c == '\r' || c == '\n') continue;  // unfolded
        v += c == '\t' ? ' ' : c;
      }
      std::string_view value = proto::trim_space(v);
      j[name] = std::string(value.substr(0, 998));  // a header line's length at most
    }
  }
  return j.empty() ? std::string() : json_text(j, -1, true);
}

std::string_view Events::type_name(Type t) {
  switch (t) {
    case Type::kReception:
      return "Reception";
    case Type::kDelivery:
      return "Delivery";
    case Type::kTransientFailure:
      return "TransientFailure";
    case Type::kBounce:
      return "Bounce";
    case Type::kExpiration:
      return "Expiration";
    case Type::kAdminBounce:
      return "AdminBounce";
    case Type::kSuppressed:
      return "Suppressed";
    case Type::kOob:
      return "OOB";
    case Type::kFeedback:
      return "Feedback";
    case Type::kUnsubscribe:
      return "Unsubscribe";
  }
  return "Unknown";
}

Events::Events(storage::FileIo& io, const config::Config& cfg, uint32_t shard)
    : log_(io,
           {config::events_dir(cfg), shard, cfg.events_segment_bytes, cfg.events_retention_days}),
      classifier_(cfg.bounce_classifier),
      interval_(std::chrono::milliseconds(cfg.events_sync_interval_ms)) {}

int Events::open() { return log_.open(); }

void Events::record(Type type, const proto::Envelope& env, std::string_view recipient,
                    const Detail& d, int64_t now_unix) {
  nlohmann::json j;
  j["type"] = type_name(type);
  j["timestamp"] = now_unix;
  j["queue_id"] = env.id;
  j["sender"] = env.from.to_string();
  j["recipient"] = recipient;
  if (!env.metadata.empty()) {
    nlohmann::json meta = nlohmann::json::parse(env.metadata, nullptr, false);
    if (!meta.is_discarded()) j["metadata"] = std::move(meta);
  }
  if (d.size != 0) j["size"] = d.size;
  if (type != Type::kUnsubscribe) j["received"] = env.arrival_unix;
  if (type == Type::kUnsubscribe) {
    j["sender_domain"] = d.sender_domain;
    j["stream"] = d.stream;
    j["method"] = d.method;
  } else if (type == Type::kReception) {
    j["protocol"] = d.protocol;
    // The client's address, without the brackets of its literal.
    std::string_view client = env.client;
    if (client.size() >= 2 && client.front() == '[' && client.back() == ']') {
      client = client.substr(1, client.size() - 2);
      if (client.rfind("IPv6:", 0) == 0) client.remove_prefix(5);
    }
    j["client"] = client;
    if (!env.tls.empty()) j["tls"] = env.tls;
    if (!env.auth_user.empty()) j["auth_user"] = env.auth_user;
  } else {
    j["delay_s"] = std::max<int64_t>(0, now_unix - env.arrival_unix);
    if (d.attempt != 0) j["attempt"] = d.attempt;
    if (!d.peer_name.empty() || !d.peer_address.empty()) {
      j["peer"] = {{"name", d.peer_name}, {"address", d.peer_address}};
    }
    if (!d.tls.empty()) j["tls"] = d.tls;
    Response r = parse_response(d.reply);
    if (r.enhanced_code.empty() && is_enhanced(d.status)) r.enhanced_code = d.status;
    if (!d.reply.empty()) {
      j["response"] = {{"code", r.code}, {"enhanced_code", r.enhanced_code}, {"text", r.text}};
    }
    if (!d.reporting_mta.empty()) j["reporting_mta"] = d.reporting_mta;
    if (type == Type::kFeedback) {
      j["feedback_report"] = {{"feedback_type", d.feedback_type},
                              {"user_agent", d.user_agent},
                              {"source_ip", d.source_ip}};
    }
    if (classifier_ && (type == Type::kTransientFailure || type == Type::kBounce ||
                        type == Type::kExpiration || type == Type::kOob)) {
      // docs/bounce-classes.md; an expiry is MessageExpired whatever the
      // last reply was.
      const proto::BounceClass c = type == Type::kExpiration
                                       ? proto::BounceClass::MessageExpired
                                       : classifier_->classify(r.code, r.enhanced_code, r.text);
      j["bounce_classification"] = proto::bounce_class_name(c);
    }
  }
  if (int r = log_.append(json_text(j)); r < 0) {
    if (failed_++ == 0) {
      log_line(std::string("cannot write the event log: ") + std::strerror(-r) +
               " (counted in ringmail_events_failed_total; the mail goes on)");
    }
  }
}

void Events::turn(std::chrono::steady_clock::time_point now, int64_t now_unix) {
  if (now - last_sync_ >= interval_ && log_.kick()) last_sync_ = now;
  if (now_unix >= next_expiry_) {
    next_expiry_ = now_unix + 3600;
    log_.expire(now_unix);
  }
}

}  // namespace ringmail::engine
