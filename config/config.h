// ringmail's configuration (docs/configuration.md), one library for the
// daemon and every tool: ringmaild parses it once at start and on SIGHUP
// into an immutable snapshot that shards share read-only; the tools read
// the same file the same way. It never pulls in the engine.
#pragma once

#include <netinet/in.h>
#include <sys/socket.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <unordered_set>
#include <vector>

#include "proto/aliases.h"
#include "proto/bounce_class.h"
#include "proto/result.h"
#include "proto/smtp_server.h"
#include "tls/sha256.h"

namespace ringmail::config {

// Which I/O backend the shards use (engine/backend.h): io_uring when the
// kernel allows it (auto), or one forced.
enum class BackendKind : uint8_t { kAuto, kUring, kEpoll };
const char* to_string(BackendKind k);

// What to do with mail that fails ([inbound] spf_fail, dmarc_reject).
enum class FailAction : uint8_t { kReject, kMark };

// How mail for a destination domain leaves ([[outbound.route]] in
// docs/configuration.md): a fixed next hop instead of the MX records (a
// smarthost or provider relay), its TLS demands and credentials, and limits
// that replace the global ones for this destination.
struct OutboundRoute {
  enum class Tls : uint8_t {
    kOpportunistic,  // STARTTLS when offered (the default)
    kNone,           // never STARTTLS
    kRequired,       // no TLS, no delivery; any certificate
    kVerify,         // and the certificate must check out (CA store, host name)
  };
  std::string domain;  // lower case; "*" = every domain without its own route
  std::string host;    // next hop; empty: the domain's MX records
  uint16_t port = 0;   // 0: [outbound] port
  Tls tls = Tls::kOpportunistic;
  std::string ca_file;    // kVerify: CA certificates (PEM); empty: the system's
  std::string auth_user;  // AUTH PLAIN/LOGIN (over TLS only) when set
  std::string auth_password;
  uint32_t connections = 0;              // 0: the global value
  uint32_t messages_per_connection = 0;  // 0: the global value
  uint32_t messages_per_minute = 0;      // 0: the global value
};

struct OutboundConfig {
  uint16_t port = 25;
  uint32_t connect_timeout_s = 30;
  uint32_t command_timeout_s = 300;
  uint32_t retry_first_s = 300;   // first retry after 5 minutes
  uint32_t retry_max_s = 3600;    // at most an hour between tries
  uint32_t expire_s = 5 * 86400;  // then bounce
  uint32_t connections_per_domain = 10;
  uint32_t messages_per_connection = 100;
  uint32_t messages_per_minute = 0;  // per destination domain; 0: no limit
  bool starttls = true;
  // Source addresses for outbound connections (empty: the kernel's choice).
  std::string source_v4;
  std::string source_v6;
  // After this long in the queue the sender gets a delay warning DSN
  // (once); 0: never.
  uint32_t delay_warning_s = 0;
  std::vector<OutboundRoute> routes;
  // The route for `domain` (lower case): its own, else "*", else null.
  const OutboundRoute* route_for(const std::string& domain) const;
  // The limits in force with route `r` (may be null). They hold for the
  // whole process: one shard owns each destination's connections.
  uint32_t connections_for(const OutboundRoute* r) const;
  uint32_t messages_per_connection_for(const OutboundRoute* r) const;
  uint32_t rate_for(const OutboundRoute* r) const;  // messages per minute, 0: none
};

// An address range ("127.0.0.0/8", "2001:db8::/32").
struct Network {
  bool v6 = false;
  uint8_t addr[16] = {};
  int prefix = 0;
};
[[nodiscard]] bool parse_network(std::string_view text, Network* out);
// IPv4-mapped IPv6 addresses match IPv4 ranges.
bool in_networks(const std::vector<Network>& nets, const sockaddr_storage& addr);

// One [[events.webhook]] (docs/events.md, "Webhooks"): an HTTP endpoint
// the event log is POSTed to in signed batches, from a durable cursor.
struct WebhookConfig {
  std::string name;                // [a-z0-9_-]+, unique: names the cursor file
  std::string url;                 // http:// or https://
  std::vector<std::string> types;  // event type names; empty: every type
  uint32_t batch_size = 100;       // events per POST at most
  uint32_t timeout_s = 10;         // a POST that takes longer failed
  std::string secret;              // the HMAC-SHA256 key (from secret or secret_file)
  std::string secret_file;         // where `secret` was read, when it was
  uint32_t max_backoff_s = 300;    // retries wait 1 s, doubling up to this
};

// [events.amqp] (docs/events.md, "AMQP"): the event log published to an
// AMQP 0-9-1 broker (RabbitMQ), one persistent message per event, from a
// durable cursor.
struct AmqpConfig {
  std::string url;       // amqp://user:pass@host:port/vhost
  std::string exchange;  // "": the default exchange
  std::string routing_key = "ringmail.events";
  std::vector<std::string> types;  // event type names; empty: every type
  uint32_t batch_size = 100;       // messages per confirmed batch at most
  uint32_t timeout_s = 10;         // a connect or confirm that takes longer failed
  uint32_t max_backoff_s = 300;    // retries wait 1 s, doubling up to this
};

// One [[api.token]]: a bearer token of the HTTP API, kept as its SHA-256
// only (tls/api_token.h).
struct ApiToken {
  enum Scope : uint8_t { kAdmin = 1, kInject = 2 };
  std::string name;
  std::string sha256;  // lower-case hex
  uint8_t scopes = 0;  // Scope bits
  // inject: the sender domains it may send as (lower case; their
  // subdomains too). Empty: the local domains.
  std::vector<std::string> sender_domains;
  // inject: recipients a second over every request of this token (a burst
  // of one second's worth); 0: no limit.
  uint32_t recipients_per_second = 0;
  bool has(Scope s) const { return (scopes & s) != 0; }
};

// One [[unsubscribe]] rule (docs/unsubscribe.md): injected mail it
// matches gets RFC 8058's one-click List-Unsubscribe fields.
struct UnsubscribeRule {
  // Mail injected with this [[api.token]] (by name), or else mail whose
  // envelope sender is at this domain or a subdomain (lower case): exactly
  // one of the two is set.
  std::string token;
  std::string sender_domain;
  std::string url;     // the one-click URL's prefix: the token is appended
  std::string mailto;  // local@domain (lower case) for the mailto URI, or ""
  std::string stream;  // named in the token and the events; default: token or domain
};

struct ListenerConfig {
  std::string address;  // as written, e.g. "[::1]:2525"
  sockaddr_storage addr{};
  socklen_t addr_len = 0;
  proto::ListenerKind kind = proto::ListenerKind::kSmtp;
  // "submissions": TLS from the first byte (RFC 8314), no STARTTLS.
  bool implicit_tls = false;
  // "http": the HTTP listener (/metrics, /healthz), not SMTP.
  bool http = false;
};

// The listener's `kind` as the configuration spells it: "smtp",
// "submission", "submissions" or "http".
const char* kind_name(const ListenerConfig& l);

struct Config {
  std::string source;  // file name, or "<embedded dev configuration>"
  std::string hostname;
  std::string data_dir;
  uint32_t threads = 0;              // resolved: >= 1
  std::vector<ApiToken> api_tokens;  // [[api.token]]
  // [admin] socket: the admin API's UNIX socket (mode 0660: the file's
  // permissions are the authentication); empty: none.
  std::string admin_socket;
  // [log] level: "debug" (adds SMTP protocol traces, AUTH hidden),
  // "info", "notice", "warning" or "error"; [log] file: appended to, and
  // reopened on SIGUSR1 (empty: stderr, the journal under systemd).
  std::string log_level = "info";
  std::string log_file;
  // [metrics] top_destinations: /metrics names this many destination
  // domains of the outbound queue (the largest), the rest as "other".
  uint32_t metrics_top_destinations = 20;
  // [inject]: the HTTP injection API (docs/inject.md). A request body over
  // body_bytes_max is refused with 413 as soon as its Content-Length is
  // read; while the spool holds more than spool_high_water_bytes of
  // records (every shard's), requests get 429 with Retry-After.
  uint64_t inject_body_bytes_max = uint64_t{25} << 20;
  uint64_t inject_spool_high_water_bytes = uint64_t{4} << 30;
  // A request whose messages would come to more than this (its recipients
  // times its content's size) is refused with 413: they are all held in
  // memory and written as one batch.
  uint64_t inject_request_messages_bytes_max = uint64_t{256} << 20;
  // [events]: the event log (docs/events.md): one JSON line per event in
  // segment files under events_dir (empty: <data_dir>/events, see
  // events_dir()), a new one every events_segment_bytes, removed after
  // events_retention_days.
  bool events_enabled = true;
  std::string events_dir;
  uint64_t events_segment_bytes = uint64_t{64} << 20;
  uint32_t events_retention_days = 7;
  // At most one fdatasync of a shard's events per this many milliseconds
  // (0: one each loop turn); each line is written at once all the same.
  uint32_t events_sync_interval_ms = 10;
  // [events] bounce_rules: a rule file (docs/bounce-classes.md) read at
  // load; empty: the built-in rules. `bounce_classifier` is what events
  // use (never null once loaded).
  std::string events_bounce_rules;
  // [events] report_addresses: local addresses whose mail is also read as
  // out-of-band reports (DSNs and ARF complaints), lower case.
  std::vector<std::string> events_report_addresses;
  // [[events.webhook]]: endpoints the events are POSTed to (engine/webhooks.h).
  std::vector<WebhookConfig> events_webhooks;
  // [events.amqp]: the broker the events are published to (engine/amqp_publisher.h).
  std::optional<AmqpConfig> events_amqp;
  std::shared_ptr<const proto::BounceClassifier> bounce_classifier;
  // [events] verp: each outbound recipient gets its own transaction with
  // the envelope sender bounce+<id>-<hash>@<verp domain> (proto/verp.h),
  // so a bounce to it names the recipient; verp_domain empty: the
  // primary domain (see verp_domain()).
  // [events] metadata_headers: header fields of mail received by SMTP
  // whose values become its metadata, as the injection API's `metadata`
  // (named as written here; the first field of each name).
  std::vector<std::string> events_metadata_headers;
  bool events_verp = false;
  std::string events_verp_domain;
  // [suppression] bounce_classes: a hard bounce of these classes adds the
  // recipient to the suppression list, for every sender (empty: none).
  std::vector<proto::BounceClass> suppression_bounce_classes = {
      proto::BounceClass::InvalidRecipient, proto::BounceClass::BadDomain,
      proto::BounceClass::InactiveMailbox};
  // [[unsubscribe]] rules, in the file's order (the first match wins).
  std::vector<UnsubscribeRule> unsubscribe;
  BackendKind backend = BackendKind::kAuto;
  std::unordered_set<std::string> local_domains;  // lower case
  std::string primary_domain;                     // the first one listed
  std::vector<ListenerConfig> listeners;
  // Where certificates are looked for (tls/cert_store.h lists the layouts).
  std::vector<std::string> tls_cert_dirs;
  // Also look in <data_dir>/certs, and when no certificate is found there
  // or in tls_cert_dirs, make a self-signed one for `hostname` in it (the
  // embedded development configuration does).
  bool tls_self_signed = false;
  // One folder per domain: <domains_dir>/<domain>/users (storage/userdb.h).
  std::string domains_dir = "/etc/ringmail/domains";
  proto::SenderPolicy sender_policy = proto::SenderPolicy::kOwn;
  // [aliases]: suffix separators and drop characters (chasquid's
  // suffix_separators and drop_characters).
  proto::AliasOptions aliases;
  // Failed AUTH attempts per client address (per shard) before 421 and
  // close; each failure's 535 is held back failure_delay_ms times the count
  // so far (at most 5 times).
  uint32_t auth_failures_max = 5;
  uint32_t auth_failure_delay_ms = 1000;
  // A successful login is remembered this long (an HMAC of the password
  // under a key that lives in memory only): the same password again skips
  // the scrypt check. 0: every login pays the hash.
  uint32_t auth_cache_ttl_s = 300;
  // Clients that may relay without AUTH (Postfix's mynetworks); empty by
  // default.
  std::vector<Network> relay_networks;
  // Outbound delivery ([outbound]).
  OutboundConfig outbound;
  // [dns]: the servers every lookup goes to, "host:port,..." (empty: the
  // system's, from resolv.conf); each shard's cache of their answers: kept
  // for their TTL clamped to [ttl_min_s, ttl_max_s], at most
  // cache_entries_max answers per shard (0: no cache).
  std::string dns_servers;
  uint32_t dns_ttl_min_s = 0;
  uint32_t dns_ttl_max_s = 86400;
  uint32_t dns_cache_entries_max = 10000;
  // Lines the daemon logs at start and --check-config prints: settings
  // that still work but have a new name.
  std::vector<std::string> notices;
  // [dkim]: the SHA-256 code for body and header hashes (auto: SHA-NI when
  // the CPU has it).
  tls::Sha256Backend dkim_sha256 = tls::Sha256Backend::kAuto;
  proto::SessionLimits limits;
  uint32_t command_timeout_s = 300;
  uint32_t data_timeout_s = 600;
  // [aliases] pipe_timeout_s: a pipe alias's command is killed after this
  // (the delivery is then tried again later).
  uint32_t pipe_timeout_s = 60;
  // [inbound]: what mail on port 25 that fails SPF (fail) or DMARC (a
  // p=reject policy) gets: refused at the end of DATA (550 5.7.23, 550
  // 5.7.1), or taken with the results in its header.
  FailAction spf_fail = FailAction::kReject;
  FailAction dmarc_reject = FailAction::kReject;
  // [inbound] greeting_delay_s: port 25 waits this long before its 220; a
  // client that talks before it (a spam engine that does not wait for
  // replies) gets 554 and is disconnected. 0: greet at once.
  uint32_t greeting_delay_s = 0;
  // [srs]: forwarded mail's envelope sender is rewritten into srs_domain
  // (default: the first local domain), signed with the first secret of
  // srs_secret_file (default <data_dir>/srs.secret, made when absent).
  bool srs_enabled = true;
  std::string srs_domain;
  std::string srs_secret_file;
  uint32_t srs_max_age_days = 21;
  // DATA/BDAT: the transfer starts with data_timeout_s to go; each byte
  // received adds 1/data_rate_min_bytes_s seconds, never beyond
  // data_timeout_s from now. A client slower than the rate runs out.
  uint32_t data_rate_min_bytes_s = 1024;
  uint32_t connections_max = 20000;  // per shard
  // Open SMTP connections from one client (IPv4 address or IPv6 /64) over
  // all shards; relay_networks clients are not counted.
  uint32_t connections_per_ip_max = 50;
  uint32_t shutdown_grace_s = 30;
  uint32_t delivery_retry_s = 60;
  uint32_t delivery_concurrency = 4;  // per shard
  // Messages waiting for delivery keep their bytes in memory up to this much
  // per shard; beyond it they are read back from the spool when their turn
  // comes.
  uint64_t delivery_backlog_bytes_max = uint64_t{16} << 20;
  // "batch": one syncfs per group of deliveries; "fsync": fsync every file.
  bool maildir_sync_batch = true;
  // The longest a batch of written deliveries waits for the spool to be idle
  // before its syncfs starts anyway.
  uint32_t delivery_sync_delay_ms = 50;
  // While the shard is acknowledging mail (a spool commit in the last
  // 100 ms), a new delivery waits up to this long before it starts, so a
  // burst is accepted first and delivered right after it.
  uint32_t delivery_defer_ms = 2000;
  // Spool segments rotate at this size; the next one is zero-filled to it
  // ahead of time (docs/spool-format.md).
  uint64_t spool_segment_bytes = uint64_t{16} << 20;
};

// What `threads = 0` means on a machine where the process may run on
// `cpus` CPUs: one shard per CPU, but one shard up to two CPUs. There the
// clients, the kernel's network and disk work and the DNS server need a
// CPU too: one shard accepted as much as two, at 0.8 of the CPU and 0.65
// of the memory per message (bench/shards.sh, docs/performance.md).
uint32_t shards_for_cpus(uint32_t cpus);
// The CPUs this process may run on (its affinity mask: taskset and
// cpusets count), at least 1.
uint32_t usable_cpus();

// A [log] level's syslog(3) priority: "debug" 7, "info" 6, "notice" 5,
// "warning" 4, "error" 3; -1 for any other name.
int log_priority(std::string_view level);

// Where the event log goes: [events] dir, or <data_dir>/events.
std::string events_dir(const Config& c);
// The domain of VERP return paths: [events] verp_domain, or the primary one.
std::string verp_domain(const Config& c);

// The embedded development configuration (README's run command).
extern const char* const kDevConfig;

// Parses TOML text. An error is one line naming the source, line and key.
Result<std::shared_ptr<const Config>> parse_config(const std::string& text,
                                                   const std::string& source);
Result<std::shared_ptr<const Config>> load_config_file(const std::string& path);

// The configuration as TOML with every setting, defaults filled in
// (`ringmail config-show`); parsing it gives the same configuration. Route
// passwords are left out (a comment says one is set).
std::string to_toml(const Config& cfg);

// "127.0.0.1:25", "[::1]:25", "0.0.0.0:25", "[::]:25".
[[nodiscard]] bool parse_listen_address(const std::string& s, sockaddr_storage& out,
                                        socklen_t& len);
// True when a socket bound to `a` and one bound to `b` would take the same
// connections: same family and port, and the same address or either a
// wildcard (IPv6 listeners are IPV6_V6ONLY, so the families never mix).
bool listen_addresses_overlap(const sockaddr_storage& a, const sockaddr_storage& b);

}  // namespace ringmail::config
