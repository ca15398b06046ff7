#include "storage/spool.h"

#include <cerrno>

namespace ringmail::storage {

proto::CommitResult commit_result_for(int err) {
  if (err == 0) return proto::CommitResult::kOk;
  if (err == -ENOSPC || err == -EDQUOT) return proto::CommitResult::kNoSpace;
  return proto::CommitResult::kTempFail;
}

Spool::Spool(FileIo& io, std::string data_dir) : io_(io), dir_(std::move(data_dir) + "/spool") {}

Spool::~Spool() = default;

int Spool::open() {
  for (const char* sub : {"/tmp", "/queue", "/corrupt"}) {
    if (int r = io_.make_dirs(dir_ + sub); r < 0) return r;
  }
  int fd = io_.open_dir(dir_ + "/queue");
  if (fd < 0) return fd;
  queue_sync_ = std::make_unique<DirSync>(io_, fd);
  return 0;
}

std::string Spool::queue_path(std::string_view id) const {
  return dir_ + "/queue/" + std::string(id);
}

void Spool::commit(Commit* c) {
  c->spool_ = this;
  EncodedRecord rec = encode_record(*c->env, c->message);
  const std::string tmp = dir_ + "/tmp/" + c->env->id;
  int fd = io_.create_and_write(tmp, {rec.header, c->message, rec.trailer});
  if (fd < 0) {
    c->done(c, commit_result_for(fd));
    return;
  }
  c->file_op_.fd = fd;
  c->file_op_.owner = c;
  c->file_op_.done = &Spool::on_file_synced;
  io_.fsync(&c->file_op_);
}

void Spool::fail(Commit* c, int err, bool renamed) {
  // The client gets a 4xx and will send again: the file must not survive, or
  // the message would be delivered twice.
  io_.unlink(renamed ? queue_path(c->env->id) : dir_ + "/tmp/" + c->env->id);
  c->done(c, commit_result_for(err));
}

void Spool::on_file_synced(FsyncOp* op, int result) {
  Commit* c = static_cast<Commit::FileOp*>(op)->owner;
  Spool* s = c->spool_;
  s->io_.close(op->fd);
  op->fd = -1;
  if (result < 0) {
    // A failed fsync is never retried as if it had succeeded: the page cache
    // may have dropped the dirty pages (fsyncgate).
    s->fail(c, result, false);
    return;
  }
  int r = s->io_.rename(s->dir_ + "/tmp/" + c->env->id, s->queue_path(c->env->id), true);
  if (r < 0) {
    s->fail(c, r, false);
    return;
  }
  c->dir_wait_.owner = c;
  c->dir_wait_.done = &Spool::on_dir_synced;
  s->queue_sync_->sync_after(&c->dir_wait_);
}

void Spool::on_dir_synced(DirSync::Waiter* w, int result) {
  Commit* c = static_cast<Commit::DirWait*>(w)->owner;
  if (result < 0) {
    c->spool_->fail(c, result, true);
    return;
  }
  c->done(c, proto::CommitResult::kOk);
}

int Spool::remove(std::string_view id) { return io_.unlink(queue_path(id)); }

Spool::RecoveryStats Spool::recover(const std::function<void(SpoolRecord&&)>& take,
                                    const std::function<void(const std::string&)>& log) {
  RecoveryStats st;
  std::vector<std::string> names;
  if (io_.list_dir(dir_ + "/tmp", &names) == 0) {
    for (const auto& n : names) {
      // Never acknowledged: the client got no 250 and will retry.
      if (io_.unlink(dir_ + "/tmp/" + n) == 0) ++st.tmp_removed;
    }
  }
  if (io_.list_dir(dir_ + "/queue", &names) != 0) return st;
  std::string data;
  for (const auto& n : names) {
    const std::string path = dir_ + "/queue/" + n;
    SpoolRecord rec;
    int r = io_.read_file(path, &data);
    DecodeError e = r == 0 ? decode_record(data, rec) : DecodeError::kTruncated;
    if (e == DecodeError::kNone && rec.env.id != n) e = DecodeError::kBadHeader;
    if (e != DecodeError::kNone) {
      ++st.corrupt;
      const std::string dest = dir_ + "/corrupt/" + n;
      io_.rename(path, dest, false);
      log("spool: corrupt message " + n + " (" + to_string(e) + ") moved to " + dest);
      continue;
    }
    ++st.recovered;
    take(std::move(rec));
  }
  return st;
}

}  // namespace ringmail::storage
