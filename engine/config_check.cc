#include "engine/config_check.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>

namespace ringmail::engine {

namespace fs = std::filesystem;

namespace {

std::string network_text(const config::Network& n) {
  char buf[64] = {};
  std::string s;
  if (n.v6) {
    char a[INET6_ADDRSTRLEN] = {};
    ::inet_ntop(AF_INET6, n.addr, a, sizeof a);
    s = a;
  } else {
    std::snprintf(buf, sizeof buf, "%u.%u.%u.%u", n.addr[0], n.addr[1], n.addr[2], n.addr[3]);
    s = buf;
  }
  return s + "/" + std::to_string(n.prefix);
}

bool under(const std::string& path, const char* dir) {
  const size_t n = std::strlen(dir);
  return path.compare(0, n, dir) == 0 && (path.size() == n || path[n] == '/');
}

// The paths the daemon reads, with what each is for.
std::vector<std::pair<std::string, std::string>> used_paths(const config::Config& cfg,
                                                            const std::string& config_path) {
  std::vector<std::pair<std::string, std::string>> out;
  if (!config_path.empty()) out.emplace_back(config_path, "the configuration");
  out.emplace_back(cfg.data_dir, "data_dir");
  out.emplace_back(cfg.domains_dir, "domains_dir");
  for (const auto& d : cfg.tls_cert_dirs) out.emplace_back(d, "tls.cert_dirs");
  if (!cfg.srs_secret_file.empty()) out.emplace_back(cfg.srs_secret_file, "srs.secret_file");
  for (const auto& r : cfg.outbound.routes) {
    if (!r.ca_file.empty()) out.emplace_back(r.ca_file, "the ca_file of the route for " + r.domain);
  }
  return out;
}

}  // namespace

std::vector<std::string> config_warnings(const config::Config& cfg) {
  std::vector<std::string> out = cfg.notices;  // old names of settings
  for (const auto& n : cfg.relay_networks) {
    if (n.prefix == 0) {
      out.push_back("relay_networks has " + network_text(n) +
                    ": every client on the Internet may relay through this server (an open relay)");
    } else if ((!n.v6 && n.prefix < 8) || (n.v6 && n.prefix < 16)) {
      out.push_back("relay_networks has " + network_text(n) +
                    ": a large part of the Internet may relay through this server");
    }
  }
  return out;
}

std::vector<std::string> hidden_from_service(const config::Config& cfg,
                                             const std::string& config_path) {
  std::vector<std::string> out;
  for (const auto& [path, what] : used_paths(cfg, config_path)) {
    std::error_code ec;
    const std::string abs = fs::absolute(path, ec).lexically_normal().string();
    for (const char* dir : {"/root", "/home", "/run/user"}) {
      if (under(abs, dir)) {
        out.push_back(
            abs + " (" + what + ") is under " + dir +
            ", which ringmail.service does not see (ProtectHome=yes): use /etc/ringmail or "
            "/var/lib/ringmail");
      }
    }
  }
  return out;
}

std::string data_dir_problem(const std::string& data_dir) {
  std::error_code ec;
  fs::path p = fs::absolute(data_dir, ec);
  if (fs::exists(p, ec)) {
    if (!fs::is_directory(p, ec)) return data_dir + ": data_dir is not a directory";
    if (::access(p.c_str(), W_OK | X_OK) != 0)
      return data_dir + ": data_dir is not writable (" + std::strerror(errno) + ")";
    return "";
  }
  // Made at the first start: its nearest existing parent must let us.
  fs::path parent = p.parent_path();
  while (!parent.empty() && !fs::exists(parent, ec)) parent = parent.parent_path();
  if (!fs::is_directory(parent, ec))
    return data_dir + ": data_dir cannot be made (" + parent.string() + " is no directory)";
  if (::access(parent.c_str(), W_OK | X_OK) != 0) {
    return data_dir + ": data_dir does not exist and cannot be made in " + parent.string() + " (" +
           std::strerror(errno) + ")";
  }
  return "";
}

std::vector<std::string> check_as_user(const config::Config& cfg, const std::string& config_path,
                                       const std::vector<std::string>& cert_dirs,
                                       const std::string& user) {
  const passwd* pw = ::getpwnam(user.c_str());
  if (pw == nullptr) return {"--check-as " + user + ": no such user"};
  if (::geteuid() != 0) return {"--check-as " + user + ": needs root"};
  const uid_t uid = pw->pw_uid;
  const gid_t gid = pw->pw_gid;
  // Every file to read, found as root (the walk itself is redone as the
  // user only by opening each one).
  std::vector<std::string> files, dirs;
  auto walk = [&](const std::string& root) {
    std::error_code ec;
    if (fs::is_regular_file(root, ec)) {
      files.push_back(root);
      return;
    }
    if (!fs::is_directory(root, ec)) return;
    dirs.push_back(root);
    for (fs::recursive_directory_iterator
             it(root, fs::directory_options::follow_directory_symlink, ec),
         end;
         !ec && it != end; it.increment(ec)) {
      if (it->is_regular_file(ec)) files.push_back(it->path().string());
      if (it->is_directory(ec)) dirs.push_back(it->path().string());
    }
  };
  if (!config_path.empty()) files.push_back(config_path);
  walk(cfg.domains_dir);
  for (const auto& d : cert_dirs) walk(d);
  for (const auto& r : cfg.outbound.routes) {
    if (!r.ca_file.empty()) files.push_back(r.ca_file);
  }
  const std::string srs =
      cfg.srs_secret_file.empty() ? cfg.data_dir + "/srs.secret" : cfg.srs_secret_file;
  std::error_code ec;
  if (cfg.srs_enabled && fs::exists(srs, ec)) files.push_back(srs);

  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) return {std::string("pipe: ") + std::strerror(errno)};
  const pid_t pid = ::fork();
  if (pid < 0) return {std::string("fork: ") + std::strerror(errno)};
  if (pid == 0) {
    ::close(fds[0]);
    auto say = [&](const std::string& line) {
      const std::string l = line + "\n";
      [[maybe_unused]] ssize_t n = ::write(fds[1], l.data(), l.size());
    };
    if (::initgroups(user.c_str(), gid) != 0 || ::setgid(gid) != 0 || ::setuid(uid) != 0) {
      say(std::string("cannot become ") + user + ": " + std::strerror(errno));
      ::_exit(1);
    }
    for (const auto& f : files) {
      const int fd = ::open(f.c_str(), O_RDONLY | O_CLOEXEC);
      if (fd < 0) {
        say(f + ": not readable by user " + user + " (" + std::strerror(errno) + ")");
      } else {
        ::close(fd);
      }
    }
    for (const auto& d : dirs) {
      if (::access(d.c_str(), R_OK | X_OK) != 0) {
        say(d + ": not readable by user " + user + " (" + std::strerror(errno) + ")");
      }
    }
    if (std::string p = data_dir_problem(cfg.data_dir); !p.empty()) say(p + " for user " + user);
    ::_exit(0);
  }
  ::close(fds[1]);
  std::string text;
  char buf[4096];
  for (ssize_t n; (n = ::read(fds[0], buf, sizeof buf)) > 0;)
    text.append(buf, static_cast<size_t>(n));
  ::close(fds[0]);
  int status = 0;
  ::waitpid(pid, &status, 0);
  std::vector<std::string> out;
  size_t start = 0;
  for (size_t nl; (nl = text.find('\n', start)) != std::string::npos; start = nl + 1) {
    out.push_back(text.substr(start, nl - start));
  }
  return out;
}

}  // namespace ringmail::engine
