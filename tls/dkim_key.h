// DKIM signing keys (RFC 6376, RFC 8463): RSA and Ed25519 private keys from
// PEM (PKCS#8 "PRIVATE KEY" or PKCS#1 "RSA PRIVATE KEY"), signatures over
// the canonical header data, new keys, and the public key as published in
// DNS. wolfCrypt does the arithmetic.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "proto/result.h"

namespace ringmail::tls {

class DkimKey {
 public:
  enum class Type : uint8_t { kRsa, kEd25519 };

  // The key, or a one-line reason when the text is not a usable key.
  static Result<std::unique_ptr<DkimKey>> from_pem(std::string_view pem);
  static Result<std::unique_ptr<DkimKey>> load(const std::string& path);
  // A new key as PKCS#8 PEM ("PRIVATE KEY"); `rsa_bits` for RSA (2048, 3072).
  static Result<std::string> generate_pem(Type t, int rsa_bits);

  ~DkimKey();
  DkimKey(const DkimKey&) = delete;
  DkimKey& operator=(const DkimKey&) = delete;

  Type type() const { return type_; }
  int bits() const { return bits_; }  // RSA modulus size; 256 for Ed25519

  // The signature over `data` (the header data of RFC 6376 3.7): RSA
  // PKCS#1 v1.5 with SHA-256; Ed25519 over the SHA-256 of the data (RFC
  // 8463 3). Raw bytes, or a reason on failure. Any thread may call it at
  // any time: wolfCrypt's key objects are not safe to share, so each thread
  // signs with its own copy of the key.
  Result<std::string> sign(std::string_view data) const;
  // Checks a signature made by this key (tests and self-checks).
  [[nodiscard]] bool verify(std::string_view data, std::string_view sig) const;

  // The public key as DNS publishes it (p=, before base64): RSA's
  // SubjectPublicKeyInfo DER, or Ed25519's 32 bytes.
  const std::string& public_key() const { return public_; }

 private:
  DkimKey() = default;
  // This thread's copy of the key (made from pem_ on first use).
  const DkimKey& local() const;
  Result<std::string> sign_here(std::string_view data) const;
  [[nodiscard]] bool verify_here(std::string_view data, std::string_view sig) const;
  std::string pem_;
  uint64_t serial_ = 0;
  Type type_ = Type::kRsa;
  int bits_ = 0;
  void* key_ = nullptr;  // RsaKey or ed25519_key
  std::string public_;
};

// Checks a signature over `data` with a public key as DNS publishes it:
// RSA (SubjectPublicKeyInfo or RSAPublicKey DER; under 1024 bits fails, RFC
// 8301) or Ed25519 (the 32 bytes; the signature is over SHA-256(data)).
// An error says why it does not verify.
Result<void> dkim_verify_with(bool ed25519, std::string_view public_key, std::string_view data,
                              std::string_view sig);

// Key files: <domains_dir>/<domain>/dkim:<selector>.pem (chasquid's naming).
struct DkimKeyFile {
  std::string domain;  // as the folder is named
  std::string selector;
  std::string path;
};
// Every key file, or those of one domain; sorted by domain and selector.
std::vector<DkimKeyFile> list_dkim_key_files(const std::string& domains_dir,
                                             const std::string& only_domain = "");
std::string dkim_key_path(const std::string& domains_dir, const std::string& domain,
                          const std::string& selector);

}  // namespace ringmail::tls
