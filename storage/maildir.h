// Local delivery into Maildir (<data_dir>/mail/<domain>/<user>/Maildir), the
// delivery step that takes a spooled message and marks it delivered in the
// spool only once every recipient's file is durable.
//
// File names are derived from the message (arrival time, id, recipient
// index, hostname), so a delivery repeated after a crash lands on the same
// name and replaces the earlier copy instead of adding a second one.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "proto/outcome.h"
#include "storage/dir_sync.h"
#include "storage/file_io.h"
#include "storage/spool.h"
#include "storage/spool_format.h"

namespace ringmail::storage {

class MaildirDelivery {
 public:
  // How delivered files are made durable before the spool lets go:
  // kPerFile: fsync each file before renaming it into new/, then fsync new/
  //   (shared by concurrent deliveries to the same mailbox);
  // kBatch: write and rename every file of the job, then one syncfs(2) of
  //   the mail file system, shared by every job that finished writing while
  //   the previous syncfs ran. Far fewer flushes under load; flushes other
  //   dirty data of that file system too.
  enum class SyncMode : uint8_t { kPerFile, kBatch };
  struct Job;
  struct RcptOp : BlockingOp {
    struct Wait : DirSync::Waiter {
      RcptOp* owner = nullptr;
    };
    Job* job = nullptr;
    size_t index = 0;
    std::string tmp_path;
    std::string new_path;
    std::string new_dir;
    Wait wait;
  };
  // Caller-owned; alive until `done` runs. kOk: delivered (and removed from
  // the spool unless `remote` is not empty); kTemp: a file system error,
  // retry later (partial deliveries are repeated harmlessly). Recipients
  // that cannot be a mailbox are listed in `skipped`, not in the result.
  struct Job {
    SpoolRecord rec;
    void (*done)(Job* job, const proto::DeliveryResult& result) = nullptr;
    void* user = nullptr;

    // Internal.
    MaildirDelivery* owner = nullptr;
    std::vector<RcptOp> ops;
    size_t remaining = 0;
    int first_error = 0;
    std::vector<std::string> skipped;  // recipients that cannot be delivered
    // Recipients in other domains: left for outbound delivery (the message
    // then stays in the spool; local recipients are delivered, and again,
    // idempotently, after a restart).
    std::vector<std::string> remote;
    struct FsWait : DirSync::Waiter {
      Job* job = nullptr;
    };
    FsWait fs_wait;
  };

  // `is_local(domain)` (lower case) says which recipients are delivered
  // here; null: all of them.
  MaildirDelivery(FileIo& io, Spool& spool, std::string data_dir, std::string hostname,
                  SyncMode mode = SyncMode::kPerFile,
                  std::function<bool(const std::string&)> is_local = nullptr);

  void deliver(Job* job);

  // kBatch: deliveries written and waiting for a syncfs. The owner starts
  // the syncfs with flush() when it judges the batch ready (see Shard).
  bool sync_pending() const { return fs_sync_ && fs_sync_->has_waiting(); }
  void flush() {
    if (fs_sync_) fs_sync_->kick();
  }

  // Where a recipient's Maildir is; empty when the local part cannot be a
  // mailbox.
  std::string maildir_for(const proto::Address& rcpt) const;
  // The file name of recipient `index` of the message.
  std::string file_name(const proto::Envelope& env, size_t index) const;
  // The bytes written for one recipient: Return-Path and Delivered-To, then
  // the message with CRLF turned into LF.
  static std::string render(const proto::Envelope& env, size_t index, std::string_view message);

 private:
  void deliver_batched(Job* job);
  static void on_fs_synced(DirSync::Waiter* w, int result);
  static void on_file_synced(BlockingOp* op, int result);
  static void on_dir_synced(DirSync::Waiter* w, int result);
  void finish_rcpt(RcptOp* op, int result);
  void release(Job* job, int result);
  // Ends the job: `error` 0 or a negative errno, mapped once here.
  static void finish(Job* job, int error);
  DirSync* dir_sync(const std::string& dir);
  [[nodiscard]] int ensure_maildir(const std::string& maildir);

  FileIo& io_;
  Spool& spool_;
  std::string mail_dir_;
  std::string hostname_;
  std::unordered_set<std::string> made_;
  std::unordered_map<std::string, std::unique_ptr<DirSync>> dirs_;
  SyncMode mode_;
  std::function<bool(const std::string&)> is_local_;
  bool remote(const proto::Address& rcpt) const;
  std::unique_ptr<DirSync> fs_sync_;  // kBatch: syncfs rounds
};

}  // namespace ringmail::storage
