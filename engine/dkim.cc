#include "engine/dkim.h"

#include <algorithm>

#include "proto/dkim.h"
#include "proto/sasl.h"

namespace ringmail::engine {

namespace {

// The domain of the first address in a From field's value.
std::string from_domain(std::string_view v) {
  const size_t lt = v.find('<');
  if (lt != std::string_view::npos) {
    const size_t gt = v.find('>', lt);
    v = v.substr(lt + 1, gt == std::string_view::npos ? std::string_view::npos : gt - lt - 1);
  }
  const size_t at = v.rfind('@');
  if (at == std::string_view::npos) return "";
  std::string_view d = v.substr(at + 1);
  const size_t end = d.find_first_of(" \t\r\n,;>()");
  d = d.substr(0, end);
  return proto::ascii_lower(d);
}

}  // namespace

std::shared_ptr<const DkimKeys> DkimKeys::load(const std::string& domains_dir,
                                               std::vector<std::string>* problems) {
  auto keys = std::make_shared<DkimKeys>();
  for (const auto& f : tls::list_dkim_key_files(domains_dir)) {
    std::string err;
    auto k = tls::DkimKey::load(f.path, &err);
    if (k == nullptr) {
      problems->push_back(err);
      continue;
    }
    DkimSigner s;
    s.domain = proto::ascii_lower(f.domain);
    s.selector = f.selector;
    s.key = std::move(k);
    s.path = f.path;
    keys->by_domain_[s.domain].push_back(std::move(s));
    ++keys->count_;
  }
  return keys;
}

const std::vector<DkimSigner>* DkimKeys::find(const std::string& domain) const {
  auto it = by_domain_.find(domain);
  return it == by_domain_.end() ? nullptr : &it->second;
}

std::string signing_domain(std::string_view message, const proto::Address& env_from,
                           const DkimKeys& keys) {
  size_t body;
  for (const auto& f : proto::dkim::split_header(message, &body)) {
    if (!proto::iequals(f.name, "from")) continue;
    std::string d = from_domain(f.value);
    if (!d.empty() && keys.find(d) != nullptr) return d;
    break;
  }
  if (!env_from.is_null()) {
    std::string d = proto::ascii_lower(env_from.domain);
    if (keys.find(d) != nullptr) return d;
  }
  return "";
}

bool dkim_sign(std::string_view message, const std::vector<DkimSigner>& keys, int64_t now_unix,
               tls::Sha256Backend backend, std::string* fields, std::string* error) {
  size_t body_off = 0;
  const auto header = proto::dkim::split_header(message, &body_off);
  tls::Sha256Job body_hash(backend);
  proto::dkim::RelaxedBody canon([&](std::string_view s) { body_hash.update(s); });
  canon.feed(message.substr(body_off));
  canon.finish();
  const auto bh = body_hash.finish();
  const std::string bh64 =
      proto::base64_encode(std::string_view(reinterpret_cast<const char*>(bh.data()), bh.size()));
  fields->clear();
  for (const auto& k : keys) {
    proto::dkim::SignatureParams p;
    p.algorithm = k.key->type() == tls::DkimKey::Type::kRsa ? proto::dkim::Algorithm::kRsaSha256
                                                             : proto::dkim::Algorithm::kEd25519Sha256;
    p.domain = k.domain;
    p.selector = k.selector;
    p.timestamp = now_unix;
    p.headers = proto::dkim::choose_signed_headers(header, proto::dkim::default_signed_headers());
    p.body_hash_b64 = bh64;
    const std::string field = proto::dkim::signature_field(p);
    const std::string data = proto::dkim::signed_header_data(header, p.headers, field);
    std::string sig;
    if (!k.key->sign(data, &sig, error)) {
      *error = k.domain + " selector " + k.selector + ": " + *error;
      return false;
    }
    *fields += field + proto::dkim::fold_b64(proto::base64_encode(sig), 70) + "\r\n";
  }
  return true;
}

void start_dkim_sign(storage::FileIo& io, DkimSignJob* job) {
  job->kind = storage::BlockingOp::Kind::kCall;
  job->work = [](storage::BlockingOp* op) {
    auto* j = static_cast<DkimSignJob*>(op);
    return dkim_sign(j->message, j->keys, j->now_unix, j->backend, &j->fields, &j->error) ? 0 : -EIO;
  };
  job->done = [](storage::BlockingOp* op, int result) {
    auto* j = static_cast<DkimSignJob*>(op);
    j->on_result(j, result == 0);
  };
  io.submit(job);
}

}  // namespace ringmail::engine
