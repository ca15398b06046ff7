#include "storage/domains.h"

#include <sys/stat.h>
#include <toml++/toml.h>

#include <algorithm>

#include "proto/address.h"
#include "storage/userdb.h"

namespace ringmail::storage {

Result<DomainDelivery> parse_domain_settings(std::string_view text) {
  try {
    const toml::table t = toml::parse(text);
    for (const auto& [k, v] : t) {
      if (k != "delivery" && k != "mda" && k != "lmtp_socket") {
        return Error{"unknown key " + std::string(k.str())};
      }
      if (!v.is_string()) {
        return Error{std::string(k.str()) + " must be a string"};
      }
    }
    DomainDelivery out;
    const std::string kind = t["delivery"].value_or(std::string("maildir"));
    out.mda = t["mda"].value_or(std::string());
    out.lmtp_socket = t["lmtp_socket"].value_or(std::string());
    if (kind == "maildir") {
      out.kind = DomainDelivery::Kind::kMaildir;
    } else if (kind == "mda") {
      out.kind = DomainDelivery::Kind::kMda;
      if (out.mda.empty()) return Error{"delivery = \"mda\" needs mda = \"command\""};
    } else if (kind == "lmtp") {
      out.kind = DomainDelivery::Kind::kLmtp;
      if (out.lmtp_socket.empty() || out.lmtp_socket[0] != '/') {
        return Error{"delivery = \"lmtp\" needs lmtp_socket = \"/path/to/socket\""};
      }
    } else {
      return Error{"delivery must be maildir, mda or lmtp"};
    }
    return out;
  } catch (const toml::parse_error& e) {
    return Error{"line " + std::to_string(e.source().begin.line) + ": " +
                 std::string(e.description())};
  }
}

std::string aliases_file(const std::string& domains_dir, const std::string& domain) {
  return domains_dir + "/" + domain + "/aliases";
}

std::shared_ptr<const Domains> Domains::load(FileIo& io, const std::string& domains_dir,
                                             const std::vector<std::string>& configured,
                                             const proto::AliasOptions& options,
                                             std::vector<std::string>* problems) {
  auto d = std::make_shared<Domains>();
  d->options_ = options;
  d->local_.insert(configured.begin(), configured.end());
  std::vector<std::string> folders;
  (void)io.list_dir(domains_dir, &folders);  // none is fine: only the configured ones
  for (const auto& f : folders) {
    const std::string lower = proto::ascii_lower(f);
    if (proto::is_valid_domain(lower) && io.exists(domains_dir + "/" + f + "/."))
      d->local_.insert(lower);
  }
  for (const auto& domain : d->local_) {
    std::string text;
    const std::string users = users_file(domains_dir, domain);
    if (io.exists(users)) {
      d->with_files_.insert(domain);
      if (io.read_file(users, &text) != 0) {
        problems->push_back(users + ": cannot be read");
        d->broken_.insert(domain);
      } else if (auto db = UserDb::parse(text); !db) {
        problems->push_back(users + ": " + db.error());
        d->broken_.insert(domain);
      } else {
        auto& keys = d->users_[domain];
        for (const auto& name : db->names())
          keys[proto::normalize_local(name, options, false)] = name;
      }
    }
    const std::string settings = domains_dir + "/" + domain + "/domain.toml";
    if (io.exists(settings)) {
      text.clear();
      if (io.read_file(settings, &text) != 0) {
        problems->push_back(settings + ": cannot be read");
        d->broken_.insert(domain);
      } else if (auto dd = parse_domain_settings(text); !dd) {
        problems->push_back(settings + ": " + dd.error());
        d->broken_.insert(domain);
      } else {
        d->delivery_[domain] = std::move(*dd);
      }
    }
    const std::string aliases = aliases_file(domains_dir, domain);
    if (io.exists(aliases)) {
      d->with_files_.insert(domain);
      text.clear();
      if (io.read_file(aliases, &text) != 0) {
        problems->push_back(aliases + ": cannot be read");
        d->broken_.insert(domain);
      } else if (auto t = proto::AliasTable::parse(text, options.drop_chars); !t) {
        problems->push_back(aliases + ": " + t.error());
        d->broken_.insert(domain);
      } else {
        d->aliases_.emplace(domain, std::move(*t));
      }
    }
  }
  return d;
}

std::string Domains::fingerprint(const std::string& domains_dir) {
  std::string out;
  PosixFileIo io;
  std::vector<std::string> folders;
  io.list_dir(domains_dir, &folders);
  std::sort(folders.begin(), folders.end());
  for (const auto& f : folders) {
    out += f + "/";
    for (const char* name : {"/users", "/aliases"}) {
      struct stat st {};
      if (::stat((domains_dir + "/" + f + name).c_str(), &st) == 0) {
        out += std::string(name) + ":" + std::to_string(st.st_size) + ":" +
               std::to_string(st.st_mtim.tv_sec) + "." + std::to_string(st.st_mtim.tv_nsec);
      }
    }
    out += ";";
  }
  return out;
}

const DomainDelivery& Domains::delivery(const std::string& domain) const {
  static const DomainDelivery maildir;
  auto it = delivery_.find(domain);
  return it == delivery_.end() ? maildir : it->second;
}

const proto::AliasTable* Domains::aliases(const std::string& domain) const {
  auto it = aliases_.find(domain);
  return it == aliases_.end() ? nullptr : &it->second;
}

const std::string* Domains::find_user(const std::string& domain, const std::string& key) const {
  auto it = users_.find(domain);
  if (it == users_.end()) return nullptr;
  auto u = it->second.find(key);
  return u == it->second.end() ? nullptr : &u->second;
}

bool Domains::accepts_any_mailbox(const std::string& domain) const {
  return local_.count(domain) > 0 && with_files_.count(domain) == 0;
}

}  // namespace ringmail::storage
