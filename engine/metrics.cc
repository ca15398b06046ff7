#include "engine/metrics.h"

#include <algorithm>
#include <cstdio>
#include <memory>

#include "engine/amqp_publisher.h"
#include "engine/gather.h"
#include "engine/shard.h"
#include "engine/webhooks.h"
#include "proto/outcome.h"

namespace ringmail::engine {

namespace {

std::string number(double v) {
  char num[64];
  std::snprintf(num, sizeof num, "%.17g", v);
  return num;
}

// A label value as the text format wants it (backslash, quote, newline).
std::string escaped(std::string_view v) {
  std::string o;
  for (char c : v) {
    if (c == '\\' || c == '"') {
      o += '\\';
      o += c;
    } else if (c == '\n') {
      o += "\\n";
    } else {
      o += c;
    }
  }
  return o;
}

std::string shard_label(const Shard& s) { return "shard=\"" + std::to_string(s.index()) + "\""; }

void header(std::string* out, const char* name, const char* type, const char* help) {
  *out += std::string("# HELP ") + name + " " + help + "\n# TYPE " + name + " " + type + "\n";
}

void line(std::string* out, const std::string& name, const std::string& labels, double v) {
  *out += name + (labels.empty() ? "" : "{" + labels + "}") + " " + number(v) + "\n";
}

// Messages each shard summarises in one loop turn (as the admin API's
// listings: bench/admin_queue.py measures the longest turn).
constexpr size_t kSlice = 2000;

void sample_slices(Shard& s, std::shared_ptr<ShardSample> acc, std::string after, int64_t now,
                   std::function<void(std::shared_ptr<ShardSample>)> reply) {
  if (s.outbound() != nullptr) after = s.outbound()->summarize(now, after, kSlice, &acc->queue);
  if (s.outbound() != nullptr && !after.empty()) {
    s.later([&s, acc, after, now, reply] { sample_slices(s, acc, after, now, reply); });
    return;
  }
  acc->spool_bytes = s.spool().segment_bytes();
  acc->spool_segments = s.spool().segment_count();
  reply(std::move(acc));
}

}  // namespace

std::vector<DestinationRow> top_destinations(
    const std::map<std::string, OutboundQueue::DomainSummary>& domains, size_t n) {
  std::vector<DestinationRow> rows;
  rows.reserve(domains.size());
  for (const auto& [d, ds] : domains) rows.push_back({d, ds.messages, ds.recipients, ds.bytes});
  auto larger = [](const DestinationRow& a, const DestinationRow& b) {
    return a.recipients != b.recipients ? a.recipients > b.recipients
                                        : a.destination < b.destination;
  };
  if (rows.size() <= n) {
    std::sort(rows.begin(), rows.end(), larger);
    return rows;
  }
  std::partial_sort(rows.begin(), rows.begin() + static_cast<ptrdiff_t>(n), rows.end(), larger);
  DestinationRow other{"other"};
  for (size_t i = n; i < rows.size(); ++i) {
    other.messages += rows[i].messages;
    other.recipients += rows[i].recipients;
    other.bytes += rows[i].bytes;
  }
  rows.resize(n);
  rows.push_back(std::move(other));
  return rows;
}

void scrape_metrics(Shard& origin, bool up, std::function<void(std::string)> done) {
  const int64_t now = origin.clock_s();
  gather<ShardSample>(
      origin,
      [now](Shard& s, std::function<void(ShardSample)> reply) {
        sample_slices(s, std::make_shared<ShardSample>(), "", now,
                      [reply](std::shared_ptr<ShardSample> r) { reply(std::move(*r)); });
      },
      [&origin, up, done](std::vector<ShardSample> samples) {
        done(metrics_text(origin.peers(), up, samples, origin.config().metrics_top_destinations));
      });
}

std::string metrics_text(const std::vector<Shard*>& shards, bool up,
                         const std::vector<ShardSample>& samples, size_t top_n) {
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
      {"ringmail_events_written_total", "counter", "Events written to the event log.",
       [](const Shard& s) { return double(s.stats().events_written.load()); }},
      {"ringmail_events_failed_total", "counter",
       "Events that could not be written to the event log (the mail went on).",
       [](const Shard& s) { return double(s.stats().events_failed.load()); }},
      {"ringmail_suppressed_recipients_total", "counter",
       "Recipients refused for the suppression list (at RCPT and at injection).",
       [](const Shard& s) { return double(s.stats().suppressed_recipients.load()); }},
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
      {"ringmail_loop_turn_max_seconds", "gauge", "The longest loop turn since the start.",
       [](const Shard& s) { return double(s.stats().loop_turn_max_us.load()) / 1e6; }},
  };
  std::string out;
  for (const Metric& m : kMetrics) {
    header(&out, m.name, m.type, m.help);
    for (const Shard* p : shards) line(&out, m.name, shard_label(*p), m.value(*p));
  }

  // Families with a label beside the shard: one quantity each.
  struct Labeled {
    const char* name;
    const char* label;
    const char* help;
    std::vector<std::pair<const char*, std::function<uint64_t(const Shard&)>>> values;
  };
  auto by_cause = [](bool failed) {
    std::vector<std::pair<const char*, std::function<uint64_t(const Shard&)>>> v;
    for (size_t c = 0; c < proto::kCauses; ++c) {
      v.emplace_back(proto::cause_name(proto::Cause(c)), [c, failed](const Shard& s) {
        return (failed ? s.stats().outbound.failed_by : s.stats().outbound.deferred_by)[c].load();
      });
    }
    return v;
  };
  static const Labeled kLabeled[] = {
      {"ringmail_outbound_attempts_total",
       "result",
       "Delivery attempts per remote recipient, by result (deferred: 4xx, no answer, DNS).",
       {{"delivered", [](const Shard& s) { return s.stats().outbound.delivered.load(); }},
        {"deferred", [](const Shard& s) { return s.stats().outbound.deferred.load(); }},
        {"failed", [](const Shard& s) { return s.stats().outbound.failed.load(); }}}},
      {"ringmail_outbound_recipients_total",
       "result",
       "Remote recipients finished, by result (bounced: 5xx, expiry or an administrator's "
       "bounce; deleted: by an administrator).",
       {{"delivered", [](const Shard& s) { return s.stats().outbound.delivered.load(); }},
        {"bounced", [](const Shard& s) { return s.stats().outbound.bounced.load(); }},
        {"deleted", [](const Shard& s) { return s.stats().outbound.deleted.load(); }}}},
      {"ringmail_outbound_deferrals_total", "reason",
       "Deferred delivery attempts per remote recipient, by cause (reply: a 4xx or an answer "
       "the client could not go on with; dns, connect, tls, timeout, other).",
       by_cause(false)},
      {"ringmail_outbound_failures_total", "reason",
       "Failed delivery attempts per remote recipient, by cause (reply: a 5xx; dns: no such "
       "domain or a null MX; other: refused before sending, e.g. SMTPUTF8).",
       by_cause(true)},
      {"ringmail_outbound_tls_handshakes_total",
       "result",
       "Outbound TLS handshakes by result (failure: the handshake failed, or a verifying route "
       "refused the certificate).",
       {{"success", [](const Shard& s) { return s.stats().tls_client.success.load(); }},
        {"failure", [](const Shard& s) { return s.stats().tls_client.failure.load(); }}}},
      {"ringmail_inject_recipients_total",
       "result",
       "Recipients of injection requests answered 200, by result (failed: listed in the "
       "answer's failed_recipients).",
       {{"queued", [](const Shard& s) { return s.stats().inject_queued.load(); }},
        {"failed", [](const Shard& s) { return s.stats().inject_failed.load(); }}}},
      {"ringmail_auth_attempts_total",
       "result",
       "AUTH password checks by result (failure: a wrong password or user, or a locked-out "
       "client).",
       {{"success", [](const Shard& s) { return s.stats().auth_success.load(); }},
        {"failure", [](const Shard& s) { return s.stats().auth_failure.load(); }}}},
  };
  for (const Labeled& m : kLabeled) {
    header(&out, m.name, "counter", m.help);
    for (const Shard* p : shards) {
      for (const auto& [value, fn] : m.values) {
        line(&out, m.name, shard_label(*p) + "," + m.label + "=\"" + value + "\"", double(fn(*p)));
      }
    }
  }
  header(&out, "ringmail_inject_requests_total", "counter",
         "POST /api/inject/v1 answers by HTTP status (other: any status not listed).");
  for (const Shard* p : shards) {
    for (size_t i = 0; i <= ShardStats::kInjectStatusCount; ++i) {
      const std::string status = i < ShardStats::kInjectStatusCount
                                     ? std::to_string(ShardStats::kInjectStatuses[i])
                                     : std::string("other");
      line(&out, "ringmail_inject_requests_total", shard_label(*p) + ",status=\"" + status + "\"",
           double(p->stats().inject_answers[i].load()));
    }
  }

  struct Histo {
    const char* name;
    const char* help;
    const Histogram& (*of)(const Shard&);
  };
  static const Histo kHistos[] = {
      {"ringmail_loop_turn_seconds", "How long the shard's loop turns worked.",
       [](const Shard& s) -> const Histogram& { return s.stats().loop_turn_s; }},
      {"ringmail_smtp_data_to_reply_seconds",
       "Seconds from a message's end of DATA to its 250 (checks, signing, spool group commit).",
       [](const Shard& s) -> const Histogram& { return s.stats().data_to_reply_s; }},
      {"ringmail_spool_fsync_batch_messages",
       "Messages each spool fdatasync carried (group commit).",
       [](const Shard& s) -> const Histogram& { return s.stats().fsync_batch_messages; }},
      {"ringmail_outbound_queue_time_seconds",
       "Seconds from a message's arrival to the delivery of each remote recipient.",
       [](const Shard& s) -> const Histogram& { return s.stats().outbound.queue_s; }},
      {"ringmail_outbound_attempt_duration_seconds",
       "Seconds of each remote delivery attempt of a message (its batch out and back).",
       [](const Shard& s) -> const Histogram& { return s.stats().outbound.attempt_s; }},
  };
  for (const Histo& h : kHistos) {
    header(&out, h.name, "histogram", h.help);
    for (const Shard* p : shards) h.of(*p).append_text(&out, h.name, shard_label(*p));
  }

  // Gathered by message: each shard's spool, the merged queue.
  header(&out, "ringmail_spool_bytes", "gauge", "Bytes of records in the shard's spool segments.");
  for (size_t i = 0; i < shards.size() && i < samples.size(); ++i) {
    line(&out, "ringmail_spool_bytes", shard_label(*shards[i]), double(samples[i].spool_bytes));
  }
  header(&out, "ringmail_spool_segments", "gauge", "The shard's spool segment files.");
  for (size_t i = 0; i < shards.size() && i < samples.size(); ++i) {
    line(&out, "ringmail_spool_segments", shard_label(*shards[i]),
         double(samples[i].spool_segments));
  }
  OutboundQueue::Summary q;
  for (const ShardSample& s : samples) {
    for (size_t k = 0; k < OutboundQueue::kStates; ++k) {
      q.state_messages[k] += s.queue.state_messages[k];
      q.state_recipients[k] += s.queue.state_recipients[k];
      q.state_bytes[k] += s.queue.state_bytes[k];
    }
    for (const auto& [d, ds] : s.queue.domains) {
      auto& t = q.domains[d];
      t.messages += ds.messages;
      t.recipients += ds.recipients;
      t.bytes += ds.bytes;
    }
  }
  static const char* const kStateNames[OutboundQueue::kStates] = {"waiting", "in_flight", "held"};
  struct ByState {
    const char* name;
    const char* help;
    const uint64_t* values;
  };
  const ByState by_state[] = {
      {"ringmail_outbound_queue_messages",
       "Messages in the outbound queue by state (in_flight: a recipient in an attempt now).",
       q.state_messages},
      {"ringmail_outbound_queue_recipients",
       "Remote recipients still to deliver by state (waiting, in_flight, held).",
       q.state_recipients},
      {"ringmail_outbound_queue_bytes", "Bytes of the outbound queue's messages by state.",
       q.state_bytes},
  };
  for (const ByState& b : by_state) {
    header(&out, b.name, "gauge", b.help);
    for (size_t k = 0; k < OutboundQueue::kStates; ++k) {
      line(&out, b.name, std::string("state=\"") + kStateNames[k] + "\"", double(b.values[k]));
    }
  }
  const std::vector<DestinationRow> top = top_destinations(q.domains, top_n);
  struct ByDestination {
    const char* name;
    const char* help;
    uint64_t DestinationRow::*field;
  };
  static const ByDestination kByDestination[] = {
      {"ringmail_outbound_destination_recipients",
       "Remote recipients still to deliver to the largest destination domains ([metrics] "
       "top_destinations of them; destination=\"other\": the rest).",
       &DestinationRow::recipients},
      {"ringmail_outbound_destination_messages",
       "Messages with recipients still to deliver to the largest destination domains (a "
       "message to two counts in both).",
       &DestinationRow::messages},
      {"ringmail_outbound_destination_bytes",
       "Bytes of the messages to the largest destination domains (as the messages).",
       &DestinationRow::bytes},
  };
  for (const ByDestination& b : kByDestination) {
    header(&out, b.name, "gauge", b.help);
    for (const DestinationRow& r : top) {
      line(&out, b.name, "destination=\"" + escaped(r.destination) + "\"", double(r.*(b.field)));
    }
  }

  // The webhook thread's counters (engine/webhooks.h), when it runs.
  const auto& hooks = webhook_counters();
  if (!hooks.empty()) {
    struct ByHook {
      const char* name;
      const char* type;
      const char* help;
      double (*value)(const WebhookCounters&);
    };
    static const ByHook kByHook[] = {
        {"ringmail_webhook_events_sent_total", "counter",
         "Events delivered to the webhook (in batches it answered 2xx; a batch sent again "
         "after a restart counts again).",
         [](const WebhookCounters& w) { return double(w.events_sent.load()); }},
        {"ringmail_webhook_failures_total", "counter",
         "POSTs to the webhook that failed (not 2xx, a connection error or a timeout).",
         [](const WebhookCounters& w) { return double(w.failures.load()); }},
        {"ringmail_webhook_up", "gauge",
         "0 from a failed POST to the webhook until its next 2xx, 1 otherwise.",
         [](const WebhookCounters& w) { return w.up.load() ? 1.0 : 0.0; }},
    };
    for (const ByHook& m : kByHook) {
      header(&out, m.name, m.type, m.help);
      for (const auto& w : hooks) {
        line(&out, m.name, "webhook=\"" + escaped(w->name) + "\"", m.value(*w));
      }
    }
  }

  // The [events.amqp] publisher's counters (engine/amqp_publisher.h), when it runs.
  if (const AmqpCounters* a = amqp_counters()) {
    header(&out, "ringmail_amqp_events_sent_total", "counter",
           "Events the AMQP broker confirmed (a batch sent again after a restart counts again).");
    line(&out, "ringmail_amqp_events_sent_total", "", double(a->events_sent.load()));
    header(&out, "ringmail_amqp_failures_total", "counter",
           "Batches to the AMQP broker that failed (connection, nack or no confirm in time).");
    line(&out, "ringmail_amqp_failures_total", "", double(a->failures.load()));
    header(&out, "ringmail_amqp_up", "gauge",
           "0 from a failed batch to the AMQP broker until its next confirm, 1 otherwise.");
    line(&out, "ringmail_amqp_up", "", a->up.load() ? 1.0 : 0.0);
  }

  out += "# HELP ringmail_up 1 while ringmaild serves.\n# TYPE ringmail_up gauge\nringmail_up " +
         std::string(up ? "1" : "0") + "\n";
  return out;
}

}  // namespace ringmail::engine
