#include "tls/cert_store.h"

#include <wolfssl/options.h>
#include <wolfssl/ssl.h>
#include <wolfssl/wolfcrypt/asn_public.h>
#include <wolfssl/wolfcrypt/ecc.h>
#include <wolfssl/wolfcrypt/random.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <system_error>

namespace ringmail::tls {

namespace {

namespace fs = std::filesystem;

bool is_file(const fs::path& p) {
  std::error_code ec;
  return fs::is_regular_file(p, ec);
}

// The pair in one certificate directory, if it has one. A chain without
// its key is a problem worth a line (a copy that forgot the key), not
// silence.
bool pair_in(const fs::path& dir, CertFiles* out, std::vector<std::string>* problems) {
  std::string name = dir.filename().string();
  if (name.size() > 4 && name.compare(name.size() - 4, 4, "_ecc") == 0)
    name.resize(name.size() - 4);
  for (const char* chain : {"fullchain.pem", "fullchain.cer"}) {
    if (!is_file(dir / chain)) continue;
    for (const std::string& key : {std::string("privkey.pem"), name + ".key"}) {
      if (is_file(dir / key)) {
        out->cert = (dir / chain).string();
        out->key = (dir / key).string();
        return true;
      }
    }
    if (problems != nullptr) {
      problems->push_back((dir / chain).string() + ": no key beside it (privkey.pem or " + name +
                          ".key)");
    }
  }
  return false;
}

void scan_dir(const fs::path& d, std::vector<CertFiles>* out, std::vector<std::string>* problems) {
  std::error_code ec;
  for (fs::directory_iterator it(d, ec), end; !ec && it != end; it.increment(ec)) {
    if (!it->is_directory(ec)) continue;
    CertFiles f;
    if (pair_in(it->path(), &f, problems)) out->push_back(std::move(f));
  }
}

}  // namespace

std::vector<CertFiles> find_cert_files(const std::vector<std::string>& dirs,
                                       std::vector<std::string>* problems) {
  std::vector<CertFiles> out;
  for (const auto& d : dirs) {
    std::error_code ec;
    if (problems != nullptr && !fs::is_directory(d, ec)) {
      problems->push_back(d + ": " + (fs::exists(d, ec) ? "not a directory" : "no such directory") +
                          " (tls.cert_dirs)");
      continue;
    }
    scan_dir(d, &out, problems);
    scan_dir(fs::path(d) / "live", &out, problems);  // certbot's layout
  }
  std::sort(out.begin(), out.end(),
            [](const CertFiles& a, const CertFiles& b) { return a.cert < b.cert; });
  out.erase(std::unique(out.begin(), out.end(),
                        [](const CertFiles& a, const CertFiles& b) { return a.cert == b.cert; }),
            out.end());
  return out;
}

std::string cert_files_state(const std::vector<std::string>& dirs) {
  std::string state;
  for (const auto& f : find_cert_files(dirs)) {
    for (const auto& p : {f.cert, f.key}) {
      std::error_code ec;
      const auto size = fs::file_size(p, ec);
      const auto mtime = fs::last_write_time(p, ec).time_since_epoch().count();
      state += p + " " + std::to_string(size) + " " + std::to_string(mtime) + "\n";
    }
  }
  return state;
}

std::shared_ptr<const CertStore> CertStore::load(const std::vector<std::string>& dirs,
                                                 int64_t now_unix,
                                                 std::shared_ptr<TicketKeys> tickets,
                                                 std::vector<std::string>* problems,
                                                 const CertStore* previous) {
  auto store = std::make_shared<CertStore>();
  for (const auto& f : find_cert_files(dirs, problems)) {
    auto ctx = TlsContext::load(f.cert, f.key, now_unix, tickets);
    if (ctx) {
      store->contexts_.push_back(std::move(*ctx));
      continue;
    }
    const std::string& error = ctx.error();
    std::shared_ptr<const TlsContext> old;
    if (previous != nullptr) {
      for (const auto& c : previous->contexts_) {
        if (c->cert_path() == f.cert) old = c;
      }
    }
    if (old) {
      problems->push_back(error + " (the certificate loaded before stays in use)");
      store->contexts_.push_back(std::move(old));
    } else {
      problems->push_back(error);
    }
  }
  return store;
}

std::shared_ptr<const TlsContext> CertStore::pick(const ClientHelloInfo& hello,
                                                  const std::string& default_host) const {
  if (contexts_.empty()) return nullptr;
  // Best match for one host name: exact before wildcard, then the key type
  // the client can use.
  auto best_for = [&](const std::string& host) -> std::shared_ptr<const TlsContext> {
    std::shared_ptr<const TlsContext> best;
    int best_score = 0;
    for (const auto& c : contexts_) {
      if (!c->covers(host)) continue;
      const bool exact = std::find(c->names().begin(), c->names().end(), host) != c->names().end();
      const int score = (exact ? 4 : 2) + (c->ecdsa() == hello.ecdsa ? 1 : 0);
      if (score > best_score) {
        best = c;
        best_score = score;
      }
    }
    return best;
  };
  if (!hello.server_name.empty()) {
    if (auto c = best_for(hello.server_name)) return c;
  }
  if (!default_host.empty()) {
    if (auto c = best_for(default_host)) return c;
  }
  for (const auto& c : contexts_) {
    if (c->ecdsa() == hello.ecdsa) return c;
  }
  return contexts_.front();
}

Result<SelfSigned> make_self_signed(const std::string& host, int64_t /*now_unix*/, int days) {
  init_library();
  WC_RNG rng;
  if (wc_InitRng(&rng) != 0) {
    return Error{"no random source"};
  }
  SelfSigned out;
  ecc_key key;
  bool ok = false;
  std::vector<byte> der(4096);
  std::vector<byte> pem(8192);
  do {
    if (wc_ecc_init(&key) != 0) break;
    if (wc_ecc_make_key_ex(&rng, 32, &key, ECC_SECP256R1) != 0) {
      wc_ecc_free(&key);
      break;
    }
    Cert cert;
    if (wc_InitCert(&cert) != 0) break;
    std::strncpy(cert.subject.commonName, host.c_str(), CTC_NAME_SIZE - 1);
    std::strncpy(cert.subject.org, "ringmail development", CTC_NAME_SIZE - 1);
    cert.daysValid = days;
    cert.sigType = CTC_SHA256wECDSA;
    cert.isCA = 0;
    int n =
        wc_MakeCert_ex(&cert, der.data(), static_cast<word32>(der.size()), ECC_TYPE, &key, &rng);
    if (n < 0) break;
    n = wc_SignCert_ex(cert.bodySz, cert.sigType, der.data(), static_cast<word32>(der.size()),
                       ECC_TYPE, &key, &rng);
    if (n < 0) break;
    int p = wc_DerToPem(der.data(), static_cast<word32>(n), pem.data(),
                        static_cast<word32>(pem.size()), CERT_TYPE);
    if (p < 0) break;
    out.cert_pem.assign(reinterpret_cast<char*>(pem.data()), static_cast<size_t>(p));
    n = wc_EccKeyToDer(&key, der.data(), static_cast<word32>(der.size()));
    if (n < 0) break;
    p = wc_DerToPem(der.data(), static_cast<word32>(n), pem.data(), static_cast<word32>(pem.size()),
                    ECC_PRIVATEKEY_TYPE);
    if (p < 0) break;
    out.key_pem.assign(reinterpret_cast<char*>(pem.data()), static_cast<size_t>(p));
    ok = true;
  } while (false);
  wc_ecc_free(&key);
  wc_FreeRng(&rng);
  if (!ok) return Error{"cannot generate a self-signed certificate"};
  return out;
}

}  // namespace ringmail::tls
