// VERP in the daemon ([events] verp, proto/verp.h, docs/events.md): the
// secret (<data_dir>/verp.secret, made on first start), the return path
// of each outbound recipient, and the bounces that come back to one: the
// queue id's recipients are read back from the event log (its Reception
// events) on a worker, the one whose hash matches gets an OOB event and,
// for a suppressing class, a place on the suppression list.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "config/config.h"
#include "engine/secret_file.h"
#include "proto/address.h"
#include "proto/result.h"
#include "proto/smtp_server.h"

namespace ringmail::engine {

class Shard;

// The key, null while [events] verp is off, or why the secrets file can
// be neither read nor made.
Result<std::shared_ptr<const SecretKeys>> load_verp_keys(const config::Config& cfg);

// bounce+<id>-<hash>@<verp domain> for recipient `rcpt` of `env`; a null
// address without keys.
proto::Address verp_sender(const SecretKeys* keys, const config::Config& cfg,
                           const proto::Envelope& env, size_t rcpt);

// The recipients (as given at RCPT, before the aliases) that are VERP
// return paths at the VERP domain.
std::vector<proto::Address> verp_recipients(const config::Config& cfg,
                                            const std::vector<proto::Address>& rcpts);

// A message (queue id `id`) just queued for those recipients: read as a
// bounce of the message and recipient each names.
void read_verp_bounces(Shard& shard, const std::string& id,
                       const std::vector<proto::Address>& rcpts, std::string message);

struct VerpOriginal {
  std::string sender, recipient;
  int64_t received = 0;
};
// The recipient of queue id `queue_id` whose VERP hash is `hash`, from
// the Reception events of the shard that held it under `events_dir`
// (queue ids name their shard and their time, so only that shard's
// segments from that time on are read); nothing when none matches.
std::optional<VerpOriginal> find_verp_original(const std::string& events_dir,
                                               const std::string& queue_id, const std::string& hash,
                                               const SecretKeys& keys);

// The first line of `text` that holds an SMTP reply with an enhanced
// code ("550 5.1.1 ..."), from there to its end; "" when none does: what
// a bounce that is not a DSN says.
std::string reply_in_text(std::string_view text);

}  // namespace ringmail::engine
