// One line per event on stderr: a timestamp, the emitting shard, and the
// text. When stderr is the journal (systemd's JOURNAL_STREAM names it) the
// timestamp, which the journal keeps itself, gives way to a "<N>" syslog
// priority prefix that journald turns into the entry's PRIORITY (so
// `journalctl -p warning` finds the problems). Each line is one write(2),
// so lines from different threads never interleave.
#pragma once

#include <string_view>

namespace ringmail::engine {

// -1 is the main thread.
void set_log_shard(int shard);
// syslog(3) priorities.
enum class LogLevel : int { kError = 3, kWarning = 4, kNotice = 5, kInfo = 6 };
void log_line(std::string_view text, LogLevel level = LogLevel::kInfo);
// True when stderr is the journal's stream (JOURNAL_STREAM).
bool logging_to_journal();

}  // namespace ringmail::engine
