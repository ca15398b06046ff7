#include "tools/queue_format.h"

#include <simdjson.h>

#include <algorithm>
#include <cstdio>
#include <ctime>
#include <limits>
#include <nlohmann/json.hpp>

namespace ringmail::tools {

namespace {

using simdjson::dom::array;
using simdjson::dom::element;

// The fields of one JSON object; the first one missing or of another type
// is remembered, so that a caller reads them all and checks once.
class Fields {
 public:
  explicit Fields(element e) : e_(e) {}
  std::string_view str(const char* key) {
    std::string_view v;
    if (e_[key].get(v) != simdjson::SUCCESS) miss(key);
    return v;
  }
  int64_t num(const char* key) {
    int64_t v = 0;
    if (e_[key].get(v) != simdjson::SUCCESS) miss(key);
    return v;
  }
  bool flag(const char* key) {
    bool v = false;
    if (e_[key].get(v) != simdjson::SUCCESS) miss(key);
    return v;
  }
  array list(const char* key) {
    array v;
    if (e_[key].get(v) != simdjson::SUCCESS) miss(key);
    return v;
  }
  // Fields the daemon may leave out: their default when absent.
  std::string_view str_or(const char* key, std::string_view dflt) const {
    std::string_view v;
    return e_[key].get(v) == simdjson::SUCCESS ? v : dflt;
  }
  int64_t num_or(const char* key, int64_t dflt) const {
    int64_t v = 0;
    return e_[key].get(v) == simdjson::SUCCESS ? v : dflt;
  }
  bool flag_or(const char* key, bool dflt) const {
    bool v = false;
    return e_[key].get(v) == simdjson::SUCCESS ? v : dflt;
  }
  bool has(const char* key) const { return e_[key].error() == simdjson::SUCCESS; }
  bool ok() const { return missing_ == nullptr; }
  Error error() const {
    return Error{std::string("ringmaild's answer has no \"") + missing_ +
                 "\" as expected (another version?)"};
  }

 private:
  void miss(const char* key) {
    if (missing_ == nullptr) missing_ = key;
  }
  element e_;
  const char* missing_ = nullptr;
};

Result<element> parse(simdjson::dom::parser& parser, std::string_view json) {
  element root;
  if (parser.parse(json.data(), json.size()).get(root) != simdjson::SUCCESS || !root.is_object()) {
    return Error{"ringmaild's answer is not a JSON object"};
  }
  return root;
}

// A page of /api/queue/messages: the document and its "messages".
struct Page {
  element root;
  array messages;
};
Result<Page> parse_page(simdjson::dom::parser& parser, std::string_view json) {
  auto root = parse(parser, json);
  if (!root) return Error{root.error()};
  Fields f(*root);
  const array messages = f.list("messages");
  if (!f.ok()) return f.error();
  return Page{*root, messages};
}

// One line from outside: control characters as '?', so that a remote
// server's reply cannot move the terminal's cursor.
std::string clean(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = '?';
  }
  return out;
}

// At most `max` bytes of `s`, cut on a character boundary, "..." at the end
// when cut.
std::string shorten(const std::string& s, size_t max) {
  if (s.size() <= max) return s;
  size_t cut = max - 3;
  while (cut > 0 && (static_cast<unsigned char>(s[cut]) & 0xC0) == 0x80) --cut;
  return s.substr(0, cut) + "...";
}

std::string plural(int64_t n, const char* one, const char* many) {
  return std::to_string(n) + " " + (n == 1 ? one : many);
}

std::string state_text(std::string_view state) {
  return state == "in_flight" ? "in flight" : std::string(state);
}

// The block of one message (list and show), without the blank line after.
Result<std::string> message_block(element m) {
  Fields f(m);
  const std::string_view id = f.str("id");
  const int64_t arrival = f.num("arrival_unix");
  const std::string_view sender = f.str("sender");
  const int64_t size = f.num("size");
  const array rcpts = f.list("recipients");
  if (!f.ok()) return f.error();
  std::string out = clean(id) + "  " + plural(size, "byte", "bytes") + "  arrived " +
                    utc_text(arrival) + "  from <" + clean(sender) + ">";
  if (f.flag_or("held", false)) out += "  HELD";
  out += "\n";
  for (element r : rcpts) {
    Fields rf(r);
    const std::string_view address = rf.str("address");
    const std::string_view state = rf.str("state");
    if (!rf.ok()) return rf.error();
    out += "  to <" + clean(address) + ">: " + state_text(state) + ", " +
           plural(rf.num_or("attempts", 0), "attempt", "attempts");
    const int64_t next = rf.num_or("next_attempt_unix", 0);
    if (state == "waiting" && next > 0) out += ", next " + utc_text(next);
    out += "\n";
    const std::string_view reply = rf.str_or("last_reply", "");
    if (!reply.empty()) out += "      " + clean(reply) + "\n";
  }
  return out;
}

// A number column of the summary: right-aligned in `width`.
void pad_left(std::string* out, const std::string& s, size_t width) {
  if (s.size() < width) out->append(width - s.size(), ' ');
  *out += s;
}

}  // namespace

std::string utc_text(int64_t t) {
  const time_t tt = static_cast<time_t>(t);
  tm parts{};
  gmtime_r(&tt, &parts);
  char b[32];
  std::strftime(b, sizeof b, "%Y-%m-%d %H:%M:%S UTC", &parts);
  return b;
}

// "45s", "12m 05s", "2h 00m", "3d 04h".
std::string span_text(int64_t s) {
  if (s < 0) s = 0;
  char b[64];
  if (s < 60) {
    std::snprintf(b, sizeof b, "%llds", static_cast<long long>(s));
  } else if (s < 3600) {
    std::snprintf(b, sizeof b, "%lldm %02llds", static_cast<long long>(s / 60),
                  static_cast<long long>(s % 60));
  } else if (s < 86400) {
    std::snprintf(b, sizeof b, "%lldh %02lldm", static_cast<long long>(s / 3600),
                  static_cast<long long>(s / 60 % 60));
  } else {
    std::snprintf(b, sizeof b, "%lldd %02lldh", static_cast<long long>(s / 86400),
                  static_cast<long long>(s / 3600 % 24));
  }
  return b;
}

Result<int64_t> parse_duration(std::string_view text) {
  const std::string shown = "\"" + clean(text) + "\"";
  if (text.empty()) return Error{"an empty duration (give 90s, 30m, 2h, 1d or seconds)"};
  constexpr int64_t kMax = std::numeric_limits<int64_t>::max();
  int64_t total = 0;
  size_t i = 0;
  while (i < text.size()) {
    if (text[i] < '0' || text[i] > '9') {
      return Error{"not a duration: " + shown + " (give 90s, 30m, 2h, 1d or seconds)"};
    }
    int64_t n = 0;
    for (; i < text.size() && text[i] >= '0' && text[i] <= '9'; ++i) {
      if (n > (kMax - (text[i] - '0')) / 10) return Error{"a duration too long: " + shown};
      n = n * 10 + (text[i] - '0');
    }
    int64_t unit = 1;  // plain seconds: the whole text is the number
    if (i < text.size()) {
      switch (text[i]) {
        case 's':
          unit = 1;
          break;
        case 'm':
          unit = 60;
          break;
        case 'h':
          unit = 3600;
          break;
        case 'd':
          unit = 86400;
          break;
        default:
          return Error{"not a duration: " + shown + " (units: s, m, h, d)"};
      }
      ++i;
    } else if (text.find_first_not_of("0123456789") != std::string_view::npos) {
      return Error{"not a duration: " + shown + " (a number without its unit after others)"};
    }
    if (n > (kMax - total) / unit) return Error{"a duration too long: " + shown};
    total += n * unit;
  }
  return total;
}

Result<std::string> selector_body(const QueueSelector& s, bool nothing_means_all) {
  const int kinds =
      int(!s.ids.empty()) + int(s.domain.has_value()) + int(s.sender.has_value()) + int(s.all);
  if (kinds > 1) {
    return Error{"give one of: message ids, --domain, --sender or --all"};
  }
  nlohmann::json body;
  if (!s.ids.empty()) {
    body["ids"] = s.ids;
  } else if (s.domain) {
    if (s.domain->empty()) return Error{"--domain needs a domain"};
    body["domain"] = *s.domain;
  } else if (s.sender) {
    body["sender"] = *s.sender;
  } else if (s.all || nothing_means_all) {
    body["all"] = true;
  } else {
    return Error{"say which messages: give ids, --domain, --sender or --all"};
  }
  return body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

std::string url_encode(std::string_view s) {
  static const char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (const char c : s) {
    const auto u = static_cast<unsigned char>(c);
    if ((u >= 'A' && u <= 'Z') || (u >= 'a' && u <= 'z') || (u >= '0' && u <= '9') || u == '-' ||
        u == '.' || u == '_' || u == '~') {
      out += c;
    } else {
      out += '%';
      out += kHex[u >> 4];
      out += kHex[u & 15];
    }
  }
  return out;
}

std::string list_target(const ListFilter& f) {
  std::string q;
  const auto add = [&q](const char* name, std::string_view value) {
    q += (q.empty() ? "?" : "&") + std::string(name) + "=" + url_encode(value);
  };
  if (!f.domain.empty()) add("domain", f.domain);
  if (f.sender) add("sender", f.sender->empty() ? "<>" : *f.sender);
  if (!f.rcpt.empty()) add("rcpt", f.rcpt);
  if (f.older_than_s) add("older_than", std::to_string(*f.older_than_s));
  if (!f.state.empty()) add("state", f.state);
  return "/api/queue/messages" + q;
}

std::string answer_error(int status, std::string_view body) {
  simdjson::dom::parser parser;
  element root;
  std::string_view text;
  if (parser.parse(body.data(), body.size()).get(root) == simdjson::SUCCESS &&
      root["error"].get(text) == simdjson::SUCCESS && !text.empty()) {
    return clean(text);
  }
  return "ringmaild answered " + std::to_string(status);
}

Result<PageInfo> page_info(std::string_view page_json) {
  simdjson::dom::parser parser;
  auto page = parse_page(parser, page_json);
  if (!page) return Error{page.error()};
  const array messages = page->messages;
  PageInfo info;
  info.messages = messages.size();
  element cursor;
  if (page->root["next_cursor"].get(cursor) != simdjson::SUCCESS) {
    return Error{"ringmaild's answer has no \"next_cursor\" as expected (another version?)"};
  }
  std::string_view c;
  if (cursor.get(c) == simdjson::SUCCESS) {
    info.next_cursor = std::string(c);
  } else if (!cursor.is_null()) {
    return Error{"ringmaild's next_cursor is neither a string nor null"};
  }
  return info;
}

Result<std::string> format_summary(std::string_view json) {
  simdjson::dom::parser parser;
  auto root = parse(parser, json);
  if (!root) return Error{root.error()};
  Fields f(*root);
  const int64_t now = f.num("now_unix");
  const int64_t messages = f.num("messages");
  const int64_t recipients = f.num("recipients");
  const int64_t bytes = f.num("bytes");
  const array buckets = f.list("buckets");
  const array domains = f.list("domains");
  if (!f.ok()) return f.error();

  // Columns: the domain, T, one per bucket, held, in flight; then the error.
  std::vector<std::string> head = {"", "T"};
  for (element b : buckets) {
    std::string_view label;
    if (b.get(label) != simdjson::SUCCESS) return Error{"ringmaild's buckets are not strings"};
    head.push_back(clean(label));
  }
  head.push_back("held");
  head.push_back("in flight");
  const size_t columns = head.size();
  std::vector<std::vector<std::string>> rows;
  std::vector<std::string> errors;
  std::vector<int64_t> total(columns, 0);  // [0] unused
  total[1] = recipients;
  for (element d : domains) {
    Fields df(d);
    const std::string_view name = df.str("domain");
    const int64_t rcpts = df.num("recipients");
    const array ages = df.list("ages");
    const int64_t held = df.num("held");
    const int64_t in_flight = df.num("in_flight");
    if (!df.ok()) return df.error();
    if (ages.size() != buckets.size()) {
      return Error{"ringmaild's ages of " + clean(name) + " do not match its buckets"};
    }
    std::vector<std::string> row = {clean(name), std::to_string(rcpts)};
    size_t col = 2;
    for (element a : ages) {
      int64_t n = 0;
      if (a.get(n) != simdjson::SUCCESS) return Error{"ringmaild's ages are not numbers"};
      row.push_back(std::to_string(n));
      total[col++] += n;
    }
    row.push_back(std::to_string(held));
    row.push_back(std::to_string(in_flight));
    total[columns - 2] += held;
    total[columns - 1] += in_flight;
    rows.push_back(std::move(row));
    errors.push_back(shorten(clean(df.str_or("last_error", "")), 50));
  }
  std::vector<std::string> total_row = {"TOTAL"};
  for (size_t c = 1; c < columns; ++c) total_row.push_back(std::to_string(total[c]));
  rows.insert(rows.begin(), std::move(total_row));
  errors.insert(errors.begin(), "");

  std::vector<size_t> width(columns, 0);
  for (size_t c = 0; c < columns; ++c) {
    width[c] = head[c].size();
    for (const auto& r : rows) width[c] = std::max(width[c], r[c].size());
  }
  std::string out = "queue: " + plural(messages, "message", "messages") + ", " +
                    plural(recipients, "recipient", "recipients") + ", " +
                    plural(bytes, "byte", "bytes") + "\n";
  const auto line = [&](const std::vector<std::string>& cells, const std::string& error) {
    std::string l;
    for (size_t c = 0; c < columns; ++c) {
      if (c > 0) l += ' ';
      pad_left(&l, cells[c], width[c]);
    }
    if (!error.empty()) l += "  " + error;
    out += l + "\n";
  };
  line(head, "last error");
  for (size_t i = 0; i < rows.size(); ++i) line(rows[i], errors[i]);

  array suspended;
  if ((*root)["suspended"].get(suspended) == simdjson::SUCCESS && suspended.size() > 0) {
    out += "\nsuspended destinations:\n";
    for (element s : suspended) {
      Fields sf(s);
      const std::string_view name = sf.str("domain");
      const int64_t until = sf.num("until_unix");
      if (!sf.ok()) return sf.error();
      const std::string_view reason = sf.str_or("reason", "");
      out += "  " + clean(name) + "  until " + utc_text(until) + " (" + span_text(until - now) +
             " from now)" + (reason.empty() ? "" : ": " + clean(reason)) + "\n";
    }
  }
  return out;
}

Result<std::string> format_list_page(std::string_view page_json) {
  simdjson::dom::parser parser;
  auto page = parse_page(parser, page_json);
  if (!page) return Error{page.error()};
  const array messages = page->messages;
  std::string out;
  for (element m : messages) {
    auto block = message_block(m);
    if (!block) return Error{block.error()};
    out += *block + "\n";
  }
  return out;
}

Result<std::string> format_message(std::string_view json) {
  simdjson::dom::parser parser;
  auto root = parse(parser, json);
  if (!root) return Error{root.error()};
  auto block = message_block(*root);
  if (!block) return Error{block.error()};
  Fields f(*root);
  std::string out = *block + "client: " + clean(f.str_or("client", "")) + "\n" +
                    "helo: " + clean(f.str_or("helo", "")) + "\n\n";
  std::string_view text = f.str_or("content", "");
  if (!f.has("content")) text = f.str_or("headers", "");
  out += text;
  if (!text.empty() && text.back() != '\n') out += "\n";
  return out;
}

Result<std::string> json_page_messages(std::string_view page_json, bool* first) {
  simdjson::dom::parser parser;
  auto page = parse_page(parser, page_json);
  if (!page) return Error{page.error()};
  const array messages = page->messages;
  std::string out;
  for (element m : messages) {
    if (!*first) out += ",";
    *first = false;
    out += simdjson::to_string(m);
  }
  return out;
}

Result<std::string> format_mailq_page(std::string_view page_json, MailqTotals* totals) {
  simdjson::dom::parser parser;
  auto page = parse_page(parser, page_json);
  if (!page) return Error{page.error()};
  const array messages = page->messages;
  std::string out;
  for (element m : messages) {
    Fields mf(m);
    const std::string_view id = mf.str("id");
    const int64_t arrival = mf.num("arrival_unix");
    const std::string_view sender = mf.str("sender");
    const int64_t size = mf.num("size");
    const array rcpts = mf.list("recipients");
    if (!mf.ok()) return mf.error();
    // Postfix: '*' in the active queue (an attempt now), '!' on hold.
    bool in_flight = false;
    for (element r : rcpts) {
      std::string_view state;
      in_flight |= r["state"].get(state) == simdjson::SUCCESS && state == "in_flight";
    }
    const char* status = in_flight ? "*" : mf.flag_or("held", false) ? "!" : "";
    if (totals->messages == 0) {
      out += "-Queue ID-  --Size-- ----Arrival Time---- -Sender/Recipient-------\n";
    }
    ++totals->messages;
    totals->bytes += static_cast<uint64_t>(std::max<int64_t>(size, 0));
    // postqueue's "%-11s %7ld %20.20s %s": asctime's first 20 characters.
    const time_t t = static_cast<time_t>(arrival);
    tm parts{};
    localtime_r(&t, &parts);
    char when[32];
    std::strftime(when, sizeof when, "%a %b %e %H:%M:%S ", &parts);
    char head[64];
    std::snprintf(head, sizeof head, "%-11s %7lld %20.20s ", (clean(id) + status).c_str(),
                  static_cast<long long>(size), when);
    out += head + (sender.empty() ? std::string("MAILER-DAEMON") : clean(sender)) + "\n";
    // Each recipient still to deliver, the last reply before it (once for
    // a run of recipients with the same reply), right-aligned as Postfix's.
    std::string last;
    for (element r : rcpts) {
      Fields rf(r);
      const std::string_view address = rf.str("address");
      const std::string_view state = rf.str("state");
      if (!rf.ok()) return rf.error();
      if (state != "waiting" && state != "in_flight" && state != "held") continue;
      const std::string reply = clean(rf.str_or("last_reply", ""));
      if (!reply.empty() && reply != last) {
        const size_t pad = reply.size() < 76 ? 76 - reply.size() : 0;
        out += std::string(pad, ' ') + "(" + reply + ")\n";
      }
      last = reply;
      out += std::string(41, ' ') + clean(address) + "\n";
    }
    out += "\n";
  }
  return out;
}

std::string format_mailq_end(const MailqTotals& totals) {
  if (totals.messages == 0) return "Mail queue is empty\n";
  return "-- " + std::to_string(totals.bytes / 1024) + " Kbytes in " +
         std::to_string(totals.messages) + " Request" + (totals.messages == 1 ? "" : "s") + ".\n";
}

Result<ActionOutcome> format_action(std::string_view action, std::string_view json) {
  simdjson::dom::parser parser;
  auto root = parse(parser, json);
  if (!root) return Error{root.error()};
  Fields f(*root);
  const int64_t messages = f.num("messages");
  const bool by_recipient = action == "delete" || action == "bounce";
  const int64_t recipients = by_recipient ? f.num("recipients") : 0;
  if (!f.ok()) return f.error();
  const char* done = action == "flush"     ? "flushed"
                     : action == "hold"    ? "held"
                     : action == "release" ? "released"
                     : action == "delete"  ? "deleted"
                     : action == "bounce"  ? "bounced"
                                           : nullptr;
  if (done == nullptr) return Error{"no such queue action: " + std::string(action)};
  ActionOutcome o;
  o.line = std::string(done) + " " +
           (by_recipient ? plural(recipients, "recipient", "recipients") + " of " : "") +
           plural(messages, "message", "messages");
  array unknown;
  if ((*root)["unknown"].get(unknown) == simdjson::SUCCESS) {
    for (element u : unknown) {
      std::string_view id;
      if (u.get(id) == simdjson::SUCCESS) o.unknown.push_back(clean(id));
    }
  }
  return o;
}

Result<std::string> format_suspended(std::string_view json) {
  simdjson::dom::parser parser;
  auto root = parse(parser, json);
  if (!root) return Error{root.error()};
  Fields f(*root);
  const std::string_view domain = f.str("domain");
  const int64_t until = f.num("until_unix");
  if (!f.ok()) return f.error();
  const std::string_view reason = f.str_or("reason", "");
  return "suspended " + clean(domain) + " until " + utc_text(until) +
         (reason.empty() ? "" : ": " + clean(reason)) + "\n";
}

Result<std::string> format_resumed(std::string_view json) {
  simdjson::dom::parser parser;
  auto root = parse(parser, json);
  if (!root) return Error{root.error()};
  Fields f(*root);
  const std::string_view domain = f.str("domain");
  const bool resumed = f.flag("resumed");
  if (!f.ok()) return f.error();
  return resumed ? "resumed " + clean(domain) + ": its waiting mail is due now\n"
                 : clean(domain) + " was not suspended\n";
}

}  // namespace ringmail::tools
