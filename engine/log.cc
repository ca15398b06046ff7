#include "engine/log.h"

#include <unistd.h>

#include <cstdio>
#include <ctime>
#include <string>

namespace ringmail::engine {
namespace {
thread_local int t_shard = -1;
}

void set_log_shard(int shard) { t_shard = shard; }

void log_line(std::string_view text) {
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
