// A FileIo for tests: real files under a temporary directory, fsyncs held
// until the test completes them, and injectable failures.
#pragma once

#include <deque>
#include <fstream>
#include <string>

#include "storage/file_io.h"

namespace ringmail::storage {

class TestFileIo : public PosixFileIo {
 public:
  int create_and_write(const std::string& path,
                       const std::vector<std::string_view>& parts) override;
  void submit(BlockingOp* op) override;
  int write_at(int fd, uint64_t offset, const std::vector<std::string_view>& parts) override;
  int unlink(const std::string& path) override {
    return fail_unlinks_with != 0 ? fail_unlinks_with : PosixFileIo::unlink(path);
  }

  // Completes held fsyncs in order (all when n == 0); returns how many.
  size_t complete_fsyncs(size_t n = 0);
  // Forgets the held operations: they never complete (a power loss).
  void drop_held() { held_.clear(); }
  size_t held() const { return held_.size(); }
  uint64_t fsync_calls = 0;

  int fail_writes_with = 0;   // next create_and_write returns this (e.g. -ENOSPC)
  int fail_fsyncs_with = 0;   // held fsyncs complete with this
  int fail_fsyncs_count = 0;  // how many fsyncs fail (then back to success)
  int fail_appends_with = 0;  // next write_at writes fail_appends_after_bytes, then fails
  size_t fail_appends_after_bytes = 0;
  int fail_unlinks_with = 0;  // every unlink returns this (e.g. -EROFS)

 protected:
  // Called when a held operation has run, before its `done`.
  virtual void on_completed(BlockingOp* /*op*/, int /*result*/) {}

 private:
  std::deque<BlockingOp*> held_;
};

// A fresh directory under $TMPDIR, removed by the destructor.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// Writes `text` to `path` (replacing it), for fixtures.
inline void write_test_file(const std::string& path, const std::string& text) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f << text;
}

// Event log segment names (storage/event_log.h) for the readers' tests:
// two of shard 0, one of shard 1.
inline constexpr const char* kTestSegment0 = "ev-0000000000000001-0.jsonl";
inline constexpr const char* kTestSegment0b = "ev-0000000000000002-0.jsonl";
inline constexpr const char* kTestSegment1 = "ev-0000000000000001-1.jsonl";

}  // namespace ringmail::storage
