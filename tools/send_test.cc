#include "tools/send_test.h"

#include <netdb.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <memory>

#include "config/version_text.h"
#include "proto/smtp_client.h"
#include "proto/smtp_server.h"
#include "tls/context.h"
#include "tls/session.h"

namespace ringmail::tools {

namespace {

using proto::SmtpClient;

// The session's lines as they go, AUTH data hidden.
void show(const char* who, std::string_view bytes, bool* hide_next) {
  size_t pos = 0;
  while (pos < bytes.size()) {
    size_t nl = bytes.find('\n', pos);
    if (nl == std::string_view::npos) nl = bytes.size();
    std::string line(bytes.substr(pos, nl - pos));
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (who[0] == 'C' && (*hide_next || line.rfind("AUTH ", 0) == 0)) {
      line = line.rfind("AUTH ", 0) == 0 ? line.substr(0, line.find(' ', 5)) + " ****" : "****";
    }
    if (who[0] == 'S') *hide_next = line.rfind("334 ", 0) == 0;
    if (!line.empty()) std::printf("%s %s\n", who, line.c_str());
    pos = nl + 1;
  }
}

int connect_to(const std::string& host, const std::string& port, std::string* why) {
  addrinfo hints{}, *res = nullptr;
  hints.ai_socktype = SOCK_STREAM;
  if (int e = ::getaddrinfo(host.c_str(), port.c_str(), &hints, &res); e != 0) {
    *why = "cannot find " + host + ": " + gai_strerror(e);
    return -1;
  }
  int fd = -1;
  int err = 0;
  for (addrinfo* a = res; a != nullptr && fd < 0; a = a->ai_next) {
    fd = ::socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, 0);
    const timeval tv{20, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    if (fd >= 0 && ::connect(fd, a->ai_addr, a->ai_addrlen) != 0) {
      err = errno;
      ::close(fd);
      fd = -1;
    }
  }
  ::freeaddrinfo(res);
  if (fd < 0) {
    *why = "cannot connect to " + host + " port " + port + ": " + std::strerror(err) +
           (err == ECONNREFUSED
                ? " (nothing listens there: is ringmaild running with a listener on that port?)"
            : err == ETIMEDOUT || err == EAGAIN || err == EINPROGRESS
                ? " (the port looks blocked: a firewall, or a provider that blocks mail ports)"
                : "");
  }
  return fd;
}

// What a refusal means, in plain words (`reply` may be inside a sentence).
std::string explain(const std::string& reply) {
  auto has = [&](const char* code) { return reply.find(code) != std::string::npos; };
  if (has("535 ")) return "the user name or password is wrong";
  if (has("530 ")) return "the server wants AUTH before MAIL";
  if (has("538 ")) return "the server wants TLS before AUTH";
  if (has(" 5.7.1")) return "the server does not let this user send for this address";
  if (has(" 4.")) return "a temporary refusal: try again later";
  return "the server refused it";
}

// One session over a new connection, its certificate checked or not as
// `ctx` does. A verifying context stops the handshake at a certificate that
// does not check out: then *bad_certificate, and no password is sent.
int run_session(const SendTest& t, const std::string& host, const std::string& port, bool implicit,
                const std::shared_ptr<const tls::TlsContext>& ctx, bool* bad_certificate) {
  // The name the certificate is checked against (and sent as SNI).
  const std::string& name = t.tls_name.empty() ? host : t.tls_name;
  std::string why;
  const int fd = connect_to(host, port, &why);
  if (fd < 0) {
    std::fprintf(stderr, "ringmail: %s\n", why.c_str());
    return 1;
  }
  std::unique_ptr<int, void (*)(int*)> closer(new int(fd), [](int* f) {
    ::close(*f);
    delete f;
  });
  SmtpClient::Params p;
  p.helo = "send-test.ringmail";
  p.starttls = true;
  p.require_tls = true;
  p.auth_user = t.user;
  p.auth_password = t.password;
  SmtpClient c(p);
  const std::string date = proto::rfc5322_date(std::time(nullptr));
  // A Message-ID, as RFC 5322 3.6.4 asks of an originator: without one,
  // receivers' filters count against the very mail this checks.
  unsigned char rnd[8] = {};
  if (::getrandom(rnd, sizeof rnd, 0) != static_cast<ssize_t>(sizeof rnd))
    std::memset(rnd, 0, sizeof rnd);
  char unique[32];
  std::snprintf(unique, sizeof unique, "%02x%02x%02x%02x%02x%02x%02x%02x", rnd[0], rnd[1], rnd[2],
                rnd[3], rnd[4], rnd[5], rnd[6], rnd[7]);
  const size_t at = t.user.rfind('@');
  const std::string msgid =
      "<send-test." + std::to_string(std::time(nullptr)) + "." + unique + "@" +
      (at == std::string::npos ? std::string("localhost") : t.user.substr(at + 1)) + ">";
  const std::string data = "From: " + t.user + "\r\nTo: " + t.to + "\r\nDate: " + date +
                           "\r\nMessage-ID: " + msgid +
                           "\r\nSubject: ringmail send-test\r\n\r\nThis is a test message sent by "
                           "`ringmail send-test` through " +
                           t.server + ".\r\n";
  SmtpClient::Message m;
  const size_t at_u = t.user.rfind('@'), at_t = t.to.rfind('@');
  if (at_u == std::string::npos || at_t == std::string::npos) {
    std::fprintf(stderr, "ringmail: --user and --to must be addresses (local@domain)\n");
    return config::kUsageExit;
  }
  m.from.local = t.user.substr(0, at_u);
  m.from.domain = t.user.substr(at_u + 1);
  proto::Address to;
  to.local = t.to.substr(0, at_t);
  to.domain = t.to.substr(at_t + 1);
  m.rcpts = {to};
  m.data = data;
  std::unique_ptr<tls::TlsSession> tls;
  bool sent = false, hide = false;
  auto start_tls = [&]() -> bool {
    tls = std::make_unique<tls::TlsSession>(ctx, tls::TlsSession::Role::kClient, name);
    std::string plain;
    while (!tls->handshake_done()) {
      const bool failed = tls->pump(&plain) == tls::TlsSession::Status::kError;
      if (!tls->output().empty()) {  // the handshake, or the alert that ends it
        ::send(fd, tls->output().data(), tls->output().size(), MSG_NOSIGNAL);
        tls->output().clear();
      }
      if (failed && tls->certificate_failed()) {
        *bad_certificate = true;
        const std::string problem = tls->certificate_problem();
        const bool issuer = problem.rfind("untrusted issuer", 0) == 0;
        std::fprintf(stderr, "ringmail: the server's certificate is not valid for %s (%s%s)\n",
                     name.c_str(), problem.c_str(),
                     issuer ? "; --ca-file trusts a private CA" : "");
        return false;  // never send the password over it
      }
      if (failed) {
        std::fprintf(stderr, "ringmail: the TLS handshake failed: %s\n", tls->error().c_str());
        return false;
      }
      if (tls->handshake_done()) break;
      char buf[16384];
      const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
      if (n <= 0) {
        std::fprintf(stderr,
                     "ringmail: the server closed the connection during the TLS handshake\n");
        return false;
      }
      tls->feed(std::string_view(buf, static_cast<size_t>(n)));
    }
    if (ctx->verifying() && !tls->peer_verified()) {  // no name to check it against
      *bad_certificate = true;
      std::fprintf(stderr, "ringmail: the server's certificate could not be checked for \"%s\"\n",
                   name.c_str());
      return false;
    }
    std::printf("== TLS: %s %s; certificate %s\n", tls->version().c_str(), tls->cipher().c_str(),
                ctx->verifying() ? ("valid for " + name).c_str() : "NOT checked (--insecure)");
    return true;
  };
  if (implicit && !start_tls()) return 1;
  if (implicit) c.tls_started();
  while (c.state() != SmtpClient::State::kDone) {
    if (c.state() == SmtpClient::State::kTlsHandshake) {
      if (!start_tls()) return 1;
      c.tls_started();
      continue;
    }
    if (c.state() == SmtpClient::State::kReady) {
      if (!sent) {
        c.send(m);
        sent = true;
      } else {
        c.quit();
      }
    }
    if (!c.output().empty()) {
      show("C:", c.output(), &hide);
      std::string wire = c.output();
      c.output().clear();
      if (tls) {
        tls->write(wire);
        wire.swap(tls->output());
        tls->output().clear();
      }
      ::send(fd, wire.data(), wire.size(), MSG_NOSIGNAL);
      continue;
    }
    char buf[16384];
    const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0) {
      c.connection_lost(n == 0 ? "the server closed the connection" : "no reply within 20 s");
      break;
    }
    std::string plain(buf, static_cast<size_t>(n));
    if (tls) {
      tls->feed(plain);
      plain.clear();
      tls->pump(&plain);
    }
    show("S:", plain, &hide);
    c.feed(plain);
  }
  if (c.failed()) {
    std::fprintf(stderr, "ringmail: %s: %s\n", c.failure_reason().c_str(),
                 explain(c.failure_reason()).c_str());
    return 1;
  }
  if (!c.message_done() || c.results().empty() || c.results()[0].outcome != proto::Outcome::kOk) {
    const std::string r = c.results().empty() ? "no result" : c.results()[0].reply;
    std::fprintf(stderr, "ringmail: the message was not taken: %s: %s\n", r.c_str(),
                 explain(r).c_str());
    return 1;
  }
  std::printf("== sent: %s\n", c.results()[0].reply.c_str());
  return 0;
}

}  // namespace

int send_test(const SendTest& t) {
  const size_t colon = t.server.rfind(':');
  const std::string host = colon == std::string::npos ? t.server : t.server.substr(0, colon);
  const std::string port = colon == std::string::npos ? "587" : t.server.substr(colon + 1);
  const bool implicit = t.implicit_tls || port == "465";
  auto ctx = tls::TlsContext::client(tls::TlsContext::ClientMode::kVerify, t.ca_file);
  if (!ctx) {
    std::fprintf(stderr, "ringmail: TLS: %s\n", ctx.error().c_str());
    return 1;
  }
  bool bad_certificate = false;
  const int rc = run_session(t, host, port, implicit, *ctx, &bad_certificate);
  if (!bad_certificate || !t.insecure) return rc;
  // --insecure: again, over a connection whose certificate is not checked
  // (its own context: a verifying one never takes a failed certificate).
  auto unchecked = tls::TlsContext::client(tls::TlsContext::ClientMode::kOpportunistic);
  if (!unchecked) {
    std::fprintf(stderr, "ringmail: TLS: %s\n", unchecked.error().c_str());
    return 1;
  }
  std::printf("== --insecure: connecting again without checking the certificate\n");
  return run_session(t, host, port, implicit, *unchecked, &bad_certificate);
}

}  // namespace ringmail::tools
