#include "storage/event_log.h"

#include <algorithm>
#include <charconv>
#include <cstdio>

namespace ringmail::storage {
namespace {

constexpr std::string_view kPrefix = "ev-";
constexpr std::string_view kSuffix = ".jsonl";

// A round of fdatasync nobody else waits for (kick()).
struct OwnWaiter : DirSync::Waiter {
  OwnWaiter() {
    done = [](DirSync::Waiter* w, int) { delete static_cast<OwnWaiter*>(w); };
  }
};

}  // namespace

bool EventLog::parse_name(std::string_view name, uint64_t* us, uint32_t* shard) {
  // ev-<16 hex>-<shard>.jsonl
  if (name.size() < kPrefix.size() + 16 + 2 + kSuffix.size() || name.substr(0, 3) != kPrefix ||
      name.substr(name.size() - kSuffix.size()) != kSuffix || name[3 + 16] != '-') {
    return false;
  }
  const char* p = name.data() + 3;
  auto r = std::from_chars(p, p + 16, *us, 16);
  if (r.ec != std::errc() || r.ptr != p + 16) return false;
  const char* s = p + 17;
  const char* end = name.data() + name.size() - kSuffix.size();
  auto r2 = std::from_chars(s, end, *shard);
  return r2.ec == std::errc() && r2.ptr == end && s != end;
}

EventLog::EventLog(FileIo& io, Options options) : io_(io), o_(std::move(options)) {}

EventLog::~EventLog() = default;

int EventLog::open() {
  if (int r = io_.make_dirs(o_.dir); r < 0) return r;
  return rotate();
}

int EventLog::rotate() {
  start_us_ = clock_.next_us();
  char name[64];
  std::snprintf(name, sizeof name, "ev-%016llx-%u.jsonl",
                static_cast<unsigned long long>(start_us_), o_.shard);
  const int fd = io_.open_rw(o_.dir + "/" + name, true);
  if (fd < 0) return fd;
  // The new name durable before a line in it counts as synced.
  const int dir = io_.open_dir(o_.dir);
  if (dir < 0) {
    io_.close(fd);
    return dir;
  }
  const int r = io_.fsync_now(dir);
  io_.close(dir);
  if (r < 0) {
    io_.close(fd);
    return r;
  }
  if (sync_) {
    // The closed segment's last round (its waiters, its unsynced lines)
    // still runs; the object lives on until it is idle.
    if (dirty_) sync_->sync_after(new OwnWaiter);
    sync_->kick();
    closed_fsyncs_ += sync_->fsyncs();
    closing_.push_back(std::move(sync_));
  }
  dirty_ = false;
  name_ = name;
  fd_ = fd;
  bytes_ = 0;
  sync_ = std::make_unique<DirSync>(io_, fd, BlockingOp::Kind::kDataSync);
  sync_->set_manual(true);
  return 0;
}

int EventLog::append(std::string_view object) {
  if (!sync_) return -EBADF;
  if (object.size() < 2 || object.front() != '{' || object.back() != '}') return -EINVAL;
  if (bytes_ >= o_.segment_bytes) {
    if (int r = rotate(); r < 0) return r;
  }
  char id[64];
  const int n = std::snprintf(id, sizeof id, "{\"id\":\"%016llx-%u-%llu\"",
                              static_cast<unsigned long long>(start_us_), o_.shard,
                              static_cast<unsigned long long>(bytes_));
  line_.assign(id, static_cast<size_t>(n));
  if (object.size() > 2) line_.push_back(',');
  line_.append(object.substr(1));
  line_.push_back('\n');
  const int r = io_.write_at(fd_, bytes_, {line_});
  if (r < 0) {
    // Nothing of it counts: the next line overwrites what was written.
    return r;
  }
  bytes_ += line_.size();
  dirty_ = true;
  ++lines_;
  return 0;
}

bool EventLog::kick() {
  for (auto& s : closing_) s->kick();  // a round their last waiters still need
  std::erase_if(closing_, [](const std::unique_ptr<DirSync>& s) { return s->idle(); });
  if (!sync_) return false;
  if (dirty_) {
    dirty_ = false;
    sync_->sync_after(new OwnWaiter);
  }
  const uint64_t before = sync_->fsyncs();
  sync_->kick();
  return sync_->fsyncs() != before;
}

void EventLog::sync_after(DirSync::Waiter* w) { sync_->sync_after(w); }

bool EventLog::idle() const {
  for (const auto& s : closing_) {
    if (!s->idle()) return false;
  }
  return !dirty_ && (!sync_ || sync_->idle());
}

uint64_t EventLog::fsyncs() const { return closed_fsyncs_ + (sync_ ? sync_->fsyncs() : 0); }

void EventLog::expire(int64_t now_unix) {
  std::vector<std::string> names;
  if (io_.list_dir(o_.dir, &names) < 0) return;
  std::vector<std::pair<uint64_t, std::string>> mine;
  for (auto& n : names) {
    uint64_t us = 0;
    uint32_t shard = 0;
    if (parse_name(n, &us, &shard) && shard == o_.shard) mine.emplace_back(us, std::move(n));
  }
  std::sort(mine.begin(), mine.end());
  const uint64_t keep_us =
      static_cast<uint64_t>(std::max<int64_t>(0, now_unix - int64_t{o_.retention_days} * 86400)) *
      1000000u;
  // A segment's last line is older than the next segment's start.
  for (size_t i = 0; i + 1 < mine.size(); ++i) {
    if (mine[i].second == name_) continue;
    if (mine[i + 1].first < keep_us) (void)io_.unlink(o_.dir + "/" + mine[i].second);
  }
}

}  // namespace ringmail::storage
