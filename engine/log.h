// One line per event on stderr (the journal under systemd): a timestamp, the
// emitting shard, and the text. Each line is one write(2), so lines from
// different threads never interleave.
#pragma once

#include <string_view>

namespace ringmail::engine {

// -1 is the main thread.
void set_log_shard(int shard);
void log_line(std::string_view text);

}  // namespace ringmail::engine
