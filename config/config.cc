#include "config/config.h"

#include <amqp.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sched.h>
#include <toml++/toml.h>

#include <algorithm>
#include <cstring>
#include <fstream>
#include <sstream>
#include <thread>

#include "config/bounce_rules.h"
#include "proto/event_type.h"
#include "proto/quoted.h"
#include "tls/api_token.h"

namespace ringmail::config {

const char* to_string(BackendKind k) {
  switch (k) {
    case BackendKind::kAuto:
      return "auto";
    case BackendKind::kUring:
      return "io_uring";
    case BackendKind::kEpoll:
      return "epoll";
  }
  return "?";
}

const char* const kDevConfig = R"(# embedded development configuration
hostname = "localhost.example.test"
data_dir = "./var"
domains_dir = "./var/domains"
local_domains = ["example.test"]

[[listener]]
address = "127.0.0.1:2525"
kind = "smtp"

[[listener]]
address = "[::1]:2525"
kind = "smtp"

[[listener]]
address = "127.0.0.1:2587"
kind = "submission"

[[listener]]
address = "[::1]:2587"
kind = "submission"

[[listener]]
address = "127.0.0.1:2465"
kind = "submissions"

[[listener]]
address = "[::1]:2465"
kind = "submissions"

[tls]
self_signed = true

[admin]
socket = "./var/admin.sock"
)";

namespace {

struct ConfigError {
  std::string msg;
};

std::string where(const std::string& source, const toml::node& n, const std::string& key) {
  return source + ":" + std::to_string(n.source().begin.line) + ": " + key;
}

void check_keys(const std::string& source, const toml::table& t, const std::string& prefix,
                std::initializer_list<std::string_view> allowed) {
  for (auto&& [k, v] : t) {
    bool ok = false;
    for (auto a : allowed) ok = ok || k.str() == a;
    if (!ok) {
      throw ConfigError{where(source, v, prefix + std::string(k.str())) + ": unknown key"};
    }
  }
}

std::string get_string(const std::string& source, const toml::table& t, const std::string& key,
                       const std::string& def) {
  const toml::node* n = t.get(key);
  if (n == nullptr) return def;
  if (!n->is_string()) throw ConfigError{where(source, *n, key) + ": must be a string"};
  return n->value<std::string>().value();
}

uint64_t get_uint(const std::string& source, const toml::table& t, const std::string& prefix,
                  const std::string& key, uint64_t def, uint64_t min, uint64_t max) {
  const toml::node* n = t.get(key);
  if (n == nullptr) return def;
  if (!n->is_integer()) throw ConfigError{where(source, *n, prefix + key) + ": must be an integer"};
  int64_t v = n->value<int64_t>().value();
  if (v < 0 || static_cast<uint64_t>(v) < min || static_cast<uint64_t>(v) > max) {
    throw ConfigError{where(source, *n, prefix + key) + ": must be between " + std::to_string(min) +
                      " and " + std::to_string(max)};
  }
  return static_cast<uint64_t>(v);
}

// One [[api.token]] table.
ApiToken parse_api_token(const std::string& source, const toml::table& tt) {
  const std::string p = "api.token.";
  check_keys(source, tt, p,
             {"name", "sha256", "scopes", "sender_domains", "recipients_per_second"});
  ApiToken tok;
  tok.name = get_string(source, tt, "name", "");
  if (tok.name.empty()) throw ConfigError{where(source, tt, p + "name") + ": is required"};
  tok.sha256 = proto::ascii_lower(get_string(source, tt, "sha256", ""));
  if (!tls::is_token_hash(tok.sha256)) {
    const toml::node* n = tt.get("sha256");
    throw ConfigError{(n ? where(source, *n, p + "sha256") : where(source, tt, p + "sha256")) +
                      ": must be the token's SHA-256 in hex (ringmail token-hash TOKEN)"};
  }
  const auto strings = [&](const char* key) {
    std::vector<std::string> out;
    const toml::node* n = tt.get(key);
    if (n == nullptr) return out;
    const toml::array* arr = n->as_array();
    if (arr == nullptr) throw ConfigError{where(source, *n, p + key) + ": must be an array"};
    for (const auto& item : *arr) {
      auto s = item.value<std::string>();
      if (!s) throw ConfigError{where(source, item, p + key) + ": must hold strings"};
      out.push_back(proto::ascii_lower(*s));
    }
    return out;
  };
  for (const std::string& s : strings("scopes")) {
    if (s == "admin") {
      tok.scopes |= ApiToken::kAdmin;
    } else if (s == "inject") {
      tok.scopes |= ApiToken::kInject;
    } else {
      throw ConfigError{where(source, *tt.get("scopes"), p + "scopes") + ": \"" + s +
                        "\" is not a scope (admin, inject)"};
    }
  }
  if (tok.scopes == 0) {
    throw ConfigError{where(source, tt, p + "scopes") + ": at least one of admin, inject"};
  }
  tok.sender_domains = strings("sender_domains");
  for (const std::string& d : tok.sender_domains) {
    if (!proto::is_valid_domain(d)) {
      throw ConfigError{where(source, *tt.get("sender_domains"), p + "sender_domains") + ": \"" +
                        d + "\" is not a domain"};
    }
  }
  if (!tok.sender_domains.empty() && !tok.has(ApiToken::kInject)) {
    throw ConfigError{where(source, *tt.get("sender_domains"), p + "sender_domains") +
                      ": only for a token with the inject scope"};
  }
  tok.recipients_per_second =
      static_cast<uint32_t>(get_uint(source, tt, p, "recipients_per_second", 0, 0, 10000000));
  if (tok.recipients_per_second != 0 && !tok.has(ApiToken::kInject)) {
    throw ConfigError{where(source, *tt.get("recipients_per_second"), p + "recipients_per_second") +
                      ": only for a token with the inject scope"};
  }
  return tok;
}

// One [[unsubscribe]] table.
UnsubscribeRule parse_unsubscribe(const std::string& source, const toml::table& ut) {
  const std::string p = "unsubscribe.";
  check_keys(source, ut, p, {"token", "sender_domain", "url", "mailto", "stream"});
  UnsubscribeRule r;
  r.token = get_string(source, ut, "token", "");
  r.sender_domain = proto::ascii_lower(get_string(source, ut, "sender_domain", ""));
  if (r.token.empty() == r.sender_domain.empty()) {
    throw ConfigError{where(source, ut, "unsubscribe") +
                      ": needs one of token (an [[api.token]] name) or sender_domain"};
  }
  if (!r.sender_domain.empty() && !proto::is_valid_domain(r.sender_domain)) {
    throw ConfigError{where(source, *ut.get("sender_domain"), p + "sender_domain") + ": \"" +
                      r.sender_domain + "\" is not a domain"};
  }
  r.url = get_string(source, ut, "url", "");
  const bool scheme = r.url.rfind("https://", 0) == 0 || r.url.rfind("http://", 0) == 0;
  if (!scheme || r.url.find_first_of(" \t\r\n<>\"") != std::string::npos) {
    const toml::node* n = ut.get("url");
    throw ConfigError{(n ? where(source, *n, p + "url") : where(source, ut, p + "url")) +
                      ": is required: the one-click URL's start, e.g. "
                      "\"https://mail.example.com/u/\" (the token is appended)"};
  }
  r.mailto = proto::ascii_lower(get_string(source, ut, "mailto", ""));
  if (!r.mailto.empty()) {
    proto::Address a;
    size_t used = 0;
    if (proto::parse_path("<" + r.mailto + ">", false, false, a, used) !=
            proto::AddressError::kNone ||
        a.domain.empty() || r.mailto.find('+') != std::string::npos) {
      throw ConfigError{where(source, *ut.get("mailto"), p + "mailto") + ": \"" + r.mailto +
                        "\" is not an address (local@domain, without '+')"};
    }
  }
  r.stream = get_string(source, ut, "stream", r.token.empty() ? r.sender_domain : r.token);
  return r;
}

// Where `key` of table `t` is, or the table when it is absent.
std::string key_where(const std::string& source, const toml::table& t, const std::string& p,
                      const char* key) {
  const toml::node* n = t.get(key);
  return n != nullptr ? where(source, *n, p + key) : where(source, t, p + key);
}

// An event consumer's `types`: event type names, each once; empty when
// the key is absent (every type).
std::vector<std::string> parse_event_types(const std::string& source, const toml::table& wt,
                                           const std::string& p) {
  std::vector<std::string> types;
  const toml::node* n = wt.get("types");
  if (n == nullptr) return types;
  const toml::array* arr = n->as_array();
  if (arr == nullptr) throw ConfigError{where(source, *n, p + "types") + ": must be an array"};
  for (const auto& item : *arr) {
    auto s = item.value<std::string>();
    if (!s || !proto::is_event_type_name(*s)) {
      throw ConfigError{
          where(source, item, p + "types") + ": " +
          (s ? "\"" + *s + "\" is not an event type" : std::string("must hold strings")) +
          " (Reception, Delivery, TransientFailure, Bounce, Expiration, "
          "AdminBounce, Suppressed, Unsubscribe, OOB, Feedback)"};
    }
    if (std::find(types.begin(), types.end(), *s) == types.end()) types.push_back(*s);
  }
  if (types.empty()) {
    throw ConfigError{where(source, *n, p + "types") + ": empty (leave it out for every type)"};
  }
  return types;
}

// The keys every event consumer ([[events.webhook]], [events.amqp]) has.
template <class Consumer>
void parse_consumer_keys(const std::string& source, const toml::table& t, const std::string& p,
                         Consumer* c) {
  c->types = parse_event_types(source, t, p);
  c->batch_size =
      static_cast<uint32_t>(get_uint(source, t, p, "batch_size", c->batch_size, 1, 10000));
  c->timeout_s = static_cast<uint32_t>(get_uint(source, t, p, "timeout_s", c->timeout_s, 1, 600));
  c->max_backoff_s =
      static_cast<uint32_t>(get_uint(source, t, p, "max_backoff_s", c->max_backoff_s, 1, 86400));
}

// [events.amqp].
AmqpConfig parse_amqp(const std::string& source, const toml::table& at) {
  const std::string p = "events.amqp.";
  check_keys(
      source, at, p,
      {"url", "exchange", "routing_key", "types", "batch_size", "timeout_s", "max_backoff_s"});
  const auto here = [&](const char* key) { return key_where(source, at, p, key); };
  AmqpConfig a;
  a.url = get_string(source, at, "url", "");
  if (a.url.empty()) throw ConfigError{here("url") + ": is required"};
  std::string buf = a.url;
  amqp_connection_info info;
  if (amqp_parse_url(buf.data(), &info) != AMQP_STATUS_OK || info.ssl) {
    throw ConfigError{here("url") + ": not an amqp://user:password@host:port/vhost URL"};
  }
  a.exchange = get_string(source, at, "exchange", a.exchange);
  a.routing_key = get_string(source, at, "routing_key", a.routing_key);
  if (a.routing_key.size() > 255 || a.exchange.size() > 127) {
    throw ConfigError{here(a.exchange.size() > 127 ? "exchange" : "routing_key") +
                      ": too long (AMQP's short string)"};
  }
  parse_consumer_keys(source, at, p, &a);
  return a;
}

// One [[events.webhook]] table.
WebhookConfig parse_webhook(const std::string& source, const toml::table& wt) {
  const std::string p = "events.webhook.";
  check_keys(source, wt, p,
             {"name", "url", "types", "batch_size", "timeout_s", "secret", "secret_file",
              "max_backoff_s"});
  const auto at = [&](const char* key) { return key_where(source, wt, p, key); };
  WebhookConfig w;
  w.name = get_string(source, wt, "name", "");
  if (w.name.empty()) throw ConfigError{at("name") + ": is required"};
  if (w.name.size() > 64 ||
      w.name.find_first_not_of("abcdefghijklmnopqrstuvwxyz0123456789_-") != std::string::npos) {
    throw ConfigError{at("name") + ": \"" + w.name +
                      "\" must be 1 to 64 of a-z, 0-9, _ and - (it names the cursor file)"};
  }
  w.url = get_string(source, wt, "url", "");
  if (w.url.empty()) throw ConfigError{at("url") + ": is required"};
  const std::string lower = proto::ascii_lower(w.url);
  const size_t host_at = lower.rfind("https://", 0) == 0  ? 8
                         : lower.rfind("http://", 0) == 0 ? 7
                                                          : 0;
  if (host_at == 0 || w.url.size() == host_at || w.url[host_at] == '/' ||
      w.url.find_first_of(" \t\r\n") != std::string::npos) {
    throw ConfigError{at("url") + ": \"" + w.url + "\" is not an http:// or https:// URL"};
  }
  parse_consumer_keys(source, wt, p, &w);
  w.secret = get_string(source, wt, "secret", "");
  w.secret_file = get_string(source, wt, "secret_file", "");
  if (!w.secret_file.empty()) {
    if (wt.contains("secret")) {
      throw ConfigError{at("secret_file") + ": give secret or secret_file, not both"};
    }
    std::ifstream f(w.secret_file);
    if (!f || !std::getline(f, w.secret) || w.secret.empty()) {
      throw ConfigError{at("secret_file") + ": cannot read a secret from " + w.secret_file};
    }
  } else if (w.secret.empty()) {
    throw ConfigError{at("secret") + ": is required (or secret_file): the HMAC-SHA256 key"};
  }
  return w;
}

// One [[outbound.route]] table.
OutboundRoute parse_route(const std::string& source, const toml::table& rt) {
  const std::string p = "outbound.route.";
  check_keys(
      source, rt, p,
      {"domain", "next_hop", "tls", "ca_file", "auth_user", "auth_password", "auth_password_file",
       "connections", "messages_per_connection", "messages_per_minute"});
  OutboundRoute r;
  r.domain = proto::ascii_lower(get_string(source, rt, "domain", ""));
  if (r.domain != "*" && !proto::is_valid_domain(r.domain)) {
    const toml::node* n = rt.get("domain");
    throw ConfigError{n ? where(source, *n, p + "domain") + ": not a domain or \"*\""
                        : where(source, rt, p + "domain") + ": is required"};
  }
  const std::string hop = get_string(source, rt, "next_hop", "");
  if (!hop.empty()) {
    // host, host:port, [host]:port, [IPv6]:port (brackets as in Postfix:
    // this host itself, no MX lookup; routes never look up MX records).
    std::string host = hop, port;
    if (hop.front() == '[') {
      const size_t close = hop.find(']');
      if (close == std::string::npos)
        host.clear();
      else {
        host = hop.substr(1, close - 1);
        if (close + 1 < hop.size()) {
          if (hop[close + 1] != ':') host.clear();
          port = hop.substr(close + 2);
        }
      }
    } else if (const size_t colon = hop.rfind(':'); colon != std::string::npos) {
      host = hop.substr(0, colon);
      port = hop.substr(colon + 1);
    }
    unsigned char buf[16];
    const bool literal =
        inet_pton(AF_INET, host.c_str(), buf) == 1 || inet_pton(AF_INET6, host.c_str(), buf) == 1;
    bool ok = !host.empty() && (literal || proto::is_valid_domain(host));
    if (ok && !port.empty()) {
      ok = port.size() <= 5 && port.find_first_not_of("0123456789") == std::string::npos &&
           std::stoul(port) >= 1 && std::stoul(port) <= 65535;
      if (ok) r.port = static_cast<uint16_t>(std::stoul(port));
    }
    if (!ok) {
      throw ConfigError{where(source, *rt.get("next_hop"), p + "next_hop") + ": '" + hop +
                        "' is not HOST, HOST:PORT or [ADDRESS]:PORT"};
    }
    r.host = host;
  }
  const std::string tls = get_string(source, rt, "tls", "opportunistic");
  if (tls == "opportunistic")
    r.tls = OutboundRoute::Tls::kOpportunistic;
  else if (tls == "none")
    r.tls = OutboundRoute::Tls::kNone;
  else if (tls == "required")
    r.tls = OutboundRoute::Tls::kRequired;
  else if (tls == "verify")
    r.tls = OutboundRoute::Tls::kVerify;
  else {
    throw ConfigError{where(source, *rt.get("tls"), p + "tls") +
                      ": must be opportunistic, none, required or verify"};
  }
  r.ca_file = get_string(source, rt, "ca_file", "");
  r.auth_user = get_string(source, rt, "auth_user", "");
  r.auth_password = get_string(source, rt, "auth_password", "");
  const std::string pw_file = get_string(source, rt, "auth_password_file", "");
  if (!pw_file.empty()) {
    if (!r.auth_password.empty()) {
      throw ConfigError{where(source, *rt.get("auth_password_file"), p + "auth_password_file") +
                        ": give auth_password or auth_password_file, not both"};
    }
    std::ifstream f(pw_file);
    if (!f || !std::getline(f, r.auth_password) || r.auth_password.empty()) {
      throw ConfigError{where(source, *rt.get("auth_password_file"), p + "auth_password_file") +
                        ": cannot read a password from " + pw_file};
    }
  }
  if (r.auth_user.empty() != r.auth_password.empty()) {
    throw ConfigError{where(source, rt, p + "auth_user") +
                      ": auth_user needs a password, and a password needs auth_user"};
  }
  if (!r.auth_user.empty() && r.tls == OutboundRoute::Tls::kNone) {
    throw ConfigError{where(source, rt, p + "auth_user") +
                      ": AUTH is only used over TLS; tls = \"none\" cannot go with it"};
  }
  r.connections = static_cast<uint32_t>(get_uint(source, rt, p, "connections", 0, 0, 1000));
  r.messages_per_connection =
      static_cast<uint32_t>(get_uint(source, rt, p, "messages_per_connection", 0, 0, 100000));
  r.messages_per_minute =
      static_cast<uint32_t>(get_uint(source, rt, p, "messages_per_minute", 0, 0, 10000000));
  return r;
}

}  // namespace

bool listen_addresses_overlap(const sockaddr_storage& a, const sockaddr_storage& b) {
  if (a.ss_family != b.ss_family) return false;
  if (a.ss_family == AF_INET) {
    const auto& x = reinterpret_cast<const sockaddr_in&>(a);
    const auto& y = reinterpret_cast<const sockaddr_in&>(b);
    return x.sin_port == y.sin_port &&
           (x.sin_addr.s_addr == y.sin_addr.s_addr || x.sin_addr.s_addr == INADDR_ANY ||
            y.sin_addr.s_addr == INADDR_ANY);
  }
  const auto& x = reinterpret_cast<const sockaddr_in6&>(a);
  const auto& y = reinterpret_cast<const sockaddr_in6&>(b);
  return x.sin6_port == y.sin6_port &&
         (IN6_ARE_ADDR_EQUAL(&x.sin6_addr, &y.sin6_addr) || IN6_IS_ADDR_UNSPECIFIED(&x.sin6_addr) ||
          IN6_IS_ADDR_UNSPECIFIED(&y.sin6_addr));
}

bool parse_listen_address(const std::string& s, sockaddr_storage& out, socklen_t& len) {
  out = sockaddr_storage{};
  size_t colon = s.rfind(':');
  if (colon == std::string::npos || colon + 1 >= s.size()) return false;
  std::string host = s.substr(0, colon);
  std::string port_s = s.substr(colon + 1);
  if (port_s.find_first_not_of("0123456789") != std::string::npos || port_s.size() > 5)
    return false;
  unsigned long port = std::stoul(port_s);
  if (port == 0 || port > 65535) return false;
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    auto* a6 = reinterpret_cast<sockaddr_in6*>(&out);
    a6->sin6_family = AF_INET6;
    a6->sin6_port = htons(static_cast<uint16_t>(port));
    if (inet_pton(AF_INET6, host.substr(1, host.size() - 2).c_str(), &a6->sin6_addr) != 1) {
      return false;
    }
    len = sizeof(sockaddr_in6);
    return true;
  }
  auto* a4 = reinterpret_cast<sockaddr_in*>(&out);
  a4->sin_family = AF_INET;
  a4->sin_port = htons(static_cast<uint16_t>(port));
  if (inet_pton(AF_INET, host.c_str(), &a4->sin_addr) != 1) return false;
  len = sizeof(sockaddr_in);
  return true;
}

bool parse_network(std::string_view text, Network* out) {
  const size_t slash = text.find('/');
  const std::string host(text.substr(0, slash));
  Network n;
  if (inet_pton(AF_INET, host.c_str(), n.addr) == 1) {
    n.v6 = false;
    n.prefix = 32;
  } else if (inet_pton(AF_INET6, host.c_str(), n.addr) == 1) {
    n.v6 = true;
    n.prefix = 128;
  } else {
    return false;
  }
  if (slash != std::string_view::npos) {
    const std::string_view p = text.substr(slash + 1);
    if (p.empty() || p.size() > 3 || p.find_first_not_of("0123456789") != std::string_view::npos) {
      return false;
    }
    const int v = std::stoi(std::string(p));
    if (v > n.prefix) return false;
    n.prefix = v;
  }
  *out = n;
  return true;
}

bool in_networks(const std::vector<Network>& nets, const sockaddr_storage& ss) {
  uint8_t a[16];
  bool v6;
  if (ss.ss_family == AF_INET) {
    std::memcpy(a, &reinterpret_cast<const sockaddr_in*>(&ss)->sin_addr, 4);
    v6 = false;
  } else if (ss.ss_family == AF_INET6) {
    const auto* s6 = reinterpret_cast<const sockaddr_in6*>(&ss);
    if (IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr)) {
      std::memcpy(a, &s6->sin6_addr.s6_addr[12], 4);
      v6 = false;
    } else {
      std::memcpy(a, &s6->sin6_addr, 16);
      v6 = true;
    }
  } else {
    return false;
  }
  for (const auto& n : nets) {
    if (n.v6 != v6) continue;
    int bits = n.prefix, i = 0;
    bool match = true;
    for (; bits >= 8; bits -= 8, ++i) match &= a[i] == n.addr[i];
    if (bits > 0) {
      const uint8_t mask = static_cast<uint8_t>(0xff << (8 - bits));
      match &= (a[i] & mask) == (n.addr[i] & mask);
    }
    if (match) return true;
  }
  return false;
}

Result<std::shared_ptr<const Config>> parse_config(const std::string& text,
                                                   const std::string& source) {
  auto cfg = std::make_shared<Config>();
  cfg->source = source;
  try {
    toml::table t = toml::parse(text, source);
    check_keys(source, t, "",
               {"hostname",
                "data_dir",
                "threads",
                "backend",
                "local_domains",
                "listener",
                "limits",
                "maildir_sync",
                "tls",
                "domains_dir",
                "auth",
                "outbound",
                "relay_networks",
                "dkim",
                "aliases",
                "srs",
                "inbound",
                "dns",
                "api",
                "admin",
                "metrics",
                "inject",
                "events",
                "suppression",
                "unsubscribe",
                "log"});
    cfg->hostname = get_string(source, t, "hostname", "");
    if (cfg->hostname.empty() || !proto::is_valid_domain(cfg->hostname)) {
      const toml::node* n = t.get("hostname");
      throw ConfigError{n ? where(source, *n, "hostname") + ": not a valid host name"
                          : source + ": hostname is required"};
    }
    cfg->data_dir = get_string(source, t, "data_dir", "");
    if (cfg->data_dir.empty()) throw ConfigError{source + ": data_dir is required"};
    cfg->threads = static_cast<uint32_t>(get_uint(source, t, "", "threads", 0, 0, 1024));
    if (cfg->threads == 0) cfg->threads = shards_for_cpus(usable_cpus());
    std::string backend = get_string(source, t, "backend", "auto");
    if (backend == "auto") {
      cfg->backend = BackendKind::kAuto;
    } else if (backend == "io_uring") {
      cfg->backend = BackendKind::kUring;
    } else if (backend == "epoll") {
      cfg->backend = BackendKind::kEpoll;
    } else {
      throw ConfigError{where(source, *t.get("backend"), "backend") +
                        ": must be auto, io_uring or epoll"};
    }
    std::string msync = get_string(source, t, "maildir_sync", "batch");
    if (msync != "batch" && msync != "fsync") {
      throw ConfigError{where(source, *t.get("maildir_sync"), "maildir_sync") +
                        ": must be batch or fsync"};
    }
    cfg->maildir_sync_batch = msync == "batch";
    if (const toml::node* n = t.get("local_domains")) {
      const toml::array* arr = n->as_array();
      if (arr == nullptr)
        throw ConfigError{where(source, *n, "local_domains") + ": must be an array"};
      for (const auto& d : *arr) {
        auto s = d.value<std::string>();
        if (!s || !proto::is_valid_domain(*s)) {
          throw ConfigError{where(source, d, "local_domains") + ": not a valid domain"};
        }
        std::string lower = proto::ascii_lower(*s);
        if (cfg->primary_domain.empty()) cfg->primary_domain = lower;
        cfg->local_domains.insert(lower);
      }
    }
    if (cfg->local_domains.empty())
      throw ConfigError{source + ": local_domains needs at least one domain"};
    const toml::node* ln = t.get("listener");
    if (ln == nullptr) throw ConfigError{source + ": at least one [[listener]] is required"};
    const toml::array* larr = ln->as_array();
    if (larr == nullptr)
      throw ConfigError{where(source, *ln, "listener") + ": use [[listener]] tables"};
    for (const auto& item : *larr) {
      const toml::table* lt = item.as_table();
      if (lt == nullptr) throw ConfigError{where(source, item, "listener") + ": must be a table"};
      check_keys(source, *lt, "listener.", {"address", "kind"});
      ListenerConfig l;
      l.address = get_string(source, *lt, "address", "");
      if (!parse_listen_address(l.address, l.addr, l.addr_len)) {
        throw ConfigError{where(source, item, "listener.address") + ": '" + l.address +
                          "' is not HOST:PORT (IPv6 as [addr]:port)"};
      }
      std::string kind = get_string(source, *lt, "kind", "smtp");
      if (kind == "smtp") {
        l.kind = proto::ListenerKind::kSmtp;
      } else if (kind == "submission") {
        l.kind = proto::ListenerKind::kSubmission;
      } else if (kind == "submissions") {
        l.kind = proto::ListenerKind::kSubmission;
        l.implicit_tls = true;
      } else if (kind == "http") {
        l.http = true;
      } else {
        throw ConfigError{where(source, item, "listener.kind") +
                          ": must be smtp, submission, submissions or http"};
      }
      // Two listeners on one port would both bind (SO_REUSEPORT) and split
      // the connections between them: the same address twice, or a
      // wildcard address and another of its family on the same port.
      for (const auto& other : cfg->listeners) {
        if (listen_addresses_overlap(l.addr, other.addr)) {
          const toml::node* an = lt->get("address");
          throw ConfigError{where(source, an != nullptr ? *an : item, "listener.address") + ": '" +
                            l.address + "' overlaps the listener '" + other.address +
                            "' (the same port)"};
        }
      }
      cfg->listeners.push_back(std::move(l));
    }
    cfg->domains_dir = get_string(source, t, "domains_dir", cfg->domains_dir);
    if (const toml::node* n = t.get("relay_networks")) {
      const toml::array* arr = n->as_array();
      if (arr == nullptr)
        throw ConfigError{where(source, *n, "relay_networks") + ": must be an array"};
      for (const auto& e : *arr) {
        auto s = e.value<std::string>();
        Network net;
        if (!s || !parse_network(*s, &net)) {
          throw ConfigError{where(source, e, "relay_networks") +
                            ": not an address range like 127.0.0.0/8 or ::1/128"};
        }
        cfg->relay_networks.push_back(net);
      }
    }
    if (const toml::node* n = t.get("auth")) {
      const toml::table* at = n->as_table();
      if (at == nullptr) throw ConfigError{where(source, *n, "auth") + ": must be a table"};
      check_keys(source, *at, "auth.",
                 {"sender_policy", "failures_max", "failure_delay_ms", "cache_ttl_s"});
      const std::string policy = get_string(source, *at, "sender_policy", "own");
      if (policy == "own") {
        cfg->sender_policy = proto::SenderPolicy::kOwn;
      } else if (policy == "domain") {
        cfg->sender_policy = proto::SenderPolicy::kDomain;
      } else if (policy == "any") {
        cfg->sender_policy = proto::SenderPolicy::kAny;
      } else {
        throw ConfigError{where(source, *at->get("sender_policy"), "auth.sender_policy") +
                          ": must be own, domain or any"};
      }
      cfg->auth_failures_max = static_cast<uint32_t>(
          get_uint(source, *at, "auth.", "failures_max", cfg->auth_failures_max, 1, 1000));
      cfg->auth_cache_ttl_s = static_cast<uint32_t>(
          get_uint(source, *at, "auth.", "cache_ttl_s", cfg->auth_cache_ttl_s, 0, 86400));
      cfg->auth_failure_delay_ms = static_cast<uint32_t>(
          get_uint(source, *at, "auth.", "failure_delay_ms", cfg->auth_failure_delay_ms, 0, 60000));
    }
    bool dns_servers_set = false;
    if (const toml::node* n = t.get("admin")) {
      const toml::table* at = n->as_table();
      if (at == nullptr) throw ConfigError{where(source, *n, "admin") + ": must be a table"};
      check_keys(source, *at, "admin.", {"socket"});
      cfg->admin_socket = get_string(source, *at, "socket", "");
      // sun_path holds 108 bytes with the final NUL.
      if (cfg->admin_socket.size() > 107) {
        throw ConfigError{where(source, *at->get("socket"), "admin.socket") +
                          ": longer than a UNIX socket path can be (107 bytes)"};
      }
    }
    if (const toml::node* n = t.get("log")) {
      const toml::table* lt = n->as_table();
      if (lt == nullptr) throw ConfigError{where(source, *n, "log") + ": must be a table"};
      check_keys(source, *lt, "log.", {"level", "file"});
      cfg->log_level = get_string(source, *lt, "level", cfg->log_level);
      if (log_priority(cfg->log_level) < 0) {
        throw ConfigError{where(source, *lt->get("level"), "log.level") +
                          ": must be debug, info, notice, warning or error"};
      }
      cfg->log_file = get_string(source, *lt, "file", "");
      if (!cfg->log_file.empty() && cfg->log_file[0] != '/') {
        throw ConfigError{where(source, *lt->get("file"), "log.file") +
                          ": must be an absolute path (or empty for stderr)"};
      }
    }
    if (const toml::node* n = t.get("metrics")) {
      const toml::table* mt = n->as_table();
      if (mt == nullptr) throw ConfigError{where(source, *n, "metrics") + ": must be a table"};
      check_keys(source, *mt, "metrics.", {"top_destinations"});
      cfg->metrics_top_destinations = static_cast<uint32_t>(get_uint(
          source, *mt, "metrics.", "top_destinations", cfg->metrics_top_destinations, 0, 1000));
    }
    if (const toml::node* n = t.get("inject")) {
      const toml::table* it = n->as_table();
      if (it == nullptr) throw ConfigError{where(source, *n, "inject") + ": must be a table"};
      check_keys(source, *it, "inject.",
                 {"body_bytes_max", "spool_high_water_bytes", "request_messages_bytes_max"});
      cfg->inject_body_bytes_max = get_uint(source, *it, "inject.", "body_bytes_max",
                                            cfg->inject_body_bytes_max, 1024, uint64_t{1} << 30);
      cfg->inject_spool_high_water_bytes =
          get_uint(source, *it, "inject.", "spool_high_water_bytes",
                   cfg->inject_spool_high_water_bytes, uint64_t{1} << 20, uint64_t{1} << 50);
      cfg->inject_request_messages_bytes_max =
          get_uint(source, *it, "inject.", "request_messages_bytes_max",
                   cfg->inject_request_messages_bytes_max, uint64_t{1} << 20, uint64_t{1} << 40);
    }
    if (const toml::node* n = t.get("events")) {
      const toml::table* et = n->as_table();
      if (et == nullptr) throw ConfigError{where(source, *n, "events") + ": must be a table"};
      check_keys(
          source, *et, "events.",
          {"enabled", "dir", "segment_bytes", "retention_days", "sync_interval_ms", "bounce_rules",
           "report_addresses", "verp", "verp_domain", "webhook", "metadata_headers", "amqp"});
      if (const toml::node* mh = et->get("metadata_headers")) {
        const toml::array* arr = mh->as_array();
        if (arr == nullptr) {
          throw ConfigError{where(source, *mh, "events.metadata_headers") + ": must be an array"};
        }
        for (const auto& item : *arr) {
          auto s = item.value<std::string>();
          const bool name = s && !s->empty() && std::all_of(s->begin(), s->end(), [](char c) {
                              return c > 0x20 && c < 0x7f && c != ':';
                            });
          if (!name) {
            throw ConfigError{where(source, item, "events.metadata_headers") +
                              ": must hold header field names (\"X-Campaign\")"};
          }
          cfg->events_metadata_headers.push_back(*s);
        }
      }
      if (const toml::node* wn = et->get("webhook")) {
        const toml::array* arr = wn->as_array();
        if (arr == nullptr) {
          throw ConfigError{where(source, *wn, "events.webhook") +
                            ": use [[events.webhook]] tables"};
        }
        for (const auto& item : *arr) {
          const toml::table* wt = item.as_table();
          if (wt == nullptr) {
            throw ConfigError{where(source, item, "events.webhook") + ": must be a table"};
          }
          WebhookConfig w = parse_webhook(source, *wt);
          for (const WebhookConfig& other : cfg->events_webhooks) {
            if (other.name == w.name) {
              throw ConfigError{where(source, *wt->get("name"), "events.webhook.name") + ": \"" +
                                w.name + "\" is used twice"};
            }
          }
          cfg->events_webhooks.push_back(std::move(w));
        }
      }
      if (const toml::node* ra = et->get("report_addresses")) {
        const toml::array* arr = ra->as_array();
        if (arr == nullptr) {
          throw ConfigError{where(source, *ra, "events.report_addresses") + ": must be an array"};
        }
        for (const auto& item : *arr) {
          auto s = item.value<std::string>();
          if (!s || s->find('@') == std::string::npos || s->find(' ') != std::string::npos) {
            throw ConfigError{where(source, item, "events.report_addresses") +
                              ": must hold addresses (local@domain)"};
          }
          cfg->events_report_addresses.push_back(proto::ascii_lower(*s));
        }
      }
      if (const toml::node* e = et->get("enabled")) {
        if (!e->is_boolean())
          throw ConfigError{where(source, *e, "events.enabled") + ": must be true or false"};
        cfg->events_enabled = e->as_boolean()->get();
      }
      if (const toml::node* v = et->get("verp")) {
        if (!v->is_boolean())
          throw ConfigError{where(source, *v, "events.verp") + ": must be true or false"};
        cfg->events_verp = v->as_boolean()->get();
      }
      cfg->events_verp_domain = proto::ascii_lower(get_string(source, *et, "verp_domain", ""));
      if (!cfg->events_verp_domain.empty() && !proto::is_valid_domain(cfg->events_verp_domain)) {
        throw ConfigError{where(source, *et->get("verp_domain"), "events.verp_domain") + ": \"" +
                          cfg->events_verp_domain + "\" is not a domain"};
      }
      cfg->events_dir = get_string(source, *et, "dir", "");
      cfg->events_segment_bytes = get_uint(source, *et, "events.", "segment_bytes",
                                           cfg->events_segment_bytes, 4096, uint64_t{1} << 40);
      cfg->events_retention_days = static_cast<uint32_t>(
          get_uint(source, *et, "events.", "retention_days", cfg->events_retention_days, 1, 3650));
      cfg->events_sync_interval_ms = static_cast<uint32_t>(get_uint(
          source, *et, "events.", "sync_interval_ms", cfg->events_sync_interval_ms, 0, 10000));
      cfg->events_bounce_rules = get_string(source, *et, "bounce_rules", "");
      if (!cfg->events_bounce_rules.empty()) {
        const std::string& file = cfg->events_bounce_rules;
        std::ifstream f(file, std::ios::binary);
        std::string text((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
        if (!f.good() && !f.eof()) {
          throw ConfigError{where(source, *et->get("bounce_rules"), "events.bounce_rules") +
                            ": cannot read " + file};
        }
        auto rules = parse_bounce_rules(text, file);
        if (!rules) {
          throw ConfigError{where(source, *et->get("bounce_rules"), "events.bounce_rules") + ": " +
                            rules.error()};
        }
        cfg->bounce_classifier = std::make_shared<const proto::BounceClassifier>(std::move(*rules));
      }
      if (const toml::node* an = et->get("amqp")) {
        const toml::table* at = an->as_table();
        if (at == nullptr) {
          throw ConfigError{where(source, *an, "events.amqp") + ": must be a table"};
        }
        cfg->events_amqp = parse_amqp(source, *at);
        for (const WebhookConfig& w : cfg->events_webhooks) {
          if (w.name == "amqp") {
            throw ConfigError{where(source, *an, "events.amqp") +
                              ": a webhook is named \"amqp\" (both would use cursor-amqp)"};
          }
        }
        if (!cfg->events_enabled) {
          throw ConfigError{where(source, *an, "events.amqp") +
                            ": needs the event log (events.enabled = false)"};
        }
      }
      if (!cfg->events_enabled && !cfg->events_webhooks.empty()) {
        throw ConfigError{where(source, *et->get("webhook"), "events.webhook") +
                          ": needs the event log (events.enabled = false)"};
      }
    }
    if (const toml::node* n = t.get("suppression")) {
      const toml::table* st = n->as_table();
      if (st == nullptr) throw ConfigError{where(source, *n, "suppression") + ": must be a table"};
      check_keys(source, *st, "suppression.", {"bounce_classes"});
      if (const toml::node* b = st->get("bounce_classes")) {
        const toml::array* arr = b->as_array();
        if (arr == nullptr) {
          throw ConfigError{where(source, *b, "suppression.bounce_classes") + ": must be an array"};
        }
        cfg->suppression_bounce_classes.clear();
        for (const auto& item : *arr) {
          auto s = item.value<std::string>();
          auto c = s ? proto::bounce_class_from_name(*s) : std::nullopt;
          if (!c) {
            throw ConfigError{where(source, item, "suppression.bounce_classes") +
                              ": not a bounce class (docs/bounce-classes.md)"};
          }
          cfg->suppression_bounce_classes.push_back(*c);
        }
      }
    }
    if (const toml::node* n = t.get("unsubscribe")) {
      const toml::array* arr = n->as_array();
      if (arr == nullptr) {
        throw ConfigError{where(source, *n, "unsubscribe") + ": use [[unsubscribe]] tables"};
      }
      for (const auto& item : *arr) {
        const toml::table* ut = item.as_table();
        if (ut == nullptr)
          throw ConfigError{where(source, item, "unsubscribe") + ": must be a table"};
        cfg->unsubscribe.push_back(parse_unsubscribe(source, *ut));
      }
    }
    if (!cfg->bounce_classifier) {
      // The built-in set, shared by every configuration (never freed).
      cfg->bounce_classifier = std::shared_ptr<const proto::BounceClassifier>(
          std::shared_ptr<const proto::BounceClassifier>(), &default_bounce_classifier());
    }
    if (const toml::node* n = t.get("dns")) {
      const toml::table* dt = n->as_table();
      if (dt == nullptr) throw ConfigError{where(source, *n, "dns") + ": must be a table"};
      check_keys(source, *dt, "dns.", {"servers", "ttl_min_s", "ttl_max_s", "cache_entries_max"});
      dns_servers_set = dt->contains("servers");
      cfg->dns_servers = get_string(source, *dt, "servers", "");
      cfg->dns_ttl_min_s = static_cast<uint32_t>(
          get_uint(source, *dt, "dns.", "ttl_min_s", cfg->dns_ttl_min_s, 0, 86400));
      cfg->dns_ttl_max_s = static_cast<uint32_t>(
          get_uint(source, *dt, "dns.", "ttl_max_s", cfg->dns_ttl_max_s, 0, 7 * 86400));
      if (cfg->dns_ttl_max_s < cfg->dns_ttl_min_s) {
        const toml::node* at = dt->get("ttl_max_s");
        throw ConfigError{
            (at != nullptr ? where(source, *at, "dns.ttl_max_s") : where(source, *n, "dns")) +
            ": ttl_max_s is less than ttl_min_s"};
      }
      cfg->dns_cache_entries_max = static_cast<uint32_t>(get_uint(
          source, *dt, "dns.", "cache_entries_max", cfg->dns_cache_entries_max, 0, 10'000'000));
    }
    if (const toml::node* n = t.get("outbound")) {
      const toml::table* ot = n->as_table();
      if (ot == nullptr) throw ConfigError{where(source, *n, "outbound") + ": must be a table"};
      check_keys(source, *ot, "outbound.",
                 {"dns_servers", "port", "connect_timeout_s", "command_timeout_s", "retry_first_s",
                  "retry_max_s", "expire_s", "connections_per_domain", "messages_per_connection",
                  "messages_per_minute", "starttls", "source_v4", "source_v6", "delay_warning_s",
                  "route"});
      const std::string p = "outbound.";
      OutboundConfig& o = cfg->outbound;
      if (const toml::node* d = ot->get("dns_servers")) {
        if (dns_servers_set) {
          throw ConfigError{where(source, *d, "outbound.dns_servers") +
                            ": set dns.servers only (outbound.dns_servers is its old name)"};
        }
        cfg->dns_servers = get_string(source, *ot, "dns_servers", "");
        cfg->notices.push_back(where(source, *d, "outbound.dns_servers") +
                               ": deprecated, now [dns] servers (it still works)");
      }
      o.port = static_cast<uint16_t>(get_uint(source, *ot, p, "port", o.port, 1, 65535));
      o.connect_timeout_s = static_cast<uint32_t>(
          get_uint(source, *ot, p, "connect_timeout_s", o.connect_timeout_s, 1, 600));
      o.command_timeout_s = static_cast<uint32_t>(
          get_uint(source, *ot, p, "command_timeout_s", o.command_timeout_s, 1, 3600));
      o.retry_first_s = static_cast<uint32_t>(
          get_uint(source, *ot, p, "retry_first_s", o.retry_first_s, 1, 86400));
      o.retry_max_s = static_cast<uint32_t>(
          get_uint(source, *ot, p, "retry_max_s", o.retry_max_s, 1, 7 * 86400));
      o.expire_s =
          static_cast<uint32_t>(get_uint(source, *ot, p, "expire_s", o.expire_s, 1, 60 * 86400));
      o.connections_per_domain = static_cast<uint32_t>(
          get_uint(source, *ot, p, "connections_per_domain", o.connections_per_domain, 1, 1000));
      o.messages_per_connection = static_cast<uint32_t>(get_uint(
          source, *ot, p, "messages_per_connection", o.messages_per_connection, 1, 100000));
      if (const toml::node* b = ot->get("starttls")) {
        const auto* v = b->as_boolean();
        if (v == nullptr) {
          throw ConfigError{where(source, *b, "outbound.starttls") + ": must be true or false"};
        }
        o.starttls = v->get();
      }
      o.messages_per_minute = static_cast<uint32_t>(
          get_uint(source, *ot, p, "messages_per_minute", o.messages_per_minute, 0, 10000000));
      o.delay_warning_s = static_cast<uint32_t>(
          get_uint(source, *ot, p, "delay_warning_s", o.delay_warning_s, 0, 60 * 86400));
      for (const char* key : {"source_v4", "source_v6"}) {
        const std::string v = get_string(source, *ot, key, "");
        unsigned char buf[16];
        const int fam = std::string_view(key) == "source_v4" ? AF_INET : AF_INET6;
        if (!v.empty() && inet_pton(fam, v.c_str(), buf) != 1) {
          throw ConfigError{where(source, *ot->get(key), p + key) + ": not an IPv" +
                            (fam == AF_INET ? "4" : "6") + " address"};
        }
        (fam == AF_INET ? o.source_v4 : o.source_v6) = v;
      }
      if (const toml::node* rn = ot->get("route")) {
        const toml::array* arr = rn->as_array();
        if (arr == nullptr)
          throw ConfigError{where(source, *rn, "outbound.route") +
                            ": use [[outbound.route]] tables"};
        for (const auto& item : *arr) {
          const toml::table* rt = item.as_table();
          if (rt == nullptr)
            throw ConfigError{where(source, item, "outbound.route") + ": must be a table"};
          o.routes.push_back(parse_route(source, *rt));
        }
      }
    }
    if (const toml::node* n = t.get("api")) {
      const toml::table* at = n->as_table();
      if (at == nullptr) throw ConfigError{where(source, *n, "api") + ": must be a table"};
      check_keys(source, *at, "api.", {"token"});
      if (const toml::node* tn = at->get("token")) {
        const toml::array* arr = tn->as_array();
        if (arr == nullptr)
          throw ConfigError{where(source, *tn, "api.token") + ": use [[api.token]] tables"};
        for (const auto& item : *arr) {
          const toml::table* tt = item.as_table();
          if (tt == nullptr)
            throw ConfigError{where(source, item, "api.token") + ": must be a table"};
          ApiToken tok = parse_api_token(source, *tt);
          for (const ApiToken& other : cfg->api_tokens) {
            if (other.name == tok.name) {
              throw ConfigError{where(source, item, "api.token.name") + ": \"" + tok.name +
                                "\" is used twice"};
            }
            if (other.sha256 == tok.sha256) {
              throw ConfigError{where(source, item, "api.token.sha256") + ": the same as \"" +
                                other.name + "\"'s: one token, one name"};
            }
          }
          cfg->api_tokens.push_back(std::move(tok));
        }
      }
    }
    for (const UnsubscribeRule& r : cfg->unsubscribe) {
      if (r.token.empty()) continue;
      const bool known = std::any_of(
          cfg->api_tokens.begin(), cfg->api_tokens.end(),
          [&](const ApiToken& k) { return k.name == r.token && k.has(ApiToken::kInject); });
      if (!known) {
        throw ConfigError{source + ": unsubscribe.token: \"" + r.token +
                          "\" is not the name of an [[api.token]] with the inject scope"};
      }
    }
    if (const toml::node* n = t.get("aliases")) {
      const toml::table* at = n->as_table();
      if (at == nullptr) throw ConfigError{where(source, *n, "aliases") + ": must be a table"};
      check_keys(source, *at, "aliases.",
                 {"suffix_separators", "drop_characters", "pipe_timeout_s"});
      cfg->pipe_timeout_s =
          static_cast<uint32_t>(get_uint(source, *at, "aliases.", "pipe_timeout_s", 60, 1, 3600));
      cfg->aliases.suffix_separators = get_string(source, *at, "suffix_separators", "+");
      cfg->aliases.drop_chars = get_string(source, *at, "drop_characters", ".");
      for (char c : cfg->aliases.suffix_separators + cfg->aliases.drop_chars) {
        if (c == '@' || c == ' ' || c == ',' || c == ':' || static_cast<unsigned char>(c) < 0x21) {
          throw ConfigError{where(source, *n, "aliases") + ": '" + std::string(1, c) +
                            "' cannot be a suffix separator or drop character"};
        }
      }
    }
    if (const toml::node* n = t.get("inbound")) {
      const toml::table* it = n->as_table();
      if (it == nullptr) throw ConfigError{where(source, *n, "inbound") + ": must be a table"};
      check_keys(source, *it, "inbound.", {"spf_fail", "dmarc_reject", "greeting_delay_s"});
      cfg->greeting_delay_s =
          static_cast<uint32_t>(get_uint(source, *it, "inbound.", "greeting_delay_s", 0, 0, 60));
      for (auto [key, out] :
           {std::pair{"spf_fail", &cfg->spf_fail}, std::pair{"dmarc_reject", &cfg->dmarc_reject}}) {
        const std::string v = get_string(source, *it, key, "reject");
        if (v != "reject" && v != "mark") {
          throw ConfigError{where(source, *it->get(key), std::string("inbound.") + key) +
                            ": must be reject or mark"};
        }
        *out = v == "reject" ? FailAction::kReject : FailAction::kMark;
      }
    }
    if (const toml::node* n = t.get("srs")) {
      const toml::table* st = n->as_table();
      if (st == nullptr) throw ConfigError{where(source, *n, "srs") + ": must be a table"};
      check_keys(source, *st, "srs.", {"enabled", "domain", "secret_file", "max_age_days"});
      if (const toml::node* e = st->get("enabled")) {
        if (!e->is_boolean())
          throw ConfigError{where(source, *e, "srs.enabled") + ": must be true or false"};
        cfg->srs_enabled = e->as_boolean()->get();
      }
      cfg->srs_domain = proto::ascii_lower(get_string(source, *st, "domain", ""));
      if (!cfg->srs_domain.empty() && !proto::is_valid_domain(cfg->srs_domain)) {
        throw ConfigError{where(source, *st->get("domain"), "srs.domain") + ": not a valid domain"};
      }
      cfg->srs_secret_file = get_string(source, *st, "secret_file", "");
      cfg->srs_max_age_days =
          static_cast<uint32_t>(get_uint(source, *st, "srs.", "max_age_days", 21, 1, 365));
    }
    if (const toml::node* n = t.get("dkim")) {
      const toml::table* dt = n->as_table();
      if (dt == nullptr) throw ConfigError{where(source, *n, "dkim") + ": must be a table"};
      check_keys(source, *dt, "dkim.", {"sha256_backend"});
      const std::string b = get_string(source, *dt, "sha256_backend", "auto");
      if (b == "auto") {
        cfg->dkim_sha256 = tls::Sha256Backend::kAuto;
      } else if (b == "wolfcrypt") {
        cfg->dkim_sha256 = tls::Sha256Backend::kWolfCrypt;
      } else if (b == "sha-ni") {
        cfg->dkim_sha256 = tls::Sha256Backend::kShaNi;
      } else if (b == "avx512x16") {
        cfg->dkim_sha256 = tls::Sha256Backend::kAvx512x16;
      } else {
        throw ConfigError{where(source, *dt->get("sha256_backend"), "dkim.sha256_backend") +
                          ": must be auto, wolfcrypt, sha-ni or avx512x16"};
      }
    }
    if (const toml::node* n = t.get("tls")) {
      const toml::table* tt = n->as_table();
      if (tt == nullptr) throw ConfigError{where(source, *n, "tls") + ": must be a table"};
      check_keys(source, *tt, "tls.", {"cert_dirs", "self_signed"});
      if (const toml::node* d = tt->get("cert_dirs")) {
        const toml::array* arr = d->as_array();
        if (arr == nullptr)
          throw ConfigError{where(source, *d, "tls.cert_dirs") + ": must be an array"};
        for (const auto& e : *arr) {
          auto s = e.value<std::string>();
          if (!s || s->empty()) {
            throw ConfigError{where(source, e, "tls.cert_dirs") + ": must be directory names"};
          }
          cfg->tls_cert_dirs.push_back(*s);
        }
      }
      if (const toml::node* b = tt->get("self_signed")) {
        const auto* v = b->as_boolean();
        if (v == nullptr) {
          throw ConfigError{where(source, *b, "tls.self_signed") + ": must be true or false"};
        }
        cfg->tls_self_signed = v->get();
      }
    }
    if (const toml::node* n = t.get("limits")) {
      const toml::table* lt = n->as_table();
      if (lt == nullptr) throw ConfigError{where(source, *n, "limits") + ": must be a table"};
      check_keys(source, *lt, "limits.",
                 {"message_bytes_max", "rcpt_count_max", "errors_max", "received_headers_max",
                  "junk_commands_max", "data_rate_min_bytes_s", "command_timeout_s",
                  "data_timeout_s", "connections_max", "connections_per_ip_max", "shutdown_grace_s",
                  "delivery_retry_s", "delivery_concurrency", "delivery_backlog_bytes_max",
                  "delivery_sync_delay_ms", "delivery_defer_ms", "spool_segment_bytes"});
      const std::string p = "limits.";
      auto& L = cfg->limits;
      L.message_bytes_max = get_uint(source, *lt, p, "message_bytes_max", L.message_bytes_max, 1024,
                                     uint64_t{1} << 32);
      L.rcpt_count_max = static_cast<uint32_t>(
          get_uint(source, *lt, p, "rcpt_count_max", L.rcpt_count_max, 1, 100000));
      L.errors_max =
          static_cast<uint32_t>(get_uint(source, *lt, p, "errors_max", L.errors_max, 1, 1000));
      L.received_headers_max = static_cast<uint32_t>(
          get_uint(source, *lt, p, "received_headers_max", L.received_headers_max, 1, 1000));
      L.junk_commands_max = static_cast<uint32_t>(
          get_uint(source, *lt, p, "junk_commands_max", L.junk_commands_max, 0, 100000));
      cfg->data_rate_min_bytes_s = static_cast<uint32_t>(get_uint(
          source, *lt, p, "data_rate_min_bytes_s", cfg->data_rate_min_bytes_s, 1, 1u << 30));
      cfg->command_timeout_s = static_cast<uint32_t>(
          get_uint(source, *lt, p, "command_timeout_s", cfg->command_timeout_s, 1, 86400));
      cfg->data_timeout_s = static_cast<uint32_t>(
          get_uint(source, *lt, p, "data_timeout_s", cfg->data_timeout_s, 1, 86400));
      cfg->connections_max = static_cast<uint32_t>(
          get_uint(source, *lt, p, "connections_max", cfg->connections_max, 1, 10000000));
      cfg->connections_per_ip_max = static_cast<uint32_t>(get_uint(
          source, *lt, p, "connections_per_ip_max", cfg->connections_per_ip_max, 1, 10000000));
      cfg->shutdown_grace_s = static_cast<uint32_t>(
          get_uint(source, *lt, p, "shutdown_grace_s", cfg->shutdown_grace_s, 0, 3600));
      cfg->delivery_retry_s = static_cast<uint32_t>(
          get_uint(source, *lt, p, "delivery_retry_s", cfg->delivery_retry_s, 1, 86400));
      cfg->delivery_concurrency = static_cast<uint32_t>(
          get_uint(source, *lt, p, "delivery_concurrency", cfg->delivery_concurrency, 1, 10000));
      cfg->delivery_sync_delay_ms = static_cast<uint32_t>(get_uint(
          source, *lt, p, "delivery_sync_delay_ms", cfg->delivery_sync_delay_ms, 0, 10000));
      cfg->delivery_defer_ms = static_cast<uint32_t>(
          get_uint(source, *lt, p, "delivery_defer_ms", cfg->delivery_defer_ms, 0, 60000));
      cfg->spool_segment_bytes = get_uint(source, *lt, p, "spool_segment_bytes",
                                          cfg->spool_segment_bytes, 65536, uint64_t{1} << 30);
      cfg->delivery_backlog_bytes_max =
          get_uint(source, *lt, p, "delivery_backlog_bytes_max", cfg->delivery_backlog_bytes_max, 0,
                   uint64_t{1} << 40);
    }
  } catch (const toml::parse_error& e) {
    return Error{source + ":" + std::to_string(e.source().begin.line) + ": " +
                 std::string(e.description())};
  } catch (const ConfigError& e) {
    return Error{e.msg};
  }
  return cfg;
}

Result<std::shared_ptr<const Config>> load_config_file(const std::string& path) {
  std::ifstream f(path);
  if (!f) return Error{path + ": cannot read the configuration file"};
  std::stringstream ss;
  ss << f.rdbuf();
  return parse_config(ss.str(), path);
}

namespace {

std::string q(const std::string& s) { return proto::quoted(s); }

std::string network_text(const Network& n) {
  char buf[INET6_ADDRSTRLEN];
  inet_ntop(n.v6 ? AF_INET6 : AF_INET, n.addr, buf, sizeof buf);
  return std::string(buf) + "/" + std::to_string(n.prefix);
}

const char* route_tls_text(OutboundRoute::Tls t) {
  switch (t) {
    case OutboundRoute::Tls::kOpportunistic:
      return "opportunistic";
    case OutboundRoute::Tls::kNone:
      return "none";
    case OutboundRoute::Tls::kRequired:
      return "required";
    case OutboundRoute::Tls::kVerify:
      return "verify";
  }
  return "?";
}

const char* sha256_text(tls::Sha256Backend b) {
  switch (b) {
    case tls::Sha256Backend::kAuto:
      return "auto";
    case tls::Sha256Backend::kWolfCrypt:
      return "wolfcrypt";
    case tls::Sha256Backend::kShaNi:
      return "sha-ni";
    case tls::Sha256Backend::kAvx512x16:
      return "avx512x16";
    case tls::Sha256Backend::kAvx2x8:  // benchmarks only: the file cannot choose it
      return "avx2x8";
  }
  return "?";
}

const char* policy_text(proto::SenderPolicy p) {
  switch (p) {
    case proto::SenderPolicy::kOwn:
      return "own";
    case proto::SenderPolicy::kDomain:
      return "domain";
    case proto::SenderPolicy::kAny:
      return "any";
  }
  return "?";
}

template <typename T>
std::string list(const std::vector<T>& v, std::string (*text)(const T&)) {
  std::string out = "[";
  for (size_t i = 0; i < v.size(); ++i) out += (i ? ", " : "") + text(v[i]);
  return out + "]";
}

std::string quoted_item(const std::string& s) { return q(s); }
std::string network_item(const Network& n) { return q(network_text(n)); }

}  // namespace

std::string to_toml(const Config& c) {
  using std::to_string;
  const auto fail_text = [](FailAction a) { return a == FailAction::kReject ? "reject" : "mark"; };
  std::vector<std::string> domains(c.local_domains.begin(), c.local_domains.end());
  std::sort(domains.begin(), domains.end());
  std::stable_partition(domains.begin(), domains.end(),
                        [&](const std::string& d) { return d == c.primary_domain; });
  std::string t = "# effective configuration of " + c.source + "\n";
  t += "hostname = " + q(c.hostname) + "\n";
  t += "data_dir = " + q(c.data_dir) + "\n";
  t += "domains_dir = " + q(c.domains_dir) + "\n";
  t += "local_domains = " + list(domains, quoted_item) + "\n";
  t += "threads = " + to_string(c.threads) + "\n";
  t += "backend = " + q(to_string(c.backend)) + "\n";
  t += std::string("maildir_sync = ") + (c.maildir_sync_batch ? "\"batch\"" : "\"fsync\"") + "\n";
  t += "relay_networks = " + list(c.relay_networks, network_item) + "\n";
  for (const auto& l : c.listeners) {
    t += "\n[[listener]]\naddress = " + q(l.address) + "\nkind = " + q(kind_name(l)) + "\n";
  }
  t += "\n[tls]\ncert_dirs = " + list(c.tls_cert_dirs, quoted_item) + "\n";
  t += std::string("self_signed = ") + (c.tls_self_signed ? "true" : "false") + "\n";
  t += "\n[auth]\nsender_policy = " + q(policy_text(c.sender_policy)) + "\n";
  t += "failures_max = " + to_string(c.auth_failures_max) + "\n";
  t += "failure_delay_ms = " + to_string(c.auth_failure_delay_ms) + "\n";
  t += "cache_ttl_s = " + to_string(c.auth_cache_ttl_s) + "\n";
  t += "\n[aliases]\nsuffix_separators = " + q(c.aliases.suffix_separators) + "\n";
  t += "drop_characters = " + q(c.aliases.drop_chars) + "\n";
  t += "pipe_timeout_s = " + to_string(c.pipe_timeout_s) + "\n";
  t += "\n[inbound]\nspf_fail = " + q(fail_text(c.spf_fail)) + "\n";
  t += "dmarc_reject = " + q(fail_text(c.dmarc_reject)) + "\n";
  t += "greeting_delay_s = " + to_string(c.greeting_delay_s) + "\n";
  t += std::string("\n[srs]\nenabled = ") + (c.srs_enabled ? "true" : "false") + "\n";
  t += "domain = " + q(c.srs_domain) + "\n";
  t += "secret_file = " + q(c.srs_secret_file) + "\n";
  t += "max_age_days = " + to_string(c.srs_max_age_days) + "\n";
  t += "\n[dkim]\nsha256_backend = " + q(sha256_text(c.dkim_sha256)) + "\n";
  const auto& L = c.limits;
  t += "\n[limits]\nmessage_bytes_max = " + to_string(L.message_bytes_max) + "\n";
  t += "rcpt_count_max = " + to_string(L.rcpt_count_max) + "\n";
  t += "errors_max = " + to_string(L.errors_max) + "\n";
  t += "received_headers_max = " + to_string(L.received_headers_max) + "\n";
  t += "junk_commands_max = " + to_string(L.junk_commands_max) + "\n";
  t += "data_rate_min_bytes_s = " + to_string(c.data_rate_min_bytes_s) + "\n";
  t += "command_timeout_s = " + to_string(c.command_timeout_s) + "\n";
  t += "data_timeout_s = " + to_string(c.data_timeout_s) + "\n";
  t += "connections_max = " + to_string(c.connections_max) + "\n";
  t += "connections_per_ip_max = " + to_string(c.connections_per_ip_max) + "\n";
  t += "shutdown_grace_s = " + to_string(c.shutdown_grace_s) + "\n";
  t += "delivery_retry_s = " + to_string(c.delivery_retry_s) + "\n";
  t += "delivery_concurrency = " + to_string(c.delivery_concurrency) + "\n";
  t += "delivery_backlog_bytes_max = " + to_string(c.delivery_backlog_bytes_max) + "\n";
  t += "delivery_sync_delay_ms = " + to_string(c.delivery_sync_delay_ms) + "\n";
  t += "delivery_defer_ms = " + to_string(c.delivery_defer_ms) + "\n";
  t += "spool_segment_bytes = " + to_string(c.spool_segment_bytes) + "\n";
  for (const auto& k : c.api_tokens) {
    std::vector<std::string> scopes;
    if (k.has(ApiToken::kAdmin)) scopes.push_back("admin");
    if (k.has(ApiToken::kInject)) scopes.push_back("inject");
    t += "\n[[api.token]]\nname = " + q(k.name) + "\nsha256 = " + q(k.sha256) + "\n";
    t += "scopes = " + list(scopes, quoted_item) + "\n";
    if (!k.sender_domains.empty()) {
      t += "sender_domains = " + list(k.sender_domains, quoted_item) + "\n";
    }
    if (k.recipients_per_second != 0) {
      t += "recipients_per_second = " + to_string(k.recipients_per_second) + "\n";
    }
  }
  t += "\n[admin]\nsocket = " + q(c.admin_socket) + "\n";
  t += "\n[log]\nlevel = " + q(c.log_level) + "\nfile = " + q(c.log_file) + "\n";
  t += "\n[metrics]\ntop_destinations = " + to_string(c.metrics_top_destinations) + "\n";
  t += "\n[inject]\nbody_bytes_max = " + to_string(c.inject_body_bytes_max) + "\n";
  t += "spool_high_water_bytes = " + to_string(c.inject_spool_high_water_bytes) + "\n";
  t += "request_messages_bytes_max = " + to_string(c.inject_request_messages_bytes_max) + "\n";
  t += "\n[events]\nenabled = " + std::string(c.events_enabled ? "true" : "false") + "\n";
  t += "dir = " + q(c.events_dir) + "\n";
  t += "segment_bytes = " + to_string(c.events_segment_bytes) + "\n";
  t += "retention_days = " + to_string(c.events_retention_days) + "\n";
  t += "sync_interval_ms = " + to_string(c.events_sync_interval_ms) + "\n";
  t += "bounce_rules = " + q(c.events_bounce_rules) + "\n";
  t += "report_addresses = " + list(c.events_report_addresses, quoted_item) + "\n";
  t += "metadata_headers = " + list(c.events_metadata_headers, quoted_item) + "\n";
  t += std::string("verp = ") + (c.events_verp ? "true" : "false") + "\n";
  t += "verp_domain = " + q(c.events_verp_domain) + "\n";
  for (const auto& w : c.events_webhooks) {
    t += "\n[[events.webhook]]\nname = " + q(w.name) + "\nurl = " + q(w.url) + "\n";
    t += "types = " + list(w.types, quoted_item) + "\n";
    t += "batch_size = " + to_string(w.batch_size) + "\n";
    t += "timeout_s = " + to_string(w.timeout_s) + "\n";
    t += "max_backoff_s = " + to_string(w.max_backoff_s) + "\n";
    if (w.secret_file.empty()) {
      t += "# secret is set (not shown)\n";
    } else {
      t += "secret_file = " + q(w.secret_file) + "\n";
    }
  }
  if (c.events_amqp) {
    const AmqpConfig& a = *c.events_amqp;
    // The URL without its password.
    std::string url = a.url;
    const size_t scheme = url.find("://");
    const size_t at = url.rfind('@');
    if (scheme != std::string::npos && at != std::string::npos && at > scheme) {
      const size_t colon = url.find(':', scheme + 3);
      if (colon != std::string::npos && colon < at) url.replace(colon + 1, at - colon - 1, "***");
    }
    t += "\n[events.amqp]\nurl = " + q(url) + "\n";
    t += "exchange = " + q(a.exchange) + "\n";
    t += "routing_key = " + q(a.routing_key) + "\n";
    t += "types = " + list(a.types, quoted_item) + "\n";
    t += "batch_size = " + to_string(a.batch_size) + "\n";
    t += "timeout_s = " + to_string(a.timeout_s) + "\n";
    t += "max_backoff_s = " + to_string(a.max_backoff_s) + "\n";
  }
  std::vector<std::string> classes;
  for (auto b : c.suppression_bounce_classes) classes.emplace_back(proto::bounce_class_name(b));
  t += "\n[suppression]\nbounce_classes = " + list(classes, quoted_item) + "\n";
  for (const auto& u : c.unsubscribe) {
    t += "\n[[unsubscribe]]\n";
    t += u.token.empty() ? "sender_domain = " + q(u.sender_domain) : "token = " + q(u.token);
    t += "\nurl = " + q(u.url) + "\nmailto = " + q(u.mailto) + "\nstream = " + q(u.stream) + "\n";
  }
  const auto& o = c.outbound;
  t += "\n[dns]\nservers = " + q(c.dns_servers) + "\n";
  t += "ttl_min_s = " + to_string(c.dns_ttl_min_s) + "\n";
  t += "ttl_max_s = " + to_string(c.dns_ttl_max_s) + "\n";
  t += "cache_entries_max = " + to_string(c.dns_cache_entries_max) + "\n";
  t += "\n[outbound]\nport = " + to_string(o.port) + "\n";
  t += "connect_timeout_s = " + to_string(o.connect_timeout_s) + "\n";
  t += "command_timeout_s = " + to_string(o.command_timeout_s) + "\n";
  t += "retry_first_s = " + to_string(o.retry_first_s) + "\n";
  t += "retry_max_s = " + to_string(o.retry_max_s) + "\n";
  t += "expire_s = " + to_string(o.expire_s) + "\n";
  t += "connections_per_domain = " + to_string(o.connections_per_domain) + "\n";
  t += "messages_per_connection = " + to_string(o.messages_per_connection) + "\n";
  t += "messages_per_minute = " + to_string(o.messages_per_minute) + "\n";
  t += std::string("starttls = ") + (o.starttls ? "true" : "false") + "\n";
  t += "source_v4 = " + q(o.source_v4) + "\n";
  t += "source_v6 = " + q(o.source_v6) + "\n";
  t += "delay_warning_s = " + to_string(o.delay_warning_s) + "\n";
  for (const auto& r : o.routes) {
    t += "\n[[outbound.route]]\ndomain = " + q(r.domain) + "\n";
    if (!r.host.empty()) {
      const bool v6 = r.host.find(':') != std::string::npos;
      std::string hop = v6 ? "[" + r.host + "]" : r.host;
      if (r.port != 0) hop += ":" + to_string(r.port);
      t += "next_hop = " + q(hop) + "\n";
    }
    t += "tls = " + q(route_tls_text(r.tls)) + "\n";
    t += "ca_file = " + q(r.ca_file) + "\n";
    if (!r.auth_user.empty()) {
      t += "auth_user = " + q(r.auth_user) + "\n";
      t += "# auth_password is set (not shown)\n";
    }
    t += "connections = " + to_string(r.connections) + "\n";
    t += "messages_per_connection = " + to_string(r.messages_per_connection) + "\n";
    t += "messages_per_minute = " + to_string(r.messages_per_minute) + "\n";
  }
  return t;
}

const OutboundRoute* OutboundConfig::route_for(const std::string& domain) const {
  const OutboundRoute* star = nullptr;
  for (const auto& r : routes) {
    if (r.domain == domain) return &r;
    if (r.domain == "*" && star == nullptr) star = &r;
  }
  return star;
}

uint32_t OutboundConfig::connections_for(const OutboundRoute* r) const {
  return r != nullptr && r->connections != 0 ? r->connections : connections_per_domain;
}

uint32_t OutboundConfig::messages_per_connection_for(const OutboundRoute* r) const {
  return r != nullptr && r->messages_per_connection != 0 ? r->messages_per_connection
                                                         : messages_per_connection;
}

uint32_t OutboundConfig::rate_for(const OutboundRoute* r) const {
  return r != nullptr && r->messages_per_minute != 0 ? r->messages_per_minute : messages_per_minute;
}

const char* kind_name(const ListenerConfig& l) {
  return l.http                                       ? "http"
         : l.implicit_tls                             ? "submissions"
         : l.kind == proto::ListenerKind::kSubmission ? "submission"
                                                      : "smtp";
}

std::string verp_domain(const Config& c) {
  return c.events_verp_domain.empty() ? c.primary_domain : c.events_verp_domain;
}

std::string events_dir(const Config& c) {
  return c.events_dir.empty() ? c.data_dir + "/events" : c.events_dir;
}

int log_priority(std::string_view level) {
  static const std::pair<std::string_view, int> kLevels[] = {
      {"debug", 7}, {"info", 6}, {"notice", 5}, {"warning", 4}, {"error", 3}};
  for (const auto& [name, priority] : kLevels) {
    if (name == level) return priority;
  }
  return -1;
}

uint32_t shards_for_cpus(uint32_t cpus) { return cpus <= 2 ? 1 : cpus; }

uint32_t usable_cpus() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof(set), &set) == 0) {
    const int n = CPU_COUNT(&set);
    if (n > 0) return static_cast<uint32_t>(n);
  }
  return std::max(1u, std::thread::hardware_concurrency());
}

}  // namespace ringmail::config
