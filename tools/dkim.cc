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

void print_record(const std::string& domain, const std::string& selector, const tls::DkimKey& k) {
  const auto alg = k.type() == tls::DkimKey::Type::kRsa ? proto::dkim::Algorithm::kRsaSha256
                                                       : proto::dkim::Algorithm::kEd25519Sha256;
  const std::string record = proto::dkim::dns_record(alg, proto::base64_encode(k.public_key()));
  std::printf("%s\n", proto::dkim::zone_line(selector, domain, record).c_str());
}

}  // namespace

int dkim_keygen(const std::string& domains_dir, const std::string& domain_in, std::string selector,
                const std::string& algo) {
  const std::string domain = proto::ascii_lower(domain_in);
  if (!proto::is_valid_domain(domain)) return fail("'" + domain_in + "' is not a domain name");
  tls::DkimKey::Type type;
  int bits = 0;
  if (algo == "rsa2048" || algo == "rsa3072") {
    type = tls::DkimKey::Type::kRsa;
    bits = algo == "rsa2048" ? 2048 : 3072;
  } else if (algo == "ed25519") {
    type = tls::DkimKey::Type::kEd25519;
  } else {
    return fail("--algo must be rsa2048, rsa3072 or ed25519");
  }
  if (selector.empty()) {
    char stamp[16];
    const std::time_t now = std::time(nullptr);
    std::strftime(stamp, sizeof stamp, "%Y%m%d", std::gmtime(&now));
    selector = stamp;
    if (type == tls::DkimKey::Type::kEd25519) selector += "-ed25519";
  }
  if (!valid_selector(selector)) return fail("'" + selector + "' is not a selector (letters, digits, - and _)");
  std::string err;
  const std::string pem = tls::DkimKey::generate_pem(type, bits, &err);
  if (pem.empty()) return fail(err);
  const std::string dir = domains_dir + "/" + domain;
  if (::mkdir(domains_dir.c_str(), 0755) != 0 && errno != EEXIST) {
    return fail("cannot create " + domains_dir + ": " + std::strerror(errno));
  }
  if (::mkdir(dir.c_str(), 0755) != 0 && errno != EEXIST) {
    return fail("cannot create " + dir + ": " + std::strerror(errno));
  }
  const std::string path = tls::dkim_key_path(domains_dir, domain, selector);
  // Never over an existing key: a published selector keeps its key.
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) {
    return fail(errno == EEXIST ? path + " exists already: choose another --selector"
                                : "cannot create " + path + ": " + std::strerror(errno));
  }
  const bool ok = ::write(fd, pem.data(), pem.size()) == static_cast<ssize_t>(pem.size()) &&
                  ::fsync(fd) == 0;
  ::close(fd);
  if (!ok) {
    ::unlink(path.c_str());
    return fail("cannot write " + path);
  }
  auto key = tls::DkimKey::from_pem(pem, &err);
  if (key == nullptr) return fail(err);
  std::fprintf(stderr, "wrote %s (%s, mode 0600); publish this record, then reload ringmaild:\n",
               path.c_str(), type == tls::DkimKey::Type::kRsa ? algo.c_str() : "ed25519");
  print_record(domain, selector, *key);
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
    std::string err;
    auto key = tls::DkimKey::load(f.path, &err);
    if (key == nullptr) {
      rc = fail(err);
      continue;
    }
    print_record(domain, f.selector, *key);
  }
  return rc;
}

}  // namespace ringmail::tools
