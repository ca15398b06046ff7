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

Result<std::string> to_pem(const std::vector<byte>& der, int type) {
  std::vector<byte> pem(der.size() * 2 + 128);
  const int n = wc_DerToPem(der.data(), static_cast<word32>(der.size()), pem.data(),
                            static_cast<word32>(pem.size()), type);
  if (n <= 0) {
    return Error{"cannot encode the key as PEM"};
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

Result<std::unique_ptr<DkimKey>> DkimKey::from_pem(std::string_view pem) {
  std::vector<byte> der(pem.size() + 16);
  const int n = wc_KeyPemToDer(reinterpret_cast<const unsigned char*>(pem.data()),
                               static_cast<int>(pem.size()), der.data(),
                               static_cast<int>(der.size()), nullptr);
  if (n <= 0) {
    return Error{"not a PEM private key"};
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
        return Error{"cannot derive the RSA public key"};
      }
      k->public_.assign(reinterpret_cast<char*>(pub.data()), static_cast<size_t>(pn));
      if (k->bits_ < 1024) {
        return Error{"RSA key of " + std::to_string(k->bits_) +
                     " bits: at least 1024 are needed (2048 advised)"};
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
    return Error{"neither an RSA nor an Ed25519 private key"};
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
      return Error{"cannot derive the Ed25519 public key"};
    }
  }
  word32 publen = sizeof pub;
  if (wc_ed25519_export_public(ed, pub, &publen) != 0) {
    return Error{"cannot read the Ed25519 public key"};
  }
  k->public_.assign(reinterpret_cast<char*>(pub), publen);
  return k;
}

Result<std::unique_ptr<DkimKey>> DkimKey::load(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) {
    return Error{path + ": cannot read"};
  }
  const std::string pem((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  auto k = from_pem(pem);
  if (!k) return Error{path + ": " + k.error()};
  return k;
}

Result<std::string> DkimKey::generate_pem(Type t, int rsa_bits) {
  WC_RNG* rng = thread_rng();
  if (rng == nullptr) {
    return Error{"no random number generator"};
  }
  if (t == Type::kRsa) {
#ifdef WOLFSSL_KEY_GEN
    RsaKey key;
    if (wc_InitRsaKey(&key, nullptr) != 0 ||
        wc_MakeRsaKey(&key, rsa_bits, WC_RSA_EXPONENT, rng) != 0) {
      return Error{"RSA key generation failed"};
    }
    std::vector<byte> der(static_cast<size_t>(rsa_bits) / 8 * 9 + 256);
    const int n = wc_RsaKeyToDer(&key, der.data(), static_cast<word32>(der.size()));
    wc_FreeRsaKey(&key);
    if (n <= 0) {
      return Error{"cannot encode the RSA key"};
    }
    der.resize(static_cast<size_t>(n));
    // PKCS#1 inside PKCS#8 (rsaEncryption), the form every tool reads.
    std::vector<byte> p8(der.size() + 64);
    word32 p8len = static_cast<word32>(p8.size());
    if (wc_CreatePKCS8Key(p8.data(), &p8len, der.data(), static_cast<word32>(der.size()), RSAk,
                          nullptr, 0) <= 0) {
      return Error{"cannot wrap the RSA key in PKCS#8"};
    }
    p8.resize(p8len);
    return to_pem(p8, PKCS8_PRIVATEKEY_TYPE);
#else
    (void)rsa_bits;
    return Error{"this wolfSSL build cannot generate RSA keys (no WOLFSSL_KEY_GEN)"};
#endif
  }
  ed25519_key key;
  if (wc_ed25519_init(&key) != 0 || wc_ed25519_make_key(rng, ED25519_KEY_SIZE, &key) != 0) {
    return Error{"Ed25519 key generation failed"};
  }
  std::vector<byte> der(256);
  const int n = wc_Ed25519PrivateKeyToDer(&key, der.data(), static_cast<word32>(der.size()));
  wc_ed25519_free(&key);
  if (n <= 0) {
    return Error{"cannot encode the Ed25519 key"};
  }
  der.resize(static_cast<size_t>(n));
  return to_pem(der, PKCS8_PRIVATEKEY_TYPE);
}

const DkimKey& DkimKey::local() const {
  // A few keys per thread, by serial (never reused, unlike addresses).
  thread_local std::vector<std::pair<uint64_t, std::unique_ptr<DkimKey>>> mine;
  for (const auto& [serial, k] : mine) {
    if (serial == serial_) return *k;
  }
  if (mine.size() >= 64) mine.clear();
  auto copy = from_pem(pem_);
  if (!copy) return *this;  // cannot happen: pem_ was read once already
  mine.emplace_back(serial_, std::move(*copy));
  return *mine.back().second;
}

Result<std::string> DkimKey::sign(std::string_view data) const { return local().sign_here(data); }

bool DkimKey::verify(std::string_view data, std::string_view sig) const {
  return local().verify_here(data, sig);
}

Result<std::string> DkimKey::sign_here(std::string_view data) const {
  if (type_ == Type::kRsa) {
    WC_RNG* rng = thread_rng();
    auto* rsa = static_cast<RsaKey*>(key_);
    if (rng == nullptr) {
      return Error{"no random number generator"};
    }
    wc_RsaSetRNG(rsa, rng);  // blinding
    std::vector<byte> out(static_cast<size_t>(bits_) / 8);
    word32 len = static_cast<word32>(out.size());
    const int r = wc_SignatureGenerate(WC_HASH_TYPE_SHA256, WC_SIGNATURE_TYPE_RSA_W_ENC,
                                       reinterpret_cast<const byte*>(data.data()),
                                       static_cast<word32>(data.size()), out.data(), &len, rsa,
                                       sizeof(RsaKey), rng);
    if (r != 0) {
      return Error{"RSA signature failed (" + std::to_string(r) + ")"};
    }
    return std::string(reinterpret_cast<char*>(out.data()), len);
  }
  byte digest[WC_SHA256_DIGEST_SIZE];
  if (wc_Sha256Hash(reinterpret_cast<const byte*>(data.data()), static_cast<word32>(data.size()),
                    digest) != 0) {
    return Error{"SHA-256 failed"};
  }
  byte out[ED25519_SIG_SIZE];
  word32 len = sizeof out;
  const int r =
      wc_ed25519_sign_msg(digest, sizeof digest, out, &len, static_cast<ed25519_key*>(key_));
  if (r != 0) {
    return Error{"Ed25519 signature failed (" + std::to_string(r) + ")"};
  }
  return std::string(reinterpret_cast<char*>(out), len);
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

Result<void> dkim_verify_with(bool ed25519, std::string_view pub, std::string_view data,
                              std::string_view sig) {
  if (ed25519) {
    ed25519_key key;
    if (pub.size() != ED25519_PUB_KEY_SIZE || wc_ed25519_init(&key) != 0) {
      return Error{"not an Ed25519 public key"};
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
    if (!good) return Error{"signature does not verify"};
    return {};
  }
  RsaKey key;
  if (wc_InitRsaKey(&key, nullptr) != 0) {
    return Error{"no RSA key object"};
  }
  word32 idx = 0;
  if (wc_RsaPublicKeyDecode(reinterpret_cast<const byte*>(pub.data()), &idx, &key,
                            static_cast<word32>(pub.size())) != 0) {
    wc_FreeRsaKey(&key);
    return Error{"not an RSA public key"};
  }
  const int bits = wc_RsaEncryptSize(&key) * 8;
  if (bits < 1024) {
    wc_FreeRsaKey(&key);
    return Error{"RSA key of " + std::to_string(bits) + " bits (under 1024)"};
  }
  const bool good = wc_SignatureVerify(WC_HASH_TYPE_SHA256, WC_SIGNATURE_TYPE_RSA_W_ENC,
                                       reinterpret_cast<const byte*>(data.data()),
                                       static_cast<word32>(data.size()),
                                       reinterpret_cast<const byte*>(sig.data()),
                                       static_cast<word32>(sig.size()), &key, sizeof key) == 0;
  wc_FreeRsaKey(&key);
  if (!good) return Error{"signature does not verify"};
  return {};
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
