// Password hashing for the user database: scrypt (wolfCrypt), the scheme
// chasquid uses, so its users files keep working. Slow on purpose (about
// 16 MiB and tens of milliseconds per check at the default cost): callers
// run it off the event loop.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace ringmail::tls {

struct ScryptParams {
  int log_n = 14;  // N = 2^log_n (chasquid's and the scrypt paper's interactive cost)
  int r = 8;
  int p = 1;
  int key_len = 32;
};

// scrypt(password, salt) with `params`; false on bad parameters.
bool scrypt_key(std::string_view password, std::string_view salt, const ScryptParams& params,
                std::string* key);
// Compares in constant time.
bool scrypt_matches(std::string_view password, std::string_view salt, const ScryptParams& params,
                    std::string_view key);
// Whether a and b are the same bytes, in a time that depends on their
// length only (a secret compared with a guess).
bool equal_in_constant_time(std::string_view a, std::string_view b);
// Working areas of 1 MiB or more that scrypt had to take from the
// allocator (each thread keeps its largest and uses it again): for tests.
uint64_t scrypt_block_allocations();
// A fresh 16-byte salt; false when the random source fails.
bool random_salt(std::string* salt);

}  // namespace ringmail::tls
