// Google Benchmark: the SMTP command parser and the DATA reader on realistic
// input. Throughput is reported as bytes per second.
#include <benchmark/benchmark.h>

#include <random>
#include <string>

#include "proto/data_reader.h"
#include "proto/smtp_command.h"
#include "proto/smtp_server.h"

namespace {

using namespace ringmail::proto;

// A typical transactional message: headers, a quoted-printable text part and
// a base64 attachment, 76-character lines, some lines starting with a dot.
std::string make_message(size_t bytes) {
  std::mt19937 rng(1);
  std::string m =
      "From: Sender <sender@src.example>\r\nTo: rcpt@example.test\r\nSubject: Your order\r\n"
      "Date: Mon, 23 Nov 2026 10:00:00 +0000\r\nMessage-ID: <abc@src.example>\r\n"
      "MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b\"\r\n\r\n--b\r\n";
  static const char kB64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  while (m.size() < bytes) {
    std::string line;
    if (rng() % 40 == 0) line = ".";
    while (line.size() < 76) line += kB64[rng() % 64];
    m += line + "\r\n";
  }
  return m;
}

std::string dot_stuff(const std::string& m) {
  std::string out;
  size_t pos = 0;
  while (pos < m.size()) {
    size_t e = m.find("\r\n", pos) + 2;
    if (m[pos] == '.') out += '.';
    out.append(m, pos, e - pos);
    pos = e;
  }
  return out + ".\r\n";
}

void BM_DataReader(benchmark::State& state) {
  const std::string wire = dot_stuff(make_message(static_cast<size_t>(state.range(0))));
  const size_t piece = 16384;  // one provided receive buffer
  std::string out;
  out.reserve(wire.size());
  for (auto _ : state) {
    out.clear();
    DataReader r(DataReader::Mode::kDotTerminated, &out, 1 << 30);
    size_t pos = 0;
    while (pos < wire.size()) {
      size_t used = 0;
      r.feed(std::string_view(wire).substr(pos, piece), used);
      pos += used;
    }
    benchmark::DoNotOptimize(out.data());
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * wire.size()));
}
BENCHMARK(BM_DataReader)->Arg(10240)->Arg(1 << 20);

void BM_CommandParse(benchmark::State& state) {
  const std::string lines[] = {
      "EHLO client.example.com",
      "MAIL FROM:<bounce-123456@mail.src.example> SIZE=10240 BODY=8BITMIME",
      "RCPT TO:<customer.name@example.test>",
      "DATA",
  };
  size_t bytes = 0;
  for (const auto& l : lines) bytes += l.size() + 2;
  PathArgs p;
  for (auto _ : state) {
    for (const auto& l : lines) {
      Command c = parse_command(l);
      if (c.verb == Verb::kMail)
        benchmark::DoNotOptimize(parse_path_args(c.args, "FROM:", true, p));
      if (c.verb == Verb::kRcpt) benchmark::DoNotOptimize(parse_path_args(c.args, "TO:", false, p));
      benchmark::DoNotOptimize(c);
    }
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * bytes));
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations() * 4));
}
BENCHMARK(BM_CommandParse);

// A whole pipelined transaction through the session state machine.
class Host : public SmtpHost {
 public:
  std::string check_local_recipient(const ringmail::proto::Address& a) const override {
    return ringmail::proto::mailbox_name(a.local) ? "" : "550 5.1.1 No such user";
  }
  bool is_local_domain(std::string_view d) const override { return d == "example.test"; }
  std::string_view primary_domain() const override { return "example.test"; }
  std::string new_message_id() override { return "BENCH"; }
  int64_t now_unix() const override { return 1700000000; }
};

void BM_SessionTransaction(benchmark::State& state) {
  const std::string wire = "MAIL FROM:<a@src.example>\r\nRCPT TO:<b@example.test>\r\nDATA\r\n" +
                           dot_stuff(make_message(10240));
  Host host;
  SessionParams p;
  p.hostname = "mx.example.test";
  p.client_literal = "[127.0.0.1]";
  SmtpServer s(p, host);
  s.start();
  s.feed("EHLO c\r\n");
  s.output().clear();
  for (auto _ : state) {
    for (size_t pos = 0; pos < wire.size(); pos += 16384) {
      s.feed(std::string_view(wire).substr(pos, 16384));
    }
    s.commit_done(CommitResult::kOk);
    s.output().clear();
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * wire.size()));
}
BENCHMARK(BM_SessionTransaction);

}  // namespace

BENCHMARK_MAIN();
