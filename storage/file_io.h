// The one seam through which storage/ touches the file system (the leveldb
// `Env` idea): PosixFileIo does plain syscalls, the engine supplies the
// asynchronous fsync from its ring, and tests substitute a fault-injecting or
// power-loss-simulating implementation.
//
// All calls return 0 or a negative errno. Calls run on the owning shard's
// thread; fsync completions are delivered on that thread too, never from
// inside fsync() itself.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace ringmail::storage {

// A caller-owned fsync request: it must stay alive until `done` runs.
struct FsyncOp {
  int fd = -1;
  // syncfs(2) of the whole file system holding fd instead of fsync(2).
  bool whole_fs = false;
  void (*done)(FsyncOp* op, int result) = nullptr;
};

class FileIo {
 public:
  virtual ~FileIo() = default;
  // Creates `path` exclusively (O_EXCL, mode 0600), writes all of `parts` and
  // returns the open descriptor (>= 0) for a later fsync and close.
  virtual int create_and_write(const std::string& path, const std::vector<std::string_view>& parts) = 0;
  // Opens `path` for appending, creating it (O_EXCL) when `create` is set.
  virtual int open_append(const std::string& path, bool create) = 0;
  // Appends all of `parts` (one writev loop); returns 0 or -errno. On error
  // some bytes may have been written: the caller truncates them away.
  virtual int append(int fd, const std::vector<std::string_view>& parts) = 0;
  virtual int truncate(int fd, uint64_t size) = 0;
  // Starts an fsync of `op->fd`; `op->done` runs later on this thread.
  virtual void fsync(FsyncOp* op) = 0;
  // Blocking fsync, for rare events (a new spool segment) and start-up.
  virtual int fsync_now(int fd) = 0;
  virtual void close(int fd) = 0;
  // rename(2), except that an existing `to` is an error (-EEXIST) when
  // `no_replace` is set.
  virtual int rename(const std::string& from, const std::string& to, bool no_replace) = 0;
  virtual int unlink(const std::string& path) = 0;
  virtual int open_dir(const std::string& path) = 0;  // O_DIRECTORY descriptor
  virtual int make_dirs(const std::string& path) = 0;  // mkdir -p, mode 0700
  virtual int read_file(const std::string& path, std::string* out) = 0;
  // Reads exactly `len` bytes at `offset` (-EIO when the file is shorter).
  virtual int read_at(const std::string& path, uint64_t offset, size_t len, std::string* out) = 0;
  virtual int list_dir(const std::string& path, std::vector<std::string>* names) = 0;
  virtual bool exists(const std::string& path) = 0;
};

// Direct syscalls. Its fsync() is synchronous and defers `done` to
// run_deferred(), so callers see the same ordering as with the engine's ring.
class PosixFileIo : public FileIo {
 public:
  int create_and_write(const std::string& path, const std::vector<std::string_view>& parts) override;
  int open_append(const std::string& path, bool create) override;
  int append(int fd, const std::vector<std::string_view>& parts) override;
  int truncate(int fd, uint64_t size) override;
  void fsync(FsyncOp* op) override;
  int fsync_now(int fd) override;
  void close(int fd) override;
  int rename(const std::string& from, const std::string& to, bool no_replace) override;
  int unlink(const std::string& path) override;
  int open_dir(const std::string& path) override;
  int make_dirs(const std::string& path) override;
  int read_file(const std::string& path, std::string* out) override;
  int read_at(const std::string& path, uint64_t offset, size_t len, std::string* out) override;
  int list_dir(const std::string& path, std::vector<std::string>* names) override;
  bool exists(const std::string& path) override;

  // Runs the completions of fsyncs done so far; returns how many ran.
  size_t run_deferred();

 private:
  std::vector<std::pair<FsyncOp*, int>> deferred_;
};

// Blocking fsync, exported for backends that run it on a worker thread.
int fsync_blocking(int fd);

}  // namespace ringmail::storage
