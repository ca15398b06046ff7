#include "tls/dkim_key.h"

#include <wolfssl/options.h>
#include <wolfssl/wolfcrypt/asn.h>
#include <wolfssl/wolfcrypt/asn_public.h>
#include <wolfssl/wolfcrypt/ed25519.h>
#include <wolfssl/wolfcrypt/random.h>
#include <wolfssl/wolfcrypt/rsa.h>
#include <wolfssl/wolfcrypt/sha256.h>
#include <wolfssl/wolfcrypt/signature.h>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <utility>
#include <vector>

namespace ringmail::tls {

namespace {

// One RNG per thread (signing runs on worker threads).
WC_RNG* thread_rng() {
  struct Holder {
    WC_RNG rng;
    bool ok = false;
    Holder() { ok = wc_InitRng(&rng) == 0; }
    ~Holder() {
      if (ok) wc_FreeRng(&rng);
    }
  };
  thread_local Holder h;
  return h.ok ? &h.rng : nullptr;
}

std::string to_pem(const std::vector<byte>& der, int type, std::string* error) {
  std::vector<byte> pem(der.size() * 2 + 128);
  const int n = wc_DerToPem(der.data(), static_cast<word32>(der.size()), pem.data(),
                            static_cast<word32>(pem.size()), type);
  if (n <= 0) {
    *error = "cannot encode the key as PEM";
    return "";
  }
  return std::string(reinterpret_cast<char*>(pem.data()), static_cast<size_t>(n));
}

}  // namespace

DkimKey::~DkimKey() {
  if (key_ == nullptr) return;
  if (type_ == Type::kRsa) {
    wc_FreeRsaKey(static_cast<RsaKey*>(key_));
    delete static_cast<RsaKey*>(key_);
  } else {
    wc_ed25519_free(static_cast<ed25519_key*>(key_));
    delete static_cast<ed25519_key*>(key_);
  }
}

std::unique_ptr<DkimKey> DkimKey::from_pem(std::string_view pem, std::string* error) {
  std::vector<byte> der(pem.size() + 16);
  const int n = wc_KeyPemToDer(reinterpret_cast<const unsigned char*>(pem.data()),
                               static_cast<int>(pem.size()), der.data(),
                               static_cast<int>(der.size()), nullptr);
  if (n <= 0) {
    *error = "not a PEM private key";
    return nullptr;
  }
  der.resize(static_cast<size_t>(n));
  static std::atomic<uint64_t> serials{0};
  std::unique_ptr<DkimKey> k(new DkimKey());
  k->pem_ = std::string(pem);
  k->serial_ = ++serials;
  {
    auto* rsa = new RsaKey;
    word32 idx = 0;
    if (wc_InitRsaKey(rsa, nullptr) == 0 &&
        wc_RsaPrivateKeyDecode(der.data(), &idx, rsa, static_cast<word32>(der.size())) == 0) {
      k->type_ = Type::kRsa;
      k->key_ = rsa;
      k->bits_ = wc_RsaEncryptSize(rsa) * 8;
      std::vector<byte> pub(static_cast<size_t>(k->bits_) / 8 * 2 + 64);
      const int pn = wc_RsaKeyToPublicDer(rsa, pub.data(), static_cast<word32>(pub.size()));
      if (pn <= 0) {
        *error = "cannot derive the RSA public key";
        return nullptr;
      }
      k->public_.assign(reinterpret_cast<char*>(pub.data()), static_cast<size_t>(pn));
      if (k->bits_ < 1024) {
        *error = "RSA key of " + std::to_string(k->bits_) +
                 " bits: at least 1024 are needed (2048 advised)";
        return nullptr;
      }
      return k;
    }
    wc_FreeRsaKey(rsa);
    delete rsa;
  }
  auto* ed = new ed25519_key;
  word32 idx = 0;
  if (wc_ed25519_init(ed) != 0 ||
      wc_Ed25519PrivateKeyDecode(der.data(), &idx, ed, static_cast<word32>(der.size())) != 0) {
    wc_ed25519_free(ed);
    delete ed;
    *error = "neither an RSA nor an Ed25519 private key";
    return nullptr;
  }
  k->type_ = Type::kEd25519;
  k->key_ = ed;
  k->bits_ = 256;
  byte pub[ED25519_PUB_KEY_SIZE];
  if (!ed->pubKeySet) {
    // PKCS#8 may carry the private half only: derive the public one.
    byte priv[ED25519_KEY_SIZE];
    word32 plen = sizeof priv;
    if (wc_ed25519_export_private_only(ed, priv, &plen) != 0 ||
        wc_ed25519_make_public(ed, pub, sizeof pub) != 0 ||
        wc_ed25519_import_private_key(priv, plen, pub, sizeof pub, ed) != 0) {
      *error = "cannot derive the Ed25519 public key";
      return nullptr;
    }
  }
  word32 publen = sizeof pub;
  if (wc_ed25519_export_public(ed, pub, &publen) != 0) {
    *error = "cannot read the Ed25519 public key";
    return nullptr;
  }
  k->public_.assign(reinterpret_cast<char*>(pub), publen);
  return k;
}

std::unique_ptr<DkimKey> DkimKey::load(const std::string& path, std::string* error) {
  std::ifstream f(path, std::ios::binary);
  if (!f) {
    *error = path + ": cannot read";
    return nullptr;
  }
  const std::string pem((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  auto k = from_pem(pem, error);
  if (k == nullptr) *error = path + ": " + *error;
  return k;
}

std::string DkimKey::generate_pem(Type t, int rsa_bits, std::string* error) {
  WC_RNG* rng = thread_rng();
  if (rng == nullptr) {
    *error = "no random number generator";
    return "";
  }
  if (t == Type::kRsa) {
#ifdef WOLFSSL_KEY_GEN
    RsaKey key;
    if (wc_InitRsaKey(&key, nullptr) != 0 ||
        wc_MakeRsaKey(&key, rsa_bits, WC_RSA_EXPONENT, rng) != 0) {
      *error = "RSA key generation failed";
      return "";
    }
    std::vector<byte> der(static_cast<size_t>(rsa_bits) / 8 * 9 + 256);
    const int n = wc_RsaKeyToDer(&key, der.data(), static_cast<word32>(der.size()));
    wc_FreeRsaKey(&key);
    if (n <= 0) {
      *error = "cannot encode the RSA key";
      return "";
    }
    der.resize(static_cast<size_t>(n));
    // PKCS#1 inside PKCS#8 (rsaEncryption), the form every tool reads.
    std::vector<byte> p8(der.size() + 64);
    word32 p8len = static_cast<word32>(p8.size());
    if (wc_CreatePKCS8Key(p8.data(), &p8len, der.data(), static_cast<word32>(der.size()), RSAk,
                          nullptr, 0) <= 0) {
      *error = "cannot wrap the RSA key in PKCS#8";
      return "";
    }
    p8.resize(p8len);
    return to_pem(p8, PKCS8_PRIVATEKEY_TYPE, error);
#else
    (void)rsa_bits;
    *error = "this wolfSSL build cannot generate RSA keys (no WOLFSSL_KEY_GEN)";
    return "";
#endif
  }
  ed25519_key key;
  if (wc_ed25519_init(&key) != 0 || wc_ed25519_make_key(rng, ED25519_KEY_SIZE, &key) != 0) {
    *error = "Ed25519 key generation failed";
    return "";
  }
  std::vector<byte> der(256);
  const int n = wc_Ed25519PrivateKeyToDer(&key, der.data(), static_cast<word32>(der.size()));
  wc_ed25519_free(&key);
  if (n <= 0) {
    *error = "cannot encode the Ed25519 key";
    return "";
  }
  der.resize(static_cast<size_t>(n));
  return to_pem(der, PKCS8_PRIVATEKEY_TYPE, error);
}

const DkimKey& DkimKey::local() const {
  // A few keys per thread, by serial (never reused, unlike addresses).
  thread_local std::vector<std::pair<uint64_t, std::unique_ptr<DkimKey>>> mine;
  for (const auto& [serial, k] : mine) {
    if (serial == serial_) return *k;
  }
  if (mine.size() >= 64) mine.clear();
  std::string err;
  auto copy = from_pem(pem_, &err);
  if (copy == nullptr) return *this;  // cannot happen: pem_ was read once already
  mine.emplace_back(serial_, std::move(copy));
  return *mine.back().second;
}

bool DkimKey::sign(std::string_view data, std::string* sig, std::string* error) const {
  return local().sign_here(data, sig, error);
}

bool DkimKey::verify(std::string_view data, std::string_view sig) const {
  return local().verify_here(data, sig);
}

bool DkimKey::sign_here(std::string_view data, std::string* sig, std::string* error) const {
  if (type_ == Type::kRsa) {
    WC_RNG* rng = thread_rng();
    auto* rsa = static_cast<RsaKey*>(key_);
    if (rng == nullptr) {
      *error = "no random number generator";
      return false;
    }
    wc_RsaSetRNG(rsa, rng);  // blinding
    std::vector<byte> out(static_cast<size_t>(bits_) / 8);
    word32 len = static_cast<word32>(out.size());
    const int r = wc_SignatureGenerate(WC_HASH_TYPE_SHA256, WC_SIGNATURE_TYPE_RSA_W_ENC,
                                       reinterpret_cast<const byte*>(data.data()),
                                       static_cast<word32>(data.size()), out.data(), &len, rsa,
                                       sizeof(RsaKey), rng);
    if (r != 0) {
      *error = "RSA signature failed (" + std::to_string(r) + ")";
      return false;
    }
    sig->assign(reinterpret_cast<char*>(out.data()), len);
    return true;
  }
  byte digest[WC_SHA256_DIGEST_SIZE];
  if (wc_Sha256Hash(reinterpret_cast<const byte*>(data.data()), static_cast<word32>(data.size()),
                    digest) != 0) {
    *error = "SHA-256 failed";
    return false;
  }
  byte out[ED25519_SIG_SIZE];
  word32 len = sizeof out;
  const int r =
      wc_ed25519_sign_msg(digest, sizeof digest, out, &len, static_cast<ed25519_key*>(key_));
  if (r != 0) {
    *error = "Ed25519 signature failed (" + std::to_string(r) + ")";
    return false;
  }
  sig->assign(reinterpret_cast<char*>(out), len);
  return true;
}

bool DkimKey::verify_here(std::string_view data, std::string_view sig) const {
  if (type_ == Type::kRsa) {
    return wc_SignatureVerify(WC_HASH_TYPE_SHA256, WC_SIGNATURE_TYPE_RSA_W_ENC,
                              reinterpret_cast<const byte*>(data.data()),
                              static_cast<word32>(data.size()),
                              reinterpret_cast<const byte*>(sig.data()),
                              static_cast<word32>(sig.size()), key_, sizeof(RsaKey)) == 0;
  }
  byte digest[WC_SHA256_DIGEST_SIZE];
  if (wc_Sha256Hash(reinterpret_cast<const byte*>(data.data()), static_cast<word32>(data.size()),
                    digest) != 0) {
    return false;
  }
  int ok = 0;
  return wc_ed25519_verify_msg(reinterpret_cast<const byte*>(sig.data()),
                               static_cast<word32>(sig.size()), digest, sizeof digest, &ok,
                               static_cast<ed25519_key*>(key_)) == 0 &&
         ok == 1;
}

bool dkim_verify_with(bool ed25519, std::string_view pub, std::string_view data,
                      std::string_view sig, std::string* why) {
  if (ed25519) {
    ed25519_key key;
    if (pub.size() != ED25519_PUB_KEY_SIZE || wc_ed25519_init(&key) != 0) {
      *why = "not an Ed25519 public key";
      return false;
    }
    byte digest[WC_SHA256_DIGEST_SIZE];
    int ok = 0;
    const bool good = wc_ed25519_import_public(reinterpret_cast<const byte*>(pub.data()),
                                               ED25519_PUB_KEY_SIZE, &key) == 0 &&
                      wc_Sha256Hash(reinterpret_cast<const byte*>(data.data()),
                                    static_cast<word32>(data.size()), digest) == 0 &&
                      wc_ed25519_verify_msg(reinterpret_cast<const byte*>(sig.data()),
                                            static_cast<word32>(sig.size()), digest, sizeof digest,
                                            &ok, &key) == 0 &&
                      ok == 1;
    wc_ed25519_free(&key);
    if (!good) *why = "signature does not verify";
    return good;
  }
  RsaKey key;
  if (wc_InitRsaKey(&key, nullptr) != 0) {
    *why = "no RSA key object";
    return false;
  }
  word32 idx = 0;
  if (wc_RsaPublicKeyDecode(reinterpret_cast<const byte*>(pub.data()), &idx, &key,
                            static_cast<word32>(pub.size())) != 0) {
    wc_FreeRsaKey(&key);
    *why = "not an RSA public key";
    return false;
  }
  const int bits = wc_RsaEncryptSize(&key) * 8;
  if (bits < 1024) {
    wc_FreeRsaKey(&key);
    *why = "RSA key of " + std::to_string(bits) + " bits (under 1024)";
    return false;
  }
  const bool good = wc_SignatureVerify(WC_HASH_TYPE_SHA256, WC_SIGNATURE_TYPE_RSA_W_ENC,
                                       reinterpret_cast<const byte*>(data.data()),
                                       static_cast<word32>(data.size()),
                                       reinterpret_cast<const byte*>(sig.data()),
                                       static_cast<word32>(sig.size()), &key, sizeof key) == 0;
  wc_FreeRsaKey(&key);
  if (!good) *why = "signature does not verify";
  return good;
}

namespace {

// Names in `dir`, sorted; none when it cannot be read.
std::vector<std::string> list_dir(const std::string& dir) {
  std::vector<std::string> out;
  std::error_code ec;
  for (std::filesystem::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    out.push_back(it->path().filename().string());
  }
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace

std::string dkim_key_path(const std::string& domains_dir, const std::string& domain,
                          const std::string& selector) {
  return domains_dir + "/" + domain + "/dkim:" + selector + ".pem";
}

std::vector<DkimKeyFile> list_dkim_key_files(const std::string& domains_dir,
                                             const std::string& only_domain) {
  std::vector<DkimKeyFile> out;
  const std::vector<std::string> domains =
      only_domain.empty() ? list_dir(domains_dir) : std::vector<std::string>{only_domain};
  for (const auto& domain : domains) {
    for (const auto& f : list_dir(domains_dir + "/" + domain)) {
      if (f.rfind("dkim:", 0) != 0 || f.size() <= 9 || f.compare(f.size() - 4, 4, ".pem") != 0)
        continue;
      out.push_back(
          DkimKeyFile{domain, f.substr(5, f.size() - 9), domains_dir + "/" + domain + "/" + f});
    }
  }
  return out;
}

}  // namespace ringmail::tls
