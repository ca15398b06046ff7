// smtp-blaster: a load generator for any SMTP server, on ringmail's own
// engine (the shard's io_uring backend, or epoll) and SMTP client state
// machine (proto::SmtpClient, PIPELINING when offered).
//
//   smtp-blaster --target HOST:PORT [--connections N] (--messages N | --duration S)
//                [--per-connection N] [--recipients N]
//                [--size B | --size-min B --size-max B | --size-file FILE] [--body-file FILE]
//                [--from PATTERN] [--to PATTERN] [--domain a.test:3,b.test:1] [--helo NAME]
//                [--starttls | --tls] [--sni NAME] [--auth USER:PASS] [--pipelining on|off]
//                [--rate R] [--backend auto|io_uring|epoll] [--json]
//   smtp-blaster --http http://HOST:PORT/api/inject/v1 --token T [--recipients-per-request N]
//                (--requests N | --duration S) [--connections N] [--rate R] [sizes, --from,
//                --to, --domain as above] [--backend ...] [--json]
//
// Closed loop (default): every connection sends its next message as soon as
// the last one is answered, --per-connection messages per connection, then
// QUIT and a new connection. Open loop (--rate R): message n is due at
// n/R seconds and goes out on the first free connection; its latency counts
// from when it was due, so a server that cannot keep up shows as latency
// (and a backlog), not as a quietly lower rate. Always bounded (messages or duration). `{n}` in
// --to and --from is the message's number (recipients of one message get n, n+1, ...), `{c}` in
// --to, --from and --auth's user the connection's slot (0..N-1). TLS
// (STARTTLS or implicit) runs through tls::TlsSession as a byte transformer on the same loop; the
// server's certificate is not checked (a load tester talks to test servers). AUTH (PLAIN or LOGIN)
// goes once per connection, over TLS only. Reports sent/accepted/temp-failed/perm-failed/connection
// errors, reply codes, why sessions failed, messages/s and bytes/s, and latency per transaction
// (MAIL to the reply after the data) and per phase (TCP connect, TLS handshake, session set-up from
// connect to the first MAIL), p50/p90/p99/p99.9/max.
//
// --http loads an HTTP injection API (ringmaild's POST /api/inject/v1,
// KumoMTA's format) instead: generated JSON requests of N recipients (each
// one a message for {n} and the domain mix) on keep-alive HTTP/1.1
// connections, one request in flight on each, closed or open loop (--rate:
// requests/s). It reports status codes, recipients accepted and failed (the
// 200 answers' success_count and fail_count), requests/s, recipients/s,
// bytes/s and request latency. That mode is bench/blaster_http.cc; what the
// two share (settings, workload, histogram, the driver loop) is
// bench/blaster.h.
#include <netdb.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "bench/blaster.h"
#include "config/cli.h"
#include "engine/backend.h"
#include "engine/send_buffer.h"
#include "proto/quoted.h"
#include "proto/smtp_client.h"
#include "tls/context.h"
#include "tls/session.h"

namespace {

using ringmail::blaster::Clock;
using ringmail::blaster::Histogram;
using ringmail::blaster::kFillerLine;
using ringmail::blaster::Settings;
using ringmail::blaster::Workload;
using ringmail::engine::Backend;
using ringmail::engine::Completion;
using ringmail::engine::Event;
using ringmail::proto::Address;
using ringmail::proto::SmtpClient;
using ringmail::tls::TlsSession;

struct Stats : ringmail::blaster::ConnectionStats {
  uint64_t started = 0, accepted = 0, temp = 0, perm = 0, bytes = 0;
  uint64_t tls_sessions = 0;
  std::map<std::string, uint64_t> codes;
  std::string tls_seen;  // version and cipher of the first TLS session
  Histogram txn, tls, setup;
};

class Blaster;

struct Conn {
  struct Op final : Completion {
    Conn* c = nullptr;
    void (Conn::*fn)(const Event&) = nullptr;
    void complete(const Event& ev) override { (c->*fn)(ev); }
  };
  Blaster* b = nullptr;
  int fd = -1;
  std::unique_ptr<SmtpClient> smtp;
  std::unique_ptr<TlsSession> tls;
  ringmail::engine::SendBuffer out;
  bool recv_armed = false, closing = false;
  bool idle = false;  // open loop: ready, waiting for the next message to be due
  bool ready_seen = false;
  int done_here = 0;
  std::string error;  // why the connection failed, when it did
  Clock::time_point t_connect, t_tls;
  // Messages handed to the client and not answered yet: the current one
  // and, pipelined behind it, the next (SmtpClient::send_next).
  struct InFlight {
    Clock::time_point t;  // when its transaction started (open loop: was due)
    size_t bytes = 0;
  };
  InFlight inflight[2];
  int n_inflight = 0;
  std::string data[2];  // their contents (each valid until its message is done)
  int slot = 0;
  SmtpClient::Message msg;
  Op on_connect_op, on_recv_op, on_send_op;

  void on_connect(const Event& ev);
  void on_recv(const Event& ev);
  void on_send(const Event& ev);
  void on_bytes(std::string_view in);
  void start_tls();
  void pump();
  void flush();
  void drop(std::string why);
};

class Blaster : public ringmail::blaster::Driver<Blaster, Conn, Stats> {
 public:
  // `s` stays valid until the run is over.
  Blaster(const Settings& s, const sockaddr_storage& addr, socklen_t len,
          std::unique_ptr<Backend> be)
      : Driver(s, addr, len, std::move(be)) {}

  // The client context for TLS sessions; false (with a reason) when it
  // cannot be made.
  bool init_tls(std::string* why) {
    if (!s_.starttls && !s_.implicit_tls) return true;
    ringmail::tls::init_library();
    // A load generator: the server's certificate is not checked.
    auto ctx =
        ringmail::tls::TlsContext::client(ringmail::tls::TlsContext::ClientMode::kOpportunistic);
    if (!ctx) {
      *why = ctx.error();
      return false;
    }
    tls_ctx_ = std::move(*ctx);
    return true;
  }
  const std::shared_ptr<const ringmail::tls::TlsContext>& tls_context() const { return tls_ctx_; }

  // Whether another message may start (now or, open loop, later).
  bool more() const { return within_bounds(stats_.started, s_.messages); }
  // Open loop: the next message's time has come.
  bool due() const { return due_after(stats_.started); }

  // Connection `c`'s slot, 0..connections-1 ({c} in the patterns).
  size_t slot(const Conn* c) const { return static_cast<size_t>(c - conns_.data()); }

  void next_message(Conn* c) {
    const uint64_t n = stats_.started++;
    c->msg = SmtpClient::Message{};
    const std::string from = work_.sender(n, slot(c));
    c->msg.from = address(from);
    for (int r = 0; r < s_.recipients; ++r) {
      c->msg.rcpts.push_back(address(work_.recipient(n + static_cast<uint64_t>(r), slot(c))));
    }
    c->slot ^= 1;
    std::string& data = c->data[c->slot];
    data = "From: <" + from + ">\r\nTo: <" + c->msg.rcpts[0].to_string() +
           ">\r\nSubject: blaster " + std::to_string(n) + "\r\nMessage-ID: <" + std::to_string(n) +
           ".blaster@" + s_.helo + ">\r\n\r\n";
    if (!s_.body.empty()) {
      data += s_.body;
    } else {
      const size_t size = work_.next_size();
      // Whole filler lines, then one short line to reach the size exactly
      // (headers and CRLFs included) where the headers leave room.
      if (size > data.size() + 2) {
        const size_t room = size - data.size();
        const size_t whole = room - room % kFillerLine;
        data.append(work_.filler(), 0, whole);
        if (room - whole >= 2) data += std::string(room - whole - 2, 'x') + "\r\n";
      }
    }
    c->msg.data = data;
    // Open loop: latency from when the message was due.
    Conn::InFlight& f = c->inflight[c->n_inflight++];
    f.t = start_time(n);
    f.bytes = data.size();
  }

  // A message next_message() made was not sent after all.
  void unstart() { --stats_.started; }

  // The oldest message in flight on `c` has these results.
  void finished(Conn* c, const std::vector<SmtpClient::RcptResult>& results) {
    if (c->n_inflight == 0) return;
    const Conn::InFlight f = c->inflight[0];
    c->inflight[0] = c->inflight[1];
    --c->n_inflight;
    stats_.txn.add(std::chrono::duration<double>(Clock::now() - f.t).count());
    bool all_ok = !results.empty(), any_temp = false;
    for (const auto& r : results) {
      all_ok &= r.outcome == ringmail::proto::Outcome::kOk;
      any_temp |= r.outcome == ringmail::proto::Outcome::kTemp;
      ++stats_.codes[r.reply.substr(0, 3)];
    }
    if (all_ok) {
      ++stats_.accepted;
      stats_.bytes += f.bytes;
    } else if (any_temp) {
      ++stats_.temp;
    } else {
      ++stats_.perm;
    }
  }

  void open(Conn* c) {
    if (!more() || gave_up_) return;
    *c = Conn{};
    c->b = this;
    SmtpClient::Params p;
    p.helo = s_.helo;
    p.starttls = s_.starttls;
    p.require_tls = s_.starttls;  // asked for and not offered: each session fails, visibly
    p.pipelining = s_.pipelining;
    // "{c}" in the user: the connection's slot, so slot k logs in as the
    // same user every time (many applications, each with its own login).
    p.auth_user = Workload::numbered(s_.auth_user, 0, slot(c));
    p.auth_password = s_.auth_password;
    c->smtp = std::make_unique<SmtpClient>(p);
    c->on_connect_op = {};
    c->on_connect_op.c = c;
    c->on_connect_op.fn = &Conn::on_connect;
    c->on_recv_op.c = c;
    c->on_recv_op.fn = &Conn::on_recv;
    c->on_send_op.c = c;
    c->on_send_op.fn = &Conn::on_send;
    connect(c);
  }

  // The connection is over (QUIT answered, or an error): a new one if
  // there is work left.
  void closed(Conn* c, bool error) {
    if (error) {
      std::string why = c->error;
      if (why.empty() && c->smtp->failed()) why = c->smtp->failure_reason();
      if (why.empty()) why = "connection closed by the server";
      count_failure(std::move(why));
    }
    for (; c->n_inflight > 0; --c->n_inflight) {
      ++stats_.temp;
      ++stats_.codes["conn"];
    }
    end(c);
  }

  const Settings& settings() const { return s_; }

 private:
  friend Driver;
  static Address address(const std::string& text) {
    Address a;
    const size_t at = text.rfind('@');
    a.local = text.substr(0, at);
    a.domain = at == std::string::npos ? "" : text.substr(at + 1);
    return a;
  }

  void progress() { show_progress(stats_.accepted, "accepted", "msg/s"); }

  void report() {
    using ull = unsigned long long;
    const double t = seconds();
    const Stats& st = stats_;
    const auto lat = ringmail::blaster::latency_json;
    if (s_.json) {
      std::string codes;
      for (const auto& [k, v] : st.codes)
        codes +=
            (codes.empty() ? "" : ", ") + ringmail::proto::quoted(k) + ": " + std::to_string(v);
      std::printf(
          "{\"seconds\": %.3f, \"messages\": %llu, \"accepted\": %llu, \"temp_failed\": %llu, "
          "\"perm_failed\": %llu, \"connection_errors\": %llu, \"connections\": %llu, "
          "\"tls_sessions\": %llu, \"tls\": %s, "
          "\"messages_per_s\": %.1f, \"bytes_per_s\": %.0f, \"bytes\": %llu, \"codes\": {%s}, "
          "\"errors\": {%s}, \"latency_s\": {%s}, \"connect_s\": {%s}, \"tls_handshake_s\": {%s}, "
          "\"setup_s\": {%s}}\n",
          t, ull(st.started), ull(st.accepted), ull(st.temp), ull(st.perm), ull(st.conn_errors),
          ull(st.connects), ull(st.tls_sessions), ringmail::proto::quoted(st.tls_seen).c_str(),
          st.accepted / t, st.bytes / t, ull(st.bytes), codes.c_str(),
          ringmail::blaster::errors_json(st).c_str(), lat(st.txn).c_str(), lat(st.connect).c_str(),
          lat(st.tls).c_str(), lat(st.setup).c_str());
      return;
    }
    if (::isatty(2)) std::fprintf(stderr, "\n");
    std::printf(
        "%.2f s: %llu messages, %llu accepted, %llu temp-failed, %llu perm-failed, "
        "%llu connection errors (%llu connections, %s)\n",
        t, ull(st.started), ull(st.accepted), ull(st.temp), ull(st.perm), ull(st.conn_errors),
        ull(st.connects), ringmail::config::to_string(be_->kind()));
    std::printf("%.1f messages/s, %.2f MB/s\n", st.accepted / t, st.bytes / t / 1e6);
    std::string codes;
    for (const auto& [k, v] : st.codes) codes += " " + k + ":" + std::to_string(v);
    std::printf("replies:%s\n", codes.c_str());
    if (st.tls_sessions > 0) {
      std::printf("TLS: %llu sessions, %s\n", ull(st.tls_sessions), st.tls_seen.c_str());
    }
    ringmail::blaster::print_failures(st);
    const auto line = ringmail::blaster::print_latency;
    line("transaction", st.txn);
    line("connect    ", st.connect);
    if (st.tls.count() > 0) line("TLS        ", st.tls);
    line("set-up     ", st.setup);
  }

  std::shared_ptr<const ringmail::tls::TlsContext> tls_ctx_;
};

void Conn::on_connect(const Event& ev) {
  if (ev.res < 0) {
    error = std::string("connect: ") + std::strerror(-ev.res);
    b->closed(this, true);
    return;
  }
  b->stats().connect.add(std::chrono::duration<double>(Clock::now() - t_connect).count());
  recv_armed = true;
  b->backend().recv(fd, &on_recv_op);
  if (b->settings().implicit_tls) {
    smtp->tls_started();  // the greeting comes over TLS
    start_tls();
    flush();
  }
}

void Conn::start_tls() {
  tls =
      std::make_unique<TlsSession>(b->tls_context(), TlsSession::Role::kClient, b->settings().sni);
  t_tls = Clock::now();
  std::string none;
  tls->pump(&none);  // the ClientHello
}

void Conn::on_recv(const Event& ev) {
  if (!ringmail::blaster::receive_ended(this, b->backend(), ev)) return;
  if (out.busy()) {
    closing = true;  // on_send finishes it
    return;
  }
  const bool clean = error.empty() && smtp->state() == SmtpClient::State::kDone && !smtp->failed();
  b->closed(this, !clean);
}

void Conn::on_bytes(std::string_view in) {
  if (!tls) {
    smtp->feed(in);
    pump();
    return;
  }
  tls->feed(in);
  std::string plain;
  const bool was_up = tls->handshake_done();
  const auto st = tls->pump(&plain);
  if (!was_up && tls->handshake_done()) {
    b->stats().tls.add(std::chrono::duration<double>(Clock::now() - t_tls).count());
    if (b->stats().tls_sessions++ == 0) b->stats().tls_seen = tls->version() + " " + tls->cipher();
    if (smtp->state() == SmtpClient::State::kTlsHandshake) smtp->tls_started();
  }
  if (!plain.empty()) smtp->feed(plain);
  if (st == TlsSession::Status::kError) {
    drop("TLS: " + tls->error());
    return;
  }
  pump();
}

void Conn::on_send(const Event& ev) {
  const bool ok = out.on_sent(ev);
  if (!ok || closing) {
    if (ev.res < 0 && error.empty()) error = std::string("send: ") + std::strerror(-ev.res);
    closing = true;
    ::shutdown(fd, SHUT_RDWR);
    if (!recv_armed)
      b->closed(this, !error.empty() || ev.res < 0);  // *this is the next connection afterwards
    return;
  }
  pump();
}

// The connection cannot go on: the receive ends and on_recv closes.
void Conn::drop(std::string why) {
  if (error.empty()) error = std::move(why);
  smtp->connection_lost(error);
  ::shutdown(fd, SHUT_RDWR);
}

void Conn::pump() {
  if (smtp->state() == SmtpClient::State::kTlsHandshake && !tls) start_tls();
  for (const auto& results : smtp->take_finished()) b->finished(this, results);
  if (n_inflight > 0 && smtp->message_done()) b->finished(this, smtp->results());
  idle = false;
  const bool want_more = done_here < b->settings().per_connection && b->more();
  if (smtp->state() == SmtpClient::State::kReady && n_inflight == 0) {
    if (!ready_seen) {
      ready_seen = true;
      b->stats().setup.add(std::chrono::duration<double>(Clock::now() - t_connect).count());
    }
    if (want_more) {
      if (b->due()) {
        ++done_here;
        b->next_message(this);
        smtp->send(msg);
      } else {
        idle = true;  // the loop comes back every millisecond
      }
    } else {
      smtp->quit();
    }
  } else if (!want_more && n_inflight == 1 && smtp->state() == SmtpClient::State::kData) {
    smtp->quit();  // behind the last message's "." (PIPELINING), or after its reply
  } else if (want_more && n_inflight == 1 && smtp->can_send_next()) {
    // The next envelope goes out behind this message's end of data.
    if (b->due()) {
      ++done_here;
      b->next_message(this);
      if (!smtp->send_next(msg)) {
        --n_inflight;  // refused before MAIL: it goes by send() once this one is done
        --done_here;
        b->unstart();
      }
    } else {
      idle = true;
    }
  }
  flush();
}

void Conn::flush() {
  if (out.busy()) return;
  out.take_through(smtp->output(), tls.get());
  if (!out.empty()) {
    out.start(b->backend(), fd, &on_send_op);
  } else if (smtp->state() == SmtpClient::State::kDone) {
    ::shutdown(fd, SHUT_RDWR);  // the multishot receive ends; on_recv closes
  }
}

// --size-file: "BYTES [WEIGHT]" per line, '#' comments and blank lines
// skipped; a size is drawn for each message with those weights.
bool parse_size_file(const std::string& path, Settings* s) {
  std::ifstream in(path);
  if (!in) {
    std::fprintf(stderr, "smtp-blaster: %s: %s\n", path.c_str(), std::strerror(errno));
    return false;
  }
  std::string line;
  for (int no = 1; std::getline(in, line); ++no) {
    if (const size_t h = line.find('#'); h != std::string::npos) line.resize(h);
    std::istringstream f(line);
    std::string size_text, weight_text, extra;
    if (!(f >> size_text)) continue;
    f >> weight_text >> extra;
    char* end = nullptr;
    const unsigned long long size = std::strtoull(size_text.c_str(), &end, 10);
    double weight = 1;
    bool ok =
        *end == '\0' && size_text[0] != '-' && size > 0 && size <= (64u << 20) && extra.empty();
    if (ok && !weight_text.empty()) {
      weight = std::strtod(weight_text.c_str(), &end);
      ok = *end == '\0' && weight > 0 && std::isfinite(weight);
    }
    if (!ok) {
      std::fprintf(
          stderr, "smtp-blaster: %s:%d: want 'BYTES [WEIGHT]' (1 byte to 64 MiB, weight above 0)\n",
          path.c_str(), no);
      return false;
    }
    s->sizes.push_back(static_cast<size_t>(size));
    s->weights.push_back(weight);
  }
  if (s->sizes.empty()) {
    std::fprintf(stderr, "smtp-blaster: %s: no sizes in the file\n", path.c_str());
    return false;
  }
  return true;
}

// --body-file: the body as it is, bare LF (and CR) line ends made CRLF.
bool read_body_file(const std::string& path, Settings* s) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    std::fprintf(stderr, "smtp-blaster: %s: %s\n", path.c_str(), std::strerror(errno));
    return false;
  }
  std::string raw((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (raw.empty()) {
    std::fprintf(stderr, "smtp-blaster: %s: the file is empty\n", path.c_str());
    return false;
  }
  s->body.reserve(raw.size() + raw.size() / 32);
  for (size_t i = 0; i < raw.size(); ++i) {
    if (raw[i] == '\r') {
      s->body += "\r\n";
      if (i + 1 < raw.size() && raw[i + 1] == '\n') ++i;
    } else if (raw[i] == '\n') {
      s->body += "\r\n";
    } else {
      s->body += raw[i];
    }
  }
  if (s->body.size() < 2 || s->body.compare(s->body.size() - 2, 2, "\r\n") != 0) s->body += "\r\n";
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  Settings s;
  ringmail::blaster::HttpTarget h;
  std::string url;
  CLI::App app{"smtp-blaster: load for an SMTP server (or an HTTP injection API)"};
  auto* target = app.add_option("--target", s.target, "HOST:PORT ([v6]:port); or --http");
  auto* http = app.add_option("--http", url,
                              "HTTP injection API instead of SMTP: http://HOST:PORT/api/inject/v1");
  auto* token = app.add_option("--token", h.token, "--http: the bearer token");
  auto* per_request = app.add_option("--recipients-per-request", h.recipients_per_request,
                                     "--http: recipients (messages) in each request");
  per_request->capture_default_str()->check(CLI::Range(1, 100000));
  auto* requests =
      app.add_option("--requests", h.requests, "--http: stop after this many requests");
  app.add_option("--connections", s.connections, "concurrent connections")
      ->capture_default_str()
      ->check(CLI::Range(1, 100000));
  auto* msgs = app.add_option("--messages", s.messages, "stop after this many messages");
  auto* dur = app.add_option("--duration", s.duration, "stop after this many seconds");
  // A bound of 0 would be read as none (more() counts only bounds above 0).
  const CLI::Validator above_zero(
      [](std::string& v) {
        return std::strtod(v.c_str(), nullptr) > 0
                   ? std::string()
                   : "must be a number above 0 (the load is always bounded)";
      },
      "> 0");
  for (CLI::Option* o : {msgs, dur, requests}) o->check(above_zero);
  auto* per_connection =
      app.add_option("--per-connection", s.per_connection, "messages per connection");
  per_connection->capture_default_str()->check(CLI::Range(1, 1000000));
  auto* recipients = app.add_option("--recipients", s.recipients, "recipients per message");
  recipients->capture_default_str()->check(CLI::Range(1, 1000));
  app.add_option("--size", s.size, "message size in bytes")->capture_default_str();
  app.add_option("--size-min", s.size_min, "smallest size (with --size-max: uniform)");
  app.add_option("--size-max", s.size_max, "largest size");
  app.add_option("--from", s.from,
                 "envelope sender pattern ({n}: the message number, {c}: the connection slot)")
      ->capture_default_str();
  app.add_option("--to", s.to,
                 "recipient pattern ({n}: the message number, {c}: the connection slot)")
      ->capture_default_str();
  app.add_option("--domain", s.domains, "recipient domain mix, e.g. a.test:3,b.test:1");
  auto* helo = app.add_option("--helo", s.helo, "EHLO name");
  helo->capture_default_str();
  app.add_option("--backend", s.backend, "auto, io_uring or epoll")
      ->capture_default_str()
      ->check(CLI::IsMember({"auto", "io_uring", "epoll"}));
  std::string size_file, body_file, auth, pipelining = "on";
  auto* size_opt =
      app.add_option("--size-file", size_file, "sizes to draw from: one 'BYTES [WEIGHT]' a line");
  auto* body_opt = app.add_option("--body-file", body_file,
                                  "message body to send (headers are added; LF becomes CRLF)");
  auto* starttls =
      app.add_flag("--starttls", s.starttls, "STARTTLS (required: a server without it fails)");
  auto* tls =
      app.add_flag("--tls", s.implicit_tls, "implicit TLS from the first byte (port 465 style)");
  tls->excludes(starttls);
  auto* sni = app.add_option("--sni", s.sni,
                             "TLS server name (default: the target's host name unless an address)");
  auto* auth_opt =
      app.add_option("--auth", auth,
                     "AUTH PLAIN/LOGIN as USER:PASS once per connection (TLS only); {c} in USER: "
                     "the connection slot (0..connections-1)");
  app.add_option("--max-errors", s.max_errors, "stop after this many failed connections (0: never)")
      ->capture_default_str();
  auto* pipelining_opt = app.add_option("--pipelining", pipelining, "use PIPELINING when offered");
  pipelining_opt->capture_default_str()->check(CLI::IsMember({"on", "off"}));
  app.add_flag("--json", s.json, "one JSON object on stdout");
  app.add_option("--rate", s.rate,
                 "open loop: messages (--http: requests) per second (latency from each one's "
                 "due time)")
      ->check(CLI::PositiveNumber);
  ringmail::config::add_version_flag(app, "smtp-blaster");
  if (auto done = ringmail::config::parse_command_line(app, argc, argv)) return *done;
  // Options of the other mode: refused, one line each, rather than ignored.
  const auto usage = [](const std::string& why) {
    std::fprintf(stderr, "smtp-blaster: %s\n", why.c_str());
    return ringmail::config::kUsageExit;
  };
  if (http->count() > 0 && target->count() > 0)
    return usage("give --target HOST:PORT (SMTP) or --http URL (HTTP injection), not both");
  if (http->count() == 0 && target->count() == 0)
    return usage("--target is required (or --http URL for the HTTP injection API)");
  if (http->count() > 0) {
    for (const CLI::Option* o : {starttls, tls, auth_opt, pipelining_opt, helo, per_connection, sni,
                                 recipients, msgs, body_opt}) {
      if (o->count() > 0) {
        const char* instead = o == msgs         ? " (--requests N counts requests)"
                              : o == recipients ? " (--recipients-per-request N)"
                                                : "";
        return usage(o->get_name() + " is for SMTP, not with --http" + instead);
      }
    }
    if (token->count() == 0) return usage("--http needs --token T (the bearer token)");
    // It goes into a header field as it is (RFC 6750's b64token is narrower).
    if (h.token.empty() ||
        std::any_of(h.token.begin(), h.token.end(), [](char ch) { return ch <= ' ' || ch > '~'; }))
      return usage("--token: printable ASCII without spaces only");
  } else {
    for (const CLI::Option* o : {token, per_request, requests}) {
      if (o->count() > 0) return usage(o->get_name() + " needs --http URL");
    }
  }
  std::string host, port, shown;
  if (http->count() > 0) {
    std::string why;
    if (!ringmail::blaster::parse_http_url(url, &h, &host, &port, &why)) return usage(why);
    if (requests->count() == 0 && dur->count() == 0) {
      std::fprintf(
          stderr, "smtp-blaster: give --requests N or --duration S (the load is always bounded)\n");
      return 2;
    }
    shown = url;
  } else if (msgs->count() == 0 && dur->count() == 0) {
    std::fprintf(stderr,
                 "smtp-blaster: give --messages N or --duration S (the load is always bounded)\n");
    return 2;
  }
  if (s.size_max > 0 && s.size_min > s.size_max) {
    std::fprintf(stderr, "smtp-blaster: --size-min is above --size-max\n");
    return 2;
  }
  s.pipelining = pipelining == "on";
  if (!auth.empty()) {
    const size_t c = auth.find(':');
    if (c == std::string::npos || c == 0) {
      std::fprintf(stderr, "smtp-blaster: --auth must be USER:PASS\n");
      return 2;
    }
    s.auth_user = auth.substr(0, c);
    s.auth_password = auth.substr(c + 1);
    if (!s.starttls && !s.implicit_tls) {
      std::fprintf(
          stderr,
          "smtp-blaster: --auth needs --starttls or --tls (a password never goes in clear)\n");
      return 2;
    }
  }
  if (size_opt->count() > 0 && !parse_size_file(size_file, &s)) return 2;
  if (!body_file.empty() && !read_body_file(body_file, &s)) return 2;
  if (http->count() == 0) {
    const size_t colon = s.target.rfind(':');
    if (colon == std::string::npos) {
      std::fprintf(stderr, "smtp-blaster: --target must be HOST:PORT\n");
      return 2;
    }
    host = s.target.substr(0, colon);
    port = s.target.substr(colon + 1);
    if (host.size() > 1 && host.front() == '[') host = host.substr(1, host.size() - 2);
    if (s.sni.empty() && host.find_first_not_of("0123456789.") != std::string::npos &&
        host.find(':') == std::string::npos) {
      s.sni = host;
    }
    shown = s.target;
  }
  addrinfo hints{}, *res = nullptr;
  hints.ai_socktype = SOCK_STREAM;
  if (int e = ::getaddrinfo(host.c_str(), port.c_str(), &hints, &res); e != 0) {
    std::fprintf(stderr, "smtp-blaster: %s: %s\n", shown.c_str(), gai_strerror(e));
    return 2;
  }
  sockaddr_storage addr{};
  std::memcpy(&addr, res->ai_addr, res->ai_addrlen);
  const socklen_t len = res->ai_addrlen;
  ::freeaddrinfo(res);
  std::string why;
  const auto kind = s.backend == "io_uring" ? ringmail::config::BackendKind::kUring
                    : s.backend == "epoll"  ? ringmail::config::BackendKind::kEpoll
                                            : ringmail::config::BackendKind::kAuto;
  auto be = ringmail::engine::make_backend(kind, &why);
  if (be == nullptr) {
    std::fprintf(stderr, "smtp-blaster: %s\n", why.c_str());
    return 2;
  }
  // Room for every connection's descriptor.
  rlimit nofile{};
  if (::getrlimit(RLIMIT_NOFILE, &nofile) == 0 && nofile.rlim_cur < nofile.rlim_max) {
    nofile.rlim_cur = nofile.rlim_max;
    ::setrlimit(RLIMIT_NOFILE, &nofile);
  }
  if (http->count() > 0) return ringmail::blaster::run_http(s, h, addr, len, std::move(be));
  Blaster blaster(s, addr, len, std::move(be));
  if (!blaster.init_tls(&why)) {
    std::fprintf(stderr, "smtp-blaster: TLS: %s\n", why.c_str());
    return 2;
  }
  return blaster.run();
}
