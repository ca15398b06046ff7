// libFuzzer target: the outbound SMTP client (proto/smtp_client.cc) fed any
// server bytes, in any split, with messages sent whenever it is ready (one
// after another, or pipelined behind the last dot) and QUIT queued behind
// the last. It must never crash, never read out of bounds, and always end
// every message sent with one result per recipient.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "proto/smtp_client.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace ringmail::proto;
  if (size < 2) return 0;
  const bool pipelining_split = data[0] & 1;
  SmtpClient::Params p{"relay.test", (data[0] & 2) != 0, (data[0] & 4) != 0};
  p.chunking = (data[0] & 8) != 0;  // BDAT when the server offers CHUNKING
  if (data[0] & 16) {               // AUTH PLAIN/LOGIN, allowed in clear so it runs
    p.auth_user = "relay@src.example";
    p.auth_password = "pw";
    p.auth_in_clear = (data[0] & 32) != 0;
  }
  SmtpClient c(std::move(p));
  std::string_view in(reinterpret_cast<const char*>(data + 2), size - 2);
  const size_t chunk = 1 + data[1] % 64;
  SmtpClient::Message m;
  m.from = Address{"a", "src.example"};
  m.rcpts = {Address{"b", "peer.example"}, Address{"c", "peer.example"}};
  m.data = "Subject: fuzz\r\n\r\n.body\r\n";
  // data[0] & 64: up to three messages, the later ones pipelined behind
  // the last dot when the client allows it (send_next); & 128: QUIT once
  // the last is out, while its reply is awaited.
  const int want = (data[0] & 64) ? 3 : 1;
  const bool quit_early = (data[0] & 128) != 0;
  int sent = 0, finished = 0;
  bool counted = true;  // the current message's results were counted
  auto collect = [&] {
    for (const auto& r : c.take_finished()) {
      if (r.size() != m.rcpts.size()) std::abort();
      ++finished;
    }
    if (sent > 0 && !counted && c.message_done()) {
      if (c.results().size() != m.rcpts.size()) std::abort();
      ++finished;
      counted = true;
    }
  };
  while (!in.empty() && c.state() != SmtpClient::State::kDone) {
    const size_t n = pipelining_split ? in.size() : (chunk < in.size() ? chunk : in.size());
    c.feed(in.substr(0, n));
    in.remove_prefix(n);
    c.output().clear();
    if (c.state() == SmtpClient::State::kTlsHandshake) c.tls_started();
    collect();
    if (c.state() == SmtpClient::State::kReady && sent < want && counted) {
      c.send(m);
      ++sent;
      counted = false;
      collect();  // refused before MAIL: done at once
    } else if (sent < want && c.can_send_next() && c.send_next(m)) {
      ++sent;
    } else if (quit_early && sent == want && c.state() == SmtpClient::State::kData) {
      c.quit();
    }
  }
  c.connection_lost("end of input");
  collect();
  if (finished != sent) std::abort();  // every message ends with one result per recipient
  return 0;
}
