// Mail addresses as they appear in SMTP paths (RFC 5321 section 4.1.2, with
// the UTF-8 extensions of RFC 6531). Pure parsing: no I/O, no allocation
// beyond the returned strings.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace ringmail::proto {

inline constexpr size_t kLocalPartBytesMax = 64;  // RFC 5321 4.5.3.1.1
inline constexpr size_t kDomainBytesMax = 255;    // RFC 5321 4.5.3.1.2
inline constexpr size_t kPathBytesMax = 256;      // RFC 5321 4.5.3.1.3

struct Address {
  std::string local;   // as written, quotes removed (quoted-pairs resolved)
  std::string domain;  // as written (case kept); empty for <> and <postmaster>
  bool utf8 = false;   // contains non-ASCII octets

  bool is_null() const { return local.empty() && domain.empty(); }
  // The address as it goes into a header or the spool: local@domain, with the
  // local part re-quoted when it is not a dot-string.
  std::string to_string() const;
};

enum class AddressError {
  kNone,
  kSyntax,
  kTooLong,
};

// Parses a path "<...>" at the start of `in`. On success returns kNone, fills
// `out` and sets `consumed` to the length of the path including the brackets.
// `allow_null` accepts "<>" (reverse-path); `allow_postmaster` accepts
// "<postmaster>" without a domain (RFC 5321 4.1.1.3). Non-ASCII octets are
// accepted only when they form valid UTF-8; the caller decides whether
// SMTPUTF8 was requested.
AddressError parse_path(std::string_view in, bool allow_null, bool allow_postmaster, Address& out,
                        size_t& consumed);

// Domain syntax (letters, digits, hyphens, dots, or UTF-8 labels).
bool is_valid_domain(std::string_view domain);

// ASCII lower-casing for domains and mailbox names.
std::string ascii_lower(std::string_view s);
bool iequals(std::string_view a, std::string_view b);

}  // namespace ringmail::proto
