#include "proto/dsn.h"

#include <cctype>

#include "proto/smtp_server.h"  // rfc5322_date

namespace ringmail::proto {

namespace {

// The header of a message: everything before the first empty line.
std::string_view header_of(std::string_view msg) {
  const size_t end = msg.find("\r\n\r\n");
  return end == std::string_view::npos ? msg : msg.substr(0, end + 2);
}

// Keeps a diagnostic on one line (it goes into a header-like field).
std::string one_line(std::string_view s) {
  std::string out;
  for (char c : s) out += (c == '\r' || c == '\n') ? ' ' : c;
  return out;
}

}  // namespace

bool is_enhanced_status(std::string_view s) {
  // class "." subject "." detail: 2/4/5, 1-3 digits, 1-3 digits
  if (s.size() < 5 || (s[0] != '2' && s[0] != '4' && s[0] != '5') || s[1] != '.') return false;
  size_t i = 2, n = 0;
  while (i < s.size() && std::isdigit(static_cast<unsigned char>(s[i]))) ++i, ++n;
  if (n == 0 || n > 3 || i >= s.size() || s[i] != '.') return false;
  ++i;
  n = 0;
  while (i < s.size() && std::isdigit(static_cast<unsigned char>(s[i]))) ++i, ++n;
  return n >= 1 && n <= 3 && i == s.size();
}

std::string status_of(std::string_view reply, std::string_view fallback) {
  // "550 5.1.1 text": the enhanced code follows the basic one.
  if (reply.size() >= 3 && std::isdigit(static_cast<unsigned char>(reply[0]))) {
    std::string_view rest = reply.substr(3);
    while (!rest.empty() && (rest[0] == ' ' || rest[0] == '-')) rest.remove_prefix(1);
    const std::string_view word = rest.substr(0, rest.find(' '));
    if (is_enhanced_status(word) && word[0] == reply[0]) return std::string(word);
    if (reply[0] == '4' || reply[0] == '5') return std::string(1, reply[0]) + ".0.0";
  }
  return std::string(fallback);
}

std::string make_dsn(const DsnInput& in) {
  const std::string boundary = in.message_id + "/" + in.reporting_host;
  const std::string when = rfc5322_date(in.now_unix);
  std::string m;
  m += "From: Mail Delivery System <MAILER-DAEMON@" + in.reporting_host + ">\r\n";
  m += "To: <" + in.sender.to_string() + ">\r\n";
  m += std::string("Subject: ") +
       (in.delayed ? "Delivery delayed: still trying" : "Undelivered mail returned to sender") +
       "\r\n";
  m += "Date: " + when + "\r\n";
  m += "Message-ID: <" + in.message_id + "." + std::to_string(in.now_unix) + ".dsn@" +
       in.reporting_host + ">\r\n";
  m += "Auto-Submitted: auto-replied\r\n";  // RFC 3834: no replies to this
  m += "MIME-Version: 1.0\r\n";
  m += "Content-Type: multipart/report; report-type=delivery-status;\r\n\tboundary=\"" + boundary +
       "\"\r\n\r\n";
  m += "This is a MIME-encapsulated message.\r\n\r\n";

  // 1. For people.
  m += "--" + boundary + "\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n";
  m += "This is the mail system at " + in.reporting_host + ".\r\n\r\n";
  if (in.delayed) {
    m += "Your message (queue id " + in.message_id +
         ") could not be delivered yet to the recipients below. Delivery will be retried until " +
         rfc5322_date(in.retry_until_unix) + "; you do not need to send it again.\r\n\r\n";
  } else {
    m += "Your message (queue id " + in.message_id +
         ") could not be delivered to the recipients below. This is permanent.\r\n\r\n";
  }
  for (const auto& r : in.recipients) {
    m += "<" + r.rcpt.to_string() + ">: " + one_line(r.diagnostic);
    if (!r.remote_mta.empty()) m += " (from " + r.remote_mta + ")";
    m += "\r\n";
  }
  m += "\r\n";

  // 2. For programs (RFC 3464).
  m += "--" + boundary + "\r\nContent-Type: message/delivery-status\r\n\r\n";
  m += "Reporting-MTA: dns; " + in.reporting_host + "\r\n";
  m += "X-Ringmail-Queue-ID: " + in.message_id + "\r\n";
  m += "Arrival-Date: " + rfc5322_date(in.arrival_unix) + "\r\n";
  for (const auto& r : in.recipients) {
    m += "\r\n";
    m += "Final-Recipient: rfc822; " + r.rcpt.to_string() + "\r\n";
    m += std::string("Action: ") + (in.delayed ? "delayed" : "failed") + "\r\n";
    const std::string status =
        r.status.empty() ? status_of(r.diagnostic, in.delayed ? "4.0.0" : "5.0.0") : r.status;
    m += "Status: " + status + "\r\n";
    if (!r.remote_mta.empty()) m += "Remote-MTA: dns; " + r.remote_mta + "\r\n";
    if (!r.diagnostic.empty()) {
      // An SMTP reply is an smtp diagnostic; our own reasons are text.
      const bool smtp =
          r.diagnostic.size() >= 3 && std::isdigit(static_cast<unsigned char>(r.diagnostic[0]));
      m += std::string("Diagnostic-Code: ") + (smtp ? "smtp; " : "X-ringmail; ") +
           one_line(r.diagnostic) + "\r\n";
    }
    if (in.delayed) m += "Will-Retry-Until: " + rfc5322_date(in.retry_until_unix) + "\r\n";
  }
  m += "\r\n";

  // 3. The original header (RFC 3462 text/rfc822-headers).
  m += "--" + boundary + "\r\nContent-Type: text/rfc822-headers\r\n\r\n";
  m += header_of(in.original);
  m += "\r\n--" + boundary + "--\r\n";
  return m;
}

}  // namespace ringmail::proto
