#include "proto/smtp_client.h"

#include <cctype>
#include <cstdlib>

#include "proto/sasl.h"

namespace ringmail::proto {

std::string Reply::summary() const {
  std::string s = std::to_string(code);
  if (!text.empty()) {
    s += ' ';
    for (char c : text) s += c == '\n' ? ' ' : c;
  }
  return s;
}

void ReplyReader::feed(std::string_view in, std::vector<Reply>* out) {
  partial_.append(in);
  size_t pos = 0;
  while (true) {
    const size_t nl = partial_.find('\n', pos);
    if (nl == std::string::npos) break;
    std::string_view line(partial_.data() + pos, nl - pos);
    pos = nl + 1;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    const bool digits = line.size() >= 3 && std::isdigit(static_cast<unsigned char>(line[0])) &&
                        std::isdigit(static_cast<unsigned char>(line[1])) &&
                        std::isdigit(static_cast<unsigned char>(line[2]));
    const char sep = line.size() > 3 ? line[3] : ' ';
    if (!digits || (sep != ' ' && sep != '-')) {
      out->push_back(Reply{0, std::string(line)});
      current_ = Reply{};
      lines_ = 0;
      continue;
    }
    const int code = std::atoi(std::string(line.substr(0, 3)).c_str());
    if (lines_ > 0 && code != current_.code) {
      out->push_back(Reply{0, "inconsistent multi-line reply"});
      current_ = Reply{};
      lines_ = 0;
      continue;
    }
    current_.code = code;
    if (lines_ > 0) current_.text += '\n';
    if (line.size() > 4) current_.text.append(line.substr(4));
    if (sep == '-') {
      if (++lines_ > kLinesMax) {
        overflow_ = true;
        break;
      }
      continue;
    }
    out->push_back(std::move(current_));
    current_ = Reply{};
    lines_ = 0;
  }
  partial_.erase(0, pos);
  if (partial_.size() > kLineMax) overflow_ = true;
}

ServerCaps parse_ehlo(const Reply& r) {
  ServerCaps c;
  size_t pos = r.text.find('\n');  // the first line is the server's name
  while (pos != std::string::npos) {
    const size_t start = pos + 1;
    pos = r.text.find('\n', start);
    const std::string_view line = std::string_view(r.text).substr(
        start, pos == std::string::npos ? std::string::npos : pos - start);
    const size_t sp = line.find(' ');
    const std::string_view kw = line.substr(0, sp);
    if (iequals(kw, "PIPELINING")) {
      c.pipelining = true;
    } else if (iequals(kw, "STARTTLS")) {
      c.starttls = true;
    } else if (iequals(kw, "8BITMIME")) {
      c.eightbitmime = true;
    } else if (iequals(kw, "SMTPUTF8")) {
      c.smtputf8 = true;
    } else if (iequals(kw, "CHUNKING")) {
      c.chunking = true;
    } else if (iequals(kw, "AUTH") || (kw.size() > 5 && iequals(kw.substr(0, 5), "AUTH="))) {
      // "AUTH PLAIN LOGIN", or the old "AUTH=PLAIN LOGIN" form.
      std::string_view rest = kw.size() > 5                  ? line.substr(5)
                              : sp == std::string_view::npos ? std::string_view()
                                                             : line.substr(sp + 1);
      while (!rest.empty()) {
        const size_t e = rest.find(' ');
        const std::string_view mech = rest.substr(0, e);
        if (iequals(mech, "PLAIN")) c.auth_plain = true;
        if (iequals(mech, "LOGIN")) c.auth_login = true;
        if (e == std::string_view::npos) break;
        rest.remove_prefix(e + 1);
      }
    } else if (iequals(kw, "SIZE")) {
      c.size = true;
      if (sp == std::string_view::npos) continue;
      const std::string_view n = line.substr(sp + 1);
      if (!n.empty() && n.size() <= 18 &&
          n.find_first_not_of("0123456789") == std::string_view::npos) {
        c.size_max = std::strtoull(std::string(n).c_str(), nullptr, 10);
      }
    }
  }
  return c;
}

Outcome classify(int code) {
  if (code >= 200 && code < 300) return Outcome::kOk;
  if (code >= 500 && code < 600) return Outcome::kPerm;
  return Outcome::kTemp;
}

std::string dot_stuff(std::string_view data) {
  std::string out;
  out.reserve(data.size() + data.size() / 64 + 8);
  bool line_start = true;
  for (size_t i = 0; i < data.size(); ++i) {
    const char c = data[i];
    if (c == '\r' || c == '\n') {
      // CRLF, a lone CR and a lone LF all end a line as CRLF: a receiver
      // that reads a lone CR or LF as a line ending must never see a "."
      // line we did not mean (SMTP smuggling).
      if (c == '\r' && i + 1 < data.size() && data[i + 1] == '\n') ++i;
      out += "\r\n";
      line_start = true;
      continue;
    }
    if (line_start && c == '.') out += '.';
    out += c;
    line_start = false;
  }
  if (!line_start) out += "\r\n";
  out += ".\r\n";
  return out;
}

bool has_bare_line_ending(std::string_view data) {
  for (size_t i = data.find_first_of("\r\n"); i != std::string_view::npos;
       i = data.find_first_of("\r\n", i + 1)) {
    if (data[i] == '\n') return true;  // an LF not taken with its CR below
    if (i + 1 >= data.size() || data[i + 1] != '\n') return true;
    ++i;  // CRLF
  }
  return false;
}

std::string crlf_only(std::string_view data) {
  std::string out;
  out.reserve(data.size() + 16);
  for (size_t i = 0; i < data.size(); ++i) {
    const char c = data[i];
    if (c == '\r' || c == '\n') {
      if (c == '\r' && i + 1 < data.size() && data[i + 1] == '\n') ++i;
      out += "\r\n";
    } else {
      out += c;
    }
  }
  return out;
}

void SmtpClient::feed(std::string_view in) {
  if (state_ == State::kDone || state_ == State::kTlsHandshake) return;
  std::vector<Reply> replies;
  reader_.feed(in, &replies);
  for (const auto& r : replies) {
    if (state_ == State::kDone || state_ == State::kTlsHandshake) break;
    on_reply(r);
  }
  if (reader_.overflow() && state_ != State::kDone)
    fail(Outcome::kTemp, "reply too long", Cause::kOther);
}

void SmtpClient::fail(Outcome o, std::string reason, Cause cause) {
  if (state_ == State::kMail || state_ == State::kData) finish_all(o, reason, cause);
  if (next_queued_) {
    start_queued();  // the queued message fails the same way
    finish_all(o, reason, cause);
  }
  failed_ = true;
  failure_ = o;
  failure_cause_ = cause;
  failure_reason_ = std::move(reason);
  state_ = State::kDone;
}

void SmtpClient::connection_lost(std::string_view why, Cause cause) {
  if (state_ == State::kDone) return;
  if (state_ == State::kQuit) {
    state_ = State::kDone;  // the server closed after our QUIT: fine
    return;
  }
  fail(Outcome::kTemp, "connection lost: " + std::string(why), cause);
}

void SmtpClient::send_ehlo() {
  out_ += "EHLO " + params_.helo + "\r\n";
  state_ = State::kEhlo;
}

void SmtpClient::after_ehlo() {
  if (!tls_ && params_.starttls && caps_.starttls) {
    out_ += "STARTTLS\r\n";
    state_ = State::kStartTls;
    return;
  }
  if (params_.require_tls && !tls_) {
    out_ += "QUIT\r\n";
    fail(Outcome::kTemp, "TLS is required for this destination and the server does not offer it",
         Cause::kTls);
    return;
  }
  if (!params_.auth_user.empty() && !authenticated_) {
    if (!tls_ && !params_.auth_in_clear) {
      out_ += "QUIT\r\n";
      fail(Outcome::kTemp, "the password is never sent without TLS, and this session has none",
           Cause::kTls);
      return;
    }
    if (caps_.auth_plain) {
      std::string m;
      m += '\0';
      m += params_.auth_user;
      m += '\0';
      m += params_.auth_password;
      out_ += "AUTH PLAIN " + base64_encode(m) + "\r\n";
      auth_step_ = 2;
    } else if (caps_.auth_login) {
      out_ += "AUTH LOGIN\r\n";
      auth_step_ = 0;
    } else {
      out_ += "QUIT\r\n";
      fail(Outcome::kTemp, "the server offers neither AUTH PLAIN nor AUTH LOGIN", Cause::kOther);
      return;
    }
    state_ = State::kAuth;
    return;
  }
  state_ = State::kReady;
}

void SmtpClient::auth_reply(const Reply& r) {
  if (r.code == 235) {
    authenticated_ = true;
    state_ = State::kReady;
    return;
  }
  if (r.code == 334 && auth_step_ < 2) {
    out_ += base64_encode(auth_step_ == 0 ? params_.auth_user : params_.auth_password) + "\r\n";
    ++auth_step_;
    return;
  }
  // Wrong credentials are the administrator's to fix: the mail waits
  // (as Postfix defers on SASL failures) instead of bouncing.
  out_ += "QUIT\r\n";
  fail(Outcome::kTemp, "authentication as " + params_.auth_user + " failed: " + r.summary());
}

void SmtpClient::tls_started() {
  if (state_ == State::kGreeting) {
    tls_ = true;  // implicit TLS (port 465): the greeting comes over it
    return;
  }
  if (state_ != State::kTlsHandshake) return;
  tls_ = true;
  caps_ = ServerCaps{};
  send_ehlo();  // RFC 3207 4.2: forget what was said before TLS
}

void SmtpClient::on_reply(const Reply& r) {
  switch (state_) {
    case State::kGreeting:
      if (r.code == 220) {
        send_ehlo();
      } else {
        out_ += "QUIT\r\n";
        fail(classify(r.code) == Outcome::kPerm ? Outcome::kPerm : Outcome::kTemp,
             "greeting: " + r.summary());
      }
      return;
    case State::kEhlo:
      if (r.code == 250) {
        caps_ = parse_ehlo(r);
        caps_.pipelining &= params_.pipelining;
        after_ehlo();
      } else if (r.code >= 500 && r.code < 600) {
        out_ += "HELO " + params_.helo + "\r\n";  // a server without ESMTP
        state_ = State::kHelo;
      } else {
        fail(Outcome::kTemp, "EHLO: " + r.summary());
      }
      return;
    case State::kHelo:
      if (r.code == 250) {
        caps_ = ServerCaps{};
        after_ehlo();
      } else {
        fail(classify(r.code) == Outcome::kPerm ? Outcome::kPerm : Outcome::kTemp,
             "HELO: " + r.summary());
      }
      return;
    case State::kStartTls:
      if (r.code == 220) {
        state_ = State::kTlsHandshake;
      } else if (params_.require_tls) {
        out_ += "QUIT\r\n";
        fail(Outcome::kTemp, "STARTTLS refused: " + r.summary(), Cause::kTls);
      } else {
        state_ = State::kReady;  // opportunistic: go on in clear
      }
      return;
    case State::kAuth:
      auth_reply(r);
      return;
    case State::kMail:
      envelope_reply(r);
      return;
    case State::kData: {
      finish_all(classify(r.code), r.summary());
      if (next_queued_) {
        start_queued();
      } else {
        become_ready();
      }
      return;
    }
    case State::kRset:
      if (r.code == 250) {
        become_ready();
      } else {
        fail(Outcome::kTemp, "RSET: " + r.summary());
      }
      return;
    case State::kQuit:
      state_ = State::kDone;
      return;
    case State::kReady:
    case State::kTlsHandshake:
    case State::kDone:
      // A reply nobody asked for: the server is out of step.
      fail(Outcome::kTemp, "unexpected reply: " + r.summary(), Cause::kOther);
      return;
  }
}

std::string SmtpClient::mail_command(const Message& m) const {
  std::string cmd = "MAIL FROM:<" + (m.from.is_null() ? std::string() : m.from.to_string()) + ">";
  if (caps_.size) cmd += " SIZE=" + std::to_string(m.data.size());
  if (m.body_8bit && caps_.eightbitmime) cmd += " BODY=8BITMIME";
  if (m.smtputf8) cmd += " SMTPUTF8";
  return cmd + "\r\n";
}

// What the server said it cannot take fails before MAIL: the reply to
// record for every recipient, or "".
std::string SmtpClient::local_refusal(const Message& m) const {
  if (caps_.size_max != 0 && m.data.size() > caps_.size_max) {
    return "552 5.3.4 Message too big for the server (its SIZE is " +
           std::to_string(caps_.size_max) + ")";
  }
  if (m.smtputf8 && !caps_.smtputf8) return "553 5.6.7 The server does not support SMTPUTF8";
  if (m.body_8bit && !caps_.eightbitmime)
    return "554 5.6.3 8-bit content and the server does not offer 8BITMIME";
  return "";
}

bool SmtpClient::can_send_next() const {
  return state_ == State::kData && caps_.pipelining && !bdat_ && !next_queued_ && !quit_queued_;
}

bool SmtpClient::send_next(const Message& m) {
  if (!can_send_next() || m.rcpts.empty() || !local_refusal(m).empty()) return false;
  next_msg_ = m;
  next_queued_ = true;
  append_envelope(m);
  out_ += "DATA\r\n";
  return true;
}

void SmtpClient::append_envelope(const Message& m) {
  out_ += mail_command(m);
  for (const auto& a : m.rcpts) out_ += "RCPT TO:<" + a.to_string() + ">\r\n";
}

void SmtpClient::begin_message(const Message& m) {
  msg_ = m;
  results_.assign(m.rcpts.size(), RcptResult{});
  message_done_ = false;
  mail_ok_ = false;
  rcpts_ok_ = 0;
  next_reply_ = 0;
}

// The current message is finished and a queued one's envelope is already
// out: it becomes the current message, its replies next in line.
void SmtpClient::start_queued() {
  finished_.push_back(std::move(results_));
  next_queued_ = false;
  begin_message(next_msg_);
  bdat_ = false;
  commands_sent_ = msg_.rcpts.size() + 2;
  state_ = State::kMail;
}

void SmtpClient::send(const Message& m) {
  if (state_ != State::kReady) return;
  begin_message(m);
  bdat_ = params_.chunking && caps_.chunking;
  const std::string refuse = local_refusal(m);
  if (!refuse.empty()) {
    for (auto& r : results_) r = RcptResult{Outcome::kPerm, refuse, Cause::kOther};
    message_done_ = true;
    return;
  }
  state_ = State::kMail;
  if (caps_.pipelining) {
    append_envelope(m);
    if (bdat_) {
      // The chunk goes with the envelope (RFC 3030 4.2); with no
      // recipient accepted its reply is an error that changes nothing.
      send_bdat();
    } else {
      out_ += "DATA\r\n";
    }
    commands_sent_ = m.rcpts.size() + 2;
  } else {
    out_ += mail_command(msg_);
    commands_sent_ = 1;
  }
}

void SmtpClient::send_next_envelope_command() {
  const size_t n = msg_.rcpts.size();
  if (commands_sent_ <= n) {
    out_ += "RCPT TO:<" + msg_.rcpts[commands_sent_ - 1].to_string() + ">\r\n";
  } else if (bdat_) {
    send_bdat();
  } else {
    out_ += "DATA\r\n";
  }
  ++commands_sent_;
}

void SmtpClient::envelope_reply(const Reply& r) {
  const size_t n = msg_.rcpts.size();
  const size_t idx = next_reply_++;
  const Outcome o = classify(r.code);
  if (idx == 0) {
    mail_ok_ = o == Outcome::kOk;
    if (!mail_ok_) {
      for (auto& res : results_) res = RcptResult{o, "MAIL: " + r.summary(), Cause::kReply};
    }
  } else if (idx <= n) {
    if (mail_ok_) {
      if (o == Outcome::kOk) {
        ++rcpts_ok_;
        results_[idx - 1] = RcptResult{Outcome::kTemp, ""};  // final after DATA
      } else {
        results_[idx - 1] = RcptResult{o, r.summary(), Cause::kReply};
      }
    }
  } else if (bdat_) {
    // The reply to BDAT LAST: the message's final reply.
    if (mail_ok_ && rcpts_ok_ > 0) finish_all(o, r.summary());
    message_done_ = true;
    if (o == Outcome::kOk) {
      become_ready();
    } else {
      out_ += "RSET\r\n";
      state_ = State::kRset;
    }
    return;
  } else {
    // The reply to DATA.
    if (r.code == 354) {
      if (mail_ok_ && rcpts_ok_ > 0) {
        send_content();
      } else {
        // A server that says 354 with nobody to deliver to: end the empty
        // message (RFC 2920 3.1); its reply changes nothing.
        out_ += ".\r\n";
        state_ = State::kData;
        mail_ok_ = false;
      }
      return;
    }
    if (mail_ok_ && rcpts_ok_ > 0) {
      for (size_t i = 0; i < n; ++i) {
        if (results_[i].reply.empty()) {
          // A 2xx to DATA is a broken server: try again later.
          results_[i] = RcptResult{o == Outcome::kOk ? Outcome::kTemp : o, "DATA: " + r.summary(),
                                   Cause::kReply};
        }
      }
    }
    message_done_ = true;
    out_ += "RSET\r\n";
    state_ = State::kRset;
    return;
  }
  if (caps_.pipelining) return;  // every command is already out
  // Step by step: go on unless there is no point.
  if (idx == 0 && !mail_ok_) {
    message_done_ = true;
    out_ += "RSET\r\n";
    state_ = State::kRset;
    return;
  }
  if (idx == n && rcpts_ok_ == 0) {
    message_done_ = true;
    out_ += "RSET\r\n";
    state_ = State::kRset;
    return;
  }
  send_next_envelope_command();
}

void SmtpClient::send_bdat() {
  // Lone CRs and LFs become CRLF here too: the receiver may pass the
  // message on with DATA (see dot_stuff). Messages we store have none, so
  // the copy is rare.
  std::string fixed;
  std::string_view data = msg_.data;
  if (has_bare_line_ending(data)) {
    fixed = crlf_only(data);
    data = fixed;
  }
  const bool crlf = data.size() >= 2 && data.substr(data.size() - 2) == "\r\n";
  const size_t size = data.size() + (crlf || data.empty() ? 0 : 2);
  out_ += "BDAT " + std::to_string(size) + " LAST\r\n";
  out_.append(data);
  if (size != data.size()) out_ += "\r\n";
}

void SmtpClient::send_content() {
  out_ += dot_stuff(msg_.data);
  state_ = State::kData;
}

void SmtpClient::finish_all(Outcome o, const std::string& reply, Cause cause) {
  if (message_done_) return;
  for (auto& res : results_) {
    // Recipients the server accepted (or not yet answered) take the final
    // outcome; those it refused keep their own reply.
    if (res.reply.empty()) res = RcptResult{o, reply, cause};
  }
  message_done_ = true;
}

void SmtpClient::quit() {
  if (state_ == State::kDone || quit_queued_) return;
  if (state_ == State::kData) {
    // The message's reply is still to come: QUIT follows it, right behind
    // the "." with PIPELINING (RFC 2920's example), after the reply without.
    // With the next message's envelope already behind the ".", QUIT waits
    // until that message is finished too (its content is still to send).
    quit_queued_ = true;
    quit_sent_ = caps_.pipelining && !next_queued_;
    if (quit_sent_) out_ += "QUIT\r\n";
    return;
  }
  out_ += "QUIT\r\n";
  state_ = State::kQuit;
}

void SmtpClient::become_ready() {
  if (!quit_queued_) {
    state_ = State::kReady;
    return;
  }
  if (!quit_sent_) out_ += "QUIT\r\n";
  quit_sent_ = true;
  state_ = State::kQuit;
}

}  // namespace ringmail::proto
