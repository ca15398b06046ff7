// A FileIo for tests that can lose power (leveldb's fault-injection Env
// idea). It keeps, beside the real files under one root, what a crash would
// leave of them, with POSIX's promises and nothing more:
//   - a file's contents are durable as of its last completed fsync,
//     fdatasync or zero-fill (or a syncfs);
//   - a name in a directory (a creation, a rename, an unlink) is durable
//     only once that directory was fsynced (or a syncfs) after it.
// power_loss() rewrites the files under the root to that state, so what was
// never flushed is gone: kill -9 keeps the page cache and proves nothing of
// the sort. Directories themselves are assumed to survive (the spool and
// Maildir code fsync their parents where it matters to them).
//
// Held operations (TestFileIo) complete only when the test says so, so the
// test picks the instant of the crash between any two of them.
#pragma once

#include <sys/types.h>

#include <map>
#include <string>
#include <unordered_map>

#include "storage/test_file_io.h"

namespace ringmail::storage {

class PowerLossFileIo : public TestFileIo {
 public:
  explicit PowerLossFileIo(std::string root) : root_(std::move(root)) { settle(); }

  // Everything on disk now is durable (the start, and after recovery).
  void settle();
  // The power goes: held operations never complete, descriptors are gone,
  // and every file under the root is put back to its durable state.
  void power_loss();

  uint64_t files_lost() const { return files_lost_; }  // names that vanished, over all crashes
  uint64_t files_rolled_back() const { return rolled_back_; }  // contents put back

  int create_and_write(const std::string& path,
                       const std::vector<std::string_view>& parts) override;
  int open_rw(const std::string& path, bool create) override;
  int open_dir(const std::string& path) override;
  int fsync_now(int fd) override;
  void close(int fd) override;

 protected:
  void on_completed(BlockingOp* op, int result) override;

 private:
  void synced(int fd);  // a completed fsync of `fd` (a file or a directory)
  std::map<std::string, ino_t> listing(const std::string& dir) const;

  std::string root_;
  std::unordered_map<int, std::string> fds_;  // open descriptors and what they are
  // The durable state: per directory its names, per inode its contents.
  std::map<std::string, std::map<std::string, ino_t>> names_;
  std::unordered_map<ino_t, std::string> contents_;
  uint64_t files_lost_ = 0;
  uint64_t rolled_back_ = 0;
};

}  // namespace ringmail::storage
