// The admin API under /api/ (issue 22): JSON over ringmaild's own HTTP
// server. On the admin UNIX socket the file's mode (0660) is the
// authentication; on a TCP http listener every request needs
// "Authorization: Bearer <token>" of an [[api.token]] with the admin scope
// (401 without a valid one, 403 without the scope).
#pragma once

#include <functional>
#include <string>

#include "engine/shard.h"
#include "proto/http.h"

namespace ringmail::engine {

// Who asks: a client of the admin socket, or of a TCP http listener.
enum class HttpAccess : uint8_t { kAdminSocket, kTokens };

struct ApiReply {
  int status = 200;
  std::string body;     // JSON
  std::string headers;  // more header lines, each ending in CRLF (Retry-After)
};

// A request whose path starts with /api/ (shard thread). `done` gets the
// answer on this shard's thread: at once, or once the other shards gave
// their parts (the queue's listings, built in slices, and its changes,
// once durable).
void admin_api(Shard& shard, const proto::HttpRequest& req, HttpAccess access,
               std::function<void(ApiReply)> done);

// The suspended destinations file (<data_dir>/suspended, docs/admin-api.md):
// one "DOMAIN UNTIL_UNIX REASON" line each. Read at start (expired ones
// are left out); a broken line is an error naming it.
Result<Shard::Suspensions> read_suspensions(const std::string& path, int64_t now_s);
std::string suspensions_text(const Shard::Suspensions& s);

// GET /api/status: version, start time, backend, shards and their loops,
// listeners, TLS certificates (names, key, expiry), queue totals, spool
// bytes.
std::string status_json(const Shard& shard);

}  // namespace ringmail::engine
