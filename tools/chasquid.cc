#include "tools/chasquid.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "config/config.h"
#include "proto/address.h"
#include "proto/quoted.h"
#include "storage/domains.h"
#include "storage/durable_file.h"
#include "storage/file_io.h"
#include "tls/cert_store.h"
#include "tls/dkim_key.h"
#include "tls/ticket_keys.h"

namespace fs = std::filesystem;

namespace ringmail::tools {

// ------------------------------------------------------------ text format

namespace {

enum class Tok { kEnd, kIdent, kString, kNumber, kPunct };

struct Token {
  Tok kind = Tok::kEnd;
  std::string text;  // strings: unescaped
  int line = 0;
};

struct ParseError {
  int line;
  std::string msg;
};

class Lexer {
 public:
  explicit Lexer(const std::string& t) : t_(t) {}

  Token next() {
    skip();
    Token tok;
    tok.line = line_;
    if (i_ >= t_.size()) return tok;
    const char c = t_[i_];
    if (word_char(c)) {
      // A bare word: an identifier (field names, true/false) or a number;
      // one token even when it runs on ("mx.example.test"), so an
      // unquoted string is reported as such.
      const size_t b = i_;
      while (i_ < t_.size() && word_char(t_[i_])) ++i_;
      tok.text = t_.substr(b, i_ - b);
      const bool ident = std::isalpha(static_cast<unsigned char>(c)) || c == '_';
      tok.kind = ident ? Tok::kIdent : Tok::kNumber;
    } else if (c == '"' || c == '\'') {
      tok.kind = Tok::kString;
      tok.text = string(c);
    } else if (std::strchr(":,;[]{}<>", c) != nullptr) {
      tok.kind = Tok::kPunct;
      tok.text = std::string(1, c);
      ++i_;
    } else {
      throw ParseError{line_, std::string("unexpected character '") + c + "'"};
    }
    return tok;
  }

  Token peek() {
    const size_t i = i_;
    const int line = line_;
    Token t = next();
    i_ = i;
    line_ = line;
    return t;
  }

 private:
  static bool word_char(char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '.' || c == '-' ||
           c == '+';
  }

  void skip() {
    while (i_ < t_.size()) {
      const char c = t_[i_];
      if (c == '\n') {
        ++line_;
        ++i_;
      } else if (c == ' ' || c == '\t' || c == '\r' || c == '\f' || c == '\v') {
        ++i_;
      } else if (c == '#') {
        while (i_ < t_.size() && t_[i_] != '\n') ++i_;
      } else {
        break;
      }
    }
  }

  static void put_utf8(std::string& out, uint32_t cp) {
    if (cp < 0x80) {
      out += static_cast<char>(cp);
    } else if (cp < 0x800) {
      out += static_cast<char>(0xC0 | (cp >> 6));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
      out += static_cast<char>(0xE0 | (cp >> 12));
      out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    } else {
      out += static_cast<char>(0xF0 | (cp >> 18));
      out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
      out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    }
  }

  // A quoted string from its opening quote; C escapes as in protobuf's text
  // format (\n \t \\ \" \' \xHH \NNN \uXXXX \UXXXXXXXX ...).
  std::string string(char quote) {
    ++i_;
    std::string out;
    auto hexval = [](char h) -> int {
      if (h >= '0' && h <= '9') return h - '0';
      if (h >= 'a' && h <= 'f') return h - 'a' + 10;
      if (h >= 'A' && h <= 'F') return h - 'A' + 10;
      return -1;
    };
    while (true) {
      if (i_ >= t_.size() || t_[i_] == '\n')
        throw ParseError{line_, "string not closed on its line"};
      const char c = t_[i_++];
      if (c == quote) return out;
      if (c != '\\') {
        out += c;
        continue;
      }
      if (i_ >= t_.size()) throw ParseError{line_, "string not closed on its line"};
      const char e = t_[i_++];
      switch (e) {
        case 'n':
          out += '\n';
          break;
        case 't':
          out += '\t';
          break;
        case 'r':
          out += '\r';
          break;
        case 'a':
          out += '\a';
          break;
        case 'b':
          out += '\b';
          break;
        case 'f':
          out += '\f';
          break;
        case 'v':
          out += '\v';
          break;
        case '?':
          out += '?';
          break;
        case '\\':
        case '"':
        case '\'':
          out += e;
          break;
        case 'x':
        case 'X': {
          int v = 0, n = 0;
          while (n < 2 && i_ < t_.size() && hexval(t_[i_]) >= 0) v = v * 16 + hexval(t_[i_++]), ++n;
          if (n == 0) throw ParseError{line_, "\\x needs hexadecimal digits"};
          out += static_cast<char>(v);
          break;
        }
        case 'u':
        case 'U': {
          const int want = e == 'u' ? 4 : 8;
          uint32_t v = 0;
          for (int n = 0; n < want; ++n) {
            if (i_ >= t_.size() || hexval(t_[i_]) < 0) {
              throw ParseError{line_, std::string("\\") + e + " needs " + std::to_string(want) +
                                          " hexadecimal digits"};
            }
            v = v * 16 + static_cast<uint32_t>(hexval(t_[i_++]));
          }
          if (v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF))
            throw ParseError{line_, "\\u escape is not a character"};
          put_utf8(out, v);
          break;
        }
        default:
          if (e >= '0' && e <= '7') {
            int v = e - '0', n = 1;
            while (n < 3 && i_ < t_.size() && t_[i_] >= '0' && t_[i_] <= '7')
              v = v * 8 + (t_[i_++] - '0'), ++n;
            if (v > 255) throw ParseError{line_, "octal escape above \\377"};
            out += static_cast<char>(v);
          } else {
            throw ParseError{line_, std::string("unknown escape \\") + e};
          }
      }
    }
  }

  const std::string& t_;
  size_t i_ = 0;
  int line_ = 1;
};

std::string describe(const Token& t) {
  switch (t.kind) {
    case Tok::kEnd:
      return "the end of the file";
    case Tok::kString:
      return "a string";
    default:
      return "'" + t.text + "'";
  }
}

// A scalar value (adjacent strings joined) into f.
void scalar(Lexer& lx, const Token& first, TextField* f) {
  if (first.kind == Tok::kPunct && (first.text == "{" || first.text == "<")) {
    throw ParseError{first.line, f->key + ": nested messages are not part of chasquid.conf"};
  }
  if (first.kind == Tok::kString) {
    f->is_string = true;
    f->value = first.text;
    while (lx.peek().kind == Tok::kString) f->value += lx.next().text;
    return;
  }
  if (first.kind == Tok::kIdent || first.kind == Tok::kNumber) {
    f->value = first.text;
    return;
  }
  throw ParseError{first.line, f->key + ": expected a value, found " + describe(first)};
}

}  // namespace

Result<std::vector<TextField>> parse_text_format(const std::string& text,
                                                 const std::string& source) {
  std::vector<TextField> out;
  Lexer lx(text);
  try {
    while (true) {
      const Token key = lx.next();
      if (key.kind == Tok::kEnd) break;
      if (key.kind == Tok::kPunct && key.text == "[") {
        throw ParseError{key.line, "extension fields ([...]) are not part of chasquid.conf"};
      }
      const bool name =
          key.kind == Tok::kIdent && key.text.find_first_of(".-+") == std::string::npos;
      if (!name) throw ParseError{key.line, "expected a field name, found " + describe(key)};
      Token sep = lx.next();
      if (sep.kind == Tok::kPunct && (sep.text == "{" || sep.text == "<")) {
        throw ParseError{sep.line, key.text + ": nested messages are not part of chasquid.conf"};
      }
      if (sep.kind != Tok::kPunct || sep.text != ":") {
        throw ParseError{sep.line,
                         key.text + ": expected ':' after the field name, found " + describe(sep)};
      }
      const Token v = lx.next();
      if (v.kind == Tok::kPunct && v.text == "[") {
        if (lx.peek().kind == Tok::kPunct && lx.peek().text == "]") {
          lx.next();
        } else {
          while (true) {
            TextField f{key.text, "", false, key.line};
            scalar(lx, lx.next(), &f);
            out.push_back(std::move(f));
            const Token s = lx.next();
            if (s.kind == Tok::kPunct && s.text == "]") break;
            if (s.kind != Tok::kPunct || s.text != ",") {
              throw ParseError{
                  s.line, key.text + ": expected ',' or ']' in the list, found " + describe(s)};
            }
          }
        }
      } else {
        TextField f{key.text, "", false, key.line};
        scalar(lx, v, &f);
        out.push_back(std::move(f));
      }
      const Token after = lx.peek();
      if (after.kind == Tok::kPunct && (after.text == "," || after.text == ";")) lx.next();
    }
  } catch (const ParseError& e) {
    return Error{source + ":" + std::to_string(e.line) + ": " + e.msg};
  }
  return out;
}

bool parse_go_duration(const std::string& s_in, double* seconds) {
  std::string s = s_in;
  bool neg = false;
  if (!s.empty() && (s[0] == '-' || s[0] == '+')) {
    neg = s[0] == '-';
    s.erase(0, 1);
  }
  if (s == "0") {
    *seconds = 0;
    return true;
  }
  if (s.empty()) return false;
  double total = 0;
  size_t i = 0;
  while (i < s.size()) {
    const size_t b = i;
    while (i < s.size() && (std::isdigit(static_cast<unsigned char>(s[i])) || s[i] == '.')) ++i;
    const std::string num = s.substr(b, i - b);
    if (num.empty() || num == "." || std::count(num.begin(), num.end(), '.') > 1) return false;
    const size_t u = i;
    while (i < s.size() && !std::isdigit(static_cast<unsigned char>(s[i])) && s[i] != '.') ++i;
    const std::string unit = s.substr(u, i - u);
    double mult;
    if (unit == "h")
      mult = 3600;
    else if (unit == "m")
      mult = 60;
    else if (unit == "s")
      mult = 1;
    else if (unit == "ms")
      mult = 1e-3;
    else if (unit == "us" || unit == "\xc2\xb5s" || unit == "\xce\xbcs")
      mult = 1e-6;
    else if (unit == "ns")
      mult = 1e-9;
    else
      return false;
    total += std::strtod(num.c_str(), nullptr) * mult;
  }
  *seconds = neg ? -total : total;
  return true;
}

// ------------------------------------------------------------ import

namespace {

int fail(const std::string& why) {
  std::fprintf(stderr, "ringmail: import-chasquid: %s\n", why.c_str());
  return 1;
}

void report(const std::string& line) { std::printf("%s\n", line.c_str()); }

std::string toml_str(const std::string& s) { return proto::quoted(s); }

enum class Type { kString, kStrings, kInt, kBool };

const std::map<std::string, Type>& known_fields() {
  static const std::map<std::string, Type> m = {
      {"hostname", Type::kString},
      {"max_data_size_mb", Type::kInt},
      {"smtp_address", Type::kStrings},
      {"submission_address", Type::kStrings},
      {"submission_over_tls_address", Type::kStrings},
      {"monitoring_address", Type::kString},
      {"mail_delivery_agent_bin", Type::kString},
      {"mail_delivery_agent_args", Type::kStrings},
      {"data_dir", Type::kString},
      {"suffix_separators", Type::kString},
      {"drop_characters", Type::kString},
      {"mail_log_path", Type::kString},
      {"dovecot_auth", Type::kBool},
      {"dovecot_userdb_path", Type::kString},
      {"dovecot_client_path", Type::kString},
      {"haproxy_incoming", Type::kBool},
      {"max_queue_items", Type::kInt},
      {"give_up_send_after", Type::kString},
  };
  return m;
}

// chasquid.conf, checked against chasquid's Config message.
struct Conf {
  std::map<std::string, std::vector<TextField>> fields;  // known keys
  std::vector<TextField> unknown;

  const TextField* get(const std::string& k) const {
    auto it = fields.find(k);
    return it == fields.end() || it->second.empty() ? nullptr : &it->second.front();
  }
  std::string str(const std::string& k, const std::string& def) const {
    const TextField* f = get(k);
    return f ? f->value : def;
  }
  bool flag(const std::string& k) const {
    const TextField* f = get(k);
    return f && (f->value == "true" || f->value == "True" || f->value == "t" || f->value == "1");
  }
  long long integer(const std::string& k, long long def) const {
    const TextField* f = get(k);
    return f ? std::strtoll(f->value.c_str(), nullptr, 0) : def;
  }
};

Result<Conf> check_conf(const std::vector<TextField>& raw, const std::string& source) {
  Conf conf;
  for (const auto& f : raw) {
    auto it = known_fields().find(f.key);
    if (it == known_fields().end()) {
      conf.unknown.push_back(f);
      continue;
    }
    const std::string at = source + ":" + std::to_string(f.line) + ": " + f.key;
    auto& list = conf.fields[f.key];
    switch (it->second) {
      case Type::kString:
      case Type::kStrings:
        if (!f.is_string) {
          return Error{at + ": must be a quoted string"};
        }
        break;
      case Type::kInt: {
        char* end = nullptr;
        errno = 0;
        std::strtoll(f.value.c_str(), &end, 0);
        if (f.is_string || f.value.empty() || *end != '\0' || errno != 0) {
          return Error{at + ": must be an integer"};
        }
        break;
      }
      case Type::kBool: {
        static const std::set<std::string> ok = {"true", "false", "True", "False",
                                                 "t",    "f",     "1",    "0"};
        if (f.is_string || ok.count(f.value) == 0) {
          return Error{at + ": must be true or false"};
        }
        break;
      }
    }
    if (it->second != Type::kStrings && !list.empty()) {
      return Error{at + ": given twice (also on line " + std::to_string(list.front().line) + ")"};
    }
    list.push_back(f);
  }
  return conf;
}

struct Reporter {
  std::string conf_name = "chasquid.conf";
  std::string at(const TextField* f) const {
    return f ? conf_name + ":" + std::to_string(f->line) : conf_name + " (chasquid's default)";
  }
};

// A Go listen address ("host:port", ":port", "[v6]:port") as ringmail
// listener addresses, or why there is none.
Result<std::vector<std::string>> map_address(const std::string& a) {
  using Addresses = std::vector<std::string>;
  std::string host, port;
  if (!a.empty() && a.front() == '[') {
    const size_t close = a.find(']');
    if (close == std::string::npos || close + 1 >= a.size() || a[close + 1] != ':') {
      return Error{"not [ADDRESS]:PORT"};
    }
    host = a.substr(1, close - 1);
    port = a.substr(close + 2);
  } else {
    const size_t colon = a.rfind(':');
    if (colon == std::string::npos) {
      return Error{"has no port"};
    }
    host = a.substr(0, colon);
    port = a.substr(colon + 1);
    if (host.find(':') != std::string::npos) {
      return Error{"an IPv6 address needs brackets ([ADDRESS]:PORT)"};
    }
  }
  unsigned long p = 0;
  if (!port.empty() && port.size() <= 5 &&
      port.find_first_not_of("0123456789") == std::string::npos) {
    p = std::stoul(port);
  } else if (!port.empty()) {
    if (const servent* se = ::getservbyname(port.c_str(), "tcp"))
      p = ntohs(static_cast<uint16_t>(se->s_port));
    else if (port == "submissions" || port == "smtps")
      p = 465;
    else if (port == "submission")
      p = 587;
    else if (port == "smtp")
      p = 25;
  }
  if (p == 0 || p > 65535) {
    return Error{"port '" + port + "' is not a port number from 1 to 65535 or a known service"};
  }
  const std::string ps = std::to_string(p);
  unsigned char buf[16];
  // Go listens on both families for an unspecified address ("", 0.0.0.0,
  // [::]); ringmail's IPv6 listeners are IPv6-only, so both are written.
  if (host.empty() || host == "0.0.0.0" || host == "::")
    return Addresses{"0.0.0.0:" + ps, "[::]:" + ps};
  if (inet_pton(AF_INET, host.c_str(), buf) == 1) return Addresses{host + ":" + ps};
  if (inet_pton(AF_INET6, host.c_str(), buf) == 1) return Addresses{"[" + host + "]:" + ps};
  if (proto::ascii_lower(host) == "localhost") return Addresses{"127.0.0.1:" + ps};
  return Error{
      "'" + host +
      "' is a host name; ringmail listens on IP addresses (write one in the [[listener]])"};
}

// One file or link to create under the destination.
struct Copy {
  fs::path src;
  fs::path dst;
  mode_t mode = 0644;
  bool link = false;  // a symbolic link to `target`
  fs::path target;
};

// A symbolic link's target, made absolute against the link's folder (the
// copy lives elsewhere).
fs::path link_target(const fs::path& link) {
  std::error_code ec;
  fs::path t = fs::read_symlink(link, ec);
  if (ec) return {};
  if (t.is_relative()) t = link.parent_path() / t;
  return t.lexically_normal();
}

Result<void> write_file(const fs::path& dst, const std::string& data, mode_t mode) {
  const int r = storage::write_durable_file(dst.string(), data, mode, storage::Existing::kReplace);
  if (r < 0) return Error{dst.string() + ": " + std::strerror(-r)};
  return {};
}

Result<std::string> read_file(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  if (!f) return Error{p.string() + ": cannot read (" + std::strerror(errno) + ")"};
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

Result<void> do_copy(const Copy& c) {
  std::error_code ec;
  if (c.link) {
    fs::remove(c.dst, ec);
    fs::create_symlink(c.target, c.dst, ec);
    if (ec) return Error{c.dst.string() + ": " + ec.message()};
    return {};
  }
  const auto data = read_file(c.src);
  if (!data) return Error{data.error()};
  return write_file(c.dst, *data, c.mode);
}

mode_t mode_of(const fs::path& p) {
  struct stat st {};
  return ::stat(p.c_str(), &st) == 0 ? (st.st_mode & 07777) : 0644;
}

std::vector<fs::path> sorted_entries(const fs::path& dir) {
  std::vector<fs::path> out;
  std::error_code ec;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec))
    out.push_back(it->path());
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace

int import_chasquid(const ImportOptions& o) {
  std::error_code ec;
  const fs::path from = fs::absolute(o.from, ec);
  const fs::path to = fs::absolute(o.to, ec).lexically_normal();
  if (!fs::is_directory(from, ec)) return fail(o.from + ": not a directory");
  const fs::path conf_path = from / "chasquid.conf";
  if (!fs::is_regular_file(conf_path, ec)) {
    return fail(conf_path.string() + ": not found (is " + o.from +
                " chasquid's configuration directory?)");
  }
  if (fs::exists(to, ec) && fs::equivalent(from, to, ec)) {
    return fail("the destination is the chasquid directory itself");
  }
  if (o.data_dir.empty() || o.data_dir.front() != '/')
    return fail("--data-dir must be an absolute path");

  // chasquid.conf
  const auto text = read_file(conf_path);
  if (!text) return fail(text.error());
  const auto raw = parse_text_format(*text, conf_path.string());
  if (!raw) return fail(raw.error());
  auto checked = check_conf(*raw, conf_path.string());
  if (!checked) return fail(checked.error());
  Conf conf = std::move(*checked);
  Reporter rep;
  std::vector<std::string> lines;  // the report, printed once the files are written
  auto note = [&](const std::string& s) { lines.push_back(s); };

  // hostname
  std::string hostname = conf.str("hostname", "");
  if (hostname.empty()) {
    char buf[256] = {};
    if (::gethostname(buf, sizeof buf - 1) != 0)
      return fail("hostname is not set and this machine's name is unknown");
    hostname = buf;
    note(rep.at(nullptr) + ": hostname not set: using this machine's name, " + hostname);
  }
  if (!proto::is_valid_domain(hostname) || hostname.front() == '[') {
    return fail(rep.at(conf.get("hostname")) + ": hostname '" + hostname +
                "' is not a valid host name (set hostname in chasquid.conf)");
  }

  // domains/
  std::vector<Copy> copies;
  std::vector<fs::path> dirs{to};
  std::vector<std::string> local_domains;
  std::set<std::string> seen_domains;
  size_t users_files = 0, dkim_keys = 0;
  const fs::path domains_src = from / "domains";
  const fs::path domains_dst = to / "domains";
  dirs.push_back(domains_dst);
  auto secret = [](mode_t m) { return static_cast<mode_t>(m & 0700); };
  for (const fs::path& d : sorted_entries(domains_src)) {
    const std::string name = d.filename().string();
    const std::string rel = "domains/" + name;
    if (!fs::is_directory(d, ec)) {
      note(rel + ": not a folder: not imported");
      continue;
    }
    const std::string lower = proto::ascii_lower(name);
    if (!proto::is_valid_domain(lower) || lower.front() == '[') {
      note(rel + ": not a domain name: not imported");
      continue;
    }
    if (!seen_domains.insert(lower).second) {
      note(rel + ": the same domain as another folder (names are case-insensitive): not imported");
      continue;
    }
    bool has_users = false, has_aliases = false;
    dirs.push_back(domains_dst / name);
    for (const fs::path& f : sorted_entries(d)) {
      const std::string fname = f.filename().string();
      Copy c{f, domains_dst / name / fname};
      if (!fs::is_regular_file(f, ec)) {
        note(rel + "/" + fname + ": not a file: not imported");
        continue;
      }
      if (fname == "users") {
        c.mode = 0600;
        has_users = true;
        ++users_files;
      } else if (fname == "aliases") {
        c.mode = mode_of(f) & 0666;
        has_aliases = true;
      } else if (fname.size() > 9 && fname.rfind("dkim:", 0) == 0 && fname.ends_with(".pem")) {
        c.mode = 0600;
        ++dkim_keys;
      } else {
        note(rel + "/" + fname +
             ": not a file ringmail reads (users, aliases, dkim:<selector>.pem): not imported");
        continue;
      }
      copies.push_back(c);
    }
    local_domains.push_back(lower);
    if (!has_users) {
      note(rel + ": no users file: nobody of this domain can authenticate" +
           std::string(conf.flag("dovecot_auth") ? " (chasquid asked dovecot; ringmail cannot)"
                                                 : "") +
           (has_aliases ? "" : ", and mail for any mailbox name there is taken"));
    }
  }
  if (local_domains.empty()) {
    local_domains.push_back(proto::ascii_lower(hostname));
    note("domains/: no domain folders: local_domains is the hostname, " + hostname);
  }

  // certs/
  const fs::path certs_src = from / "certs";
  const fs::path certs_dst = to / "certs";
  const bool have_certs_dir = fs::is_directory(certs_src, ec);
  if (have_certs_dir) dirs.push_back(certs_dst);
  for (const fs::path& d : sorted_entries(certs_src)) {
    const std::string name = d.filename().string();
    const std::string rel = "certs/" + name;
    if (fs::is_symlink(fs::symlink_status(d, ec)) && fs::is_directory(d, ec)) {
      Copy c{d, certs_dst / name};
      c.link = true;
      c.target = link_target(d);
      copies.push_back(c);
      note(rel + ": a link to " + c.target.string() +
           ": the copy links there too (renewals are picked up)");
      continue;
    }
    if (!fs::is_directory(d, ec)) {
      note(rel + ": not a folder: not imported");
      continue;
    }
    dirs.push_back(certs_dst / name);
    for (const fs::path& f : sorted_entries(d)) {
      const std::string fname = f.filename().string();
      Copy c{f, certs_dst / name / fname};
      if (!fs::is_regular_file(f, ec)) {
        note(rel + "/" + fname + ": not a file: not imported");
        continue;
      }
      if (fs::is_symlink(fs::symlink_status(f, ec))) {
        c.link = true;
        c.target = link_target(f);
      } else {
        c.mode = fname == "privkey.pem" ? 0600 : mode_of(f) & 0666;
        if (fname.ends_with(".key")) c.mode = secret(mode_of(f));
      }
      copies.push_back(c);
    }
  }

  // The rest of chasquid's directory.
  for (const fs::path& e : sorted_entries(from)) {
    const std::string name = e.filename().string();
    if (name == "chasquid.conf" || name == "domains" || name == "certs") continue;
    if (name == "hooks" && fs::is_directory(e, ec)) {
      for (const fs::path& h : sorted_entries(e)) {
        note("hooks/" + h.filename().string() + ": ringmail runs no hooks: not imported");
      }
      continue;
    }
    note(name + ": not part of chasquid's configuration ringmail knows: not imported");
  }

  // Listeners.
  struct Listener {
    std::string address, kind;
  };
  std::vector<Listener> listeners;
  std::map<std::string, std::string> taken;  // address -> kind
  struct KindInfo {
    const char* field;
    const char* kind;
    int port;
  };
  for (const KindInfo& k :
       {KindInfo{"smtp_address", "smtp", 25}, KindInfo{"submission_address", "submission", 587},
        KindInfo{"submission_over_tls_address", "submissions", 465}}) {
    std::vector<TextField> values;
    auto it = conf.fields.find(k.field);
    if (it != conf.fields.end()) values = it->second;
    const bool dflt = values.empty();
    if (dflt) values.push_back(TextField{k.field, "systemd", true, 0});
    for (const TextField& v : values) {
      const std::string at = rep.at(dflt ? nullptr : &v) + ": " + k.field + " \"" + v.value + "\"";
      std::vector<std::string> addrs;
      if (v.value == "systemd") {
        const std::string p = std::to_string(k.port);
        addrs = {"0.0.0.0:" + p, "[::]:" + p};
        note(at + ": listening on 0.0.0.0:" + p + " and [::]:" + p +
             " (ringmail.socket's addresses: enable it to take the sockets from systemd)");
      } else if (auto mapped = map_address(v.value)) {
        addrs = std::move(*mapped);
      } else {
        note(at + ": " + mapped.error() + ": not imported");
      }
      for (const auto& a : addrs) {
        auto [pos, fresh] = taken.emplace(a, k.kind);
        if (fresh) {
          listeners.push_back({a, k.kind});
        } else if (pos->second != k.kind) {
          note(at + ": " + a + " is already a " + pos->second + " listener: not imported");
        }
      }
    }
  }

  // The other settings.
  const std::string mda = conf.str("mail_delivery_agent_bin", "maildrop");
  {
    std::string args;
    auto it = conf.fields.find("mail_delivery_agent_args");
    if (it != conf.fields.end()) {
      for (const auto& a : it->second) args += " " + a.value;
    } else {
      args = " -f %from% -d %to_user%";
    }
    note(rep.at(conf.get("mail_delivery_agent_bin")) + ": mail_delivery_agent_bin \"" + mda +
         "\" (" + args.substr(1) + "): local delivery is Maildir under data_dir (" + o.data_dir +
         "/mail/<domain>/<user>/Maildir); for an MDA or Dovecot's LMTP set delivery in a "
         "domain's domain.toml (docs/aliases.md)");
  }
  note(rep.at(conf.get("data_dir")) + ": data_dir \"" + conf.str("data_dir", "/var/lib/chasquid") +
       "\": chasquid's queue and domain records are not imported (let its queue empty before "
       "switching); "
       "ringmail's data_dir is " +
       o.data_dir);
  if (const TextField* f = conf.get("monitoring_address")) {
    note(rep.at(f) + ": monitoring_address \"" + f->value +
         "\": ringmaild has no monitoring HTTP server: not imported");
  }
  if (const TextField* f = conf.get("mail_log_path")) {
    note(rep.at(f) + ": mail_log_path \"" + f->value +
         "\": ringmaild logs every event on stderr (the journal under systemd): not imported");
  }
  if (const TextField* f = conf.get("dovecot_auth"); f && conf.flag("dovecot_auth")) {
    note(rep.at(f) +
         ": dovecot_auth: ringmaild authenticates against the domains' users files only: not "
         "imported");
  }
  for (const char* k : {"dovecot_userdb_path", "dovecot_client_path"}) {
    if (const TextField* f = conf.get(k)) {
      note(rep.at(f) + ": " + k + " \"" + f->value +
           "\": no dovecot authentication in ringmaild: not imported");
    }
  }
  if (const TextField* f = conf.get("haproxy_incoming"); f && conf.flag("haproxy_incoming")) {
    note(rep.at(f) +
         ": haproxy_incoming: ringmaild does not read the PROXY protocol: not imported "
         "(clients behind HAProxy would all have its address)");
  }
  if (const TextField* f = conf.get("max_queue_items")) {
    note(rep.at(f) + ": max_queue_items " + f->value +
         ": ringmail's queue has no item limit: not imported");
  }
  for (const TextField& f : conf.unknown) {
    note(rep.at(&f) + ": " + f.key + ": not a chasquid setting ringmail knows: not imported");
  }

  // [aliases]: the characters ringmail allows.
  auto alias_chars = [&](const char* key, const std::string& def) {
    const TextField* f = conf.get(key);
    std::string v = f ? f->value : def, kept, dropped;
    for (char c : v) {
      const bool bad =
          c == '@' || c == ' ' || c == ',' || c == ':' || static_cast<unsigned char>(c) < 0x21;
      (bad ? dropped : kept) += c;
    }
    if (!dropped.empty()) {
      note(rep.at(f) + ": " + key + ": " + toml_str(dropped) +
           " cannot be used by ringmail: left out");
    }
    return kept;
  };
  const std::string suffix_separators = alias_chars("suffix_separators", "+");
  const std::string drop_characters = alias_chars("drop_characters", ".");

  // [limits] and [outbound].
  long long mb = conf.integer("max_data_size_mb", 50);
  if (mb <= 0) mb = 50;  // chasquid ignores it then
  uint64_t message_bytes = static_cast<uint64_t>(mb) * 1024 * 1024;
  if (message_bytes > (uint64_t{1} << 32)) {
    message_bytes = uint64_t{1} << 32;
    note(rep.at(conf.get("max_data_size_mb")) + ": max_data_size_mb " + std::to_string(mb) +
         ": above ringmail's largest message_bytes_max, 4096 MiB: lowered to it");
  }
  const std::string give_up = conf.str("give_up_send_after", "20h");
  double give_up_s = 0;
  if (!parse_go_duration(give_up, &give_up_s)) {
    return fail(rep.at(conf.get("give_up_send_after")) + ": give_up_send_after \"" + give_up +
                "\" is not a duration like 20h or 90m");
  }
  uint64_t expire_s = give_up_s <= 1 ? 1 : static_cast<uint64_t>(std::ceil(give_up_s));
  if (expire_s > 60ull * 86400 || give_up_s < 1) {
    expire_s = std::clamp<uint64_t>(expire_s, 1, 60ull * 86400);
    note(rep.at(conf.get("give_up_send_after")) + ": give_up_send_after \"" + give_up +
         "\": ringmail's expire_s is from 1 s to 60 days: set to " + std::to_string(expire_s));
  }

  // The certificates as ringmaild will load them (the copies are the same
  // files, links kept).
  size_t certificates = 0;
  if (have_certs_dir) {
    std::vector<std::string> problems;
    auto store = tls::CertStore::load({certs_src.string()}, std::time(nullptr),
                                      tls::TicketKeys::create(), &problems);
    for (const auto& p : problems) note(p + " (ringmaild skips this certificate)");
    certificates = store->contexts().size();
  }
  if (certificates == 0) {
    note(std::string(have_certs_dir ? "certs/: no usable certificate" : "certs/: missing") +
         ": STARTTLS is not offered, and submission_over_tls listeners are left out");
    std::erase_if(listeners, [](const Listener& l) { return l.kind == "submissions"; });
  }
  if (listeners.empty()) return fail("no listener address could be imported (see the lines above)");

  // Nothing is written when a file is there already (without --force).
  const fs::path toml_path = to / "ringmail.toml";
  if (!o.force) {
    if (fs::exists(fs::symlink_status(toml_path, ec))) {
      return fail(toml_path.string() + " exists (--force overwrites it)");
    }
    for (const Copy& c : copies) {
      if (fs::exists(fs::symlink_status(c.dst, ec)))
        return fail(c.dst.string() + " exists (--force overwrites it)");
    }
  }
  for (const fs::path& d : dirs) {
    fs::create_directories(d, ec);
    if (ec || !fs::is_directory(d, ec))
      return fail(d.string() + ": cannot make the folder (" + ec.message() + ")");
  }
  for (const Copy& c : copies) {
    if (auto copied = do_copy(c); !copied) return fail(copied.error());
  }

  // What ringmaild will make of the copied files.
  {
    storage::PosixFileIo io;
    proto::AliasOptions opt;
    opt.suffix_separators = suffix_separators;
    opt.drop_chars = drop_characters;
    std::vector<std::string> problems;
    storage::Domains::load(io, domains_dst.string(), local_domains, opt, &problems);
    for (const auto& p : problems)
      note(p + " (ringmaild answers 451 for the domain until it is fixed)");
    for (const auto& k : tls::list_dkim_key_files(domains_dst.string())) {
      if (auto key = tls::DkimKey::load(k.path); !key)
        note(k.path + ": " + key.error() + " (ringmaild skips this DKIM key)");
    }
  }

  // ringmail.toml
  std::string t;
  t += "# ringmaild's configuration (docs/configuration.md), imported from chasquid's\n";
  t += "# " + from.string() + " by `ringmail import-chasquid`.\n";
  t += "hostname = " + toml_str(hostname) + "\n";
  t += "data_dir = " + toml_str(o.data_dir) + "  # mail: <data_dir>/mail/<domain>/<user>/Maildir\n";
  t += "domains_dir = " + toml_str(domains_dst.string()) + "\n";
  t += "local_domains = [";
  for (size_t i = 0; i < local_domains.size(); ++i)
    t += (i ? ", " : "") + toml_str(local_domains[i]);
  t += "]\n";
  for (const auto& l : listeners) {
    t += "\n[[listener]]\naddress = " + toml_str(l.address) + "\nkind = " + toml_str(l.kind) + "\n";
  }
  t += "\n[tls]\ncert_dirs = [";
  if (have_certs_dir) t += toml_str(certs_dst.string());
  t += "]\n";
  t += "\n[aliases]\nsuffix_separators = " + toml_str(suffix_separators) +
       "\ndrop_characters = " + toml_str(drop_characters) + "\n";
  t += "\n[outbound]\nexpire_s = " + std::to_string(expire_s) + "  # give_up_send_after \"" +
       give_up + "\"\n";
  t += "\n[limits]\nmessage_bytes_max = " + std::to_string(message_bytes) +
       "  # max_data_size_mb " + std::to_string(mb) + "\n";
  // The daemon's own parser: what the import writes, ringmaild starts on.
  if (auto written = config::parse_config(t, toml_path.string()); !written) {
    return fail("internal error: the written configuration does not load: " + written.error());
  }
  if (auto w = write_file(toml_path, t, 0644); !w) return fail(w.error());

  for (const auto& l : lines) report(l);
  std::printf(
      "wrote %s: %zu domain%s (%zu users file%s, %zu DKIM key%s), %zu certificate%s, %zu "
      "listener%s; "
      "check it with: ringmaild --check-config --config %s\n",
      toml_path.c_str(), local_domains.size(), local_domains.size() == 1 ? "" : "s", users_files,
      users_files == 1 ? "" : "s", dkim_keys, dkim_keys == 1 ? "" : "s", certificates,
      certificates == 1 ? "" : "s", listeners.size(), listeners.size() == 1 ? "" : "s",
      toml_path.c_str());
  return 0;
}

}  // namespace ringmail::tools
