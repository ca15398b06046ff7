#include "engine/dkim.h"

#include <algorithm>
#include <atomic>
#include <chrono>

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
    auto k = tls::DkimKey::load(f.path);
    if (!k) {
      problems->push_back(k.error());
      continue;
    }
    DkimSigner s;
    s.domain = proto::ascii_lower(f.domain);
    s.selector = f.selector;
    s.key = std::move(*k);
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

namespace {

// The signature fields for a message with these header fields and this
// relaxed body hash, into *fields (the caller's buffer: a connection's
// signing job reuses its capacity from message to message).
Result<void> sign_with_hash(const std::vector<proto::dkim::HeaderField>& header,
                            const tls::Sha256Digest& bh, const std::vector<DkimSigner>& keys,
                            int64_t now_unix, std::string* fields) {
  const std::string bh64 =
      proto::base64_encode(std::string_view(reinterpret_cast<const char*>(bh.data()), bh.size()));
  fields->clear();
  for (const auto& k : keys) {
    proto::dkim::SignatureParams p;
    p.algorithm = k.key->type() == tls::DkimKey::Type::kRsa
                      ? proto::dkim::Algorithm::kRsaSha256
                      : proto::dkim::Algorithm::kEd25519Sha256;
    p.domain = k.domain;
    p.selector = k.selector;
    p.timestamp = now_unix;
    p.headers = proto::dkim::choose_signed_headers(header, proto::dkim::default_signed_headers());
    p.body_hash_b64 = bh64;
    const std::string field = proto::dkim::signature_field(p);
    const std::string data = proto::dkim::signed_header_data(header, p.headers, field);
    const auto sig = k.key->sign(data);
    if (!sig) return Error{k.domain + " selector " + k.selector + ": " + sig.error()};
    *fields += field + proto::dkim::fold_b64(proto::base64_encode(*sig), 70) + "\r\n";
  }
  return {};
}

}  // namespace

struct DkimBodyHasher::Stream {
  bool relaxed;
  int64_t length;
  uint64_t left;  // bytes l= still lets in
  tls::Sha256Deferred hash;
  std::unique_ptr<proto::dkim::RelaxedBody> relaxed_canon;
  std::unique_ptr<proto::dkim::SimpleBody> simple_canon;
  tls::Sha256Digest digest{};

  Stream(bool r, int64_t l, bool defer, tls::Sha256Backend b)
      : relaxed(r), length(l), left(l < 0 ? UINT64_MAX : static_cast<uint64_t>(l)), hash(defer, b) {
    auto sink = [this](std::string_view s) {
      const size_t n = static_cast<size_t>(std::min<uint64_t>(left, s.size()));
      if (n == 0) return;
      hash.add(s.substr(0, n));
      left -= n;
    };
    if (relaxed) {
      relaxed_canon = std::make_unique<proto::dkim::RelaxedBody>(sink);
    } else {
      simple_canon = std::make_unique<proto::dkim::SimpleBody>(sink);
    }
  }
  void feed(std::string_view s) { relaxed ? relaxed_canon->feed(s) : simple_canon->feed(s); }
  void finish() {
    relaxed ? relaxed_canon->finish() : simple_canon->finish();
    digest = hash.finish();
  }
};

DkimBodyHasher::DkimBodyHasher(bool sign, bool verify, bool defer, tls::Sha256Backend backend)
    : sign_(sign), verify_(verify), defer_(defer), backend_(backend) {}

DkimBodyHasher::~DkimBodyHasher() = default;

void DkimBodyHasher::start_body(std::string_view m) {
  auto add = [this](bool relaxed, int64_t length) {
    for (const auto& s : streams_) {
      if (s->relaxed == relaxed && s->length == length) return;
    }
    streams_.push_back(std::make_unique<Stream>(relaxed, length, defer_, backend_));
  };
  if (sign_) add(true, -1);
  if (verify_) {
    for (const DkimCheck& c : dkim_find(m.substr(0, start_.offset()))) {
      if (c.result.empty()) add(c.sig.body_relaxed, c.sig.length);
    }
  }
  fed_ = start_.offset();
}

void DkimBodyHasher::update(std::string_view m) {
  if (finished_) return;
  if (!start_.found()) {
    if (!start_.scan(m)) return;
    start_body(m);
  }
  if (m.size() <= fed_) return;
  for (auto& s : streams_) s->feed(m.substr(fed_));
  fed_ = m.size();
}

void DkimBodyHasher::finish(std::string_view m) {
  if (finished_) return;
  update(m);
  if (!start_.found()) {
    start_.finish(m);
    start_body(m);
    for (auto& s : streams_) s->feed(m.substr(fed_));
  }
  for (auto& s : streams_) s->finish();
  finished_ = true;
}

const tls::Sha256Digest* DkimBodyHasher::find(bool relaxed, int64_t length) const {
  if (!finished_) return nullptr;
  for (const auto& s : streams_) {
    if (s->relaxed == relaxed && s->length == length) return &s->digest;
  }
  return nullptr;
}

void DkimBodyHasher::jobs(std::vector<tls::Sha256Deferred*>* out) {
  if (finished_) return;
  for (auto& s : streams_) out->push_back(&s->hash);
}

Result<std::string> dkim_sign(std::string_view message, const std::vector<DkimSigner>& keys,
                              int64_t now_unix, tls::Sha256Backend backend) {
  size_t body_off = 0;
  const auto header = proto::dkim::split_header(message, &body_off);
  DkimBodyHasher body(true, false, false, backend);
  body.finish(message);
  std::string fields;
  if (auto made = sign_with_hash(header, *body.find(true, -1), keys, now_unix, &fields); !made) {
    return Error{made.error()};
  }
  return fields;
}

namespace {
std::atomic<bool> g_batching{false};
}

bool dkim_batching() { return g_batching.load(std::memory_order_relaxed); }

double calibrate_dkim_batching(tls::Sha256Backend configured) {
  g_batching = false;
  if (!tls::cpu_features().avx512 || configured == tls::Sha256Backend::kWolfCrypt ||
      configured == tls::Sha256Backend::kShaNi) {
    return 0;  // not there, or a single-stream backend was asked for
  }
  std::vector<std::string> bodies(16, std::string(8192, 'x'));
  std::vector<std::string_view> views(bodies.begin(), bodies.end());
  for (size_t i = 0; i < 16; ++i) bodies[i][i] = 'y';
  std::vector<tls::Sha256Digest> out(16);
  auto time = [](auto&& f) {
    double best = 1e9;
    for (int r = 0; r < 15; ++r) {
      const auto t0 = std::chrono::steady_clock::now();
      f();
      best = std::min(best,
                      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    }
    return best;
  };
  const double one = time([&] {
    for (size_t i = 0; i < 16; ++i) out[i] = tls::Sha256Job::hash(views[i], configured);
  });
  const double lanes =
      time([&] { tls::sha256_many(views.data(), 16, out.data(), tls::Sha256Backend::kAvx512x16); });
  const double gain = lanes > 0 ? one / lanes : 0;
  // avx512x16 in the configuration forces the batches (tests use it).
  g_batching = gain >= 1.2 || configured == tls::Sha256Backend::kAvx512x16;
  return gain;
}

void start_dkim_sign(storage::FileIo& io, DkimSignJob* job) {
  job->kind = storage::BlockingOp::Kind::kCall;
  job->work = [](storage::BlockingOp* op) {
    auto* j = static_cast<DkimSignJob*>(op);
    size_t body_off = 0;
    const auto header = proto::dkim::split_header(j->message, &body_off);
    const auto made = sign_with_hash(header, j->body_hash, j->keys, j->now_unix, &j->fields);
    if (made) return 0;
    j->error = made.error();
    return -EIO;
  };
  job->done = [](storage::BlockingOp* op, int result) {
    auto* j = static_cast<DkimSignJob*>(op);
    j->on_result(j, result == 0);
  };
  io.submit(job);
}

}  // namespace ringmail::engine

namespace ringmail::engine {

std::vector<DkimCheck> dkim_find(std::string_view message) {
  std::vector<DkimCheck> out;
  size_t body;
  const auto fields = proto::dkim::split_header(message, &body);
  for (size_t i = 0; i < fields.size() && out.size() < kDkimMaxSignatures; ++i) {
    if (!proto::iequals(fields[i].name, "dkim-signature")) continue;
    DkimCheck c;
    c.field = i;
    if (auto sig = proto::dkim::parse_signature(fields[i].value)) {
      c.sig = std::move(*sig);
    } else {
      c.result = "permerror";
      c.reason = sig.error();
    }
    out.push_back(std::move(c));
  }
  return out;
}

void dkim_verify(std::string_view message, std::vector<DkimCheck>* checks, int64_t now_unix,
                 tls::Sha256Backend backend, const DkimBodyHasher* hashed) {
  size_t body_off;
  const auto fields = proto::dkim::split_header(message, &body_off);
  std::unique_ptr<DkimBodyHasher> here;
  for (auto& c : *checks) {
    if (!c.result.empty()) continue;  // decided already (syntax)
    const auto& s = c.sig;
    if (s.expires >= 0 && s.expires < now_unix) {
      c.result = "fail";
      c.reason = "signature expired";
      continue;
    }
    if (c.key.status == DnsStatus::kTempFail) {
      c.result = "temperror";
      c.reason = "key lookup failed for now";
      continue;
    }
    if (c.key.status != DnsStatus::kOk || c.key.records.empty()) {
      c.result = "permerror";
      c.reason = "no key at " + c.key_name();
      continue;
    }
    if (c.key.records.size() != 1) {
      c.result = "permerror";
      c.reason = "several key records";
      continue;
    }
    auto record = proto::dkim::parse_key_record(c.key.records[0]);
    if (!record) {
      c.result = "permerror";
      c.reason = record.error();
      continue;
    }
    const proto::dkim::KeyRecord& k = *record;
    if (k.public_key.empty()) {
      c.result = "fail";
      c.reason = "key revoked";
      continue;
    }
    if (k.ed25519 != (s.algorithm == proto::dkim::Algorithm::kEd25519Sha256) || !k.sha256_allowed) {
      c.result = "permerror";
      c.reason = "key does not match a=";
      continue;
    }
    const tls::Sha256Digest* bh =
        hashed != nullptr ? hashed->find(s.body_relaxed, s.length) : nullptr;
    if (bh == nullptr) {
      if (here == nullptr) {
        here = std::make_unique<DkimBodyHasher>(false, true, false, backend);
        here->finish(message);
      }
      bh = here->find(s.body_relaxed, s.length);
    }
    if (bh == nullptr) {  // cannot happen: both read the same DKIM-Signature fields
      c.result = "temperror";
      c.reason = "body hash not computed";
      continue;
    }
    if (std::string_view(reinterpret_cast<const char*>(bh->data()), bh->size()) != s.body_hash) {
      c.result = "fail";
      c.reason = "body hash mismatch";
      continue;
    }
    const std::string sig_field = proto::dkim::without_b_value(fields[c.field]);
    const std::string data =
        proto::dkim::signed_header_data(fields, s.headers, sig_field, s.header_relaxed);
    if (auto v = tls::dkim_verify_with(k.ed25519, k.public_key, data, s.signature); !v) {
      c.result = "fail";
      c.reason = v.error();
      continue;
    }
    c.result = "pass";
  }
}

std::string authentication_results(const std::string& authserv_id,
                                   const std::vector<DkimCheck>& checks,
                                   const std::vector<std::string>& more) {
  std::vector<std::string> parts;
  if (checks.empty()) parts.push_back("dkim=none");
  for (const auto& c : checks) {
    std::string p = "dkim=" + (c.result.empty() ? std::string("neutral") : c.result);
    if (c.result != "pass" && !c.reason.empty()) {
      std::string r = c.reason;
      for (char& ch : r) {
        if (ch == '(' || ch == ')' || ch == '\\' || ch == '\r' || ch == '\n') ch = ' ';
      }
      p += " (" + r + ")";
    }
    if (!c.sig.domain.empty()) {
      p += " header.d=" + c.sig.domain + " header.s=" + c.sig.selector +
           " header.a=" + proto::dkim::algorithm_name(c.sig.algorithm) +
           " header.b=" + c.sig.b_tag.substr(0, 8);
    }
    parts.push_back(std::move(p));
  }
  parts.insert(parts.end(), more.begin(), more.end());
  std::string out = "Authentication-Results: " + authserv_id + ";";
  // One method per line: a single "dkim=none" stays on the first.
  if (parts.size() == 1 && checks.empty()) return out + " " + parts[0] + "\r\n";
  for (size_t i = 0; i < parts.size(); ++i)
    out += "\r\n\t" + parts[i] + (i + 1 < parts.size() ? ";" : "");
  return out + "\r\n";
}

void remove_forged_results(std::string* message, const std::string& authserv_id) {
  size_t body;
  const auto fields = proto::dkim::split_header(*message, &body);
  // From the last so that earlier offsets stay right.
  for (size_t i = fields.size(); i-- > 0;) {
    const auto& f = fields[i];
    if (!proto::iequals(f.name, "authentication-results")) continue;
    std::string_view v = f.value;
    while (!v.empty() &&
           (v.front() == ' ' || v.front() == '\t' || v.front() == '\r' || v.front() == '\n')) {
      v.remove_prefix(1);
    }
    const std::string_view id = v.substr(0, v.find_first_of("; \t\r\n"));
    if (!proto::iequals(id, authserv_id)) continue;
    const size_t start = static_cast<size_t>(f.name.data() - message->data());
    const size_t end = static_cast<size_t>(f.value.data() + f.value.size() - message->data()) + 2;
    message->erase(start, end - start);
  }
}

void start_dkim_verify(storage::FileIo& io, DkimVerifyJob* job) {
  job->kind = storage::BlockingOp::Kind::kCall;
  job->work = [](storage::BlockingOp* op) {
    auto* j = static_cast<DkimVerifyJob*>(op);
    dkim_verify(j->message, &j->checks, j->now_unix, j->backend, j->hashed);
    return 0;
  };
  job->done = [](storage::BlockingOp* op, int) {
    auto* j = static_cast<DkimVerifyJob*>(op);
    j->on_result(j);
  };
  io.submit(job);
}

}  // namespace ringmail::engine
