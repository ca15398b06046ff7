// Pipe aliases ("name: | command", docs/aliases.md): the command run with
// /bin/sh -c, the message on its standard input, in its own process group,
// for at most a timeout. Blocking: it runs on the shard's pipe workers
// (LocalDelivery::pipe_pool_), never on a shard's loop.
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "proto/outcome.h"

namespace ringmail::engine {

// Exit 0: delivered. Exit 75 (EX_TEMPFAIL), a timeout, or a failure to
// start: temporary. Any other exit or a signal: permanent. `env` is added
// to a minimal environment (PATH, HOME=/, SHELL=/bin/sh).
proto::DeliveryResult run_pipe(const std::string& command, std::string_view input,
                               const std::vector<std::pair<std::string, std::string>>& env,
                               int timeout_s);

// One message to one recipient over LMTP (RFC 2033) on a UNIX socket
// (Dovecot's lmtp service): LHLO, MAIL, RCPT, DATA with `message` (CRLF
// line endings, not dot-stuffed), QUIT. 2xx delivered, 4xx (or no answer
// within the timeout, or no socket) temporary, 5xx permanent.
proto::DeliveryResult lmtp_deliver(const std::string& socket_path, const std::string& lhlo,
                                   const std::string& sender, const std::string& rcpt,
                                   std::string_view message, int timeout_s);

}  // namespace ringmail::engine
