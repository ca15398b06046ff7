#include "tools/queue_cli.h"

#include <CLI/CLI.hpp>
#include <cstdio>
#include <nlohmann/json.hpp>

#include "config/version_text.h"
#include "tools/admin_client.h"
#include "tools/queue_format.h"

namespace ringmail::tools {

namespace {

constexpr const char* kProg = "ringmail";
constexpr int64_t kSuspendMax = 31536000;  // docs/admin-api.md: duration_s 1 to 365 days

void print(const std::string& text) { std::fwrite(text.data(), 1, text.size(), stdout); }

int fail(int code, const std::string& why) {
  std::fprintf(stderr, "%s: %s\n", kProg, why.c_str());
  return code;
}

// The null sender is "<>" in the API's filters; "" on the command line
// means it too.
std::string sender_arg(const std::string& s) { return s.empty() ? "<>" : s; }

}  // namespace

QueueCli::QueueCli(CLI::App& app) {
  queue_ = app.add_subcommand("queue", "the daemon's queue: summary, list, flush, hold, delete...");
  queue_->require_subcommand(1);
  const char* domain_help = "recipients in this domain";
  const char* sender_help = "messages from this envelope sender (\"<>\": the null sender)";

  summary_ = queue_->add_subcommand(
      "summary", "recipients per destination domain by age (as qshape), suspended domains");
  summary_->add_flag("--json", json_, "the admin API's JSON as it came");

  list_ = queue_->add_subcommand("list", "the messages in the queue, their recipients' state");
  list_->add_option("--domain", domain_, domain_help);
  list_->add_option("--sender", sender_, sender_help);
  list_->add_option("--rcpt", rcpt_, "messages with this recipient still to deliver");
  list_->add_option("--older-than", older_than_,
                    "arrived at least this long ago (90s, 30m, 2h, 1d)");
  list_->add_option("--state", state_, "recipients in this state")
      ->check(CLI::IsMember({"waiting", "in_flight", "held"}));
  list_->add_option("--limit", limit_, "at most N messages")->check(CLI::PositiveNumber);
  list_->add_flag("--json", json_, "one JSON document, {\"messages\": [...]}");

  show_ = queue_->add_subcommand("show", "one message: envelope, recipients, header");
  show_->add_option("id", id_, "the message id (from list or the log)")->required();
  show_->add_flag("--body", body_, "the whole message as stored instead of its header");
  show_->add_flag("--json", json_, "the admin API's JSON as it came");

  const struct {
    const char* name;
    const char* help;
  } actions[] = {
      {"flush", "make waiting recipients due now (all messages when no selector)"},
      {"hold", "start no delivery attempt until released (all messages when no selector)"},
      {"release", "let held messages wait for their next attempt again (all when no selector)"},
      {"delete", "remove recipients without a DSN (needs ids, --domain, --sender or --all)"},
      {"bounce",
       "fail recipients with a DSN to the sender (needs ids, --domain, --sender or --all)"},
  };
  for (const auto& a : actions) {
    CLI::App* c = queue_->add_subcommand(a.name, a.help);
    c->add_option("ids", ids_, "message ids");
    c->add_option("--domain", domain_, "messages with recipients in this domain");
    c->add_option("--sender", sender_, sender_help);
    c->add_flag("--all", all_, "every message in the queue");
    actions_.push_back({a.name, c});
  }

  suspend_ = queue_->add_subcommand(
      "suspend", "make no connection to a destination for a while (survives a restart)");
  suspend_->add_option("domain", domain_, "the destination domain")->required();
  suspend_->add_option("--for", duration_, "how long: 90s, 30m, 2h, 1d or seconds")->required();
  suspend_->add_option("--reason", reason_, "why, shown in the summary");
  resume_ = queue_->add_subcommand("resume", "end a suspension; the destination's mail is due now");
  resume_->add_option("domain", domain_, "the destination domain")->required();
}

bool QueueCli::parsed() const { return queue_->parsed(); }

int QueueCli::run(const config::Config& cfg) const {
  if (cfg.admin_socket.empty()) {
    return fail(78, "no [admin] socket in " + cfg.source + ": the daemon has no admin API");
  }
  const std::string& socket = cfg.admin_socket;
  if (summary_->parsed()) {
    const AdminCall a = admin_call(kProg, socket, "GET", "/api/queue");
    if (a.exit != 0) return a.exit;
    if (json_) {
      print(a.body);
      return 0;
    }
    auto text = format_summary(a.body);
    if (!text) return fail(1, text.error());
    print(*text);
    return 0;
  }
  if (list_->parsed()) return list(socket);
  if (show_->parsed()) {
    const AdminCall a = admin_call(
        kProg, socket, "GET", "/api/queue/messages/" + url_encode(id_) + (body_ ? "?body=1" : ""));
    if (a.exit != 0) return a.exit;
    if (json_) {
      print(a.body);
      return 0;
    }
    auto text = format_message(a.body);
    if (!text) return fail(1, text.error());
    print(*text);
    return 0;
  }
  for (const Action& a : actions_) {
    if (a.app->parsed()) return action(socket, a);
  }
  if (suspend_->parsed()) return suspend(socket);
  if (resume_->parsed()) {
    const AdminCall a =
        admin_call(kProg, socket, "POST", "/api/destinations/" + url_encode(domain_) + "/resume");
    if (a.exit != 0) return a.exit;
    auto text = format_resumed(a.body);
    if (!text) return fail(1, text.error());
    print(*text);
    return 0;
  }
  return config::kUsageExit;
}

int QueueCli::list(const std::string& socket) const {
  ListFilter f;
  f.domain = domain_;
  if (list_->count("--sender") > 0) f.sender = sender_arg(sender_);
  f.rcpt = rcpt_;
  f.state = state_;
  if (!older_than_.empty()) {
    auto d = parse_duration(older_than_);
    if (!d) return fail(config::kUsageExit, "--older-than: " + d.error());
    f.older_than_s = *d;
  }
  if (json_) {
    // One document over all pages, written as they come (nothing when the
    // first page does not).
    bool first = true, opened = false;
    const int rc = admin_pages(kProg, socket, list_target(f), limit_,
                               [&](std::string_view page) -> Result<void> {
                                 auto part = json_page_messages(page, &first);
                                 if (!part) return Error{part.error()};
                                 if (!opened) print("{\"messages\":[");
                                 opened = true;
                                 print(*part);
                                 return {};
                               });
    if (rc != 0) return rc;  // the document stays unfinished: not valid JSON
    print("]}\n");
    return 0;
  }
  size_t count = 0;
  const int rc = admin_pages(
      kProg, socket, list_target(f), limit_,
      [&](std::string_view page) -> Result<void> {
        auto text = format_list_page(page);
        if (!text) return Error{text.error()};
        print(*text);
        return {};
      },
      &count);
  if (rc != 0) return rc;
  print(std::to_string(count) + (count == 1 ? " message" : " messages") +
        (limit_ != 0 && count >= limit_ ? " (--limit reached)" : "") + "\n");
  return 0;
}

int QueueCli::action(const std::string& socket, const Action& a) const {
  QueueSelector s;
  s.ids = ids_;
  if (a.app->count("--domain") > 0) s.domain = domain_;
  if (a.app->count("--sender") > 0) s.sender = sender_arg(sender_);
  s.all = all_;
  const bool nothing_means_all = a.name != "delete" && a.name != "bounce";
  auto body = selector_body(s, nothing_means_all);
  if (!body) return fail(config::kUsageExit, "queue " + a.name + ": " + body.error());
  const AdminCall r = admin_call(kProg, socket, "POST", "/api/queue/" + a.name, *body);
  if (r.exit != 0) return r.exit;
  auto outcome = format_action(a.name, r.body);
  if (!outcome) return fail(1, outcome.error());
  print(outcome->line + "\n");
  if (!outcome->unknown.empty()) {
    std::string ids;
    for (const auto& id : outcome->unknown) ids += " " + id;
    std::fprintf(stderr, "%s: not in the queue:%s\n", kProg, ids.c_str());
  }
  return 0;
}

int QueueCli::suspend(const std::string& socket) const {
  auto seconds = parse_duration(duration_);
  if (!seconds) return fail(config::kUsageExit, "--for: " + seconds.error());
  if (*seconds < 1 || *seconds > kSuspendMax) {
    return fail(config::kUsageExit, "--for: from 1 second to 365 days (" + duration_ + ")");
  }
  nlohmann::json body{{"duration_s", *seconds}};
  if (!reason_.empty()) body["reason"] = reason_;
  const AdminCall a =
      admin_call(kProg, socket, "POST", "/api/destinations/" + url_encode(domain_) + "/suspend",
                 body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
  if (a.exit != 0) return a.exit;
  auto text = format_suspended(a.body);
  if (!text) return fail(1, text.error());
  print(*text);
  return 0;
}

}  // namespace ringmail::tools
