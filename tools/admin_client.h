// The admin API from the command line: HTTP/1.1 over ringmaild's admin
// socket ([admin] socket), one request a connection.
#pragma once

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

// `ringmail status`: the daemon's /api/status as a few lines (or the JSON
// as it came with `json`). 0; 75 when the daemon is not running; 1 when
// it answers with an error.
int status_command(const config::Config& cfg, bool json);

}  // namespace ringmail::tools
