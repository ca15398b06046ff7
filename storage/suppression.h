// The suppression list (issue 25): recipients mail is no longer sent to,
// for every sender (scope "*") or for one sender domain, fed by hard
// bounces, complaints, unsubscribes and by hand.
//
// Lookups happen on the shards for every RCPT and every injected
// recipient, so the set they read holds only 64-bit keys (a keyed SipHash
// of scope and address) in one open-addressing table: no allocation per
// entry, 8 bytes a slot, at most 3/4 full, so 10 million entries take 128
// MiB. Two different addresses share a key with a probability of about
// n / 2^64 per lookup (5e-13 for 10 million): negligible. The addresses
// themselves, with reason and time, are in the list's file, which the
// tools and the admin API read; the file format (one line per change) is
// parsed and written here too (docs/suppression.md).
//
// A SuppressionSet is not thread-safe for writes; readers on other
// threads need a copy or an immutable one (the engine decides).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "proto/result.h"

namespace ringmail::storage {

// The list's file: <data_dir>/suppression.
inline std::string suppression_path(const std::string& data_dir) {
  return data_dir + "/suppression";
}

// The scope of an entry for every sender.
inline constexpr std::string_view kGlobalScope = "*";

class SuppressionSet {
 public:
  // `k0`, `k1`: the SipHash key. Keys differ between sets with different
  // hash keys; build each set from the file.
  SuppressionSet(uint64_t k0, uint64_t k1);

  // The key of `address` (compared without case) in `scope` (kGlobalScope
  // or a sender domain, compared without case).
  uint64_t key(std::string_view scope, std::string_view address) const;

  bool insert(uint64_t key);  // false when it was there
  bool erase(uint64_t key);   // false when it was not
  bool contains(uint64_t key) const;

  // Whether mail from `sender_domain` to `address` is suppressed: a
  // global entry or one of that domain.
  bool suppressed(std::string_view sender_domain, std::string_view address) const {
    return contains(key(kGlobalScope, address)) ||
           (!sender_domain.empty() && contains(key(sender_domain, address)));
  }

  size_t size() const { return size_; }
  // The table's bytes.
  size_t bytes() const { return slots_.size() * sizeof(uint64_t); }
  // Room for `n` keys without growing.
  void reserve(size_t n);

 private:
  size_t slot_of(uint64_t key) const { return (key * 0x9E3779B97F4A7C15ull) >> shift_; }
  void grow();

  uint64_t k0_, k1_;
  std::vector<uint64_t> slots_;  // 0: empty (a key of 0 is stored as 1)
  size_t size_ = 0;
  unsigned shift_ = 64;
};

// SipHash-2-4 (Aumasson and Bernstein) of `data` under the key k0, k1.
uint64_t siphash24(uint64_t k0, uint64_t k1, std::string_view data);

// One line of the list's file:
//   + <unix time> <scope> <address> <reason...>
//   - <unix time> <scope> <address>
// scope is "*" or a domain; the address has no spaces (an SMTP path
// without its angle brackets); the reason is free text without a line
// break.
struct SuppressionChange {
  bool add = true;
  int64_t unix_time = 0;
  std::string scope;
  std::string address;
  std::string reason;  // add only
};

std::string format_suppression_change(const SuppressionChange& c);  // with its '\n'
// The change of one line (without its '\n'); an error says what is
// wrong.
Result<SuppressionChange> parse_suppression_change(std::string_view line);

}  // namespace ringmail::storage
