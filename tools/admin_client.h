// The admin API from the command line: HTTP/1.1 over ringmaild's admin
// socket ([admin] socket), one request a connection.
#pragma once

#include <functional>
#include <string>
#include <string_view>

#include "config/config.h"

namespace ringmail::tools {

struct AdminReply {
  int status = 0;
  std::string body;
};

// Exit status when the daemon does not answer (EX_TEMPFAIL).
inline constexpr int kDaemonDown = 75;

// One request, with `json_body` as its body (Content-Type: application/json)
// when it is not empty. The error is one line; `down` is set when the daemon
// is not there (no socket, nobody listening) rather than failing in another
// way.
Result<AdminReply> admin_request(const std::string& socket_path, const std::string& method,
                                 const std::string& target, bool* down,
                                 std::string_view json_body = {});

// A request that should succeed: the answer's body (exit 0), or, after one
// line on stderr ("<prog>: why"), the exit status to return: kDaemonDown
// when the daemon is not running, else 1 (an HTTP error: its "error" text).
struct AdminCall {
  int exit = 0;
  std::string body;
};
[[nodiscard]] AdminCall admin_call(const char* prog, const std::string& socket_path,
                                   const std::string& method, const std::string& target,
                                   std::string_view json_body = {});

// Messages asked for at a time when paging.
inline constexpr size_t kPageSize = 1000;

// Every page of GET /api/queue/messages (docs/admin-api.md): `target` with
// its filters (tools/queue_format.h, list_target), to which limit= and
// cursor= are added; `each` gets each page's body in turn, until
// next_cursor is null or `max_total` messages came (0: no bound). Only one
// page is held at a time; `*messages` (when given) counts what came. 0, or
// as admin_call the exit status after one line on stderr (an error of
// `each` too: 1).
[[nodiscard]] int admin_pages(const char* prog, const std::string& socket_path,
                              const std::string& target, size_t max_total,
                              const std::function<Result<void>(std::string_view page)>& each,
                              size_t* messages = nullptr);

// `ringmail status`: the daemon's /api/status as a few lines (or the JSON
// as it came with `json`). 0; 75 when the daemon is not running; 1 when
// it answers with an error.
int status_command(const config::Config& cfg, bool json);

}  // namespace ringmail::tools
