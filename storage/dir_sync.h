// Group commit of a directory: many files renamed into one directory share
// one fsync of it. A waiter added while an fsync is in flight is covered by
// the next one, never by the one already running (its rename may have come
// after that fsync started).
#pragma once

#include <cstdint>
#include <functional>

#include "storage/file_io.h"

namespace ringmail::storage {

class DirSync {
 public:
  // Caller-owned; must stay alive until `done` runs.
  struct Waiter {
    void (*done)(Waiter* w, int result) = nullptr;
    Waiter* next = nullptr;
    uint32_t weight = 0;  // what set_observer()'s function adds up (Spool: 1 a message)
  };

  // Takes ownership of `dir_fd`. Each round is an BlockingOp of `kind`: fsync(2)
  // for directories, fdatasync(2) for a file whose metadata does not matter,
  // or syncfs(2) of the file system holding it.
  DirSync(FileIo& io, int dir_fd, BlockingOp::Kind kind = BlockingOp::Kind::kFsync);
  ~DirSync();
  DirSync(const DirSync&) = delete;
  DirSync& operator=(const DirSync&) = delete;

  // Runs `w->done` after an fsync of the directory that began after this call.
  void sync_after(Waiter* w);

  // Manual mode: rounds start only from kick(), so the owner decides when a
  // batch is large (or old) enough. Waiters still never join a running round.
  void set_manual(bool manual) { manual_ = manual; }
  // Starts a round if none is running and someone waits.
  void kick() {
    if (!busy_ && waiting_ != nullptr) start();
  }
  bool has_waiting() const { return waiting_ != nullptr; }
  // `fn` gets the sum of the waiters' weights of each round as it starts
  // (a round of weight 0 too).
  void set_observer(std::function<void(uint64_t weight)> fn) { observer_ = std::move(fn); }

  bool idle() const { return waiting_ == nullptr && inflight_ == nullptr && !busy_; }
  uint64_t fsyncs() const { return fsyncs_; }

 private:
  static void on_fsync(BlockingOp* op, int result);
  void start();

  struct Op : BlockingOp {
    DirSync* self = nullptr;
  };
  FileIo& io_;
  Op op_;
  Waiter* waiting_ = nullptr;  // LIFO is fine: all get the same result
  Waiter* inflight_ = nullptr;
  bool busy_ = false;
  bool manual_ = false;
  uint64_t fsyncs_ = 0;
  std::function<void(uint64_t)> observer_;
};

}  // namespace ringmail::storage
