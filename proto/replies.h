// The SMTP replies the engine sends on its own verdicts, next to those the
// session writes (proto/smtp_server.cc): every reply text lives in proto/
// and docs/smtp-replies.md lists them. The engine decides; these say it.
#pragma once

#include <string>
#include <string_view>

namespace ringmail::proto::reply {

// Sent on a connection refused before any session (CRLF included).
inline constexpr std::string_view kTooManyConnections = "421 4.7.0 Too many connections\r\n";
inline constexpr std::string_view kTooManyFromAddress =
    "421 4.7.0 Too many connections from your address\r\n";

// Session endings (SmtpServer::terminate adds the CRLF).
inline constexpr std::string_view kAuthLockedOut =
    "421 4.7.0 Too many failed authentications, closing connection";
inline constexpr std::string_view kImplicitTlsHint =
    "421 4.7.0 This port speaks TLS from the first byte (RFC 8314): connect with TLS, or use port "
    "587 with STARTTLS";
inline constexpr std::string_view kShuttingDown =
    "421 4.3.2 Service shutting down, closing connection";
// A client that talked before the greeting (RFC 5321 4.3.1).
std::string early_talker(std::string_view hostname);

// A message refused at the end of DATA by the inbound checks.
// SPF fail for `domain`: the record's explanation, else the client address.
std::string spf_fail(std::string_view domain, std::string_view explanation,
                     std::string_view client_ip);
std::string dmarc_reject(std::string_view from_domain);

// RCPT of a local address the recipient policy does not take.
inline constexpr std::string_view kNoSuchUser = "550 5.1.1 No such user";
std::string bad_srs_address(std::string_view why);
inline constexpr std::string_view kDomainFilesBroken =
    "451 4.3.0 Mail for this domain waits for a fix of its users or aliases file, try again later";
inline constexpr std::string_view kAliasesBroken =
    "451 4.3.0 The aliases of this address are misconfigured, try again later";

// The message should have been DKIM-signed and could not be: it is never
// queued unsigned.
inline constexpr std::string_view kCannotSign =
    "451 4.7.0 Cannot DKIM-sign the message now, try again later";

// A local delivery (pipe, MDA, LMTP) that failed for good, for the DSN.
std::string local_delivery_failed(std::string_view why);

}  // namespace ringmail::proto::reply
