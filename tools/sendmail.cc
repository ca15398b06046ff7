// ringmail-sendmail: the sendmail(1) interface that applications, cron and
// PHP call (`sendmail -t -i`), installable as /usr/sbin/sendmail.
//
//   ringmail-sendmail [-t] [-i|-oi] [-f sender] [-F name] [-C config] [rcpt...] < message
//   ringmail-sendmail -bp [-C config]       the queue, as Postfix's mailq (also: called
//   mailq [-C config]                       as mailq, the symlink meson install adds)
//   ringmail-sendmail -q [-C config]        every queued message due now (-qRsite: the
//                                           mail for one domain)
//
// The message (LF or CRLF lines) goes by SMTP to the local ringmaild's first
// smtp listener, read from its configuration (-C, $RINGMAIL_CONFIG, or
// /etc/ringmail/ringmail.toml); that listener's client address must be in
// relay_networks for mail to other domains (docs/configuration.md). From,
// Date and Message-ID are added when missing. When the daemon cannot take
// the message it is appended to ~/dead.letter and the exit status says
// why: 75 (try again), 67 (recipients refused), 64 (usage), 65 (bad input).
// The queue modes go through ringmaild's admin socket ([admin] socket,
// docs/admin-api.md) as `ringmail queue` does: exit 75 when the daemon is
// not running, 1 when it refuses (its error on stderr), 78 when the
// configuration has no admin socket.
#include <netdb.h>
#include <pwd.h>
#include <sys/socket.h>
#include <sysexits.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <iostream>
#include <iterator>
#include <string>
#include <vector>

#include "config/version_text.h"
#include "proto/address.h"
#include "proto/dkim.h"
#include "proto/smtp_client.h"
#include "proto/smtp_server.h"
#include "tools/admin_client.h"
#include "tools/queue_format.h"
#include "tools/tool_config.h"

namespace {

using ringmail::proto::Address;

constexpr char kUsage[] =
    "ringmail-sendmail: the sendmail(1) interface of a ringmail relay\n"
    "Usage: ringmail-sendmail [-t] [-i|-oi] [-f sender] [-F name] [-C config] [rcpt...] < message\n"
    "       ringmail-sendmail -bp      (or mailq): the queue, in postqueue -p's layout\n"
    "       ringmail-sendmail -q       flush the queue; -qRdomain: one domain's mail\n"
    "\n"
    "Options:\n"
    "  -t           read recipients from To, Cc and Bcc (Bcc is removed)\n"
    "  -i, -oi      a line with only \".\" does not end the message\n"
    "  -f, -r ADDR  envelope sender (default: login name at the relay's domain)\n"
    "  -F NAME      full name for the From header it adds\n"
    "  -C FILE      ringmaild's configuration (default $RINGMAIL_CONFIG, then\n"
    "               /etc/ringmail/ringmail.toml)\n"
    "  -bm          send a message read from standard input (the default)\n"
    "  -bp          list the queue\n"
    "  -q           flush the queue\n"
    "  -qR DOMAIN   flush one domain's mail (also -qRDOMAIN)\n"
    "  --help       this text\n"
    "  --version    the version\n"
    "Accepted and ignored: -o..., -B..., -N..., -R..., -V..., -U, -v.\n"
    "Exit status: 0 sent; 64 usage; 65 bad input; 67 recipients refused; 75 try again\n"
    "(the message went to ~/dead.letter); 78 no admin socket configured.\n";

int fail(int code, const std::string& why) {
  std::fprintf(stderr, "ringmail-sendmail: %s\n", why.c_str());
  return code;
}

struct Options {
  bool from_headers = false;  // -t
  bool dot_ends = true;       // without -i: a line with only "." ends the input
  std::string sender;         // -f
  bool sender_given = false;  // -f given (empty: the null sender)
  std::string full_name;      // -F
  std::string config;         // -C
  std::vector<std::string> rcpts;
  // -bm (the default), -bp (or called as mailq), -q; -qRsite: one domain.
  enum class Mode { kSend, kList, kFlush, kHelp, kVersion } mode = Mode::kSend;
  std::string flush_domain;
};

// sendmail's flags; false with a reason. Options that only steer
// sendmail's own queueing (-o..., -B..., -N..., -R..., -V..., -U, -v) are
// accepted and ignored.
bool parse_args(int argc, char** argv, Options* o, std::string* why) {
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--") {
      for (++i; i < argc; ++i) o->rcpts.push_back(argv[i]);
      break;
    }
    if (a.empty() || a[0] != '-') {
      o->rcpts.push_back(a);
      continue;
    }
    auto value = [&](std::string* out) {
      if (a.size() > 2) {
        *out = a.substr(2);
        return true;
      }
      if (i + 1 >= argc) {
        *why = a + " needs a value";
        return false;
      }
      *out = argv[++i];
      return true;
    };
    const char flag = a.size() > 1 ? a[1] : '\0';
    if (a == "--help" || a == "--version") {
      o->mode = a == "--help" ? Options::Mode::kHelp : Options::Mode::kVersion;
      return true;
    } else if (a == "-t") {
      o->from_headers = true;
    } else if (a == "-i" || a == "-oi") {
      o->dot_ends = false;
    } else if (a == "-bm") {
      o->mode = Options::Mode::kSend;
    } else if (a == "-bp") {
      o->mode = Options::Mode::kList;
    } else if (flag == 'b') {
      *why = "mode " + a +
             " is not supported (only -bm, reading a message from standard input, and -bp, "
             "listing the queue)";
      return false;
    } else if (a == "-q") {
      o->mode = Options::Mode::kFlush;
    } else if (a.rfind("-qR", 0) == 0) {
      o->mode = Options::Mode::kFlush;
      a.erase(1, 1);  // "-qRsite" -> "-Rsite": value() takes what follows "-R"
      if (!value(&o->flush_domain)) return false;
    } else if (flag == 'q') {
      *why = a +
             " is not supported (ringmaild retries on its own schedule; -q alone flushes "
             "the queue, -qRsite one domain's mail)";
      return false;
    } else if (flag == 'f' || flag == 'r') {
      if (!value(&o->sender)) return false;
      o->sender_given = true;
    } else if (flag == 'F') {
      if (!value(&o->full_name)) return false;
    } else if (flag == 'C') {
      if (!value(&o->config)) return false;
    } else if (flag == 'o' || flag == 'B' || flag == 'N' || flag == 'R' || flag == 'V' ||
               a == "-U" || a == "-v") {
      std::string ignored;
      if ((flag == 'B' || flag == 'N' || flag == 'R' || flag == 'V') && a.size() == 2 &&
          !value(&ignored))
        return false;
    } else {
      *why = "unknown option " + a;
      return false;
    }
  }
  return true;
}

std::string login_name() {
  if (const passwd* pw = ::getpwuid(::getuid())) return pw->pw_name;
  return "nobody";
}

// "name <a@b>, c@d" -> the addresses (a@b, c@d).
void addresses_in(std::string_view v, std::vector<std::string>* out) {
  std::string cur;
  bool quoted = false;
  int comment = 0;
  auto flush = [&] {
    std::string a = cur;
    const size_t lt = a.find('<');
    if (lt != std::string::npos) a = a.substr(lt + 1, a.find('>', lt) - lt - 1);
    while (!a.empty() && (a.front() == ' ' || a.front() == '\t')) a.erase(0, 1);
    while (!a.empty() && (a.back() == ' ' || a.back() == '\t')) a.pop_back();
    if (a.find('@') != std::string::npos && a.find(' ') == std::string::npos) out->push_back(a);
    cur.clear();
  };
  for (char c : v) {
    if (c == '"') quoted = !quoted;
    if (!quoted && c == '(') ++comment;
    if (comment > 0) {
      if (c == ')') --comment;
      continue;
    }
    if (!quoted && c == ',') {
      flush();
      continue;
    }
    if (c == '\r' || c == '\n') c = ' ';
    cur += c;
  }
  flush();
}

// LF or CRLF lines -> CRLF; without -i, stops at a line holding only ".".
std::string normalize(const std::string& in, bool dot_ends) {
  std::string out;
  out.reserve(in.size() + in.size() / 40);
  size_t pos = 0;
  while (pos < in.size()) {
    size_t nl = in.find('\n', pos);
    const bool last = nl == std::string::npos;
    std::string_view line(in.data() + pos, (last ? in.size() : nl) - pos);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (dot_ends && line == ".") break;
    out.append(line);
    out += "\r\n";
    pos = last ? in.size() : nl + 1;
  }
  return out;
}

struct Listener {
  std::string host, port, hostname, domain;
};

// The daemon's first smtp listener, from its configuration (-C given, else
// tools/tool_config.h's search, the embedded dev one in a checkout).
bool local_listener(const std::string& given, Listener* l, std::string* why) {
  auto loaded = ringmail::tools::load_tool_config(given, true);
  if (!loaded) {
    *why = loaded.error();
    return false;
  }
  const ringmail::tools::ToolConfig& tc = *loaded;
  if (tc.cfg == nullptr) {
    *why = ringmail::tools::default_config_path() + ": cannot read the configuration file";
    return false;
  }
  l->hostname = tc.cfg->hostname;
  l->domain = tc.cfg->primary_domain;
  for (const auto& x : tc.cfg->listeners) {
    if (x.http || x.implicit_tls || x.kind != ringmail::proto::ListenerKind::kSmtp) continue;
    const size_t colon = x.address.rfind(':');
    l->port = x.address.substr(colon + 1);
    std::string h = x.address.substr(0, colon);
    if (h.size() > 1 && h.front() == '[') h = h.substr(1, h.size() - 2);
    l->host = h == "0.0.0.0" ? "127.0.0.1" : h == "::" ? "::1" : h;
    return true;
  }
  *why = (tc.path.empty() ? std::string("the embedded dev configuration") : tc.path) +
         ": no smtp listener to hand mail to";
  return false;
}

// mailq, -bp and -q: through the admin socket of the configuration (-C,
// else tools/tool_config.h's search). The exit status.
int queue_mode(const char* prog, const Options& o) {
  auto loaded = ringmail::tools::load_tool_config(o.config, true);
  if (!loaded) {
    std::fprintf(stderr, "%s: %s\n", prog, loaded.error().c_str());
    return EX_CONFIG;
  }
  const ringmail::tools::ToolConfig& tc = *loaded;
  if (tc.cfg == nullptr) {
    std::fprintf(stderr, "%s: %s: cannot read the configuration file\n", prog,
                 ringmail::tools::default_config_path().c_str());
    return EX_CONFIG;
  }
  if (tc.cfg->admin_socket.empty()) {
    std::fprintf(stderr, "%s: no [admin] socket in %s: ringmaild has no admin API\n", prog,
                 tc.cfg->source.c_str());
    return EX_CONFIG;
  }
  const std::string& socket = tc.cfg->admin_socket;
  if (o.mode == Options::Mode::kFlush) {
    // As postqueue -f: nothing printed when done.
    ringmail::tools::QueueSelector s;
    if (!o.flush_domain.empty()) s.domain = o.flush_domain;
    auto body = ringmail::tools::selector_body(s, true);
    if (!body) {
      std::fprintf(stderr, "%s: %s\n", prog, body.error().c_str());
      return EX_USAGE;
    }
    return ringmail::tools::admin_call(prog, socket, "POST", "/api/queue/flush", *body).exit;
  }
  ringmail::tools::MailqTotals totals;
  const int rc =
      ringmail::tools::admin_pages(prog, socket, ringmail::tools::list_target({}), 0,
                                   [&](std::string_view page) -> ringmail::Result<void> {
                                     auto text = ringmail::tools::format_mailq_page(page, &totals);
                                     if (!text) return ringmail::Error{text.error()};
                                     std::fwrite(text->data(), 1, text->size(), stdout);
                                     return {};
                                   });
  if (rc != 0) return rc;
  std::fputs(ringmail::tools::format_mailq_end(totals).c_str(), stdout);
  return 0;
}

// The message goes to the end of ~/dead.letter (mbox form), so a failure
// never loses it.
std::string save_dead_letter(const std::string& sender, const std::string& crlf_message) {
  const char* home = std::getenv("HOME");
  const std::string path = std::string(home && *home ? home : "/tmp") + "/dead.letter";
  FILE* f = std::fopen(path.c_str(), "a");
  if (f == nullptr) return "";
  const std::time_t now = std::time(nullptr);
  char date[64];
  std::strftime(date, sizeof date, "%a %b %e %H:%M:%S %Y", std::gmtime(&now));
  std::string text =
      "From " + (sender.empty() ? std::string("MAILER-DAEMON") : sender) + " " + date + "\n";
  for (size_t pos = 0; pos < crlf_message.size();) {
    size_t e = crlf_message.find("\r\n", pos);
    if (e == std::string::npos) e = crlf_message.size();
    std::string line = crlf_message.substr(pos, e - pos);
    if (line.rfind("From ", 0) == 0) line = ">" + line;
    text += line + "\n";
    pos = e + 2;
  }
  text += "\n";
  const bool ok = std::fwrite(text.data(), 1, text.size(), f) == text.size() &&
                  std::fflush(f) == 0 && ::fsync(::fileno(f)) == 0;
  std::fclose(f);
  return ok ? path : "";
}

// One SMTP transaction with proto::SmtpClient over a blocking socket:
// 0 sent, else the exit status (and *why).
int submit(const Listener& l, const Address& from, const std::vector<Address>& rcpts,
           const std::string& data, std::string* why) {
  addrinfo hints{}, *res = nullptr;
  hints.ai_socktype = SOCK_STREAM;
  if (int e = ::getaddrinfo(l.host.c_str(), l.port.c_str(), &hints, &res); e != 0) {
    *why = l.host + ": " + gai_strerror(e);
    return EX_TEMPFAIL;
  }
  int fd = -1;
  for (addrinfo* a = res; a != nullptr && fd < 0; a = a->ai_next) {
    fd = ::socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, 0);
    if (fd >= 0 && ::connect(fd, a->ai_addr, a->ai_addrlen) != 0) {
      ::close(fd);
      fd = -1;
    }
  }
  ::freeaddrinfo(res);
  if (fd < 0) {
    *why = "the local ringmaild does not answer on " + l.host + ":" + l.port + " (" +
           std::strerror(errno) + ")";
    return EX_TEMPFAIL;
  }
  const timeval tv{300, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  ringmail::proto::SmtpClient::Params p;
  p.helo = l.hostname.empty() ? "localhost" : l.hostname;
  p.starttls = false;  // loopback
  ringmail::proto::SmtpClient c(p);
  ringmail::proto::SmtpClient::Message m;
  m.from = from;
  m.rcpts = rcpts;
  m.data = data;
  m.body_8bit = std::any_of(data.begin(), data.end(), [](char ch) { return ch & 0x80; });
  bool sent = false;
  while (c.state() != ringmail::proto::SmtpClient::State::kDone) {
    if (c.state() == ringmail::proto::SmtpClient::State::kReady) {
      if (!sent) {
        c.send(m);
        sent = true;
      } else {
        c.quit();
      }
    }
    std::string& out = c.output();
    if (!out.empty()) {
      if (::send(fd, out.data(), out.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(out.size())) {
        c.connection_lost("write failed");
        break;
      }
      out.clear();
      continue;
    }
    char buf[4096];
    const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0) {
      c.connection_lost(n == 0 ? "connection closed" : "no reply");
      break;
    }
    c.feed(std::string_view(buf, static_cast<size_t>(n)));
  }
  ::close(fd);
  if (!sent || !c.message_done()) {
    *why = "the local ringmaild did not take the message: " + c.failure_reason();
    return c.failure() == ringmail::proto::Outcome::kPerm ? EX_DATAERR : EX_TEMPFAIL;
  }
  int status = 0;
  for (size_t i = 0; i < c.results().size(); ++i) {
    const auto& r = c.results()[i];
    if (r.outcome == ringmail::proto::Outcome::kOk) continue;
    *why += (why->empty() ? "" : "; ") + rcpts[i].to_string() + ": " + r.reply;
    const int s = r.outcome == ringmail::proto::Outcome::kPerm ? EX_NOUSER : EX_TEMPFAIL;
    status = status == EX_TEMPFAIL ? EX_TEMPFAIL : s;
  }
  return status;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  std::string why;
  if (!parse_args(argc, argv, &o, &why)) return fail(EX_USAGE, why);
  if (o.mode == Options::Mode::kVersion) {
    std::printf("%s\n", ringmail::config::version_line("ringmail-sendmail").c_str());
    return 0;
  }
  if (o.mode == Options::Mode::kHelp) {
    std::fputs(kUsage, stdout);
    return 0;
  }
  const char* slash = argc > 0 ? std::strrchr(argv[0], '/') : nullptr;
  const std::string_view called = argc > 0 ? (slash != nullptr ? slash + 1 : argv[0]) : "";
  if (called == "mailq") o.mode = Options::Mode::kList;
  if (o.mode != Options::Mode::kSend) {
    return queue_mode(called == "mailq" ? "mailq" : "ringmail-sendmail", o);
  }
  std::string raw((std::istreambuf_iterator<char>(std::cin)), std::istreambuf_iterator<char>());
  std::string data = normalize(raw, o.dot_ends);
  Listener l;
  const bool have_listener = local_listener(o.config, &l, &why);
  const std::string domain = !l.domain.empty()     ? l.domain
                             : !l.hostname.empty() ? l.hostname
                                                   : "localhost";
  // -f "" or -f "<>": the null sender (bounces, vacation replies), as
  // sendmail has it; no -f: the user at the relay's domain.
  if (o.sender == "<>") o.sender.clear();
  if (o.sender.empty() && !o.sender_given) o.sender = login_name() + "@" + domain;
  const std::string from_field = o.sender.empty() ? login_name() + "@" + domain : o.sender;

  // Header: what -t reads, what is missing, Bcc removed.
  size_t body = 0;
  const auto fields = ringmail::proto::dkim::split_header(data, &body);
  bool has_from = false, has_date = false, has_mid = false;
  std::vector<std::pair<size_t, size_t>> bcc;  // spans to remove
  for (const auto& f : fields) {
    using ringmail::proto::iequals;
    has_from |= iequals(f.name, "from");
    has_date |= iequals(f.name, "date");
    has_mid |= iequals(f.name, "message-id");
    if (o.from_headers &&
        (iequals(f.name, "to") || iequals(f.name, "cc") || iequals(f.name, "bcc"))) {
      addresses_in(f.value, &o.rcpts);
    }
    if (iequals(f.name, "bcc")) {
      const size_t start = static_cast<size_t>(f.name.data() - data.data());
      bcc.push_back(
          {start, static_cast<size_t>(f.value.data() + f.value.size() - data.data()) + 2 - start});
    }
  }
  for (auto it = bcc.rbegin(); it != bcc.rend(); ++it) data.erase(it->first, it->second);
  std::string added;
  if (!has_from) {
    added += "From: " +
             (o.full_name.empty() ? from_field : "\"" + o.full_name + "\" <" + from_field + ">") +
             "\r\n";
  }
  if (!has_date) added += "Date: " + ringmail::proto::rfc5322_date(std::time(nullptr)) + "\r\n";
  if (!has_mid) {
    added += "Message-ID: <" + std::to_string(std::time(nullptr)) + "." +
             std::to_string(::getpid()) + "@" + (l.hostname.empty() ? domain : l.hostname) +
             ">\r\n";
  }
  data.insert(0, added);

  auto parse = [](const std::string& text, bool null_ok, Address* a) {
    const std::string path = "<" + text + ">";
    size_t used = 0;
    return ringmail::proto::parse_path(path, null_ok, false, *a, used) ==
               ringmail::proto::AddressError::kNone &&
           used == path.size();
  };
  Address from;
  std::vector<Address> rcpts;
  if (!parse(o.sender, true, &from)) return fail(EX_USAGE, "bad sender address " + o.sender);
  for (const auto& r : o.rcpts) {
    Address a;
    if (!parse(r, false, &a)) return fail(EX_USAGE, "bad recipient address " + r);
    rcpts.push_back(a);
  }
  if (rcpts.empty())
    return fail(EX_USAGE, o.from_headers ? "no recipient in To, Cc or Bcc" : "no recipient given");
  int status = EX_TEMPFAIL;
  if (have_listener) {
    why.clear();
    status = submit(l, from, rcpts, data, &why);
  }
  if (status == 0) return 0;
  const std::string saved = save_dead_letter(o.sender, data);
  return fail(status, why + (saved.empty() ? "; and the message could not be saved either"
                                           : "; the message was saved in " + saved));
}
