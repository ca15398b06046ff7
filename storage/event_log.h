// A shard's event log (issue 25, docs/events.md): one JSON object a line,
// appended to segment files `<dir>/ev-<16 hex µs>-<shard>.jsonl`. Each
// line is written to the file at once (so a killed daemon loses none),
// and every write is followed by an fdatasync of the segment within one
// turn of the shard's loop (kick()), or before a waiter's callback
// (sync_after). A segment is closed at `segment_bytes` and a new one
// begun; each start begins a new segment too, so a line torn by a power
// loss is only ever at the end of a closed segment, where readers skip
// it (it has no newline). Segments older than `retention_days` are
// removed (expire()).
//
// Every line gets a unique id as its first field: `"id":"<segment
// µs>-<shard>-<offset>"`, so a receiver can drop duplicates.
//
// One EventLog per shard, used on that shard's thread only.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "storage/dir_sync.h"
#include "storage/file_io.h"
#include "storage/unique_clock.h"

namespace ringmail::storage {

class EventLog {
 public:
  struct Options {
    std::string dir;  // made when missing (mode 0700)
    uint32_t shard = 0;
    uint64_t segment_bytes = 64ull << 20;
    uint32_t retention_days = 7;
  };

  EventLog(FileIo& io, Options options);
  ~EventLog();
  EventLog(const EventLog&) = delete;
  EventLog& operator=(const EventLog&) = delete;

  // Makes the directory and the first segment: 0 or -errno.
  [[nodiscard]] int open();

  // Appends one event, `object` being a JSON object's text (`{...}`, no
  // newline in it): written with the id as its first member. Returns 0
  // or -errno (the line is then not in the log).
  int append(std::string_view object);

  // Starts an fdatasync of what was written since the last one, if any
  // and none is running; true when one started.
  bool kick();
  // Runs `w->done` after an fdatasync that began after this call (at the
  // next kick()).
  void sync_after(DirSync::Waiter* w);

  // Removes closed segments whose newest line is older than the
  // retention (by the time in their name and their modification).
  void expire(int64_t now_unix);

  bool idle() const;
  uint64_t lines() const { return lines_; }
  uint64_t fsyncs() const;
  const std::string& current_name() const { return name_; }

  // A segment's name parsed: its start in µs and its shard; false when
  // `name` is not a segment's.
  static bool parse_name(std::string_view name, uint64_t* us, uint32_t* shard);

 private:
  int rotate();

  FileIo& io_;
  Options o_;
  UniqueClock clock_;
  std::string name_;  // current segment
  int fd_ = -1;       // its descriptor, owned by sync_
  uint64_t start_us_ = 0;
  uint64_t bytes_ = 0;
  std::unique_ptr<DirSync> sync_;
  // Segments closed while their last fdatasync ran: kept until idle.
  std::vector<std::unique_ptr<DirSync>> closing_;
  bool dirty_ = false;
  uint64_t lines_ = 0;
  uint64_t closed_fsyncs_ = 0;
  std::string line_;
};

}  // namespace ringmail::storage
