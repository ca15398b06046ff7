#include "engine/http_server.h"

#include <sys/socket.h>

#include <cstdio>
#include <vector>

#include "engine/log.h"

namespace ringmail::engine {

void http_respond(Shard& shard, const proto::HttpRequest& req, const std::string& peer,
                  HttpAccess access, std::function<void(std::string, bool)> reply) {
  shard.counters().http_requests.fetch_add(1, std::memory_order_relaxed);
  const bool stopping = shard.stopping();
  const bool get = req.method == "GET" || req.method == "HEAD";
  int status = 200;
  std::string type = "text/plain; charset=utf-8", body;
  if (req.path == "/healthz") {
    if (!get) {
      status = 405;
      body = "use GET\n";
    } else if (stopping) {
      status = 503;
      body = "stopping\n";
    } else {
      body = "ok\n";
    }
  } else if (req.path == "/metrics") {
    if (!get) {
      status = 405;
      body = "use GET\n";
    } else {
      type = "text/plain; version=0.0.4; charset=utf-8";
      body = metrics_text(shard.peers(), !stopping);
    }
  } else if (req.path.rfind("/api/", 0) == 0) {
    const bool head = req.method == "HEAD";
    const bool keep = req.keep_alive && !stopping;
    admin_api(shard, req, access,
              [peer, method = req.method, path = req.path, head, keep, reply](ApiReply a) {
                if (a.status >= 400) {
                  log_line("http client=" + peer + ": " + method + " " + path + " " +
                           std::to_string(a.status));
                }
                std::string r = proto::http_response(a.status, "application/json", a.body, keep);
                if (head) r.resize(r.size() - a.body.size());
                reply(std::move(r), keep);
              });
    return;
  } else {
    status = 404;
    body = "no such path: " + req.path + " (try /metrics, /healthz or /api/status)\n";
  }
  if (status >= 400)
    log_line("http client=" + peer + ": " + req.method + " " + req.path + " " +
             std::to_string(status));
  const bool keep = req.keep_alive && !stopping;
  std::string r = proto::http_response(status, type, body, keep);
  if (req.method == "HEAD") r.resize(r.size() - body.size());
  reply(std::move(r), keep);
}

std::string metrics_text(const std::vector<Shard*>& shards, bool up) {
  struct Metric {
    const char* name;
    const char* type;
    const char* help;
    double (*value)(const Shard&);
  };
  static const Metric kMetrics[] = {
      {"ringmail_connections_accepted_total", "counter", "Connections accepted (SMTP and HTTP).",
       [](const Shard& s) { return double(s.stats().accepted_connections.load()); }},
      {"ringmail_connections_open", "gauge", "SMTP sessions open now.",
       [](const Shard& s) { return double(s.stats().open_connections.load()); }},
      {"ringmail_tls_handshakes_total", "counter", "Inbound TLS handshakes completed.",
       [](const Shard& s) { return double(s.stats().tls_handshakes.load()); }},
      {"ringmail_messages_accepted_total", "counter",
       "Messages acknowledged with 250 (on disk and fsynced).",
       [](const Shard& s) { return double(s.stats().messages_queued.load()); }},
      {"ringmail_messages_delivered_total", "counter", "Messages whose deliveries all finished.",
       [](const Shard& s) {
         return double(s.stats().messages_delivered.load() + s.stats().outbound.finished.load());
       }},
      {"ringmail_auth_scrypt_checks_total", "counter",
       "AUTH password checks that ran the scrypt hash.",
       [](const Shard& s) { return double(s.stats().auth.scrypt_checks.load()); }},
      {"ringmail_auth_cache_hits_total", "counter",
       "AUTH logins accepted from the verification cache (no hash).",
       [](const Shard& s) { return double(s.stats().auth.cache_hits.load()); }},
      {"ringmail_dns_lookups_total", "counter",
       "DNS questions the engine asked (SPF, DMARC, DKIM keys, MX, addresses).",
       [](const Shard& s) { return double(s.stats().dns.lookups.load()); }},
      {"ringmail_dns_cache_hits_total", "counter", "DNS questions answered from the cache.",
       [](const Shard& s) { return double(s.stats().dns.hits.load()); }},
      {"ringmail_dns_merged_total", "counter",
       "DNS questions that waited for the same question already asked.",
       [](const Shard& s) { return double(s.stats().dns.merged.load()); }},
      {"ringmail_dns_queries_total", "counter", "DNS queries sent to the servers (cache misses).",
       [](const Shard& s) { return double(s.stats().dns.queries.load()); }},
      {"ringmail_dns_temp_failures_total", "counter",
       "DNS queries that timed out or failed for now (SERVFAIL, refused): never cached.",
       [](const Shard& s) { return double(s.stats().dns.temp_failures.load()); }},
      {"ringmail_local_deferred_total", "counter", "Local deliveries deferred, to be retried.",
       [](const Shard& s) { return double(s.stats().local_deferred.load()); }},
      {"ringmail_local_failed_total", "counter", "Local recipients failed for good.",
       [](const Shard& s) { return double(s.stats().local_failed.load()); }},
      {"ringmail_dsn_queued_total", "counter", "Delivery status notifications (bounces) queued.",
       [](const Shard& s) { return double(s.stats().dsns_queued.load()); }},
      {"ringmail_dkim_signed_messages_total", "counter", "Messages DKIM-signed.",
       [](const Shard& s) { return double(s.stats().dkim_signatures.load()); }},
      {"ringmail_spool_commit_failures_total", "counter",
       "Messages refused because the spool could not store them.",
       [](const Shard& s) { return double(s.stats().commit_failures.load()); }},
      {"ringmail_http_requests_total", "counter", "Requests to the HTTP listener.",
       [](const Shard& s) { return double(s.stats().http_requests.load()); }},
      {"ringmail_loop_wait_seconds_total", "counter", "Time the shard's loop waited for events.",
       [](const Shard& s) { return double(s.stats().loop_wait_us.load()) / 1e6; }},
      {"ringmail_loop_busy_seconds_total", "counter",
       "Time the shard's loop worked (busy / (busy + wait) is its utilisation).",
       [](const Shard& s) { return double(s.stats().loop_busy_us.load()) / 1e6; }},
      {"ringmail_outbound_queued", "gauge", "Messages with remote recipients still to deliver.",
       [](const Shard& s) { return double(s.stats().outbound.queued.load()); }},
      {"ringmail_outbound_oldest_age_seconds", "gauge",
       "Seconds the oldest message for remote recipients has waited (0: none).",
       [](const Shard& s) {
         const int64_t o = s.stats().outbound.oldest_arrival_unix.load();
         return o == 0 ? 0.0 : double(s.clock_s() - o);
       }},
      {"ringmail_local_queued", "gauge", "Local deliveries waiting or running.",
       [](const Shard& s) { return double(s.stats().local_queued.load()); }},
      {"ringmail_loop_last_turn_age_seconds", "gauge",
       "Seconds since the shard's loop last turned.",
       [](const Shard& s) { return double(s.mono_ms() - s.last_turn_ms()) / 1e3; }},
  };
  std::string out;
  char num[64];
  for (const Metric& m : kMetrics) {
    out +=
        std::string("# HELP ") + m.name + " " + m.help + "\n# TYPE " + m.name + " " + m.type + "\n";
    for (const Shard* p : shards) {
      std::snprintf(num, sizeof num, "%.17g", m.value(*p));
      out += std::string(m.name) + "{shard=\"" + std::to_string(p->index()) + "\"} " + num + "\n";
    }
  }
  // Families with a result label: one quantity each (attempts per
  // recipient; recipients finished).
  struct Labeled {
    const char* name;
    const char* help;
    std::vector<std::pair<const char*, const std::atomic<uint64_t> OutboundQueue::Counters::*>>
        results;
  };
  using C = OutboundQueue::Counters;
  static const Labeled kLabeled[] = {
      {"ringmail_outbound_attempts_total",
       "Delivery attempts per remote recipient, by result (deferred: 4xx, no answer, DNS).",
       {{"delivered", &C::delivered}, {"deferred", &C::deferred}, {"failed", &C::failed}}},
      {"ringmail_outbound_recipients_total",
       "Remote recipients finished, by result (bounced: 5xx, expiry or an administrator's "
       "bounce; deleted: by an administrator).",
       {{"delivered", &C::delivered}, {"bounced", &C::bounced}, {"deleted", &C::deleted}}},
  };
  for (const Labeled& m : kLabeled) {
    out += std::string("# HELP ") + m.name + " " + m.help + "\n# TYPE " + m.name + " counter\n";
    for (const Shard* p : shards) {
      for (const auto& [result, field] : m.results) {
        out += std::string(m.name) + "{shard=\"" + std::to_string(p->index()) + "\",result=\"" +
               result + "\"} " + std::to_string((p->stats().outbound.*field).load()) + "\n";
      }
    }
  }
  out +=
      "# HELP ringmail_loop_turn_seconds How long the shard's loop turns worked.\n"
      "# TYPE ringmail_loop_turn_seconds histogram\n";
  for (const Shard* p : shards) {
    p->stats().loop_turn_s.append_text(&out, "ringmail_loop_turn_seconds",
                                       "shard=\"" + std::to_string(p->index()) + "\"");
  }
  out +=
      "# HELP ringmail_loop_turn_max_seconds The longest loop turn since the start.\n"
      "# TYPE ringmail_loop_turn_max_seconds gauge\n";
  for (const Shard* p : shards) {
    std::snprintf(num, sizeof num, "%.17g", double(p->stats().loop_turn_max_us.load()) / 1e6);
    out += "ringmail_loop_turn_max_seconds{shard=\"" + std::to_string(p->index()) + "\"} " + num +
           "\n";
  }
  out += "# HELP ringmail_up 1 while ringmaild serves.\n# TYPE ringmail_up gauge\nringmail_up " +
         std::string(up ? "1" : "0") + "\n";
  return out;
}

HttpConnection::HttpConnection(Shard& shard, int fd, std::string peer, HttpAccess access)
    : shard_(shard), fd_(fd), peer_(std::move(peer)), access_(access), reader_(kBodyMax) {
  recv_c_.owner = this;
  send_c_.owner = this;
  idle_.conn = this;
  idle_.fire = &HttpConnection::on_idle;
}

HttpConnection::~HttpConnection() {
  for (auto& s : slots_) s->conn = nullptr;
}

void HttpConnection::start() {
  recv_armed_ = true;
  shard_.backend().recv(fd_, &recv_c_);
  shard_.wheel().schedule(&idle_, shard_.clock_s() + kIdleS);
}

void HttpConnection::on_idle(TimerEntry* t) { static_cast<Timer*>(t)->conn->begin_close(); }

void HttpConnection::on_recv(const Event& ev) {
  if (!ev.more) recv_armed_ = false;
  if (ev.res > 0) {
    if (!shut_ && !close_after_send_ && !stop_reading_) {
      std::vector<proto::HttpRequest> reqs;
      const bool ok = reader_.feed(std::string_view(ev.data, static_cast<size_t>(ev.res)), &reqs);
      bool closing = false;
      for (const auto& r : reqs) {
        auto slot = std::make_shared<Slot>();
        slot->conn = this;
        slots_.push_back(slot);
        http_respond(shard_, r, peer_, access_, [slot](std::string data, bool keep) {
          slot->data = std::move(data);
          slot->keep = keep;
          slot->ready = true;
          if (slot->conn != nullptr) slot->conn->collect();
        });
        if (!r.keep_alive) {
          closing = true;  // nothing after it is answered
          break;
        }
      }
      if (!ok && !closing) {
        log_line("http client=" + peer_ + ": " + std::to_string(reader_.status()) + " " +
                 reader_.error());
        auto slot = std::make_shared<Slot>();
        slot->data = proto::http_response(reader_.status(), "text/plain; charset=utf-8",
                                          reader_.error() + "\n", false);
        slot->keep = false;
        slot->ready = true;
        slots_.push_back(std::move(slot));
        closing = true;
      }
      if (closing) stop_reading_ = true;
      if (pending_.size() > kPendingMax) begin_close();  // a client that never reads
      shard_.wheel().cancel(&idle_);
      shard_.wheel().schedule(&idle_, shard_.clock_s() + kIdleS);
    }
    if (ev.has_buf) shard_.backend().release(ev.buf_id);
    collect();
    if (!recv_armed_ && !shut_) {
      recv_armed_ = true;
      shard_.backend().recv(fd_, &recv_c_);
    }
    maybe_finish();
    return;
  }
  if (ev.has_buf) shard_.backend().release(ev.buf_id);
  if (ev.error() == IoError::kNoBuffers && !shut_) {
    if (!recv_armed_) {
      recv_armed_ = true;
      shard_.backend().recv(fd_, &recv_c_);
    }
    return;
  }
  if (ev.more) return;
  if (!slots_.empty() && !shut_) {
    // The client sent its last request: answer what is still being made
    // (the admin API's queue requests), then close.
    stop_reading_ = eof_ = true;
    return;
  }
  begin_close();
}

void HttpConnection::collect() {
  while (!slots_.empty() && slots_.front()->ready && !close_after_send_) {
    pending_ += slots_.front()->data;
    if (!slots_.front()->keep) close_after_send_ = true;
    slots_.front()->conn = nullptr;
    slots_.pop_front();
  }
  if (eof_ && slots_.empty()) close_after_send_ = true;
  flush();
  maybe_finish();
}

void HttpConnection::flush() {
  if (out_.busy() || shut_) return;
  out_.take(pending_);
  if (out_.empty()) {
    if (close_after_send_) begin_close();
    return;
  }
  out_.start(shard_.backend(), fd_, &send_c_);
}

void HttpConnection::on_send(const Event& ev) {
  if (!out_.on_sent(ev)) {
    begin_close();
    return;
  }
  flush();
  maybe_finish();
}

void HttpConnection::abort() { begin_close(); }

void HttpConnection::begin_close() {
  if (!shut_) {
    shut_ = true;
    shard_.wheel().cancel(&idle_);
    ::shutdown(fd_, SHUT_RDWR);  // ends the multishot receive
  }
  maybe_finish();
}

void HttpConnection::maybe_finish() {
  if (!shut_ || retired_ || recv_armed_ || out_.busy()) return;
  retired_ = true;
  shard_.retire(this);
}

}  // namespace ringmail::engine
