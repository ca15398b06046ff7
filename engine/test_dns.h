// Test helper: a real DNS server for engine tests.
#pragma once

#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <string>

namespace ringmail::engine {

// tests/dns_server.py (python3-dnslib) serving `zone` on a free loopback
// port, for as long as this object lives.
class DnsServer {
 public:
  explicit DnsServer(const char* zone_text) {
    char zone[] = "/tmp/ringmail-zone-XXXXXX";
    const int zfd = ::mkstemp(zone);
    if (zfd < 0) return;
    zone_ = zone;
    [[maybe_unused]] ssize_t w = ::write(zfd, zone_text, std::strlen(zone_text));
    ::close(zfd);
    int in[2], out[2];
    if (::pipe(in) != 0 || ::pipe(out) != 0) return;
    pid_ = ::fork();
    if (pid_ == 0) {
      ::dup2(in[0], 0);
      ::dup2(out[1], 1);
      ::close(in[1]);
      ::close(out[0]);
      const std::string script = std::string(RINGMAIL_SOURCE_DIR) + "/tests/dns_server.py";
      ::execl("/usr/bin/python3", "python3", script.c_str(), zone_.c_str(), nullptr);
      ::_exit(127);
    }
    ::close(in[0]);
    ::close(out[1]);
    stdin_ = in[1];
    FILE* f = ::fdopen(out[0], "r");
    if (f != nullptr && std::fscanf(f, "%d", &port_) != 1) port_ = 0;
    if (f != nullptr) std::fclose(f);
  }
  ~DnsServer() {
    if (stdin_ >= 0) ::close(stdin_);  // the server stops when its input closes
    if (pid_ > 0) {
      int st;
      for (int i = 0; i < 50 && ::waitpid(pid_, &st, WNOHANG) == 0; ++i) ::usleep(20000);
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, &st, 0);
    }
    if (!zone_.empty()) ::unlink(zone_.c_str());
  }
  int port() const { return port_; }

 private:
  std::string zone_;
  pid_t pid_ = -1;
  int stdin_ = -1;
  int port_ = 0;
};

}  // namespace ringmail::engine
