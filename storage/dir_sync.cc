#include "storage/dir_sync.h"

namespace ringmail::storage {

DirSync::DirSync(FileIo& io, int dir_fd, BlockingOp::Kind kind) : io_(io) {
  op_.fd = dir_fd;
  op_.kind = kind;
  op_.done = &DirSync::on_fsync;
  op_.self = this;
}

DirSync::~DirSync() {
  if (op_.fd >= 0) io_.close(op_.fd);
}

void DirSync::sync_after(Waiter* w) {
  w->next = waiting_;
  waiting_ = w;
  if (!busy_ && !manual_) start();
}

void DirSync::start() {
  busy_ = true;
  inflight_ = waiting_;
  waiting_ = nullptr;
  ++fsyncs_;
  if (observer_) {
    uint64_t weight = 0;
    for (const Waiter* w = inflight_; w != nullptr; w = w->next) weight += w->weight;
    observer_(weight);
  }
  io_.submit(&op_);
}

void DirSync::on_fsync(BlockingOp* op, int result) {
  DirSync* self = static_cast<Op*>(op)->self;
  Waiter* w = self->inflight_;
  self->inflight_ = nullptr;
  self->busy_ = false;
  // Start the next round before completing this one: completions may add
  // waiters, which then join the next round instead of starting another.
  if (self->waiting_ != nullptr && !self->manual_) self->start();
  while (w != nullptr) {
    Waiter* next = w->next;
    w->done(w, result);
    w = next;
  }
}

}  // namespace ringmail::storage
