// The organizational domain (RFC 7489 3.2) from the Public Suffix List,
// through libpsl. Debian's publicsuffix package keeps the list current;
// libpsl's builtin copy is the fallback when that file is missing or older.
#pragma once

#include <string>
#include <string_view>

namespace ringmail::engine {

// The registrable domain of `domain` ("mail.example.co.uk" ->
// "example.co.uk"), lower case, without a trailing dot. A public suffix
// itself ("co.uk") or a name libpsl cannot judge is its own organizational
// domain: RFC 7489 3.2 has no label to add, and DMARC then compares the
// names as they are. Thread-safe: the list is loaded once, on the first
// call (it blocks for that read), and only read afterwards.
std::string organizational_domain(std::string_view domain);

}  // namespace ringmail::engine
