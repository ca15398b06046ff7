#include "tools/suppress_cli.h"

#include <CLI/CLI.hpp>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>

#include "storage/suppression.h"
#include "tools/admin_client.h"
#include "tools/queue_format.h"

namespace ringmail::tools {
namespace {

constexpr const char* kProg = "ringmail";

int fail(int status, const std::string& why) {
  std::fprintf(stderr, "%s: %s\n", kProg, why.c_str());
  return status;
}

}  // namespace

SuppressCli::SuppressCli(CLI::App& app) {
  suppress_ = app.add_subcommand("suppress", "the suppression list: add, remove, check, list");
  suppress_->require_subcommand(1);
  add_ = suppress_->add_subcommand("add", "stop sending to an address");
  add_->add_option("address", address_, "local@domain")->required();
  add_->add_option("--scope", scope_, "only for this sender domain (default: every sender)");
  add_->add_option("--reason", reason_, "why (default: by the administrator)");
  remove_ = suppress_->add_subcommand("remove", "send to an address again");
  remove_->add_option("address", address_, "local@domain")->required();
  remove_->add_option("--scope", scope_, "the sender domain it was added for (default: every)");
  check_ = suppress_->add_subcommand("check", "whether mail to an address is suppressed");
  check_->add_option("address", address_, "local@domain")->required();
  check_->add_option("--sender-domain", sender_domain_,
                     "for mail from this domain (its own entries count too)");
  list_ = suppress_->add_subcommand("list", "the entries, from the list's file");
  list_->add_option("--scope", scope_, "only this scope (* or a sender domain)");
  list_->add_flag("--json", json_, "one JSON object per entry");
}

bool SuppressCli::parsed() const { return suppress_->parsed(); }

int SuppressCli::run(const config::Config& cfg) const {
  if (list_->parsed()) {
    const std::string path = storage::suppression_path(cfg.data_dir);
    std::ifstream in(path, std::ios::binary);
    if (!in) {
      if (errno == ENOENT) return 0;  // an empty list
      return fail(1, path + ": " + std::strerror(errno));
    }
    // The replay: the latest add of each entry that was not removed since.
    std::map<std::pair<std::string, std::string>, storage::SuppressionChange> live;
    std::string line;
    for (size_t n = 1; std::getline(in, line); ++n) {
      if (in.eof() || line.empty() || line[0] == '#') continue;
      auto c = storage::parse_suppression_change(line);
      if (!c) return fail(1, path + ":" + std::to_string(n) + ": " + c.error());
      std::pair<std::string, std::string> k{c->scope, c->address};
      for (char& ch : k.first) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
      for (char& ch : k.second)
        ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
      if (c->add) {
        live[k] = std::move(*c);
      } else {
        live.erase(k);
      }
    }
    for (const auto& [k, c] : live) {
      if (!scope_.empty() && k.first != scope_) continue;
      if (json_) {
        nlohmann::json j{{"scope", c.scope},
                         {"address", c.address},
                         {"since_unix", c.unix_time},
                         {"reason", c.reason}};
        std::printf("%s\n",
                    j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
      } else {
        std::printf("%s %s %lld %s\n", c.scope.c_str(), c.address.c_str(),
                    static_cast<long long>(c.unix_time), c.reason.c_str());
      }
    }
    return 0;
  }
  if (cfg.admin_socket.empty()) {
    return fail(78, "no [admin] socket in " + cfg.source + ": the daemon has no admin API");
  }
  const std::string& socket = cfg.admin_socket;
  if (check_->parsed()) {
    std::string target = "/api/suppression/check?address=" + url_encode(address_);
    if (!sender_domain_.empty()) target += "&sender_domain=" + url_encode(sender_domain_);
    const AdminCall a = admin_call(kProg, socket, "GET", target);
    if (a.exit != 0) return a.exit;
    const auto j = nlohmann::json::parse(a.body, nullptr, false);
    const bool suppressed = j.is_object() && j.value("suppressed", false);
    std::printf("%s: %s\n", j.is_object() ? j.value("address", address_).c_str() : address_.c_str(),
                suppressed ? "suppressed" : "not suppressed");
    return suppressed ? 0 : 1;
  }
  const bool add = add_->parsed();
  nlohmann::json body{{"address", address_}};
  if (!scope_.empty()) body["scope"] = scope_;
  if (add && !reason_.empty()) body["reason"] = reason_;
  const AdminCall a =
      admin_call(kProg, socket, "POST", add ? "/api/suppression/add" : "/api/suppression/remove",
                 body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
  if (a.exit != 0) return a.exit;
  const auto j = nlohmann::json::parse(a.body, nullptr, false);
  const bool changed = j.is_object() && j.value(add ? "added" : "removed", false);
  const std::string who = j.is_object() ? j.value("address", address_) : address_;
  const std::string scope = j.is_object() ? j.value("scope", std::string("*")) : "*";
  std::printf("%s (%s): %s\n", who.c_str(), scope == "*" ? "every sender" : scope.c_str(),
              add ? (changed ? "suppressed" : "already suppressed")
                  : (changed ? "no longer suppressed" : "was not suppressed"));
  return 0;
}

}  // namespace ringmail::tools
