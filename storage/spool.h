// The durable spool of one data directory (docs/spool-format.md).
//
// commit() acknowledges a message only when it is durable: the file is
// written to tmp/, fsynced, renamed into queue/, and queue/ is fsynced. The
// directory fsync is shared by every message renamed before it started
// (group commit), so concurrent transactions cost one directory fsync.
//
// A Spool is used by one shard's thread; several shards share the
// directories (file names carry the shard) but not the object.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "proto/smtp_server.h"
#include "storage/dir_sync.h"
#include "storage/file_io.h"
#include "storage/spool_format.h"

namespace ringmail::storage {

class Spool {
 public:
  // Caller-owned commit request; alive until `done` runs.
  struct Commit {
    const proto::Envelope* env = nullptr;
    std::string_view message;
    void (*done)(Commit* c, proto::CommitResult result) = nullptr;

   private:
    friend class Spool;
    struct FileOp : FsyncOp {
      Commit* owner = nullptr;
    };
    struct DirWait : DirSync::Waiter {
      Commit* owner = nullptr;
    };
    Spool* spool_ = nullptr;
    FileOp file_op_;
    DirWait dir_wait_;
  };

  Spool(FileIo& io, std::string data_dir);
  ~Spool();

  // Creates tmp/, queue/ and corrupt/ and opens queue/ for fsyncs.
  int open();

  void commit(Commit* c);

  // Removes a delivered message. No fsync: a message that reappears after a
  // crash is delivered again, and delivery is idempotent.
  int remove(std::string_view id);

  struct RecoveryStats {
    uint64_t tmp_removed = 0;
    uint64_t recovered = 0;
    uint64_t corrupt = 0;
  };
  // Start-up only (blocking reads): empties tmp/, validates every queued
  // file, moves corrupt ones to corrupt/ (logging each through `log`), and
  // hands every valid record to `take`.
  RecoveryStats recover(const std::function<void(SpoolRecord&&)>& take,
                        const std::function<void(const std::string&)>& log);

  std::string queue_path(std::string_view id) const;
  uint64_t dir_fsyncs() const { return queue_sync_ ? queue_sync_->fsyncs() : 0; }

 private:
  static void on_file_synced(FsyncOp* op, int result);
  static void on_dir_synced(DirSync::Waiter* w, int result);
  void fail(Commit* c, int err, bool renamed);

  FileIo& io_;
  std::string dir_;
  std::unique_ptr<DirSync> queue_sync_;
};

// Maps a negative errno from the file system onto the SMTP outcome:
// no space is 452 4.3.1, anything else 451 4.3.0.
proto::CommitResult commit_result_for(int err);

}  // namespace ringmail::storage
