#include "engine/unsubscribe.h"

#include <cstring>

#include "engine/events.h"
#include "engine/log.h"
#include "engine/secret_file.h"
#include "engine/shard.h"
#include "proto/address.h"
#include "proto/ascii.h"
#include "proto/dkim.h"
#include "proto/unsubscribe.h"
#include "storage/suppression.h"
#include "tls/hmac.h"

namespace ringmail::engine {

namespace {

std::string hmac(std::string_view key, std::string_view data) {
  return tls::hmac_sha256(key, data);
}

std::string html_escape(std::string_view s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&#39;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

std::string page(std::string_view title, std::string_view body_html) {
  return "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>" + std::string(title) +
         "</title></head>\n<body>\n" + std::string(body_html) + "\n</body></html>\n";
}

// Adds the subject's address to the suppression list for its sender
// domain, once durable records the event; `done(0 or -errno)` on the
// shard's thread. An address already on the list is left as it is.
void unsubscribe(Shard& shard, const proto::unsubscribe::Subject& s, std::string_view method,
                 std::function<void(int)> done) {
  const Suppressions* list = shard.suppressions();
  if (list == nullptr) return done(-ENOTSUP);
  if (list->contains(list->key(s.sender_domain, s.recipient))) return done(0);
  storage::SuppressionChange c;
  c.unix_time = shard.clock_s();
  c.scope = s.sender_domain;
  c.address = s.recipient;
  c.reason = "unsubscribed (" + std::string(method) + ", stream " + s.stream + ")";
  shard.change_suppression(
      std::move(c), [&shard, s, method = std::string(method), done = std::move(done)](int r) {
        if (r == 0) {
          log_line("unsubscribe: <" + s.recipient + "> from mail of " + s.sender_domain +
                   " (stream " + s.stream + ", " + method + ")");
          if (Events* events = shard.events()) {
            proto::Envelope env;
            env.arrival_unix = shard.clock_s();
            Events::Detail d;
            d.sender_domain = s.sender_domain;
            d.stream = s.stream;
            d.method = method;
            events->record(Events::Type::kUnsubscribe, env, s.recipient, d, shard.clock_s());
          }
        } else {
          log_line("unsubscribe: <" + s.recipient + "> from mail of " + s.sender_domain +
                       ": not written: " + std::strerror(-r),
                   LogLevel::kError);
        }
        done(r);
      });
}

}  // namespace

Result<std::shared_ptr<const SecretKeys>> load_unsubscribe_keys(const config::Config& cfg) {
  if (cfg.unsubscribe.empty()) return nullptr;
  auto secrets = load_secret_file(cfg.data_dir + "/unsubscribe.secret", "unsubscribe secrets");
  if (!secrets) return Error{secrets.error()};
  auto k = std::make_shared<SecretKeys>();
  k->secrets = std::move(*secrets);
  return std::shared_ptr<const SecretKeys>(std::move(k));
}

const config::UnsubscribeRule* unsubscribe_rule(const config::Config& cfg,
                                                std::string_view token_name,
                                                std::string_view sender_domain) {
  for (const auto& r : cfg.unsubscribe) {
    if (!r.token.empty() && r.token == token_name) return &r;
  }
  for (const auto& r : cfg.unsubscribe) {
    if (r.sender_domain.empty()) continue;
    const std::string_view d = r.sender_domain;
    if (sender_domain == d || (sender_domain.size() > d.size() && sender_domain.ends_with(d) &&
                               sender_domain[sender_domain.size() - d.size() - 1] == '.')) {
      return &r;
    }
  }
  return nullptr;
}

std::string unsubscribe_fields(const SecretKeys& keys, const config::UnsubscribeRule& rule,
                               std::string_view recipient, std::string_view sender_domain) {
  proto::unsubscribe::Subject s{proto::ascii_lower(recipient), proto::ascii_lower(sender_domain),
                                rule.stream};
  const std::string token = proto::unsubscribe::make_token(s, keys.secrets.front(), hmac);
  if (token.empty()) return {};
  return proto::unsubscribe::header_fields(token, rule.url, rule.mailto);
}

bool has_list_unsubscribe(std::string_view message) {
  size_t body = 0;
  for (const auto& f : proto::dkim::split_header(message, &body)) {
    if (proto::ascii_lower(f.name) == "list-unsubscribe") return true;
  }
  return false;
}

void unsubscribe_http(Shard& shard, const proto::HttpRequest& req, const std::string& peer,
                      std::function<void(std::string, bool)> reply) {
  const bool keep = req.keep_alive && !shard.stopping();
  const bool head = req.method == "HEAD";
  auto answer = [keep, head, reply, peer, method = req.method](int status, std::string body) {
    if (status >= 400) {
      log_line("http client=" + peer + ": " + method + " /u/... " + std::to_string(status));
    }
    std::string r = proto::http_response(status, "text/html; charset=utf-8", body, keep);
    if (head) r.resize(r.size() - body.size());
    reply(std::move(r), keep);
  };
  const bool post = req.method == "POST";
  if (!post && req.method != "GET" && !head) {
    return answer(405, page("Method not allowed", "<p>Use GET or POST.</p>"));
  }
  const SecretKeys* keys = shard.unsubscribe_keys();
  std::string token;
  if (keys == nullptr || !proto::percent_decode(req.path.substr(3), &token)) {
    return answer(400, page("Not a valid link", "<p>This unsubscribe link is not valid.</p>"));
  }
  auto s = proto::unsubscribe::read_token(token, keys->secrets, hmac);
  if (!s) {
    return answer(400, page("Not a valid link", "<p>This unsubscribe link is not valid (" +
                                                    html_escape(s.error()) + ").</p>"));
  }
  const std::string who = html_escape(s->recipient), from = html_escape(s->sender_domain);
  if (!post) {
    // RFC 8058 3.2: a GET never unsubscribes (link checkers and scanners
    // fetch URLs); it shows the choice.
    return answer(200,
                  page("Unsubscribe", "<p>Stop mail from " + from + " to " + who +
                                          "?</p>\n<form method=\"post\"><input type=\"hidden\" "
                                          "name=\"List-Unsubscribe\" value=\"One-Click\">"
                                          "<button type=\"submit\">Unsubscribe</button></form>"));
  }
  if (!proto::unsubscribe::is_one_click_body(req.header("content-type"), req.body)) {
    return answer(400,
                  page("Not a one-click request",
                       "<p>The request must carry List-Unsubscribe=One-Click (RFC 8058).</p>"));
  }
  unsubscribe(shard, *s, "one-click", [answer, who, from](int r) {
    if (r < 0) {
      return answer(503, page("Try again",
                              "<p>The unsubscribe could not be recorded now: please "
                              "try again later.</p>"));
    }
    answer(200,
           page("Unsubscribed", "<p>" + who + " will get no more mail from " + from + ".</p>"));
  });
}

std::vector<proto::Address> unsubscribe_recipients(const config::Config& cfg,
                                                   const std::vector<proto::Address>& rcpts) {
  std::vector<proto::Address> out;
  if (cfg.unsubscribe.empty()) return out;
  for (const auto& rcpt : rcpts) {
    const std::string local = proto::ascii_lower(rcpt.local);
    const std::string address =
        local.substr(0, local.find('+')) + "@" + proto::ascii_lower(rcpt.domain);
    for (const auto& rule : cfg.unsubscribe) {
      if (!rule.mailto.empty() && rule.mailto == address) {
        out.push_back(rcpt);
        break;
      }
    }
  }
  return out;
}

void unsubscribe_by_mail(Shard& shard, const std::string& id,
                         const std::vector<proto::Address>& rcpts, std::string_view message) {
  const SecretKeys* keys = shard.unsubscribe_keys();
  if (keys == nullptr) return;
  std::string subject;
  size_t body = 0;
  for (const auto& f : proto::dkim::split_header(message, &body)) {
    if (proto::ascii_lower(f.name) == "subject") subject = std::string(f.value);
  }
  for (const auto& rcpt : rcpts) {
    // The local part as written: tokens are case-sensitive.
    const std::string token = proto::unsubscribe::token_from_mail(rcpt.local, subject);
    auto s = proto::unsubscribe::read_token(token, keys->secrets, hmac);
    if (!s) {
      log_line(id + ": to <" + rcpt.to_string() + ">: not an unsubscribe request: " + s.error());
      continue;
    }
    unsubscribe(shard, *s, "mailto", [](int) {});
  }
}

}  // namespace ringmail::engine
