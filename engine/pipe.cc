#include "engine/pipe.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>

namespace ringmail::engine {

namespace {

using Clock = std::chrono::steady_clock;

int ms_left(Clock::time_point deadline) {
  const auto ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
  return ms < 0 ? 0 : static_cast<int>(std::min<long long>(ms, 1000));
}

}  // namespace

proto::DeliveryResult run_pipe(const std::string& command, std::string_view input,
                               const std::vector<std::pair<std::string, std::string>>& env,
                               int timeout_s) {
  using K = proto::Outcome;
  // Everything the child needs is made before fork: after it, only
  // async-signal-safe calls.
  std::vector<std::string> env_text = {"PATH=/usr/local/bin:/usr/bin:/bin", "HOME=/",
                                       "SHELL=/bin/sh"};
  for (const auto& [k, v] : env) env_text.push_back(k + "=" + v);
  std::vector<char*> envp;
  for (auto& e : env_text) envp.push_back(e.data());
  envp.push_back(nullptr);
  const char* argv[] = {"/bin/sh", "-c", command.c_str(), nullptr};

  int in[2], out[2];
  if (::pipe2(in, O_CLOEXEC) != 0) return {K::kTemp, std::string("pipe: ") + std::strerror(errno)};
  if (::pipe2(out, O_CLOEXEC) != 0) {
    ::close(in[0]);
    ::close(in[1]);
    return {K::kTemp, std::string("pipe: ") + std::strerror(errno)};
  }
  const pid_t pid = ::fork();
  if (pid < 0) {
    for (int fd : {in[0], in[1], out[0], out[1]}) ::close(fd);
    return {K::kTemp, std::string("fork: ") + std::strerror(errno)};
  }
  if (pid == 0) {
    ::setpgid(0, 0);  // killed as a group on timeout
    ::dup2(in[0], 0);
    ::dup2(out[1], 1);
    ::dup2(out[1], 2);
    ::execve("/bin/sh", const_cast<char* const*>(argv), envp.data());
    ::_exit(127);
  }
  ::setpgid(pid, pid);
  ::close(in[0]);
  ::close(out[1]);
  ::fcntl(in[1], F_SETFL, O_NONBLOCK);
  ::fcntl(out[0], F_SETFL, O_NONBLOCK);
  const auto deadline = Clock::now() + std::chrono::seconds(timeout_s);
  std::string output;
  size_t sent = 0;
  int wfd = in[1];
  bool out_open = true, timed_out = false;
  if (input.empty()) {
    ::close(wfd);
    wfd = -1;
  }
  // Write the input and read the output together: a command that talks
  // before it has read everything must not block us (nor we it).
  while (wfd >= 0 || out_open) {
    if (Clock::now() >= deadline) {
      timed_out = true;
      break;
    }
    pollfd p[2];
    int n = 0;
    if (wfd >= 0) p[n++] = {wfd, POLLOUT, 0};
    if (out_open) p[n++] = {out[0], POLLIN, 0};
    if (::poll(p, static_cast<nfds_t>(n), ms_left(deadline)) < 0 && errno != EINTR) break;
    for (int i = 0; i < n; ++i) {
      if (p[i].fd == wfd && (p[i].revents & (POLLOUT | POLLERR | POLLHUP))) {
        const ssize_t w = ::write(wfd, input.data() + sent, input.size() - sent);
        if (w > 0) sent += static_cast<size_t>(w);
        if ((w < 0 && errno != EAGAIN) || sent == input.size()) {  // EPIPE: it stopped reading
          ::close(wfd);
          wfd = -1;
        }
      } else if (p[i].fd == out[0] && (p[i].revents & (POLLIN | POLLERR | POLLHUP))) {
        char buf[4096];
        const ssize_t r = ::read(out[0], buf, sizeof buf);
        if (r > 0 && output.size() < 4096) output.append(buf, static_cast<size_t>(r));
        if (r == 0 || (r < 0 && errno != EAGAIN)) out_open = false;
      }
    }
  }
  if (wfd >= 0) ::close(wfd);
  ::close(out[0]);
  int status = 0;
  while (!timed_out) {
    const pid_t w = ::waitpid(pid, &status, WNOHANG);
    if (w == pid) break;
    if (Clock::now() >= deadline) {
      timed_out = true;
      break;
    }
    ::usleep(10000);
  }
  if (timed_out) {
    ::kill(-pid, SIGKILL);
    ::waitpid(pid, &status, 0);
    return {K::kTemp, "timed out after " + std::to_string(timeout_s) + " s"};
  }
  std::string first = output.substr(0, output.find('\n'));
  if (first.size() > 200) first.resize(200);
  if (WIFEXITED(status)) {
    const int code = WEXITSTATUS(status);
    if (code == 0) return {K::kOk, ""};
    const std::string why = "exit " + std::to_string(code) + (first.empty() ? "" : ": " + first);
    return {code == 75 ? K::kTemp : K::kPerm, why};
  }
  return {K::kPerm, "killed by signal " + std::to_string(WTERMSIG(status))};
}

namespace {

// A blocking LMTP conversation; every call has the socket's timeouts.
class Lmtp {
 public:
  explicit Lmtp(int fd) : fd_(fd) {}
  bool send(std::string_view s) {
    while (!s.empty()) {
      const ssize_t n = ::send(fd_, s.data(), s.size(), MSG_NOSIGNAL);
      if (n <= 0) return false;
      s.remove_prefix(static_cast<size_t>(n));
    }
    return true;
  }
  // The next reply (its last line); 0 when the server is gone or silent.
  int reply(std::string* text) {
    while (true) {
      const size_t nl = buf_.find("\r\n");
      if (nl != std::string::npos) {
        std::string line = buf_.substr(0, nl);
        buf_.erase(0, nl + 2);
        if (line.size() >= 4 && line[3] == '-') continue;  // a continuation line
        *text = line;
        return line.size() >= 3 ? std::atoi(line.substr(0, 3).c_str()) : 0;
      }
      char b[1024];
      const ssize_t n = ::recv(fd_, b, sizeof b, 0);
      if (n <= 0) return 0;
      buf_.append(b, static_cast<size_t>(n));
    }
  }

 private:
  int fd_;
  std::string buf_;
};

}  // namespace

proto::DeliveryResult lmtp_deliver(const std::string& socket_path, const std::string& lhlo,
                                   const std::string& sender, const std::string& rcpt,
                                   std::string_view message, int timeout_s) {
  using K = proto::Outcome;
  sockaddr_un addr{};
  if (socket_path.size() >= sizeof addr.sun_path) return {K::kPerm, "LMTP socket path too long"};
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, socket_path.c_str(), socket_path.size() + 1);
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return {K::kTemp, std::string("socket: ") + std::strerror(errno)};
  const timeval tv{timeout_s, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  if (::connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) {
    const std::string why = "LMTP " + socket_path + ": " + std::strerror(errno);
    ::close(fd);
    return {K::kTemp, why};
  }
  Lmtp c(fd);
  std::string text;
  proto::DeliveryResult out{K::kOk, ""};
  // Each step: what to send, and the reply it needs (2xx; 3xx for DATA).
  auto step = [&](const std::string& line, int want) {
    if (!line.empty() && !c.send(line)) {
      out = {K::kTemp, "LMTP: connection lost"};
      return false;
    }
    const int code = c.reply(&text);
    if (code / 100 == want) return true;
    if (code == 0) {
      out = {K::kTemp,
             "LMTP: no reply" + (line.empty() ? std::string() : " to " + line.substr(0, 4))};
    } else {
      out = {code / 100 == 5 ? K::kPerm : K::kTemp, "LMTP: " + text};
    }
    return false;
  };
  // Dot-stuffed, ending in CRLF . CRLF.
  std::string data;
  data.reserve(message.size() + message.size() / 64 + 8);
  bool bol = true;
  for (char ch : message) {
    if (bol && ch == '.') data += '.';
    data += ch;
    bol = ch == '\n';
  }
  if (!bol) data += "\r\n";
  data += ".\r\n";
  const bool ok = step("", 2) && step("LHLO " + lhlo + "\r\n", 2) &&
                  step("MAIL FROM:<" + sender + ">\r\n", 2) &&
                  step("RCPT TO:<" + rcpt + ">\r\n", 2) && step("DATA\r\n", 3) && step(data, 2);
  if (ok) c.send("QUIT\r\n");
  ::close(fd);
  return out;
}

}  // namespace ringmail::engine
