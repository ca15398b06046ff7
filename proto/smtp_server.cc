#include "proto/smtp_server.h"

#include <cstring>
#include <ctime>

#include "proto/ascii.h"

namespace ringmail::proto {

std::optional<std::string> mailbox_name(std::string_view local) {
  if (local.empty() || local.front() == '.' || local.size() > kLocalPartBytesMax) {
    return std::nullopt;
  }
  std::string name = ascii_lower(local);
  for (char c : name) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
                    c == '+' || c == '-' || c == '=';
    if (!ok) return std::nullopt;
  }
  return name;
}

std::string rfc5322_date(int64_t unix_time) {
  static constexpr const char* kDays[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
  static constexpr const char* kMonths[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                            "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  std::time_t t = static_cast<std::time_t>(unix_time);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[64];
  std::snprintf(buf, sizeof buf, "%s, %02d %s %04d %02d:%02d:%02d +0000", kDays[tm.tm_wday],
                tm.tm_mday, kMonths[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour, tm.tm_min,
                tm.tm_sec);
  return buf;
}

// One row per verb: check (validate, maybe answer with an error) then proceed
// (act). Policy hooks belong in the checks.
struct SmtpServer::Handler {
  Verb verb;
  bool (*check)(SmtpServer&, std::string_view);
  void (*proceed)(SmtpServer&, std::string_view);

  static const Handler* find(Verb v) {
    static const Handler kTable[] = {
        {Verb::kEhlo, [](SmtpServer& s, std::string_view a) { return s.check_helo(a, true); },
         [](SmtpServer& s, std::string_view a) { s.do_helo(a, true); }},
        {Verb::kHelo, [](SmtpServer& s, std::string_view a) { return s.check_helo(a, false); },
         [](SmtpServer& s, std::string_view a) { s.do_helo(a, false); }},
        {Verb::kMail, [](SmtpServer& s, std::string_view a) { return s.check_mail(a); },
         [](SmtpServer& s, std::string_view) { s.do_mail(); }},
        {Verb::kRcpt, [](SmtpServer& s, std::string_view a) { return s.check_rcpt(a); },
         [](SmtpServer& s, std::string_view) { s.do_rcpt(); }},
        {Verb::kData, [](SmtpServer& s, std::string_view a) { return s.check_data(a); },
         [](SmtpServer& s, std::string_view) { s.do_data(); }},
        // BDAT must read its chunk even when the command is refused, so it
        // checks and proceeds in one step.
        {Verb::kBdat, nullptr, [](SmtpServer& s, std::string_view a) { s.do_bdat(a); }},
        {Verb::kRset, nullptr,
         [](SmtpServer& s, std::string_view) {
           s.reset_transaction();
           s.junk("250 2.0.0 Ok");
         }},
        {Verb::kNoop, nullptr, [](SmtpServer& s, std::string_view) { s.junk("250 2.0.0 Ok"); }},
        {Verb::kQuit, nullptr,
         [](SmtpServer& s, std::string_view) { s.close_with("221 2.0.0 Bye"); }},
        {Verb::kHelp, nullptr,
         [](SmtpServer& s, std::string_view) { s.junk("214 2.0.0 See RFC 5321"); }},
        {Verb::kVrfy, nullptr,
         [](SmtpServer& s, std::string_view) {
           s.junk("252 2.0.0 Cannot VRFY user, but will accept message and attempt delivery");
         }},
        {Verb::kExpn, nullptr,
         [](SmtpServer& s, std::string_view) { s.error("502 5.5.1 EXPN not supported"); }},
        {Verb::kStarttls, [](SmtpServer& s, std::string_view a) { return s.check_starttls(a); },
         [](SmtpServer& s, std::string_view) {
           s.reply("220 2.0.0 Ready to start TLS");
           s.state_ = State::kStartTls;  // process() discards what follows
         }},
        {Verb::kAuth, [](SmtpServer& s, std::string_view a) { return s.check_auth(a); },
         [](SmtpServer& s, std::string_view a) { s.do_auth(a); }},
        {Verb::kHttp, nullptr,
         [](SmtpServer& s, std::string_view) {
           s.close_with("500 5.5.1 This is an SMTP server, not HTTP");
         }},
    };
    for (const auto& h : kTable) {
      if (h.verb == v) return &h;
    }
    return nullptr;
  }
};

SmtpServer::SmtpServer(SessionParams params, SmtpHost& host)
    : params_(std::move(params)), host_(host) {}

void SmtpServer::start() {
  out_ += "220 ";
  out_ += params_.hostname;
  out_ += " ESMTP ringmail\r\n";
}

namespace {
// A client's line made fit for a log line: at most `max` bytes, control
// and non-ASCII bytes as '?'.
// AUTH's arguments past the mechanism are credentials.
std::string_view without_credentials(std::string_view line) {
  if (line.size() < 5 || !iequals(line.substr(0, 5), "AUTH ")) return line;
  const size_t sp = line.find(' ', 5);
  return sp == std::string_view::npos ? line : line.substr(0, sp);
}
}  // namespace

void SmtpServer::reply(std::string_view line) {
  out_.append(line);
  out_ += "\r\n";
  if (!command_.empty() && !line.empty() && (line[0] == '4' || line[0] == '5')) {
    refusals_.push_back({loggable(command_, kLoggedCommandMax), std::string(line)});
  }
}

void SmtpServer::junk(std::string_view line) {
  if (++junk_ > params_.limits.junk_commands_max) {
    error(line);
  } else {
    reply(line);
  }
}

void SmtpServer::error(std::string_view line) {
  reply(line);
  if (++errors_ > params_.limits.errors_max) {
    close_with("421 4.7.0 Too many errors, closing connection");
  }
}

void SmtpServer::close_with(std::string_view line) {
  reply(line);
  state_ = State::kClosed;  // feed() drops pending input once process() returns
  reader_.reset();
}

void SmtpServer::reset_transaction() {
  mail_given_ = false;
  bdat_used_ = false;
  bdat_error_.clear();
  env_.rcpts.clear();
  env_.from = Address{};
  env_.id.clear();
  env_.smtputf8 = false;
  env_.body_8bit = false;
  message_.clear();
  reader_.reset();
  path_.reset();
}

void SmtpServer::feed(std::string_view in) {
  if (state_ == State::kClosed || state_ == State::kStartTls) return;
  if (pending_.empty()) {
    size_t used = process(in);
    if (used < in.size()) pending_.append(in.substr(used));
  } else {
    pending_.append(in);
    size_t used = process(pending_);
    pending_.erase(0, used);
  }
  if (state_ == State::kClosed || state_ == State::kStartTls) {
    pending_.clear();
  } else if (pending_.size() > kPendingBytesMax) {
    command_ = "(input)";
    close_with("421 4.7.0 Too much unanswered input, closing connection");
    command_ = {};
  }
}

size_t SmtpServer::process(std::string_view in) {
  size_t pos = 0;
  while (pos < in.size()) {
    switch (state_) {
      case State::kClosed:
      case State::kStartTls:
        return in.size();
      case State::kAwaitCommit:
      case State::kAwaitAuth:
        return pos;
      case State::kData:
      case State::kBdat: {
        size_t used = 0;
        DataReader::Status st = reader_->feed(in.substr(pos), used);
        pos += used;
        if (st == DataReader::Status::kBareLineEnding) {
          command_ = "(end of data)";
          close_with("554 5.6.0 Bare CR or LF line ending not allowed");
          command_ = {};
          return in.size();
        }
        if (st == DataReader::Status::kDone) {
          command_ = "(end of data)";
          if (state_ == State::kData) {
            finish_message(reader_->findings(), false);
          } else {
            bdat_chunk_done();
          }
          command_ = {};
        }
        break;
      }
      case State::kAuthPlain:
      case State::kAuthLoginUser:
      case State::kAuthLoginPass:
      case State::kCommand: {
        std::string_view rest = in.substr(pos);
        size_t lf = rest.find('\n');
        if (skipping_line_) {
          if (lf == std::string_view::npos) return in.size();
          skipping_line_ = false;
          pos += lf + 1;
          break;
        }
        if (lf == std::string_view::npos) {
          if (rest.size() > kCommandLineBytesMax) {
            command_ = "(line too long)";
            error("500 5.5.2 Line too long");
            command_ = {};
            skipping_line_ = true;
            return in.size();
          }
          return pos;
        }
        std::string_view line = rest.substr(0, lf);
        pos += lf + 1;
        if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
        if (line.size() > kCommandLineBytesMax) {
          command_ = "(line too long)";
          error("500 5.5.2 Line too long");
          command_ = {};
          break;
        }
        handle_line(line);
        break;
      }
    }
  }
  return pos;
}

void SmtpServer::handle_line(std::string_view line) {
  struct Answering {
    std::string_view& command;
    ~Answering() { command = {}; }
  } answering{command_};
  if (in_auth_exchange()) {
    if (params_.trace) trace_.emplace_back("< ***");
    command_ = "(AUTH response)";
    auth_response(line);
    return;
  }
  if (params_.trace) trace_.push_back("< " + loggable(without_credentials(line), 1000));
  command_ = without_credentials(line);
  if (shutdown_requested_ && !in_transaction()) {
    close_with("421 4.3.2 Service shutting down");
    return;
  }
  Command cmd = parse_command(line);
  const Handler* h = Handler::find(cmd.verb);
  if (h == nullptr) {
    error("500 5.5.2 Command not recognized");
    return;
  }
  if (h->check != nullptr && !h->check(*this, cmd.args)) return;
  h->proceed(*this, cmd.args);
}

bool SmtpServer::check_helo(std::string_view args, bool extended) {
  if (!is_valid_helo(args)) {
    error(extended ? "501 5.5.4 Syntax: EHLO hostname" : "501 5.5.4 Syntax: HELO hostname");
    return false;
  }
  return true;
}

void SmtpServer::do_helo(std::string_view args, bool extended) {
  reset_transaction();
  greeted_ = true;
  extended_ = extended;
  env_.helo.assign(args);
  if (!extended) {
    reply("250 " + params_.hostname);
    return;
  }
  out_ += "250-" + params_.hostname + "\r\n";
  out_ += "250-PIPELINING\r\n";
  out_ += "250-SIZE " + std::to_string(params_.limits.message_bytes_max) + "\r\n";
  out_ += "250-8BITMIME\r\n";
  out_ += "250-SMTPUTF8\r\n";
  out_ += "250-ENHANCEDSTATUSCODES\r\n";
  if (params_.starttls_offered && !tls_) out_ += "250-STARTTLS\r\n";
  if (params_.auth_offered && tls_) out_ += "250-AUTH PLAIN LOGIN\r\n";
  out_ += "250 CHUNKING\r\n";
}

bool SmtpServer::check_starttls(std::string_view args) {
  if (tls_) {
    error("503 5.5.1 TLS already active");
    return false;
  }
  if (!params_.starttls_offered) {
    error("454 4.7.0 TLS not available");
    return false;
  }
  if (!args.empty()) {
    error("501 5.5.4 Syntax: STARTTLS");
    return false;
  }
  if (in_transaction()) {
    error("503 5.5.1 MAIL transaction in progress");
    return false;
  }
  return true;
}

void SmtpServer::tls_started(const TlsInfo& info) {
  tls_ = std::make_unique<TlsInfo>(info);
  reset_transaction();
  greeted_ = false;
  extended_ = false;
  env_.helo.clear();
  if (state_ == State::kStartTls) state_ = State::kCommand;
}

bool SmtpServer::parse_path_or_reply(std::string_view args, bool is_mail) {
  // RFC 3463: 5.1.7 bad sender, 5.1.3 bad recipient address syntax.
  if (path_ == nullptr) path_ = std::make_unique<PathArgs>();
  switch (parse_path_args(args, is_mail ? "FROM:" : "TO:", is_mail, *path_)) {
    case PathError::kNone:
      return true;
    case PathError::kNoPrefix:
      error(is_mail ? "501 5.5.4 Syntax: MAIL FROM:<address>"
                    : "501 5.5.4 Syntax: RCPT TO:<address>");
      return false;
    case PathError::kBadAddress:
    case PathError::kTooLong:
      error(is_mail ? "501 5.1.7 Bad sender address syntax"
                    : "501 5.1.3 Bad recipient address syntax");
      return false;
    case PathError::kBadParams:
      error(is_mail ? "501 5.5.4 Syntax: MAIL FROM:<address> [parameters]"
                    : "501 5.5.4 Syntax: RCPT TO:<address> [parameters]");
      return false;
  }
  return false;
}

bool SmtpServer::check_mail(std::string_view args) {
  if (!greeted_) {
    error("503 5.5.1 Send HELO/EHLO first");
    return false;
  }
  if (mail_given_) {
    error("503 5.5.1 Sender already given");
    return false;
  }
  if (params_.kind == ListenerKind::kSubmission && auth_user_.empty()) {
    // Submission (RFC 6409, 8314) is for authenticated users only.
    error("530 5.7.0 Authentication required");
    return false;
  }
  if (!parse_path_or_reply(args, true)) return false;
  if (!auth_user_.empty() && !sender_allowed(path_->address)) {
    error("550 5.7.1 Sender address not allowed for " + auth_user_);
    return false;
  }
  bool smtputf8 = false;
  for (const auto& [key, value] : path_->params) {
    if (iequals(key, "SIZE")) {
      if (value.empty() || value.find_first_not_of("0123456789") != std::string_view::npos) {
        error("501 5.5.4 Bad SIZE parameter");
        return false;
      }
      // More than 18 digits is beyond any limit (and beyond 64 bits).
      if (value.size() > 18 || std::stoull(std::string(value)) > params_.limits.message_bytes_max) {
        error("552 5.3.4 Message size exceeds fixed limit");
        return false;
      }
    } else if (iequals(key, "BODY")) {
      if (iequals(value, "8BITMIME")) {
        env_.body_8bit = true;
      } else if (!iequals(value, "7BIT")) {
        error("501 5.5.4 Unsupported BODY type");
        return false;
      }
    } else if (iequals(key, "SMTPUTF8") && value.empty()) {
      smtputf8 = true;
    } else {
      error("555 5.5.4 Unsupported parameter");
      return false;
    }
  }
  if (path_->address.utf8 && !smtputf8) {
    error("553 5.6.7 Non-ASCII address requires SMTPUTF8");
    return false;
  }
  env_.smtputf8 = smtputf8;
  return true;
}

void SmtpServer::do_mail() {
  mail_given_ = true;
  env_.from = std::move(path_->address);
  reply("250 2.1.0 Ok");
}

bool SmtpServer::in_mail_transaction() {
  // RFC 5321 4.1.4: the order of commands; 503 for a command out of order.
  if (!greeted_) {
    error("503 5.5.1 Send HELO/EHLO first");
    return false;
  }
  if (!mail_given_) {
    error("503 5.5.1 Need MAIL first");
    return false;
  }
  return true;
}

bool SmtpServer::check_rcpt(std::string_view args) {
  if (!in_mail_transaction()) return false;
  if (!parse_path_or_reply(args, false)) return false;
  if (!path_->params.empty()) {
    error("555 5.5.4 Unsupported parameter");
    return false;
  }
  if (path_->address.utf8 && !env_.smtputf8) {
    error("553 5.6.7 Non-ASCII address requires SMTPUTF8");
    return false;
  }
  if (env_.rcpts.size() >= params_.limits.rcpt_count_max) {
    // RFC 5321 4.5.3.1.10: a temporary reply; the client sends the rest later.
    reply("452 4.5.3 Too many recipients");
    return false;
  }
  Address& a = path_->address;
  if (a.domain.empty()) a.domain = std::string(host_.primary_domain());  // <postmaster>
  // Relay policy: without AUTH, mail for local domains only (RFC 5321
  // 3.6.2); an authenticated user may send anywhere.
  if (!host_.is_local_domain(ascii_lower(a.domain))) {
    if (auth_user_.empty() && !params_.trusted_relay) {
      error("554 5.7.1 Relay access denied");
      return false;
    }
    if (std::string refuse = host_.check_relay_recipient(env_, a); !refuse.empty()) {
      error(refuse);
      return false;
    }
    return true;
  }
  if (std::string refuse = host_.check_local_recipient(a); !refuse.empty()) {
    error(refuse);
    return false;
  }
  return true;
}

void SmtpServer::do_rcpt() {
  env_.rcpts.push_back(std::move(path_->address));
  reply("250 2.1.5 Ok");
}

bool SmtpServer::check_data(std::string_view args) {
  if (!in_mail_transaction()) return false;
  if (bdat_used_) {
    error("503 5.5.1 DATA not allowed after BDAT");
    return false;
  }
  if (env_.rcpts.empty()) {
    error("554 5.5.1 No valid recipients");
    return false;
  }
  if (!args.empty()) {
    error("501 5.5.4 Syntax: DATA");
    return false;
  }
  return true;
}

void SmtpServer::begin_message() {
  env_.id = host_.new_message_id();
  env_.arrival_unix = host_.now_unix();
  env_.client = params_.client_literal;
  env_.tls = tls_ ? tls_->version + " " + tls_->cipher : std::string();
  env_.auth_user = auth_user_;
  message_.clear();
  // RFC 5321 4.4 trace header. "for" only names a single recipient, so a
  // message to several does not disclose the others.
  message_ +=
      "Received: from " + env_.helo + " (" + params_.client_literal + ")\r\n\tby " +
      params_.hostname + " (ringmail) with " +
      // RFC 3848: ESMTP, then S for TLS and A for AUTH.
      (extended_ ? std::string("ESMTP") + (tls_ ? "S" : "") + (auth_user_.empty() ? "" : "A")
                 : std::string("SMTP")) +
      (tls_ ? " (" + tls_->version + ":" + tls_->cipher + ")" : std::string()) + " id " + env_.id +
      "\r\n\t";
  if (env_.rcpts.size() == 1) message_ += "for <" + env_.rcpts[0].to_string() + ">; ";
  message_ += rfc5322_date(env_.arrival_unix) + "\r\n";
}

void SmtpServer::do_data() {
  begin_message();
  reader_ = std::make_unique<DataReader>(DataReader::Mode::kDotTerminated, &message_,
                                         params_.limits.message_bytes_max);
  state_ = State::kData;
  reply("354 End data with <CR><LF>.<CR><LF>");
}

void SmtpServer::do_bdat(std::string_view args) {
  BdatArgs b;
  if (!parse_bdat_args(args, b)) {
    // Without a size the chunk cannot be skipped; the stream is lost.
    error("501 5.5.4 Syntax: BDAT size [LAST]");
    return;
  }
  bdat_last_ = b.last;
  bdat_chunk_bytes_ = b.size;
  const char* refuse = nullptr;
  if (!greeted_) {
    refuse = "503 5.5.1 Send HELO/EHLO first";
  } else if (!mail_given_) {
    refuse = "503 5.5.1 Need MAIL first";
  } else if (env_.rcpts.empty()) {
    refuse = "554 5.5.1 No valid recipients";
  }
  if (refuse != nullptr) {
    // RFC 3030 2: the chunk is read (and dropped) before the error reply.
    bdat_error_ = refuse;
    discard_.clear();
    reader_ = std::make_unique<DataReader>(DataReader::Mode::kChunked, &discard_, 0);
  } else if (!bdat_used_) {
    bdat_used_ = true;
    begin_message();
    reader_ = std::make_unique<DataReader>(DataReader::Mode::kChunked, &message_,
                                           params_.limits.message_bytes_max);
  }
  reader_->begin_chunk(b.size);
  state_ = State::kBdat;
  if (b.size == 0) bdat_chunk_done();  // nothing to read
}

void SmtpServer::bdat_chunk_done() {
  if (!bdat_error_.empty()) {
    std::string e = std::move(bdat_error_);
    bdat_error_.clear();
    reader_.reset();
    state_ = State::kCommand;
    error(e);
    return;
  }
  if (bdat_last_) {
    reader_->finish_chunked();
    finish_message(reader_->findings(), true);
    return;
  }
  state_ = State::kCommand;
  if (reader_->findings().too_big) {
    error("552 5.3.4 Message size exceeds fixed limit");
    reset_transaction();
    return;
  }
  reply("250 2.0.0 " + std::to_string(bdat_chunk_bytes_) + " octets received");
}

void SmtpServer::finish_message(const DataReader::Findings& f, bool chunked) {
  state_ = State::kCommand;
  const char* refuse = nullptr;
  if (f.too_big) {
    refuse = "552 5.3.4 Message size exceeds fixed limit";
  } else if (chunked && f.bare_line_ending) {
    refuse = "554 5.6.0 Bare CR or LF line ending not allowed";
  } else if (f.line_too_long) {
    refuse = "554 5.6.0 Message line longer than 1000 octets";
  } else if (f.received_headers > params_.limits.received_headers_max) {
    refuse = "554 5.4.6 Too many Received headers: mail loop";
  }
  if (refuse != nullptr) {
    error(refuse);  // first: the refusal is logged with the transaction's id
    reset_transaction();
    return;
  }
  reader_.reset();
  state_ = State::kAwaitCommit;
}

void SmtpServer::commit_done(CommitResult result) {
  if (state_ != State::kAwaitCommit) return;
  state_ = State::kCommand;
  switch (result) {
    case CommitResult::kOk:
      reply("250 2.0.0 Ok: queued as " + env_.id);
      junk_ = 0;  // a client that sends mail may RSET and NOOP between messages
      break;
    case CommitResult::kTempFail:
      reply("451 4.3.0 Local error writing message, try again later");
      break;
    case CommitResult::kNoSpace:
      reply("452 4.3.1 Insufficient system storage");
      break;
  }
  reset_transaction();
  if (shutdown_requested_) {
    close_with("421 4.3.2 Service shutting down");
    return;
  }
  resume_pending();
}

void SmtpServer::refuse_message(const std::string& text) {
  if (state_ != State::kAwaitCommit) return;
  state_ = State::kCommand;
  reply(text);
  reset_transaction();
  if (shutdown_requested_) {
    close_with("421 4.3.2 Service shutting down");
    return;
  }
  resume_pending();
}

void SmtpServer::resume_pending() {
  if (!pending_.empty()) {
    size_t used = process(pending_);
    pending_.erase(0, used);
    if (state_ == State::kClosed) pending_.clear();
  }
}

bool SmtpServer::check_auth(std::string_view args) {
  if (!params_.auth_offered) {
    error("502 5.5.1 Command not implemented");
    return false;
  }
  if (!greeted_ || !extended_) {
    error("503 5.5.1 Send EHLO first");
    return false;
  }
  if (!tls_) {
    error("538 5.7.11 Encryption required for requested authentication mechanism");
    return false;
  }
  if (!auth_user_.empty()) {
    error("503 5.5.1 Already authenticated");
    return false;
  }
  if (in_transaction()) {
    error("503 5.5.1 MAIL transaction in progress");
    return false;
  }
  if (args.empty()) {
    error("501 5.5.4 Syntax: AUTH mechanism [initial-response]");
    return false;
  }
  return true;
}

void SmtpServer::do_auth(std::string_view args) {
  const size_t sp = args.find(' ');
  const std::string_view mech = args.substr(0, sp);
  const std::string_view initial =
      sp == std::string_view::npos ? std::string_view() : args.substr(sp + 1);
  auth_creds_ = std::make_unique<Credentials>();
  if (iequals(mech, "PLAIN")) {
    if (sp == std::string_view::npos) {
      reply("334 ");
      state_ = State::kAuthPlain;
      return;
    }
    auth_decoded(decode_plain(initial == "=" ? std::string_view() : initial, auth_creds_.get()));
  } else if (iequals(mech, "LOGIN")) {
    if (sp == std::string_view::npos) {
      reply("334 VXNlcm5hbWU6");  // "Username:"
      state_ = State::kAuthLoginUser;
      return;
    }
    const SaslError e = decode_login_field(initial, &auth_creds_->user);
    if (e != SaslError::kNone) {
      auth_decoded(e);
      return;
    }
    reply("334 UGFzc3dvcmQ6");  // "Password:"
    state_ = State::kAuthLoginPass;
  } else {
    error("504 5.5.4 Unrecognized authentication type");
  }
}

void SmtpServer::auth_response(std::string_view line) {
  const State st = state_;
  state_ = State::kCommand;
  if (line == "*") {
    auth_creds_.reset();
    error("501 5.0.0 Authentication cancelled");
    return;
  }
  switch (st) {
    case State::kAuthPlain:
      auth_decoded(decode_plain(line, auth_creds_.get()));
      return;
    case State::kAuthLoginUser: {
      const SaslError e = decode_login_field(line, &auth_creds_->user);
      if (e != SaslError::kNone) {
        auth_decoded(e);
        return;
      }
      reply("334 UGFzc3dvcmQ6");
      state_ = State::kAuthLoginPass;
      return;
    }
    case State::kAuthLoginPass:
      auth_decoded(decode_login_field(line, &auth_creds_->password));
      return;
    default:
      return;
  }
}

void SmtpServer::auth_decoded(SaslError e) {
  if (e == SaslError::kBadBase64) {
    auth_creds_.reset();
    error("501 5.5.2 Cannot decode response");
    return;
  }
  if (e == SaslError::kMalformed) {
    auth_creds_.reset();
    error("501 5.5.2 Malformed authentication data");
    return;
  }
  state_ = State::kAwaitAuth;
}

void SmtpServer::auth_done(bool ok, const std::string& user) {
  if (state_ != State::kAwaitAuth) return;
  state_ = State::kCommand;
  auth_creds_.reset();  // the password is not kept
  if (ok) {
    auth_user_ = user;
    reply("235 2.7.0 Authentication successful");
  } else {
    error("535 5.7.8 Authentication credentials invalid");
  }
  if (state_ != State::kClosed) resume_pending();
}

bool SmtpServer::sender_allowed(const Address& from) const {
  if (params_.sender_policy == SenderPolicy::kAny) return true;
  if (from.local.empty() && from.domain.empty()) return false;  // <>
  const size_t at = auth_user_.rfind('@');
  if (at == std::string::npos) return false;
  const std::string user_domain = ascii_lower(std::string_view(auth_user_).substr(at + 1));
  if (ascii_lower(from.domain) != user_domain) return false;
  if (params_.sender_policy == SenderPolicy::kDomain) return true;
  // Own address, with any +tag.
  std::string local = ascii_lower(from.local);
  const size_t plus = local.find('+');
  if (plus != std::string::npos) local.resize(plus);
  return local == ascii_lower(std::string_view(auth_user_).substr(0, at));
}

void SmtpServer::timeout() {
  if (state_ == State::kClosed) return;
  close_with("421 4.4.2 " + params_.hostname + " Timeout, closing connection");
}

void SmtpServer::request_shutdown() {
  shutdown_requested_ = true;
  if (state_ == State::kCommand && !in_transaction()) {
    close_with("421 4.3.2 Service shutting down");
  }
}

}  // namespace ringmail::proto
