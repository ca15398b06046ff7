#include "storage/maildir.h"

#include <cerrno>
#include <cstring>

namespace ringmail::storage {

namespace {
constexpr size_t kDirSyncCacheMax = 4096;
}

MaildirDelivery::MaildirDelivery(FileIo& io, Spool& spool, std::string data_dir,
                                 std::string hostname, SyncMode mode,
                                 std::function<bool(const std::string&)> is_local)
    : io_(io),
      spool_(spool),
      mail_dir_(std::move(data_dir) + "/mail"),
      hostname_(std::move(hostname)),
      mode_(mode),
      is_local_(std::move(is_local)) {
  // The host name goes into file names: no '/' or ':' (Maildir info separator).
  for (char& c : hostname_) {
    if (c == '/' || c == ':') c = '_';
  }
}

bool MaildirDelivery::remote(const proto::Address& rcpt) const {
  return is_local_ && !is_local_(proto::ascii_lower(rcpt.domain));
}

std::string MaildirDelivery::maildir_for(const proto::Address& rcpt) const {
  auto box = proto::mailbox_name(rcpt.local);
  std::string domain = proto::ascii_lower(rcpt.domain);
  if (!box || domain.empty() || domain.find('/') != std::string::npos || domain[0] == '.') {
    return {};
  }
  return mail_dir_ + "/" + domain + "/" + *box + "/Maildir";
}

std::string MaildirDelivery::file_name(const proto::Envelope& env, size_t index) const {
  return std::to_string(env.arrival_unix) + "." + env.id + "_" + std::to_string(index) + "." +
         hostname_;
}

std::string MaildirDelivery::render(const proto::Envelope& env, size_t index,
                                    std::string_view message) {
  std::string out;
  out.reserve(message.size() + 128);
  out += "Return-Path: <" + env.from.to_string() + ">\n";
  out += "Delivered-To: " + env.rcpts[index].to_string() + "\n";
  size_t pos = 0;
  while (pos < message.size()) {
    size_t cr = message.find("\r\n", pos);
    if (cr == std::string_view::npos) {
      out.append(message.substr(pos));
      break;
    }
    out.append(message.substr(pos, cr - pos));
    out += '\n';
    pos = cr + 2;
  }
  return out;
}

int MaildirDelivery::ensure_maildir(const std::string& maildir) {
  if (made_.count(maildir)) return 0;
  for (const char* sub : {"/tmp", "/new", "/cur"}) {
    if (int r = io_.make_dirs(maildir + sub); r < 0) return r;
  }
  made_.insert(maildir);
  return 0;
}

DirSync* MaildirDelivery::dir_sync(const std::string& dir) {
  auto it = dirs_.find(dir);
  if (it != dirs_.end()) return it->second.get();
  if (dirs_.size() >= kDirSyncCacheMax) {
    for (auto i = dirs_.begin(); i != dirs_.end();) {
      i = i->second->idle() ? dirs_.erase(i) : std::next(i);
    }
  }
  int fd = io_.open_dir(dir);
  if (fd < 0) return nullptr;
  return dirs_.emplace(dir, std::make_unique<DirSync>(io_, fd)).first->second.get();
}

void MaildirDelivery::deliver_batched(Job* job) {
  const auto& env = job->rec.env;
  for (size_t i = 0; i < env.rcpts.size(); ++i) {
    if (i < job->rec.rcpt_done.size() && job->rec.rcpt_done[i] != 0)
      continue;  // done before a restart
    if (remote(env.rcpts[i])) {
      job->remote.push_back(env.rcpts[i].to_string());
      continue;
    }
    const std::string maildir = maildir_for(env.rcpts[i]);
    if (maildir.empty()) {
      job->skipped.push_back(env.rcpts[i].to_string());
      continue;
    }
    const std::string name = file_name(env, i);
    // A file already in new/ may not be durable (its syncfs never completed),
    // so it is written again; one a reader moved to cur/ is left alone.
    if (io_.exists(maildir + "/cur/" + name + ":2,")) continue;
    int r = ensure_maildir(maildir);
    const std::string tmp = maildir + "/tmp/" + name;
    if (r == 0) {
      const std::string content = render(env, i, job->rec.message);
      int fd = io_.create_and_write(tmp, {content});
      if (fd == -EEXIST) {
        (void)io_.unlink(tmp);
        fd = io_.create_and_write(tmp, {content});
      }
      r = fd < 0 ? fd : 0;
      if (fd >= 0) io_.close(fd);
    }
    if (r == 0) r = io_.rename(tmp, maildir + "/new/" + name, false);
    if (r < 0) {
      (void)io_.unlink(tmp);
      finish(job, r);
      return;
    }
  }
  if (!fs_sync_) {
    int fd = io_.make_dirs(mail_dir_) == 0 ? io_.open_dir(mail_dir_) : -EIO;
    if (fd < 0) {
      finish(job, fd);
      return;
    }
    fs_sync_ = std::make_unique<DirSync>(io_, fd, BlockingOp::Kind::kSyncfs);
    fs_sync_->set_manual(true);
  }
  job->fs_wait.job = job;
  job->fs_wait.done = &MaildirDelivery::on_fs_synced;
  fs_sync_->sync_after(&job->fs_wait);
}

void MaildirDelivery::on_fs_synced(DirSync::Waiter* w, int result) {
  Job* job = static_cast<Job::FsWait*>(w)->job;
  if (result == 0 && job->remote.empty()) job->owner->spool_.delivered(job->rec);
  finish(job, result);
}

void MaildirDelivery::deliver(Job* job) {
  job->owner = this;
  job->first_error = 0;
  job->skipped.clear();
  job->remote.clear();
  if (mode_ == SyncMode::kBatch) {
    deliver_batched(job);
    return;
  }
  const auto& env = job->rec.env;
  job->ops.clear();
  job->ops.resize(env.rcpts.size());
  job->remaining = env.rcpts.size() + 1;  // +1 keeps the job open while starting
  for (size_t i = 0; i < env.rcpts.size(); ++i) {
    RcptOp* op = &job->ops[i];
    op->job = job;
    op->index = i;
    if (i < job->rec.rcpt_done.size() && job->rec.rcpt_done[i] != 0) {
      finish_rcpt(op, 0);  // done before a restart
      continue;
    }
    if (remote(env.rcpts[i])) {
      job->remote.push_back(env.rcpts[i].to_string());
      finish_rcpt(op, 0);
      continue;
    }
    const std::string maildir = maildir_for(env.rcpts[i]);
    if (maildir.empty()) {
      job->skipped.push_back(env.rcpts[i].to_string());
      finish_rcpt(op, 0);
      continue;
    }
    const std::string name = file_name(env, i);
    op->new_dir = maildir + "/new";
    op->new_path = op->new_dir + "/" + name;
    op->tmp_path = maildir + "/tmp/" + name;
    if (io_.exists(op->new_path) || io_.exists(maildir + "/cur/" + name + ":2,")) {
      finish_rcpt(op, 0);  // delivered before a crash (and maybe already read)
      continue;
    }
    if (int r = ensure_maildir(maildir); r < 0) {
      finish_rcpt(op, r);
      continue;
    }
    const std::string content = render(env, i, job->rec.message);
    int fd = io_.create_and_write(op->tmp_path, {content});
    if (fd == -EEXIST) {
      // Left over from a crash in the middle of this very delivery.
      (void)io_.unlink(op->tmp_path);
      fd = io_.create_and_write(op->tmp_path, {content});
    }
    if (fd < 0) {
      finish_rcpt(op, fd);
      continue;
    }
    op->fd = fd;
    op->done = &MaildirDelivery::on_file_synced;
    io_.submit(op);
  }
  release(job, 0);
}

void MaildirDelivery::on_file_synced(BlockingOp* fop, int result) {
  auto* op = static_cast<RcptOp*>(fop);
  MaildirDelivery* self = op->job->owner;
  self->io_.close(op->fd);
  op->fd = -1;
  if (result < 0) {
    (void)self->io_.unlink(op->tmp_path);
    self->finish_rcpt(op, result);
    return;
  }
  if (int r = self->io_.rename(op->tmp_path, op->new_path, false); r < 0) {
    (void)self->io_.unlink(op->tmp_path);
    self->finish_rcpt(op, r);
    return;
  }
  DirSync* ds = self->dir_sync(op->new_dir);
  if (ds == nullptr) {
    self->finish_rcpt(op, -EIO);
    return;
  }
  op->wait.owner = op;
  op->wait.done = &MaildirDelivery::on_dir_synced;
  ds->sync_after(&op->wait);
}

void MaildirDelivery::on_dir_synced(DirSync::Waiter* w, int result) {
  RcptOp* op = static_cast<RcptOp::Wait*>(w)->owner;
  op->job->owner->finish_rcpt(op, result);
}

void MaildirDelivery::finish_rcpt(RcptOp* op, int result) { release(op->job, result); }

void MaildirDelivery::release(Job* job, int result) {
  if (result < 0 && job->first_error == 0) job->first_error = result;
  if (--job->remaining > 0) return;
  if (job->first_error == 0 && job->remote.empty()) spool_.delivered(job->rec);
  finish(job, job->first_error);
}

void MaildirDelivery::finish(Job* job, int error) {
  if (error == 0) {
    job->done(job, proto::DeliveryResult{proto::Outcome::kOk, {}});
    return;
  }
  // Every file system error is worth another try: a full disk, a quota, a
  // permission the administrator fixes.
  job->done(job, proto::DeliveryResult{proto::Outcome::kTemp,
                                       std::string("maildir: ") + std::strerror(-error)});
}

}  // namespace ringmail::storage
