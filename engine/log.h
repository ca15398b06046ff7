// One line per event: a timestamp, the emitting shard, and the text. Lines
// about a message start their text with its queue id ("3F9A2C01B: ..."),
// so `grep ID` follows a message from its arrival to its last delivery
// (docs/logging.md lists the lines and their fields).
//
// Where they go: stderr by default. When stderr is the journal
// (systemd's JOURNAL_STREAM names it) the timestamp, which the journal
// keeps itself, gives way to a "<N>" syslog priority prefix that journald
// turns into the entry's PRIORITY (so `journalctl -p warning` finds the
// problems). With [log] file the lines are appended to that file, and
// reopen_log_file() (SIGUSR1) starts a new one after logrotate moved it.
// Each line is one write(2), so lines from different threads never
// interleave.
#pragma once

#include <string>
#include <string_view>

#include "proto/smtp_server.h"

namespace ringmail::engine {

// -1 is the main thread.
void set_log_shard(int shard);
// syslog(3) priorities.
enum class LogLevel : int { kError = 3, kWarning = 4, kNotice = 5, kInfo = 6, kDebug = 7 };
// Lines less severe than `most` are dropped ([log] level; info by default).
void set_log_level(LogLevel most);
bool log_enabled(LogLevel level);
void log_line(std::string_view text, LogLevel level = LogLevel::kInfo);
// True when stderr is the journal's stream (JOURNAL_STREAM) and no log
// file is set.
bool logging_to_journal();

// Appends to `path` from now on (empty: stderr). Returns an error message,
// empty on success; on failure the destination is unchanged.
std::string set_log_file(const std::string& path);
// Opens the log file's path again (after a rotation moved the file) and
// makes it the destination; lines written meanwhile went to the moved
// file, none are lost. Returns an error message, empty on success (and
// when logging to stderr).
std::string reopen_log_file();

// Text a client chose (a user name, an address), made fit for a line: at
// most 200 bytes, control and non-ASCII bytes as '?' (no line can be
// forged through it).
std::string log_safe(std::string_view text);

// " to=<R>" for recipient `index` of `env`, and " meta=JSON" after it
// when the message carries metadata (the HTTP injection API's), so every
// line about a recipient names both.
std::string log_recipient(const proto::Envelope& env, size_t index);
// The same for a recipient given as text (without its angle brackets).
std::string log_recipient(const proto::Envelope& env, std::string_view rcpt);
// " meta=JSON", or "" for a message without metadata.
std::string log_meta(const proto::Envelope& env);

// "debug", "info", "notice", "warning", "error"; false when unknown.
bool parse_log_level(std::string_view name, LogLevel* out);

}  // namespace ringmail::engine
