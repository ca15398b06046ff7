// DKIM signing in the daemon: the keys of every domain (read from the
// domains directory at start and on SIGHUP), the choice of the signing
// domain, and the signing itself as a job on a backend worker thread
// (body canonicalization and hash, then one signature per key).
//
// Key files: <domains_dir>/<domain>/dkim:<selector>.pem, chasquid's naming;
// RSA or Ed25519, PKCS#8 or PKCS#1 PEM. A domain with an RSA and an Ed25519
// key gets both signatures (RFC 8463's advice).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "engine/resolver.h"
#include "proto/address.h"
#include "proto/dkim.h"
#include "storage/file_io.h"
#include "tls/dkim_key.h"
#include "tls/sha256.h"

namespace ringmail::engine {

struct DkimSigner {
  std::string domain;  // lower case
  std::string selector;
  std::shared_ptr<const tls::DkimKey> key;
  std::string path;
};

class DkimKeys {
 public:
  // Reads every key under `domains_dir`; a file that is not a usable key
  // is skipped with a line in `problems`.
  static std::shared_ptr<const DkimKeys> load(const std::string& domains_dir,
                                              std::vector<std::string>* problems);
  // The keys of `domain` (lower case), or null.
  const std::vector<DkimSigner>* find(const std::string& domain) const;
  size_t size() const { return count_; }
  const std::map<std::string, std::vector<DkimSigner>>& all() const { return by_domain_; }

 private:
  std::map<std::string, std::vector<DkimSigner>> by_domain_;
  size_t count_ = 0;
};

// The domain that signs `message`: its From header's domain when that has
// keys, else the envelope sender's; empty when neither has.
std::string signing_domain(std::string_view message, const proto::Address& env_from,
                           const DkimKeys& keys);

// The DKIM-Signature fields (each ending in CRLF) to put on top of
// `message` (CRLF line endings), one per key, or why a signature could not
// be made.
Result<std::string> dkim_sign(std::string_view message, const std::vector<DkimSigner>& keys,
                              int64_t now_unix, tls::Sha256Backend backend);

// The body hashes (RFC 6376 3.7) a message being received will need,
// computed as its bytes arrive, so the body is read once and never held a
// second time: relaxed for signing, and for verification those its
// DKIM-Signature fields ask for (c= body part and l=, known once the header
// is complete). Deferred hashing: the canonical bytes wait in
// tls::Sha256Deferred jobs for the shard to hash them (batched in the
// lanes with other connections' at the end of the loop turn).
class DkimBodyHasher {
 public:
  DkimBodyHasher(bool sign, bool verify, bool defer, tls::Sha256Backend backend);
  DkimBodyHasher(const DkimBodyHasher&) = delete;
  DkimBodyHasher& operator=(const DkimBodyHasher&) = delete;
  ~DkimBodyHasher();
  // `message_so_far` only grows: its new bytes are read.
  void update(std::string_view message_so_far);
  // The message is complete: every hash final.
  void finish(std::string_view message);
  // The finished hash for this body canonicalization and l= (-1: none);
  // null when it was not computed.
  const tls::Sha256Digest* find(bool relaxed, int64_t length) const;
  // The hash jobs (for the shard's batches).
  void jobs(std::vector<tls::Sha256Deferred*>* out);
  bool finished() const { return finished_; }
  bool queued = false;  // on its shard's list of hashers with bytes waiting

 private:
  struct Stream;
  void start_body(std::string_view message);
  bool sign_, verify_, defer_;
  tls::Sha256Backend backend_;
  proto::dkim::BodyStart start_;
  size_t fed_ = 0;  // message bytes read
  bool finished_ = false;
  std::vector<std::unique_ptr<Stream>> streams_;
};

// One or more signatures (one per key) for a message whose relaxed body
// hash is known, on a worker thread (storage::FileIo::submit). `message`
// (for its header) stays untouched by its owner until on_result runs on
// the owner's thread.
struct DkimSignJob : storage::BlockingOp {
  std::string_view message;
  tls::Sha256Digest body_hash{};
  std::vector<DkimSigner> keys;
  int64_t now_unix = 0;
  std::string fields;
  std::string error;
  void (*on_result)(DkimSignJob* job, bool ok) = nullptr;
};
void start_dkim_sign(storage::FileIo& io, DkimSignJob* job);
// Batching the lanes pays from this many jobs with blocks waiting at once
// (and needs AVX-512, or AVX2 without SHA-NI).
inline constexpr size_t kDkimBatchMin = 7;
// At start: times 16 bodies hashed one by one (SHA-NI or wolfCrypt) against
// the 16 lanes; batching is used only where the lanes win clearly. Returns
// the speed-up found (0 without AVX-512).
double calibrate_dkim_batching(tls::Sha256Backend configured);
bool dkim_batching();

// --- Verification of incoming mail (RFC 6376 6, results per RFC 8601) ---

struct DkimCheck {
  size_t field = 0;            // index of its DKIM-Signature field in the header
  proto::dkim::Signature sig;  // when parsed
  std::string result;          // pass fail neutral permerror temperror ("" until known)
  std::string reason;
  TxtAnswer key;  // the key record lookup
  std::string key_name() const { return sig.selector + "._domainkey." + sig.domain; }
};
// At most this many signatures are checked (the rest are ignored).
inline constexpr size_t kDkimMaxSignatures = 5;

// The signatures of `message`, parsed; those that cannot be parsed already
// carry permerror.
std::vector<DkimCheck> dkim_find(std::string_view message);
// With the key records fetched: body hashes and signatures (a worker's job).
// Body hashes come from `hashed` when it has them (computed as the message
// arrived), else they are computed here.
void dkim_verify(std::string_view message, std::vector<DkimCheck>* checks, int64_t now_unix,
                 tls::Sha256Backend backend, const DkimBodyHasher* hashed = nullptr);
// "Authentication-Results: <authserv_id>; dkim=..." with CRLF; dkim=none
// when there are no signatures.
// `more`: further method results ("spf=pass smtp.mailfrom=...",
// "dmarc=..."), each on its own line after the DKIM ones.
std::string authentication_results(const std::string& authserv_id,
                                   const std::vector<DkimCheck>& checks,
                                   const std::vector<std::string>& more = {});
// Removes Authentication-Results fields that claim to be ours (RFC 8601 5):
// nobody upstream may speak for us.
void remove_forged_results(std::string* message, const std::string& authserv_id);

struct DkimVerifyJob : storage::BlockingOp {
  std::string_view message;
  const DkimBodyHasher* hashed = nullptr;
  std::vector<DkimCheck> checks;
  int64_t now_unix = 0;
  tls::Sha256Backend backend = tls::Sha256Backend::kAuto;
  void (*on_result)(DkimVerifyJob* job) = nullptr;
};
void start_dkim_verify(storage::FileIo& io, DkimVerifyJob* job);

}  // namespace ringmail::engine
