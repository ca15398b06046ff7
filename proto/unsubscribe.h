// One-click unsubscribe (RFC 8058, RFC 2369): the tokens in the
// List-Unsubscribe URLs ringmail adds to injected mail, and the two
// header fields.
//
// A token is base64url (RFC 4648 5, no padding) of
//
//   0x01 recipient 0x00 sender-domain 0x00 stream  MAC
//
// where MAC is the first 16 bytes of HMAC-SHA256(secret, "ringmail
// unsubscribe" 0x00 payload) and payload the bytes before it: only the
// holder of the secret can make one, and a token altered anywhere no
// longer verifies. The recipient and the domain are lower case. Pure: the
// HMAC comes from the caller (tls/hmac.h).
#pragma once

#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "proto/result.h"

namespace ringmail::proto::unsubscribe {

// The 32-byte HMAC-SHA256 of `data` under `key`; empty when it failed.
using HmacSha256 = std::function<std::string(std::string_view key, std::string_view data)>;

struct Subject {
  std::string recipient;      // local@domain, lower case
  std::string sender_domain;  // the suppression list's scope
  std::string stream;         // the [[unsubscribe]] rule's stream name
};

// The token for `s` under `secret` ("" when the HMAC failed).
std::string make_token(const Subject& s, std::string_view secret, const HmacSha256& hmac);

// The subject of `token`, when one of `secrets` made it; else why not
// ("not an unsubscribe token", "the token was altered or is not ours").
Result<Subject> read_token(std::string_view token, const std::vector<std::string>& secrets,
                           const HmacSha256& hmac);

// RFC 8058's two fields, each ending in CRLF: List-Unsubscribe with the
// HTTPS URL (`url_prefix` + token) and, when `mailto` (local@domain) is
// not empty, a mailto URI: <mailto:local+TOKEN@domain> when that local
// part fits RFC 5321's 64 octets, else <mailto:local@domain?subject=TOKEN>;
// then List-Unsubscribe-Post: List-Unsubscribe=One-Click.
std::string header_fields(std::string_view token, std::string_view url_prefix,
                          std::string_view mailto);

// The token a mail to the unsubscribe address carries: after the first
// '+' of the recipient's local part, else the Subject's last word; ""
// when neither has one.
std::string token_from_mail(std::string_view recipient_local, std::string_view subject);

// RFC 8058 3.1: the body of a one-click POST, form-encoded
// (application/x-www-form-urlencoded or multipart/form-data), holds
// List-Unsubscribe=One-Click.
bool is_one_click_body(std::string_view content_type, std::string_view body);

}  // namespace ringmail::proto::unsubscribe
