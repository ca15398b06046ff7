#include "tools/dkim.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <ctime>

#include "proto/address.h"
#include "proto/dkim.h"
#include "proto/sasl.h"
#include "storage/durable_file.h"
#include "tls/dkim_key.h"

namespace ringmail::tools {

namespace {

int fail(const std::string& why) {
  std::fprintf(stderr, "ringmail: %s\n", why.c_str());
  return 1;
}

bool valid_selector(const std::string& s) {
  if (s.empty() || s.size() > 63 || s.front() == '-' || s.back() == '-') return false;
  for (char c : s) {
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_')) return false;
  }
  return true;
}

}  // namespace

std::string dkim_record(const tls::DkimKey& k) {
  const auto alg = k.type() == tls::DkimKey::Type::kRsa ? proto::dkim::Algorithm::kRsaSha256
                                                        : proto::dkim::Algorithm::kEd25519Sha256;
  return proto::dkim::dns_record(alg, proto::base64_encode(k.public_key()));
}

std::string default_selector(bool ed25519) {
  char stamp[16];
  const std::time_t now = std::time(nullptr);
  std::strftime(stamp, sizeof stamp, "%Y%m%d", std::gmtime(&now));
  return std::string(stamp) + (ed25519 ? "-ed25519" : "");
}

Result<MadeKey> dkim_make_key(const std::string& domains_dir, const std::string& domain,
                              std::string selector, const std::string& algo) {
  tls::DkimKey::Type type;
  int bits = 0;
  if (algo == "rsa2048" || algo == "rsa3072") {
    type = tls::DkimKey::Type::kRsa;
    bits = algo == "rsa2048" ? 2048 : 3072;
  } else if (algo == "ed25519") {
    type = tls::DkimKey::Type::kEd25519;
  } else {
    return Error{"--algo must be rsa2048, rsa3072 or ed25519"};
  }
  if (selector.empty()) selector = default_selector(type == tls::DkimKey::Type::kEd25519);
  if (!valid_selector(selector)) {
    return Error{"'" + selector + "' is not a selector (letters, digits, - and _)"};
  }
  const auto generated = tls::DkimKey::generate_pem(type, bits);
  if (!generated) return Error{generated.error()};
  const std::string& pem = *generated;
  const std::string dir = domains_dir + "/" + domain;
  if (::mkdir(domains_dir.c_str(), 0755) != 0 && errno != EEXIST) {
    return Error{"cannot create " + domains_dir + ": " + std::strerror(errno)};
  }
  if (::mkdir(dir.c_str(), 0755) != 0 && errno != EEXIST) {
    return Error{"cannot create " + dir + ": " + std::strerror(errno)};
  }
  const std::string path = tls::dkim_key_path(domains_dir, domain, selector);
  // Never over an existing key: a published selector keeps its key.
  if (const int r = storage::write_durable_file(path, pem, 0600, storage::Existing::kRefuse);
      r < 0) {
    return Error{r == -EEXIST ? path + " exists already: choose another --selector"
                              : "cannot create " + path + ": " + std::strerror(-r)};
  }
  auto key = tls::DkimKey::from_pem(pem);
  if (!key) return Error{key.error()};
  return MadeKey{path, proto::dkim::zone_line(selector, domain, dkim_record(**key))};
}

int dkim_keygen(const std::string& domains_dir, const std::string& domain_in, std::string selector,
                const std::string& algo) {
  const std::string domain = proto::ascii_lower(domain_in);
  if (!proto::is_valid_domain(domain)) return fail("'" + domain_in + "' is not a domain name");
  const auto made = dkim_make_key(domains_dir, domain, selector, algo);
  if (!made) return fail(made.error());
  std::fprintf(stderr, "wrote %s (%s, mode 0600); publish this record, then reload ringmaild:\n",
               made->path.c_str(), algo.c_str());
  std::printf("%s\n", made->zone_line.c_str());
  return 0;
}

int dkim_dns(const std::string& domains_dir, const std::string& domain_in) {
  const std::string domain = proto::ascii_lower(domain_in);
  const auto files = tls::list_dkim_key_files(domains_dir, domain);
  if (files.empty()) {
    return fail("no DKIM key for " + domain + " (" + domains_dir + "/" + domain +
                "/dkim:<selector>.pem); make one with: ringmail dkim-keygen " + domain);
  }
  int rc = 0;
  for (const auto& f : files) {
    auto key = tls::DkimKey::load(f.path);
    if (!key) {
      rc = fail(key.error());
      continue;
    }
    std::printf("%s\n", proto::dkim::zone_line(f.selector, domain, dkim_record(**key)).c_str());
  }
  return rc;
}

}  // namespace ringmail::tools
