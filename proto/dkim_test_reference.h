// Test-only: RFC 6376 3.4.4's relaxed body canonicalization written the
// obvious way (line by line, whole input at once), the reference the
// streaming RelaxedBody is checked against (proto/dkim_test.cc,
// tests/fuzz/fuzz_dkim.cc).
#pragma once

#include <string>
#include <string_view>

namespace ringmail::proto::dkim::reference {

inline std::string relaxed_body(std::string_view in) {
  std::string out;
  auto line = [&out](std::string_view l, bool had_crlf) {
    std::string c;
    for (char ch : l) {
      const bool wsp = ch == ' ' || ch == '\t';
      if (wsp && !c.empty() && c.back() == ' ') continue;
      c += wsp ? ' ' : ch;
    }
    while (!c.empty() && c.back() == ' ') c.pop_back();
    if (had_crlf || !c.empty()) out += c + "\r\n";
  };
  size_t pos = 0;
  for (size_t e; (e = in.find("\r\n", pos)) != std::string_view::npos; pos = e + 2)
    line(in.substr(pos, e - pos), true);
  line(in.substr(pos), false);
  while (out.size() >= 4 && out.compare(out.size() - 4, 4, "\r\n\r\n") == 0)
    out.resize(out.size() - 2);
  if (out == "\r\n") out.clear();
  return out;
}

}  // namespace ringmail::proto::dkim::reference
