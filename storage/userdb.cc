#include "storage/userdb.h"

#include <idn2.h>

#include <cctype>
#include <cstdlib>

#include "proto/address.h"
#include "proto/ascii.h"
#include "proto/sasl.h"

namespace ringmail::storage {

namespace {

using proto::is_space;

bool valid_local(std::string_view s) {
  if (s.empty() || s.size() > 64) return false;
  for (char c : s) {
    if (is_space(c) || c == '@' || c == '#' || static_cast<unsigned char>(c) < 0x20 || c == 0x7f) {
      return false;
    }
  }
  return true;
}

// ---- ringmail's line format
std::string format_scrypt(const UserEntry& e) {
  return "$scrypt$ln=" + std::to_string(e.log_n) + ",r=" + std::to_string(e.r) +
         ",p=" + std::to_string(e.p) + "$" + proto::base64_encode(e.salt) + "$" +
         proto::base64_encode(e.key);
}

bool parse_int(std::string_view s, int* out) {
  if (s.empty() || s.size() > 6 || s.find_first_not_of("0123456789") != std::string_view::npos) {
    return false;
  }
  *out = std::atoi(std::string(s).c_str());
  return true;
}

bool parse_scrypt(std::string_view h, UserEntry* e) {
  // $scrypt$ln=14,r=8,p=1$salt$key
  const std::string_view prefix = "$scrypt$";
  if (h.substr(0, prefix.size()) != prefix) return false;
  h.remove_prefix(prefix.size());
  const size_t d1 = h.find('$');
  if (d1 == std::string_view::npos) return false;
  const size_t d2 = h.find('$', d1 + 1);
  if (d2 == std::string_view::npos) return false;
  std::string_view params = h.substr(0, d1);
  bool ln = false, r = false, p = false;
  while (!params.empty()) {
    const size_t comma = params.find(',');
    const std::string_view kv = params.substr(0, comma);
    params = comma == std::string_view::npos ? std::string_view() : params.substr(comma + 1);
    const size_t eq = kv.find('=');
    if (eq == std::string_view::npos) return false;
    const std::string_view k = kv.substr(0, eq);
    int* dst = k == "ln" ? &e->log_n : k == "r" ? &e->r : k == "p" ? &e->p : nullptr;
    if (dst == nullptr || !parse_int(kv.substr(eq + 1), dst)) return false;
    (k == "ln" ? ln : k == "r" ? r : p) = true;
  }
  auto salt = proto::base64_decode(h.substr(d1 + 1, d2 - d1 - 1));
  auto key = proto::base64_decode(h.substr(d2 + 1));
  if (!ln || !r || !p || !salt || !key || salt->empty() || key->empty()) return false;
  e->scheme = UserEntry::Scheme::kScrypt;
  e->salt = std::move(*salt);
  e->key = std::move(*key);
  return true;
}

// ---- chasquid's protobuf text format: a tiny reader for the subset the
// users file uses (fields, nested messages, integers and strings).
struct Node {
  std::string name;
  std::string value;  // scalar (unescaped string or number)
  std::vector<Node> fields;
  bool message = false;
};

struct TextReader {
  std::string_view in;
  size_t pos = 0;
  int line = 1;
  std::string error;

  void skip() {
    while (pos < in.size()) {
      if (in[pos] == '#') {
        while (pos < in.size() && in[pos] != '\n') ++pos;
      } else if (is_space(in[pos])) {
        if (in[pos] == '\n') ++line;
        ++pos;
      } else {
        break;
      }
    }
  }
  bool fail(const std::string& why) {
    if (error.empty()) error = "line " + std::to_string(line) + ": " + why;
    return false;
  }
  bool ident(std::string* out) {
    skip();
    const size_t start = pos;
    while (pos < in.size() &&
           (std::isalnum(static_cast<unsigned char>(in[pos])) || in[pos] == '_')) {
      ++pos;
    }
    if (pos == start) return fail("expected a field name");
    out->assign(in.substr(start, pos - start));
    return true;
  }
  bool string_lit(std::string* out) {
    const char q = in[pos++];
    while (pos < in.size() && in[pos] != q) {
      char c = in[pos++];
      if (c == '\n') return fail("line break inside a string");
      if (c != '\\') {
        *out += c;
        continue;
      }
      if (pos >= in.size()) return fail("unfinished escape");
      c = in[pos++];
      switch (c) {
        case 'n':
          *out += '\n';
          break;
        case 'r':
          *out += '\r';
          break;
        case 't':
          *out += '\t';
          break;
        case 'a':
          *out += '\a';
          break;
        case 'b':
          *out += '\b';
          break;
        case 'f':
          *out += '\f';
          break;
        case 'v':
          *out += '\v';
          break;
        case '\\':
        case '\'':
        case '"':
        case '?':
          *out += c;
          break;
        case 'x': {
          int v = 0, n = 0;
          while (n < 2 && pos < in.size() && std::isxdigit(static_cast<unsigned char>(in[pos]))) {
            const char h = in[pos++];
            v = v * 16 + (h <= '9' ? h - '0' : (h | 0x20) - 'a' + 10);
            ++n;
          }
          if (n == 0) return fail("bad \\x escape");
          *out += static_cast<char>(v);
          break;
        }
        default:
          if (c >= '0' && c <= '7') {
            int v = c - '0', n = 1;
            while (n < 3 && pos < in.size() && in[pos] >= '0' && in[pos] <= '7') {
              v = v * 8 + (in[pos++] - '0');
              ++n;
            }
            if (v > 255) return fail("bad octal escape");
            *out += static_cast<char>(v);
          } else {
            return fail(std::string("unknown escape \\") + c);
          }
      }
    }
    if (pos >= in.size()) return fail("unterminated string");
    ++pos;
    return true;
  }
  bool message(std::vector<Node>* out, char close, int depth) {
    if (depth > 8) return fail("nested too deep");
    while (true) {
      skip();
      if (pos >= in.size()) {
        if (close == 0) return true;
        return fail("missing '}'");
      }
      if (in[pos] == close) {
        ++pos;
        return true;
      }
      Node n;
      if (!ident(&n.name)) return false;
      skip();
      if (pos < in.size() && in[pos] == ':') {
        ++pos;
        skip();
      }
      if (pos >= in.size()) return fail("missing value");
      if (in[pos] == '{' || in[pos] == '<') {
        const char end = in[pos] == '{' ? '}' : '>';
        ++pos;
        n.message = true;
        if (!message(&n.fields, end, depth + 1)) return false;
      } else if (in[pos] == '"' || in[pos] == '\'') {
        if (!string_lit(&n.value)) return false;
        // Adjacent string literals concatenate.
        skip();
        while (pos < in.size() && (in[pos] == '"' || in[pos] == '\'')) {
          if (!string_lit(&n.value)) return false;
          skip();
        }
      } else {
        const size_t start = pos;
        while (pos < in.size() &&
               (std::isalnum(static_cast<unsigned char>(in[pos])) || in[pos] == '-'))
          ++pos;
        if (pos == start) return fail("bad value");
        n.value.assign(in.substr(start, pos - start));
      }
      skip();
      if (pos < in.size() && (in[pos] == ',' || in[pos] == ';')) ++pos;
      out->push_back(std::move(n));
    }
  }
};

const Node* field(const std::vector<Node>& fs, std::string_view name) {
  for (const auto& f : fs) {
    if (f.name == name) return &f;
  }
  return nullptr;
}

bool int_field(const std::vector<Node>& fs, std::string_view name, int* out) {
  const Node* n = field(fs, name);
  return n != nullptr && !n->message && parse_int(n->value, out);
}

Result<UserDb> parse_chasquid(std::string_view text);

}  // namespace

Result<UserDb> UserDb::parse(std::string_view text) {
  // chasquid's file starts (after comments) with the field name "users".
  size_t i = 0;
  while (i < text.size()) {
    if (text[i] == '#') {
      while (i < text.size() && text[i] != '\n') ++i;
    } else if (is_space(text[i])) {
      ++i;
    } else {
      break;
    }
  }
  const std::string_view rest = text.substr(i);
  if (rest.substr(0, 5) == "users") {
    const size_t j = rest.find_first_not_of(" \t", 5);
    if (j != std::string_view::npos && (rest[j] == ':' || rest[j] == '{')) {
      return parse_chasquid(text);
    }
  }
  UserDb db;
  int line_no = 0;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t nl = text.find('\n', pos);
    if (nl == std::string_view::npos) nl = text.size();
    std::string_view line = text.substr(pos, nl - pos);
    pos = nl + 1;
    ++line_no;
    while (!line.empty() && is_space(line.back())) line.remove_suffix(1);
    while (!line.empty() && is_space(line.front())) line.remove_prefix(1);
    if (line.empty() || line[0] == '#') continue;
    const size_t sp = line.find_first_of(" \t");
    const std::string where = "line " + std::to_string(line_no) + ": ";
    if (sp == std::string_view::npos) {
      return Error{where + "expected 'user $scrypt$...'"};
    }
    const std::string local(line.substr(0, sp));
    std::string_view hash = line.substr(sp);
    while (!hash.empty() && is_space(hash.front())) hash.remove_prefix(1);
    if (!valid_local(local) || proto::ascii_lower(local) != local) {
      return Error{where + "'" + local + "' is not a user name (lower case, no spaces or '@')"};
    }
    UserEntry e;
    if (hash == "!") {
      e.scheme = UserEntry::Scheme::kDenied;
    } else if (!parse_scrypt(hash, &e)) {
      return Error{where + "the password of '" + local + "' is not $scrypt$ln=N,r=N,p=N$salt$key"};
    }
    if (db.users_.count(local)) {
      return Error{where + "'" + local + "' is listed twice"};
    }
    db.users_.emplace(local, std::move(e));
  }
  return db;
}

namespace {

Result<UserDb> parse_chasquid(std::string_view text) {
  TextReader r{text};
  std::vector<Node> top;
  if (!r.message(&top, 0, 0)) {
    return Error{r.error};
  }
  UserDb db;
  for (const auto& u : top) {
    if (u.name != "users" || !u.message) {
      return Error{"unknown field '" + u.name + "' (a chasquid users file has only 'users')"};
    }
    const Node* key = field(u.fields, "key");
    const Node* value = field(u.fields, "value");
    if (key == nullptr || key->message || value == nullptr || !value->message) {
      return Error{"a 'users' entry needs key and value"};
    }
    const std::string local = proto::ascii_lower(key->value);
    if (!valid_local(local)) {
      return Error{"'" + key->value + "' is not a user name"};
    }
    UserEntry e;
    if (const Node* s = field(value->fields, "scrypt"); s != nullptr && s->message) {
      int key_len = 0;
      const Node* salt = field(s->fields, "salt");
      const Node* enc = field(s->fields, "encrypted");
      if (!int_field(s->fields, "logN", &e.log_n) || !int_field(s->fields, "r", &e.r) ||
          !int_field(s->fields, "p", &e.p) || !int_field(s->fields, "keyLen", &key_len) ||
          salt == nullptr || enc == nullptr || enc->value.size() != static_cast<size_t>(key_len)) {
        return Error{"the scrypt entry of '" + local + "' is incomplete"};
      }
      e.scheme = UserEntry::Scheme::kScrypt;
      e.salt = salt->value;
      e.key = enc->value;
    } else if (const Node* p = field(value->fields, "plain"); p != nullptr && p->message) {
      const Node* pw = field(p->fields, "password");
      e.scheme = UserEntry::Scheme::kPlain;
      e.password = pw != nullptr ? pw->value : std::string();
    } else {
      e.scheme = UserEntry::Scheme::kDenied;  // "denied", or a scheme we do not know
    }
    db.set(local, std::move(e));
  }
  db.set_from_chasquid();
  return db;
}

}  // namespace

std::string UserDb::serialize() const {
  std::string out =
      "# ringmail users: one per line, \"name $scrypt$ln=N,r=N,p=N$salt$key\" (base64),\n"
      "# or \"name !\" for a user who may not log in. Edit with ringmail user-add/user-remove.\n";
  for (const auto& [local, e] : users_) {
    if (e.scheme == UserEntry::Scheme::kScrypt) {
      out += local + " " + format_scrypt(e) + "\n";
    } else {
      out += local + " !\n";  // a plain-text password is never written back
    }
  }
  return out;
}

const UserEntry* UserDb::find(const std::string& local) const {
  auto it = users_.find(local);
  return it == users_.end() ? nullptr : &it->second;
}

std::vector<std::string> UserDb::names() const {
  std::vector<std::string> out;
  for (const auto& [k, v] : users_) out.push_back(k);
  return out;
}

Result<UserName> normalize_user(std::string_view address) {
  const size_t at = address.rfind('@');
  if (at == std::string_view::npos || at == 0 || at + 1 == address.size()) {
    return Error{"'" + std::string(address) + "' is not user@domain"};
  }
  const std::string l = proto::ascii_lower(address.substr(0, at));
  if (!valid_local(l)) {
    return Error{"'" + std::string(address.substr(0, at)) + "' is not a valid user name"};
  }
  char* ascii = nullptr;
  const std::string d(address.substr(at + 1));
  const int rc = idn2_to_ascii_8z(d.c_str(), &ascii, IDN2_NONTRANSITIONAL);
  if (rc != IDN2_OK) {
    return Error{"'" + d + "' is not a valid domain: " + idn2_strerror(rc)};
  }
  std::string dom = proto::ascii_lower(ascii);
  idn2_free(ascii);
  if (!proto::is_valid_domain(dom)) {
    return Error{"'" + d + "' is not a valid domain"};
  }
  return UserName{l, std::move(dom)};
}

std::string users_file(const std::string& domains_dir, const std::string& domain) {
  return domains_dir + "/" + domain + "/users";
}

}  // namespace ringmail::storage
