// libFuzzer target: a whole SMTP session fed arbitrary bytes in arbitrary
// pieces. Every reply line must be well formed, and a message handed over
// for commit must never contain a bare LF (SMTP smuggling).
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "proto/smtp_server.h"

using namespace ringmail::proto;

namespace {
class Host : public SmtpHost {
 public:
  std::string check_local_recipient(const ringmail::proto::Address& a) const override {
    return ringmail::proto::mailbox_name(a.local) ? "" : "550 5.1.1 No such user";
  }
  bool is_local_domain(std::string_view d) const override { return d == "example.test"; }
  std::string_view primary_domain() const override { return "example.test"; }
  std::string new_message_id() override { return "FUZZ"; }
  int64_t now_unix() const override { return 0; }
};

void check_output(const std::string& out) {
  size_t pos = 0;
  while (pos < out.size()) {
    size_t e = out.find("\r\n", pos);
    if (e == std::string::npos || e - pos < 3) __builtin_trap();
    for (size_t i = pos; i < pos + 3; ++i) {
      if (out[i] < '0' || out[i] > '9') __builtin_trap();
    }
    pos = e + 2;
  }
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  Host host;
  SessionParams p;
  p.hostname = "mx.test";
  p.limits.message_bytes_max = 2000;
  p.limits.rcpt_count_max = 3;
  p.client_literal = "[127.0.0.1]";
  SmtpServer s(p, host);
  s.start();
  const size_t piece = data[0] % 64 + 1;
  const bool fail_commits = data[1] & 1;
  std::string_view in(reinterpret_cast<const char*>(data + 2), size - 2);
  for (size_t pos = 0; pos < in.size() && !s.closing(); pos += piece) {
    s.feed(in.substr(pos, piece));
    while (s.awaiting_commit()) {
      const std::string& m = s.message();
      for (size_t i = 0; i < m.size(); ++i) {
        if (m[i] == '\n' && (i == 0 || m[i - 1] != '\r')) __builtin_trap();
      }
      if (s.envelope().rcpts.empty()) __builtin_trap();
      s.commit_done(fail_commits ? CommitResult::kTempFail : CommitResult::kOk);
    }
    check_output(s.output());
    s.output().clear();
  }
  return 0;
}
