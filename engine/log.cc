#include "engine/log.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <string>

#include "config/config.h"
#include "proto/ascii.h"

namespace ringmail::engine {
namespace {
thread_local int t_shard = -1;
std::atomic<int> g_level{static_cast<int>(LogLevel::kInfo)};
// The destination. A file, once set, keeps its descriptor number for the
// life of the process: a reopen dup2()s the new file onto it, so a thread
// writing meanwhile writes to the old file or the new one, never to a
// closed descriptor. Set and reopened by the main thread only.
std::atomic<int> g_fd{STDERR_FILENO};
std::string g_path;

bool stderr_is_journal() {
  static const bool journal = [] {
    const char* v = std::getenv("JOURNAL_STREAM");
    unsigned long long dev = 0, ino = 0;
    struct stat st {};
    return v != nullptr && std::sscanf(v, "%llu:%llu", &dev, &ino) == 2 &&
           ::fstat(STDERR_FILENO, &st) == 0 && st.st_dev == dev && st.st_ino == ino;
  }();
  return journal;
}

int open_append(const std::string& path) {
  return ::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
}
}  // namespace

void set_log_shard(int shard) { t_shard = shard; }

std::string log_safe(std::string_view text) { return proto::loggable(text, 200); }

void set_log_level(LogLevel most) { g_level.store(static_cast<int>(most)); }

bool log_enabled(LogLevel level) {
  return static_cast<int>(level) <= g_level.load(std::memory_order_relaxed);
}

bool logging_to_journal() { return g_path.empty() && stderr_is_journal(); }

std::string log_recipient(const proto::Envelope& env, std::string_view rcpt) {
  return " to=<" + std::string(rcpt) + ">" + log_meta(env);
}

std::string log_meta(const proto::Envelope& env) {
  return env.metadata.empty() ? std::string() : " meta=" + env.metadata;
}

std::string log_recipient(const proto::Envelope& env, size_t index) {
  return log_recipient(env, env.rcpts[index].to_string());
}

bool parse_log_level(std::string_view name, LogLevel* out) {
  // LogLevel's values are the syslog priorities.
  const int priority = config::log_priority(name);
  if (priority < 0) return false;
  *out = static_cast<LogLevel>(priority);
  return true;
}

std::string set_log_file(const std::string& path) {
  if (path == g_path) return reopen_log_file();
  if (path.empty()) {
    g_fd.store(STDERR_FILENO);
    g_path.clear();
    return {};
  }
  const int fd = open_append(path);
  if (fd < 0) return "cannot open the log file " + path + ": " + std::strerror(errno);
  if (g_path.empty()) {
    g_fd.store(fd);
  } else {
    ::dup2(fd, g_fd.load());
    ::close(fd);
  }
  g_path = path;
  return {};
}

std::string reopen_log_file() {
  if (g_path.empty()) return {};
  const int fd = open_append(g_path);
  if (fd < 0) return "cannot reopen the log file " + g_path + ": " + std::strerror(errno);
  ::dup2(fd, g_fd.load());
  ::close(fd);
  return {};
}

void log_line(std::string_view text, LogLevel level) {
  if (!log_enabled(level)) return;
  std::string line;
  line.reserve(text.size() + 48);
  if (logging_to_journal()) {
    line = "<" + std::to_string(static_cast<int>(level)) + ">";
  } else {
    timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    std::tm tm{};
    gmtime_r(&ts.tv_sec, &tm);
    char head[64];
    int n = std::snprintf(head, sizeof head, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ ",
                          tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
                          tm.tm_sec, ts.tv_nsec / 1000000);
    line.assign(head, static_cast<size_t>(n));
  }
  line += t_shard < 0 ? std::string("main: ") : "shard " + std::to_string(t_shard) + ": ";
  line += text;
  line += '\n';
  [[maybe_unused]] ssize_t w =
      ::write(g_fd.load(std::memory_order_relaxed), line.data(), line.size());
}

}  // namespace ringmail::engine
