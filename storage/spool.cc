#include "storage/spool.h"

#include <cerrno>
#include <cstdio>
#include <set>

namespace ringmail::storage {

namespace {
constexpr std::string_view kSegmentPrefix = "seg-";
}

proto::CommitResult commit_result_for(int err) {
  if (err == 0) return proto::CommitResult::kOk;
  if (err == -ENOSPC || err == -EDQUOT) return proto::CommitResult::kNoSpace;
  return proto::CommitResult::kTempFail;
}

Spool::Spool(FileIo& io, std::string data_dir, uint32_t shard, uint64_t segment_bytes_max)
    : io_(io), data_dir_(std::move(data_dir)), dir_(data_dir_ + "/spool"), shard_(shard),
      segment_bytes_max_(segment_bytes_max) {}

Spool::~Spool() {
  for (auto& [key, seg] : segments_) {
    seg.sync.reset();  // closes the descriptor
  }
  if (queue_dir_fd_ >= 0) io_.close(queue_dir_fd_);
}

int Spool::open() {
  for (const char* sub : {"/queue", "/corrupt"}) {
    if (int r = io_.make_dirs(dir_ + sub); r < 0) return r;
  }
  queue_dir_fd_ = io_.open_dir(dir_ + "/queue");
  if (queue_dir_fd_ < 0) return queue_dir_fd_;
  return rotate();
}

std::string Spool::current_segment_path() const {
  auto it = segments_.find(current_);
  return it == segments_.end() ? std::string() : dir_ + "/queue/" + it->second.name;
}

int Spool::rotate() {
  // seg-<microseconds, 16 hex>-<shard>: unique across restarts and shards.
  const uint64_t us = clock_.next_us();
  char name[64];
  std::snprintf(name, sizeof name, "seg-%016llx-%u", static_cast<unsigned long long>(us), shard_);
  int fd = io_.open_append(dir_ + "/queue/" + name, true);
  if (fd < 0) return fd;
  // The new name must be durable before a record in it is acknowledged.
  if (int r = io_.fsync_now(queue_dir_fd_); r < 0) {
    io_.close(fd);
    io_.unlink(dir_ + "/queue/" + name);
    return r;
  }
  const uint64_t old = current_;
  Segment seg;
  seg.name = name;
  seg.fd = fd;
  seg.appendable = true;
  seg.sync = std::make_unique<DirSync>(io_, fd);
  current_ = next_key_++;
  segments_.emplace(current_, std::move(seg));
  if (old != 0) {
    segments_[old].appendable = false;
    maybe_drop(old);
  }
  return 0;
}

uint64_t Spool::adopt(const std::string& name, uint64_t live) {
  Segment seg;
  seg.name = name;
  seg.live = live;
  const uint64_t key = next_key_++;
  segments_.emplace(key, std::move(seg));
  return key;
}

void Spool::commit(Commit* c) {
  c->spool_ = this;
  Segment* seg = &segments_[current_];
  if (seg->bytes >= segment_bytes_max_ || !seg->appendable) {
    if (int r = rotate(); r < 0) {
      c->done(c, commit_result_for(r));
      return;
    }
    seg = &segments_[current_];
  }
  EncodedRecord rec = encode_record(*c->env, c->message);
  const uint64_t before = seg->bytes;
  if (int r = io_.append(seg->fd, {rec.header, c->message, rec.trailer}); r < 0) {
    // Cut the partial record off; if even that fails, stop appending to this
    // segment (recovery will move the damaged tail aside with a log line).
    if (io_.truncate(seg->fd, before) != 0) seg->appendable = false;
    c->done(c, commit_result_for(r));
    return;
  }
  c->length = rec.header.size() + c->message.size() + rec.trailer.size();
  c->offset = before;
  seg->bytes += c->length;
  ++seg->live;
  c->segment = current_;
  c->wait_.owner = c;
  c->wait_.done = &Spool::on_synced;
  seg->sync->sync_after(&c->wait_);
}

void Spool::on_synced(DirSync::Waiter* w, int result) {
  Commit* c = static_cast<Commit::Wait*>(w)->owner;
  Spool* s = c->spool_;
  if (result < 0) {
    // After a failed fdatasync the file's state is unknown (the kernel may
    // have dropped the dirty pages): never retry as if it had worked. The
    // client gets 451 and sends again, so tombstone this copy in a fresh
    // segment and stop appending to the old one.
    Segment& seg = s->segments_[c->segment];
    seg.appendable = false;
    if (seg.live > 0) --seg.live;
    if (s->current_ == c->segment) s->rotate();
    auto cur = s->segments_.find(s->current_);
    if (cur != s->segments_.end() && cur->second.appendable) {
      s->io_.append(cur->second.fd, {encode_tombstone(c->env->id)});
    }
    s->maybe_drop(c->segment);
    c->done(c, commit_result_for(result));
    return;
  }
  c->done(c, proto::CommitResult::kOk);
}

bool Spool::idle() const {
  for (const auto& [key, seg] : segments_) {
    if (seg.sync && !seg.sync->idle()) return false;
  }
  return true;
}

uint64_t Spool::syncs() const {
  uint64_t n = dropped_syncs_;
  for (const auto& [key, seg] : segments_) {
    if (seg.sync) n += seg.sync->fsyncs();
  }
  return n;
}

int Spool::load(SpoolRecord& rec) {
  auto it = segments_.find(rec.segment);
  if (it == segments_.end()) return -ENOENT;
  return load_from(io_, data_dir_, it->second.name, rec);
}

int Spool::load_from(FileIo& io, const std::string& data_dir, const std::string& segment,
                     SpoolRecord& rec) {
  std::string data;
  const std::string path = data_dir + "/spool/queue/" + segment;
  if (int r = io.read_at(path, rec.offset, rec.length, &data); r < 0) return r;
  SpoolRecord fresh;
  if (decode_record(data, fresh) != DecodeError::kNone || fresh.env.id != rec.env.id) return -EIO;
  rec.message = std::move(fresh.message);
  return 0;
}

void Spool::delivered(const SpoolRecord& rec) {
  auto cur = segments_.find(current_);
  if (cur != segments_.end() && cur->second.appendable) {
    io_.append(cur->second.fd, {encode_tombstone(rec.env.id)});
    cur->second.bytes += kTombstonePrefix.size() + rec.env.id.size() + 1;
  }
  auto it = segments_.find(rec.segment);
  if (it == segments_.end()) return;
  if (it->second.live > 0) --it->second.live;
  maybe_drop(rec.segment);
}

void Spool::maybe_drop(uint64_t key) {
  auto it = segments_.find(key);
  if (it == segments_.end()) return;
  Segment& seg = it->second;
  if (seg.live > 0 || key == current_ || (seg.sync && !seg.sync->idle())) return;
  // Not synced: if the unlink is lost in a crash, the segment comes back and
  // its records are delivered again, idempotently.
  io_.unlink(dir_ + "/queue/" + seg.name);
  if (seg.sync) dropped_syncs_ += seg.sync->fsyncs();
  segments_.erase(it);
}

Spool::Scan Spool::scan(FileIo& io, const std::string& data_dir) {
  Scan out;
  const std::string dir = data_dir + "/spool";
  std::vector<std::string> names;
  if (io.list_dir(dir + "/queue", &names) != 0) return out;
  std::set<std::string> sorted;
  for (auto& n : names) {
    if (n.rfind(kSegmentPrefix, 0) == 0) sorted.insert(n);
  }
  std::string data;
  for (const auto& name : sorted) {
    ScannedSegment seg;
    seg.name = name;
    seg.read_error = io.read_file(dir + "/queue/" + name, &data);
    if (seg.read_error < 0) {
      out.segments.push_back(std::move(seg));
      continue;
    }
    std::string_view in = data;
    size_t pos = 0;
    while (pos < in.size()) {
      std::string_view rest = in.substr(pos);
      if (rest.substr(0, kTombstonePrefix.size()) == kTombstonePrefix) {
        size_t nl = rest.find('\n');
        if (nl != std::string_view::npos) {
          out.delivered.insert(
              std::string(rest.substr(kTombstonePrefix.size(), nl - kTombstonePrefix.size())));
          pos += nl + 1;
          continue;
        }
      } else {
        SpoolRecord rec;
        size_t consumed = 0;
        if (decode_record_prefix(rest, rec, consumed) == DecodeError::kNone) {
          // Only the envelope stays in memory; delivery reads the message
          // again (Spool::load), so a large queue recovers in bounded memory.
          rec.offset = pos;
          rec.length = consumed;
          rec.message = std::string();
          seg.records.push_back(std::move(rec));
          pos += consumed;
          continue;
        }
      }
      // A damaged region ends where the next record or tombstone starts.
      size_t a = rest.find(std::string("\n") + std::string(kSpoolMagic), 1);
      size_t b = rest.find(std::string("\n") + std::string(kTombstonePrefix), 1);
      const size_t next = std::min(a, b);
      const size_t len = next == std::string_view::npos ? rest.size() : next + 1;
      seg.damaged.emplace_back(pos, len);
      pos += len;
    }
    out.segments.push_back(std::move(seg));
  }
  return out;
}

Spool::RecoveryStats Spool::recover(FileIo& io, const std::string& data_dir,
                                    std::vector<RecoveredSegment>* out,
                                    const std::function<void(const std::string&)>& log) {
  RecoveryStats st;
  const std::string dir = data_dir + "/spool";
  Scan sc = scan(io, data_dir);
  for (auto& seg : sc.segments) {
    ++st.segments;
    const std::string path = dir + "/queue/" + seg.name;
    if (seg.read_error < 0) {
      log("spool: cannot read segment " + seg.name + " (errno " + std::to_string(-seg.read_error) +
          "), left in place");
      continue;
    }
    for (auto [offset, len] : seg.damaged) {
      // Keep the bytes for a human; never drop them silently.
      const std::string dest = dir + "/corrupt/" + seg.name + "." + std::to_string(offset);
      std::string bytes;
      if (io.read_at(path, offset, len, &bytes) == 0) {
        int fd = io.create_and_write(dest, {bytes});
        if (fd >= 0) {
          io.fsync_now(fd);
          io.close(fd);
        }
      }
      ++st.corrupt;
      log("spool: damaged region in " + seg.name + " at offset " + std::to_string(offset) + " (" +
          std::to_string(len) + " bytes) copied to " + dest);
    }
    RecoveredSegment keep;
    keep.name = seg.name;
    for (auto& r : seg.records) {
      if (sc.delivered.count(r.env.id)) {
        ++st.delivered_skipped;
      } else {
        keep.records.push_back(std::move(r));
      }
    }
    if (keep.records.empty()) {
      io.unlink(path);
      ++st.removed;
      continue;
    }
    st.recovered += keep.records.size();
    out->push_back(std::move(keep));
  }
  return st;
}

}  // namespace ringmail::storage
