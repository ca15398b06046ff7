// Who a shard takes mail for and where it goes: local domains, users and
// aliases (storage::Domains), and SRS, both for bounces coming back to a
// forwarded sender and for the sender of mail relayed out. One per shard,
// replaced piecewise on reload; everything here runs on the shard's thread.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "config/config.h"
#include "engine/clock.h"
#include "proto/address.h"
#include "proto/smtp_server.h"
#include "proto/srs.h"
#include "storage/domains.h"

namespace ringmail::engine {

class RecipientPolicy {
 public:
  // `clock` dates SRS addresses and checks their age.
  RecipientPolicy(std::shared_ptr<const config::Config> cfg, const Clock& clock)
      : cfg_(std::move(cfg)), clock_(clock) {}

  void set_config(std::shared_ptr<const config::Config> cfg) { cfg_ = std::move(cfg); }
  // Users and aliases (without them, local_domains take any mailbox name).
  void set_domains(std::shared_ptr<const storage::Domains> d) { domains_ = std::move(d); }
  // SRS (null: senders go out as they are, SRS addresses are not ours).
  void set_srs(std::shared_ptr<const proto::srs::Config> s) { srs_ = std::move(s); }
  const storage::Domains* domains() const { return domains_.get(); }

  // `domain` in lower case.
  bool is_local_domain(std::string_view domain) const;
  // RCPT of a local address: "" to take it, else the reply (550 unknown
  // user or bad SRS address; 451 while its users or aliases file is broken).
  std::string check_local_recipient(const proto::Address& a) const;
  // The recipients a message is stored for: local ones through the aliases
  // (users' mailboxes, outside addresses, pipe aliases), SRS addresses
  // turned back into the original sender, each once.
  std::vector<proto::Address> expand_recipients(const proto::Envelope& env) const;
  // The envelope sender of mail relayed out: an SRS address of ours for a
  // sender of another domain, else `from` as it is.
  proto::Address outbound_sender(const proto::Address& from) const;

 private:
  // kNotSrs when `a` is not one of our SRS addresses, else the reversal's
  // outcome and the address it goes back to.
  proto::srs::Error srs_reverse(const proto::Address& a, std::string* original) const;

  std::shared_ptr<const config::Config> cfg_;
  const Clock& clock_;
  std::shared_ptr<const storage::Domains> domains_;
  std::shared_ptr<const proto::srs::Config> srs_;
};

}  // namespace ringmail::engine
