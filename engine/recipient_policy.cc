#include "engine/recipient_policy.h"

#include <algorithm>
#include <ctime>

#include "engine/log.h"
#include "proto/replies.h"

namespace ringmail::engine {

bool RecipientPolicy::is_local_domain(std::string_view domain) const {
  if (domains_) return domains_->is_local_domain(std::string(domain));
  return cfg_->local_domains.count(std::string(domain)) > 0;
}

proto::srs::Error RecipientPolicy::srs_reverse(const proto::Address& a,
                                               std::string* original) const {
  if (!srs_ || !proto::iequals(a.domain, srs_->domain) || !proto::srs::is_srs(a.to_string())) {
    return proto::srs::Error::kNotSrs;
  }
  return proto::srs::reverse(*srs_, a.local + "@" + proto::ascii_lower(a.domain), clock_.wall_s(),
                             original);
}

std::string RecipientPolicy::check_local_recipient(const proto::Address& a) const {
  const std::string domain = proto::ascii_lower(a.domain);
  std::string original;
  switch (const auto e = srs_reverse(a, &original)) {
    case proto::srs::Error::kNotSrs:
      break;
    case proto::srs::Error::kNone:
      return "";  // a bounce of forwarded mail: it goes back to `original`
    default:
      log_line("srs: refused <" + a.to_string() + ">: " + proto::srs::to_string(e));
      return proto::reply::bad_srs_address(proto::srs::to_string(e));
  }
  if (!domains_) return proto::mailbox_name(a.local) ? "" : std::string(proto::reply::kNoSuchUser);
  if (domains_->broken(domain)) {
    return std::string(proto::reply::kDomainFilesBroken);
  }
  const proto::Resolution r = domains_->resolve(a.local, domain);
  switch (r.status) {
    case proto::Resolution::Status::kOk:
      break;
    case proto::Resolution::Status::kUnknown:
      return std::string(proto::reply::kNoSuchUser);
    case proto::Resolution::Status::kLoop:
    case proto::Resolution::Status::kTooDeep:
      log_line("aliases: " + a.to_string() + " cannot be resolved: " +
               (r.status == proto::Resolution::Status::kLoop ? "a loop at " : "too deep at ") +
               r.detail);
      return std::string(proto::reply::kAliasesBroken);
  }
  for (const auto& d : r.destinations) {
    if (d.kind == proto::Destination::Kind::kMailbox &&
        !proto::mailbox_name(std::string_view(d.address).substr(0, d.address.rfind('@')))) {
      return std::string(proto::reply::kNoSuchUser);
    }
  }
  return "";
}

std::vector<proto::Address> RecipientPolicy::expand_recipients(const proto::Envelope& env) const {
  std::vector<proto::Address> out;
  auto add = [&out](proto::Address a) {
    for (const auto& o : out) {
      if (o.local == a.local && proto::iequals(o.domain, a.domain)) return;
    }
    out.push_back(std::move(a));
  };
  for (const auto& rcpt : env.rcpts) {
    const std::string domain = proto::ascii_lower(rcpt.domain);
    std::string original;
    if (srs_reverse(rcpt, &original) == proto::srs::Error::kNone) {
      const size_t at = original.rfind('@');
      proto::Address back;
      back.local = original.substr(0, at);
      back.domain = original.substr(at + 1);
      log_line("srs id=" + env.id + " <" + rcpt.to_string() + "> -> <" + original + ">");
      add(std::move(back));
      continue;
    }
    if (!domains_ || !domains_->is_local_domain(domain)) {
      add(rcpt);
      continue;
    }
    const proto::Resolution r = domains_->resolve(rcpt.local, domain);
    if (r.status != proto::Resolution::Status::kOk) {
      add(rcpt);  // changed since RCPT (a reload): kept as it was accepted
      continue;
    }
    std::string line;
    for (const auto& d : r.destinations) {
      const size_t at = d.address.rfind('@');
      proto::Address a;
      a.local = d.address.substr(0, at);
      a.domain = d.address.substr(at + 1);
      a.utf8 = std::any_of(d.address.begin(), d.address.end(), [](char c) { return c & 0x80; });
      line += (line.empty() ? "" : ", ") +
              (d.kind == proto::Destination::Kind::kPipe ? "|" + d.command : d.address);
      add(std::move(a));
    }
    if (r.destinations.size() != 1 ||
        r.destinations[0].address != proto::ascii_lower(rcpt.to_string())) {
      log_line("aliases id=" + env.id + " <" + rcpt.to_string() + "> -> " + line);
    }
  }
  return out;
}

proto::Address RecipientPolicy::outbound_sender(const proto::Address& from) const {
  if (!srs_ || from.is_null() || is_local_domain(proto::ascii_lower(from.domain))) return from;
  std::string out;
  const auto e = proto::srs::forward(*srs_, from.local + "@" + from.domain, clock_.wall_s(), &out);
  if (e != proto::srs::Error::kNone) return from;
  proto::Address a;
  a.local = out.substr(0, out.rfind('@'));
  a.domain = out.substr(out.rfind('@') + 1);
  return a;
}

}  // namespace ringmail::engine
