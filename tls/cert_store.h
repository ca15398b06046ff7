// The server's certificates, found by directory layout, and the choice of
// one per connection from its ClientHello (SNI, ECDSA support).
//
// Layouts recognised under each configured directory D (a certificate
// directory is any subdirectory S of D, or of D/live):
//   certbot   D/live/<name>/fullchain.pem + privkey.pem
//   acme.sh   D/<name>_ecc/fullchain.cer + <name>.key (ECDSA),
//             D/<name>/fullchain.cer + <name>.key (RSA)
//   plain     D/<name>/fullchain.pem + privkey.pem (chasquid's certs/ too)
// Which names a certificate serves comes from the certificate itself
// (subjectAltName, else CN), not from the folder name; a wildcard
// "*.example.com" serves one label below it.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "tls/client_hello.h"
#include "tls/context.h"

namespace ringmail::tls {

struct CertFiles {
  std::string cert;
  std::string key;
};

// Every certificate/key pair under `dirs`, in a stable (sorted) order.
// With `problems`: a line for each directory that is missing and each chain
// found without its key.
std::vector<CertFiles> find_cert_files(const std::vector<std::string>& dirs,
                                       std::vector<std::string>* problems = nullptr);

// The pairs' paths with their sizes and modification times: when this
// changes, a certificate was renewed (or added, or removed).
std::string cert_files_state(const std::vector<std::string>& dirs);

class CertStore {
 public:
  // Loads every pair found. A pair that fails to load is skipped with a line
  // in *problems (the rest still serve); on a reload, when `previous` had
  // loaded that pair, its old context stays in use instead (a broken renewal
  // does not take a working certificate away).
  static std::shared_ptr<const CertStore> load(const std::vector<std::string>& dirs,
                                               int64_t now_unix,
                                               std::shared_ptr<TicketKeys> tickets,
                                               std::vector<std::string>* problems,
                                               const CertStore* previous = nullptr);

  bool empty() const { return contexts_.empty(); }
  const std::vector<std::shared_ptr<const TlsContext>>& contexts() const { return contexts_; }

  // The context for a ClientHello: one covering its server name (exact
  // names before wildcards), ECDSA when the client can use it, RSA
  // otherwise; without a usable name, one covering `default_host`, else
  // the first loaded. Null only when the store is empty.
  std::shared_ptr<const TlsContext> pick(const ClientHelloInfo& hello,
                                         const std::string& default_host) const;

 private:
  std::vector<std::shared_ptr<const TlsContext>> contexts_;
};

// A self-signed ECDSA P-256 certificate for `host`, valid for `days` from
// `now_unix`, as PEM (for the embedded development configuration).
struct SelfSigned {
  std::string cert_pem;
  std::string key_pem;
};
Result<SelfSigned> make_self_signed(const std::string& host, int64_t now_unix, int days);

}  // namespace ringmail::tls
