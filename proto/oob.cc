#include "proto/oob.h"

#include <gmime/gmime.h>

#include <memory>
#include <mutex>

#include "proto/address.h"

namespace ringmail::proto {
namespace {

struct Unref {
  void operator()(gpointer p) const { g_object_unref(p); }
};
template <class T>
using Ref = std::unique_ptr<T, Unref>;

void init_gmime() {
  static std::once_flag once;
  std::call_once(once, [] { g_mime_init(); });
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r'))
    s.remove_suffix(1);
  return s;
}

std::string lower(std::string_view s) { return ascii_lower(s); }

// "<a@b>" -> "a@b".
std::string unbracket(std::string_view s) {
  s = trim(s);
  if (s.size() >= 2 && s.front() == '<' && s.back() == '>') s = s.substr(1, s.size() - 2);
  return std::string(s);
}

// Header-style fields (RFC 5322 2.2, with folding), in groups separated
// by blank lines, as message/delivery-status and message/feedback-report
// hold them.
using Fields = std::vector<std::pair<std::string, std::string>>;  // name lower case
std::vector<Fields> field_groups(std::string_view text) {
  std::vector<Fields> groups(1);
  size_t at = 0;
  while (at < text.size()) {
    size_t nl = text.find('\n', at);
    std::string_view line = text.substr(at, nl == std::string_view::npos ? text.npos : nl - at);
    at = nl == std::string_view::npos ? text.size() : nl + 1;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (trim(line).empty()) {
      if (!groups.back().empty()) groups.emplace_back();
      continue;
    }
    if ((line[0] == ' ' || line[0] == '\t') && !groups.back().empty()) {
      groups.back().back().second += " " + std::string(trim(line));  // folded
      continue;
    }
    const size_t colon = line.find(':');
    if (colon == std::string_view::npos || colon == 0) continue;  // not a field: skipped
    groups.back().emplace_back(lower(trim(line.substr(0, colon))),
                               std::string(trim(line.substr(colon + 1))));
  }
  if (groups.back().empty()) groups.pop_back();
  return groups;
}

std::string field(const Fields& f, std::string_view name) {
  for (const auto& [k, v] : f) {
    if (k == name) return v;
  }
  return "";
}

// The decoded bytes of a leaf part.
std::string content_of(GMimePart* part) {
  GMimeDataWrapper* w = g_mime_part_get_content(part);
  if (w == nullptr) return "";
  Ref<GMimeStream> mem(g_mime_stream_mem_new());
  g_mime_data_wrapper_write_to_stream(w, mem.get());
  GByteArray* bytes = g_mime_stream_mem_get_byte_array(GMIME_STREAM_MEM(mem.get()));
  return std::string(reinterpret_cast<const char*>(bytes->data), bytes->len);
}

bool is_type(GMimeObject* o, const char* type, const char* subtype) {
  GMimeContentType* ct = g_mime_object_get_content_type(o);
  return ct != nullptr && g_mime_content_type_is_type(ct, type, subtype);
}

// The queue id of the first Received field that ringmail wrote
// ("by HOST (ringmail) with ESMTP id ID").
std::string our_queue_id(const std::vector<std::string>& received) {
  for (const std::string& r : received) {
    if (r.find("(ringmail)") == std::string::npos) continue;
    const size_t id = r.find(" id ");
    if (id == std::string::npos) continue;
    size_t from = id + 4, to = from;
    while (to < r.size() && r[to] != ' ' && r[to] != '\t' && r[to] != ';' && r[to] != '\r' &&
           r[to] != '\n') {
      ++to;
    }
    return r.substr(from, to - from);
  }
  return "";
}

void read_original_fields(const Fields& f, OobReport* out) {
  std::vector<std::string> received;
  for (const auto& [k, v] : f) {
    if (k == "received") received.push_back(v);
    if (k == "message-id" && out->original_message_id.empty())
      out->original_message_id = unbracket(v);
    if (k == "from" && out->original_from.empty()) out->original_from = v;
    if (k == "to" && out->original_to.empty()) out->original_to = v;
  }
  out->original_queue_id = our_queue_id(received);
}

void read_original(GMimeObject* part, OobReport* out) {
  if (GMIME_IS_MESSAGE_PART(part)) {
    GMimeMessage* m = g_mime_message_part_get_message(GMIME_MESSAGE_PART(part));
    if (m == nullptr) return;
    GMimeHeaderList* list = g_mime_object_get_header_list(GMIME_OBJECT(m));
    Fields f;
    for (int i = 0; i < g_mime_header_list_get_count(list); ++i) {
      GMimeHeader* h = g_mime_header_list_get_header_at(list, i);
      const char* value = g_mime_header_get_value(h);
      f.emplace_back(lower(g_mime_header_get_name(h)), value ? value : "");
    }
    read_original_fields(f, out);
  } else if (GMIME_IS_PART(part)) {
    const auto groups = field_groups(content_of(GMIME_PART(part)));
    if (!groups.empty()) read_original_fields(groups.front(), out);
  }
}

}  // namespace

std::string_view typed_value(std::string_view f) {
  const size_t semi = f.find(';');
  if (semi == std::string_view::npos) return trim(f);
  return trim(f.substr(semi + 1));
}

Result<OobReport> parse_oob_report(std::string_view message) {
  init_gmime();
  Ref<GMimeStream> stream(g_mime_stream_mem_new_with_buffer(message.data(), message.size()));
  Ref<GMimeParser> parser(g_mime_parser_new_with_stream(stream.get()));
  Ref<GMimeMessage> m(g_mime_parser_construct_message(parser.get(), nullptr));
  if (!m) return Error{"not a message"};
  GMimeObject* top = g_mime_message_get_mime_part(m.get());
  if (top == nullptr || !GMIME_IS_MULTIPART(top) || !is_type(top, "multipart", "report")) {
    return Error{"not a multipart/report"};
  }
  const char* rt = g_mime_object_get_content_type_parameter(top, "report-type");
  const std::string report_type = rt ? lower(rt) : "";
  OobReport out;
  const char* want = nullptr;
  if (report_type == "delivery-status") {
    out.kind = OobReport::Kind::kDsn;
    want = "delivery-status";
  } else if (report_type == "feedback-report") {
    out.kind = OobReport::Kind::kFeedback;
    want = "feedback-report";
  } else {
    return Error{"a multipart/report of type \"" + report_type +
                 "\", not delivery-status or feedback-report"};
  }
  GMimeMultipart* mp = GMIME_MULTIPART(top);
  std::string report;
  bool found = false;
  for (int i = 0; i < g_mime_multipart_get_count(mp); ++i) {
    GMimeObject* part = g_mime_multipart_get_part(mp, i);
    if (is_type(part, "message", want) && GMIME_IS_PART(part) && !found) {
      report = content_of(GMIME_PART(part));
      found = true;
    } else if (is_type(part, "message", "rfc822") || is_type(part, "text", "rfc822-headers") ||
               is_type(part, "message", "rfc822-headers")) {
      read_original(part, &out);
    }
  }
  if (!found) return Error{std::string("no message/") + want + " part"};
  const auto groups = field_groups(report);
  if (groups.empty()) return Error{std::string("an empty message/") + want + " part"};
  out.reporting_mta = std::string(typed_value(field(groups[0], "reporting-mta")));
  if (out.kind == OobReport::Kind::kFeedback) {
    const Fields& f = groups[0];
    out.feedback_type = lower(field(f, "feedback-type"));
    if (out.feedback_type.empty()) return Error{"a feedback report without Feedback-Type"};
    out.user_agent = field(f, "user-agent");
    out.original_mail_from = unbracket(field(f, "original-mail-from"));
    for (const auto& [k, v] : f) {
      if (k == "original-rcpt-to") out.original_rcpt_tos.push_back(unbracket(v));
    }
    out.source_ip = field(f, "source-ip");
    out.arrival_date = field(f, "arrival-date");
    return out;
  }
  // DSN: the first group is per message, the others per recipient.
  for (size_t g = 1; g < groups.size(); ++g) {
    const Fields& f = groups[g];
    OobRecipient r;
    r.final_recipient = unbracket(typed_value(field(f, "final-recipient")));
    if (r.final_recipient.empty()) continue;
    r.original_recipient = unbracket(typed_value(field(f, "original-recipient")));
    r.action = lower(field(f, "action"));
    r.status = field(f, "status");
    if (const size_t sp = r.status.find(' '); sp != std::string::npos) r.status.resize(sp);
    r.diagnostic = std::string(typed_value(field(f, "diagnostic-code")));
    r.remote_mta = std::string(typed_value(field(f, "remote-mta")));
    out.recipients.push_back(std::move(r));
  }
  if (out.recipients.empty()) return Error{"a DSN without a recipient block"};
  return out;
}

}  // namespace ringmail::proto
