// The domains folder, read at once (docs/aliases.md): which domains are
// ours (listed in the configuration or having a folder under domains_dir),
// their users and their aliases. A snapshot, shared read-only by the
// shards and replaced whole on reload or when a file changes; tools read
// the same one to show what the daemon does.
#pragma once

#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "proto/aliases.h"
#include "proto/result.h"
#include "storage/file_io.h"

namespace ringmail::storage {

// How a domain's mailboxes get their mail (<domain>/domain.toml):
//   delivery = "maildir"                      the default: <data_dir>/mail/<domain>/<user>/Maildir
//   delivery = "mda"   mda = "/usr/bin/maildrop -d ${USER}@${DOMAIN}"
//   delivery = "lmtp"  lmtp_socket = "/run/dovecot/lmtp"
struct DomainDelivery {
  enum class Kind : uint8_t { kMaildir, kMda, kLmtp };
  Kind kind = Kind::kMaildir;
  std::string mda;          // run by /bin/sh -c with SENDER, RECIPIENT, USER, DOMAIN set
  std::string lmtp_socket;  // a UNIX socket (Dovecot's lmtp service)
};

class Domains final : public proto::AliasDirectory {
 public:
  // `configured`: the configuration's local_domains (lower case). A file
  // that cannot be read or parsed goes into `problems` and marks its domain
  // broken (see broken()).
  static std::shared_ptr<const Domains> load(FileIo& io, const std::string& domains_dir,
                                             const std::vector<std::string>& configured,
                                             const proto::AliasOptions& options,
                                             std::vector<std::string>* problems);
  // What the files look like now (names, sizes, modification times):
  // different from the last load's means a reload is due.
  static std::string fingerprint(const std::string& domains_dir);

  bool is_local_domain(const std::string& domain) const override {
    return local_.count(domain) > 0;
  }
  const proto::AliasTable* aliases(const std::string& domain) const override;
  const std::string* find_user(const std::string& domain, const std::string& key) const override;
  bool accepts_any_mailbox(const std::string& domain) const override;
  // Its users or aliases file is there and wrong: mail for it waits (4xx)
  // until the file is fixed, rather than bouncing or landing elsewhere.
  bool broken(const std::string& domain) const { return broken_.count(domain) > 0; }
  // Its domain.toml's delivery (Maildir when it has none).
  const DomainDelivery& delivery(const std::string& domain) const;

  proto::Resolution resolve(const std::string& local, const std::string& domain) const {
    return proto::resolve_alias(local, domain, *this, options_);
  }
  const proto::AliasOptions& options() const { return options_; }
  const std::set<std::string>& domains() const { return local_; }

 private:
  proto::AliasOptions options_;
  std::set<std::string> local_;
  std::set<std::string> with_files_;  // a users or aliases file
  std::set<std::string> broken_;
  std::map<std::string, proto::AliasTable> aliases_;
  std::map<std::string, std::map<std::string, std::string>> users_;  // domain -> key -> name
  std::map<std::string, DomainDelivery> delivery_;
};

std::string aliases_file(const std::string& domains_dir, const std::string& domain);
// domain.toml's text, or a reason.
Result<DomainDelivery> parse_domain_settings(std::string_view text);

}  // namespace ringmail::storage
