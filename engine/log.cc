#include "engine/log.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <string>

namespace ringmail::engine {
namespace {
thread_local int t_shard = -1;
}

void set_log_shard(int shard) { t_shard = shard; }

bool logging_to_journal() {
  static const bool journal = [] {
    const char* v = std::getenv("JOURNAL_STREAM");
    unsigned long long dev = 0, ino = 0;
    struct stat st {};
    return v != nullptr && std::sscanf(v, "%llu:%llu", &dev, &ino) == 2 &&
           ::fstat(STDERR_FILENO, &st) == 0 && st.st_dev == dev && st.st_ino == ino;
  }();
  return journal;
}

void log_line(std::string_view text, LogLevel level) {
  if (logging_to_journal()) {
    std::string line = "<" + std::to_string(static_cast<int>(level)) + ">";
    line += t_shard < 0 ? std::string("main: ") : "shard " + std::to_string(t_shard) + ": ";
    line += text;
    line += '\n';
    [[maybe_unused]] ssize_t w = ::write(STDERR_FILENO, line.data(), line.size());
    return;
  }
  timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  std::tm tm{};
  gmtime_r(&ts.tv_sec, &tm);
  char head[64];
  int n = std::snprintf(head, sizeof head, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ ",
                        tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
                        tm.tm_sec, ts.tv_nsec / 1000000);
  std::string line(head, static_cast<size_t>(n));
  line += t_shard < 0 ? std::string("main: ") : "shard " + std::to_string(t_shard) + ": ";
  line += text;
  line += '\n';
  [[maybe_unused]] ssize_t w = ::write(STDERR_FILENO, line.data(), line.size());
}

}  // namespace ringmail::engine
