// One-click unsubscribe in the daemon (RFC 8058, docs/unsubscribe.md):
// the secrets that sign the tokens (<data_dir>/unsubscribe.secret, made
// on first start), the [[unsubscribe]] rule an injected message matches,
// the List-Unsubscribe fields for one recipient, and the two ways back:
// the one-click POST to /u/TOKEN on the HTTP listeners, and a mail to the
// rule's mailto address. Either adds the recipient to the suppression list
// for the sender domain and records an Unsubscribe event.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "config/config.h"
#include "engine/secret_file.h"
#include "proto/http.h"
#include "proto/result.h"
#include "proto/smtp_server.h"

namespace ringmail::engine {

class Shard;

// The keys, null when no [[unsubscribe]] rule is configured, or why the
// secrets file can be neither read nor made.
Result<std::shared_ptr<const SecretKeys>> load_unsubscribe_keys(const config::Config& cfg);

// The rule for mail injected with token `token_name` from an envelope
// sender at `sender_domain` (lower case): the first rule naming the
// token, else the first whose domain is the sender's or a parent of it;
// null when none.
const config::UnsubscribeRule* unsubscribe_rule(const config::Config& cfg,
                                                std::string_view token_name,
                                                std::string_view sender_domain);

// The List-Unsubscribe and List-Unsubscribe-Post fields (CRLF-ended) for
// `recipient` of a message from `sender_domain`; "" when the HMAC failed.
std::string unsubscribe_fields(const SecretKeys& keys, const config::UnsubscribeRule& rule,
                               std::string_view recipient, std::string_view sender_domain);

// True when the header of `message` already has a List-Unsubscribe field
// (the application's own wins).
bool has_list_unsubscribe(std::string_view message);

// GET, HEAD or POST of /u/TOKEN on an HTTP listener: `reply` gets the
// whole HTTP response and whether to keep the connection.
void unsubscribe_http(Shard& shard, const proto::HttpRequest& req, const std::string& peer,
                      std::function<void(std::string, bool)> reply);

// The recipients (as given at RCPT, before the aliases) at a rule's
// mailto address: its local part, or with a +TOKEN suffix.
std::vector<proto::Address> unsubscribe_recipients(const config::Config& cfg,
                                                   const std::vector<proto::Address>& rcpts);
// A message just queued (queue id `id`) for those recipients: the token
// of each (from its suffix, else the Subject) unsubscribes.
void unsubscribe_by_mail(Shard& shard, const std::string& id,
                         const std::vector<proto::Address>& rcpts, std::string_view message);

}  // namespace ringmail::engine
