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

// A caller-owned request for file-system work that may block for long (a
// flush, or zero-filling a new file); it must stay alive until `done` runs.
// The engine runs fsync/fdatasync on its ring and the rest on worker threads.
struct BlockingOp {
  enum class Kind : uint8_t {
    kFsync,     // fsync(2): data and every inode change (directories, new files)
    kDataSync,  // fdatasync(2): data, and the size when it grew
    kSyncfs,    // syncfs(2) of the whole file system holding fd
    kZeroFill,  // write `bytes` zero bytes from offset 0, then fdatasync(2)
    kCall,      // work(op): other slow work, e.g. a password hash check
  };
  int fd = -1;
  Kind kind = Kind::kFsync;
  uint64_t bytes = 0;  // kZeroFill only
  // kCall only. Runs on another thread while the owner's thread goes on: it
  // may use only what the op owns, never the owner's other state. Returns
  // 0 or -errno.
  int (*work)(BlockingOp* op) = nullptr;
  void (*done)(BlockingOp* op, int result) = nullptr;
};

// Runs one BlockingOp synchronously: 0 or -errno. Backends call it from worker
// threads; PosixFileIo from the caller's.
[[nodiscard]] int run_blocking_op(BlockingOp* op);

class FileIo {
 public:
  virtual ~FileIo() = default;
  // Creates `path` exclusively (O_EXCL, mode 0600), writes all of `parts` and
  // returns the open descriptor (>= 0) for a later fsync and close.
  [[nodiscard]] virtual int create_and_write(const std::string& path,
                                             const std::vector<std::string_view>& parts) = 0;
  // Opens `path` for reading and writing, creating it (O_EXCL) when `create`
  // is set.
  [[nodiscard]] virtual int open_rw(const std::string& path, bool create) = 0;
  // Writes all of `parts` at `offset` (one pwritev loop); returns 0 or
  // -errno. On error some bytes may have been written.
  [[nodiscard]] virtual int write_at(int fd, uint64_t offset,
                                     const std::vector<std::string_view>& parts) = 0;
  [[nodiscard]] virtual int truncate(int fd, uint64_t size) = 0;
  // Starts `op` (an fsync of `op->fd`, or what its kind says); `op->done`
  // runs later on this thread.
  virtual void submit(BlockingOp* op) = 0;
  // Blocking fsync, for rare events (a new spool segment) and start-up.
  [[nodiscard]] virtual int fsync_now(int fd) = 0;
  virtual void close(int fd) = 0;
  // rename(2), except that an existing `to` is an error (-EEXIST) when
  // `no_replace` is set.
  [[nodiscard]] virtual int rename(const std::string& from, const std::string& to,
                                   bool no_replace) = 0;
  [[nodiscard]] virtual int unlink(const std::string& path) = 0;
  [[nodiscard]] virtual int open_dir(const std::string& path) = 0;   // O_DIRECTORY descriptor
  [[nodiscard]] virtual int make_dirs(const std::string& path) = 0;  // mkdir -p, mode 0700
  [[nodiscard]] virtual int read_file(const std::string& path, std::string* out) = 0;
  // Reads exactly `len` bytes at `offset` (-EIO when the file is shorter).
  [[nodiscard]] virtual int read_at(const std::string& path, uint64_t offset, size_t len,
                                    std::string* out) = 0;
  [[nodiscard]] virtual int list_dir(const std::string& path, std::vector<std::string>* names) = 0;
  [[nodiscard]] virtual bool exists(const std::string& path) = 0;
};

// Direct syscalls. Its fsync() is synchronous and defers `done` to
// run_deferred(), so callers see the same ordering as with the engine's ring.
class PosixFileIo : public FileIo {
 public:
  int create_and_write(const std::string& path,
                       const std::vector<std::string_view>& parts) override;
  int open_rw(const std::string& path, bool create) override;
  int write_at(int fd, uint64_t offset, const std::vector<std::string_view>& parts) override;
  int truncate(int fd, uint64_t size) override;
  void submit(BlockingOp* op) override;
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
  std::vector<std::pair<BlockingOp*, int>> deferred_;
};

}  // namespace ringmail::storage
