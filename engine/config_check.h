// What `ringmaild --check-config` looks at beyond the file's syntax, the
// parts that need no engine: the configuration's warnings, whether the
// service can see and use its paths, and a check of every file it reads
// done as the user it runs as. engine/main.cc adds the loads the daemon
// itself does (certificates, DKIM keys, domains, DNS servers, listeners).
#pragma once

#include <string>
#include <vector>

#include "config/config.h"

namespace ringmail::engine {

// Settings that start but are probably a mistake, one line each: a
// relay_networks range that lets (much of) the Internet relay.
std::vector<std::string> config_warnings(const config::Config& cfg);

// Paths the service cannot see: under /root, /home or /run/user, hidden by
// ringmail.service's ProtectHome=yes.
std::vector<std::string> hidden_from_service(const config::Config& cfg,
                                             const std::string& config_path);

// data_dir exists and is writable, or can be made (its nearest existing
// parent is writable). "" when fine, else the problem.
std::string data_dir_problem(const std::string& data_dir);

// Every file the daemon reads (the configuration, certificates and keys,
// everything under domains_dir, the SRS secret, route CA files) and
// data_dir, checked by a child process running as `user` (its uid, gid
// and groups): the lines of what it cannot read or write. Needs root; an
// unknown user is one line.
std::vector<std::string> check_as_user(const config::Config& cfg, const std::string& config_path,
                                       const std::vector<std::string>& cert_dirs,
                                       const std::string& user);

}  // namespace ringmail::engine
