#include "storage/spool.h"

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <set>

namespace ringmail::storage {

namespace {
constexpr std::string_view kSegmentPrefix = "seg-";
constexpr std::string_view kSparePrefix = "spare-";
}  // namespace

bool Spool::is_segment_name(std::string_view name) { return name.rfind(kSegmentPrefix, 0) == 0; }
bool Spool::is_spare_name(std::string_view name) { return name.rfind(kSparePrefix, 0) == 0; }

proto::CommitResult commit_result_for(int err) {
  if (err == 0) return proto::CommitResult::kOk;
  if (err == -ENOSPC || err == -EDQUOT) return proto::CommitResult::kNoSpace;
  return proto::CommitResult::kTempFail;
}

Spool::Spool(FileIo& io, std::string data_dir, uint32_t shard, uint64_t segment_bytes_max,
             bool prepare_segments)
    : io_(io),
      data_dir_(std::move(data_dir)),
      dir_(data_dir_ + "/spool"),
      shard_(shard),
      segment_bytes_max_(segment_bytes_max),
      prepare_segments_(prepare_segments) {
  spare_op_.self = this;
  spare_op_.kind = BlockingOp::Kind::kZeroFill;
  spare_op_.done = &Spool::on_spare_filled;
}

Spool::~Spool() {
  for (auto& [key, seg] : segments_) {
    seg.sync.reset();  // closes the descriptor
  }
  // A spare still filling (its owner did not wait for preparing()) leaks its
  // descriptor rather than closing it under the worker; the file is removed
  // at the next start.
  if (spare_state_ == SpareState::kReady) io_.close(spare_op_.fd);
  if (queue_dir_fd_ >= 0) io_.close(queue_dir_fd_);
}

int Spool::open() {
  for (const char* sub : {"/queue", "/corrupt"}) {
    if (int r = io_.make_dirs(dir_ + sub); r < 0) return r;
  }
  queue_dir_fd_ = io_.open_dir(dir_ + "/queue");
  if (queue_dir_fd_ < 0) return queue_dir_fd_;
  std::vector<std::string> names;
  if (io_.list_dir(dir_ + "/queue", &names) == 0) {
    const std::string mine = "-" + std::to_string(shard_);
    for (const auto& n : names) {
      if (is_spare_name(n) && n.size() > mine.size() &&
          n.compare(n.size() - mine.size(), mine.size(), mine) == 0) {
        (void)io_.unlink(dir_ + "/queue/" + n);
      }
    }
  }
  return rotate();
}

void Spool::start_preparing() {
  preparing_started_ = true;
  prepare_spare();
}

void Spool::prepare_spare() {
  if (!prepare_segments_ || !preparing_started_ || !committed_any_ ||
      spare_state_ != SpareState::kNone) {
    return;
  }
  char name[64];
  std::snprintf(name, sizeof name, "spare-%016llx-%u",
                static_cast<unsigned long long>(clock_.next_us()), shard_);
  int fd = io_.open_rw(dir_ + "/queue/" + name, true);
  if (fd < 0) return;  // rotation falls back to an empty segment
  spare_name_ = name;
  spare_state_ = SpareState::kFilling;
  spare_op_.fd = fd;
  spare_op_.bytes = segment_bytes_max_;
  io_.submit(&spare_op_);
}

void Spool::on_spare_filled(BlockingOp* op, int result) {
  Spool* s = static_cast<SpareOp*>(op)->self;
  if (result < 0) {
    // No spare (disk full, say): segments are created empty until the next
    // rotation tries again.
    s->io_.close(op->fd);
    (void)s->io_.unlink(s->dir_ + "/queue/" + s->spare_name_);
    s->spare_state_ = SpareState::kNone;
    return;
  }
  s->spare_state_ = SpareState::kReady;
  // The segment in use was created empty (at start, or when no spare was
  // ready): move to the prepared one now rather than after 64 MiB.
  auto cur = s->segments_.find(s->current_);
  if (cur != s->segments_.end() && !cur->second.prepared) s->rotate();
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
  const std::string path = dir_ + "/queue/" + name;
  int fd = -1;
  bool prepared = false;
  if (spare_state_ == SpareState::kReady) {
    spare_state_ = SpareState::kNone;
    if (io_.rename(dir_ + "/queue/" + spare_name_, path, true) == 0) {
      fd = spare_op_.fd;
      prepared = true;
    } else {
      io_.close(spare_op_.fd);
      (void)io_.unlink(dir_ + "/queue/" + spare_name_);
    }
  }
  if (fd < 0) fd = io_.open_rw(path, true);
  if (fd < 0) return fd;
  // The new name must be durable before a record in it is acknowledged.
  if (int r = io_.fsync_now(queue_dir_fd_); r < 0) {
    io_.close(fd);
    (void)io_.unlink(path);
    return r;
  }
  if (prepared) ++prepared_used_;
  const uint64_t old = current_;
  Segment seg;
  seg.name = name;
  seg.fd = fd;
  seg.appendable = true;
  seg.prepared = prepared;
  seg.sync = std::make_unique<DirSync>(io_, fd, BlockingOp::Kind::kDataSync);
  seg.sync->set_observer([this](uint64_t messages) {
    if (messages > 0 && sync_observer_) sync_observer_(messages);
  });
  current_ = next_key_++;
  segments_.emplace(current_, std::move(seg));
  if (old != 0) {
    segments_[old].appendable = false;
    maybe_drop(old);
  }
  prepare_spare();
  return 0;
}

int Spool::write_tail(Segment& seg, const std::vector<std::string_view>& parts) {
  int r = io_.write_at(seg.fd, seg.bytes, parts);
  if (r == 0) {
    for (auto p : parts) seg.bytes += p.size();
  }
  return r;
}

uint64_t Spool::adopt(const RecoveredSegment& rs) {
  Segment seg;
  seg.name = rs.name;
  seg.live = rs.records.size();
  const uint64_t key = next_key_++;
  segments_.emplace(key, std::move(seg));
  // Every line about its records, wherever it was, again in this spool's
  // current segment (which then carries them on: maybe_drop).
  std::string lines;
  for (const auto& id : rs.finished_ids) lines += encode_tombstone(id);
  for (const auto& r : rs.records) {
    for (size_t i = 0; i < r.rcpt_done.size(); ++i) {
      if (r.rcpt_done[i] != 0) lines += encode_rcpt_state(r.env.id, i, r.rcpt_done[i]);
    }
    if (r.delay_warned) lines += encode_warned(r.env.id);
    if (r.held_seq != 0) lines += encode_hold(r.env.id, r.held_seq, r.held);
    if (r.attempts != 0) lines += encode_retry(r.env.id, r.attempts, r.next_attempt_unix);
  }
  if (!lines.empty()) {
    if (Segment* cur = append_state(key, lines)) (void)io_.fsync_now(cur->fd);
  }
  return key;
}

int Spool::append_records(Batch::Item* items, size_t n, uint64_t* segment) {
  if (!committed_any_) {
    committed_any_ = true;
    prepare_spare();
  }
  Segment* seg = &segments_[current_];
  if (seg->bytes >= segment_bytes_max_ || !seg->appendable) {
    if (int r = rotate(); r < 0) return r;
    seg = &segments_[current_];
  }
  std::vector<EncodedRecord> encoded;
  encoded.reserve(n);
  std::vector<std::string_view> parts;
  parts.reserve(3 * n);
  const uint64_t before = seg->bytes;
  uint64_t at = before;
  for (size_t i = 0; i < n; ++i) {
    encoded.push_back(encode_record(*items[i].env, items[i].message));
    const EncodedRecord& e = encoded.back();
    parts.insert(parts.end(), {e.header, items[i].message, e.trailer});
    items[i].offset = at;
    items[i].length = e.header.size() + items[i].message.size() + e.trailer.size();
    at += items[i].length;
  }
  if (int r = write_tail(*seg, parts); r < 0) {
    // Cut the partial records off; if even that fails, stop appending to
    // this segment (recovery will move the damaged tail aside with a log
    // line).
    if (io_.truncate(seg->fd, before) != 0) seg->appendable = false;
    return r;
  }
  seg->live += n;
  *segment = current_;
  return 0;
}

void Spool::commit(Commit* c) {
  c->spool_ = this;
  Batch::Item item{c->env, c->message};
  if (int r = append_records(&item, 1, &c->segment); r < 0) {
    c->done(c, commit_result_for(r));
    return;
  }
  c->offset = item.offset;
  c->length = item.length;
  c->wait_.owner = c;
  c->wait_.done = &Spool::on_synced;
  c->wait_.weight = 1;
  segments_[c->segment].sync->sync_after(&c->wait_);
}

void Spool::commit_batch(Batch* b) {
  b->spool_ = this;
  if (b->items.empty()) {
    b->done(b, proto::CommitResult::kOk);
    return;
  }
  if (int r = append_records(b->items.data(), b->items.size(), &b->segment); r < 0) {
    b->done(b, commit_result_for(r));
    return;
  }
  b->wait_.owner = b;
  b->wait_.done = &Spool::on_batch_synced;
  b->wait_.weight = static_cast<uint32_t>(b->items.size());
  segments_[b->segment].sync->sync_after(&b->wait_);
}

uint64_t Spool::segment_bytes() const {
  uint64_t n = 0;
  for (const auto& [key, seg] : segments_) n += seg.bytes;
  return n;
}

void Spool::sync_failed(uint64_t segment, const std::vector<std::string_view>& ids) {
  // After a failed fdatasync the file's state is unknown (the kernel may
  // have dropped the dirty pages): never retry as if it had worked. The
  // client gets 451 and sends again, so tombstone these copies in a fresh
  // segment and stop appending to the old one.
  Segment& seg = segments_[segment];
  seg.appendable = false;
  seg.live -= std::min<uint64_t>(seg.live, ids.size());
  if (current_ == segment) rotate();
  std::string lines;
  for (auto id : ids) lines += encode_tombstone(id);
  append_state(segment, lines);
  maybe_drop(segment);
}

void Spool::on_synced(DirSync::Waiter* w, int result) {
  Commit* c = static_cast<Commit::Wait*>(w)->owner;
  if (result < 0) c->spool_->sync_failed(c->segment, {c->env->id});
  c->done(c, commit_result_for(result));
}

void Spool::on_batch_synced(DirSync::Waiter* w, int result) {
  Batch* b = static_cast<Batch::Wait*>(w)->owner;
  if (result < 0) {
    std::vector<std::string_view> ids;
    for (const auto& item : b->items) ids.push_back(item.env->id);
    b->spool_->sync_failed(b->segment, ids);
  }
  b->done(b, commit_result_for(result));
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
  append_state(rec.segment, encode_tombstone(rec.env.id));
  auto it = segments_.find(rec.segment);
  if (it == segments_.end()) return;
  if (it->second.live > 0) --it->second.live;
  maybe_drop(rec.segment);
}

Spool::Segment* Spool::append_line(const std::string& line) {
  auto cur = segments_.find(current_);
  if (cur == segments_.end() || !cur->second.appendable) return nullptr;
  if (write_tail(cur->second, {line}) != 0) return nullptr;
  return &cur->second;
}

Spool::Segment* Spool::append_state(uint64_t target, const std::string& line) {
  Segment* seg = append_line(line);
  if (seg != nullptr && target != current_ && segments_.count(target) != 0) {
    seg->carried.push_back({target, line});
  }
  return seg;
}

void Spool::recipient_done(const SpoolRecord& rec, size_t index, bool bounced) {
  Segment* seg = append_state(rec.segment, encode_rcpt_done(rec.env.id, index, bounced));
  if (seg != nullptr && seg->sync && !flush_wait_.waiting) {
    flush_wait_.waiting = true;
    flush_wait_.done = [](DirSync::Waiter* w, int) { static_cast<FlushWait*>(w)->waiting = false; };
    seg->sync->sync_after(&flush_wait_);
  }
}

void Spool::recipient_deleted(const SpoolRecord& rec, size_t index) {
  append_state(rec.segment, encode_rcpt_state(rec.env.id, index, 'x'));
}

void Spool::hold(SpoolRecord& rec, bool held) {
  rec.held = held;
  rec.held_seq = clock_.next_us();
  append_state(rec.segment, encode_hold(rec.env.id, rec.held_seq, held));
}

void Spool::sync(std::function<void(int)> done) {
  auto cur = segments_.find(current_);
  if (cur == segments_.end() || !cur->second.appendable || !cur->second.sync) {
    done(-EIO);
    return;
  }
  after_sync(cur->second, std::move(done));
}

void Spool::after_sync(Segment& seg, std::function<void(int)> fn) {
  auto w = std::make_unique<SyncWait>();
  SyncWait* raw = w.get();
  raw->spool = this;
  raw->fn = std::move(fn);
  raw->done = [](DirSync::Waiter* dw, int result) {
    auto* sw = static_cast<SyncWait*>(dw);
    Spool* self = sw->spool;
    auto f = std::move(sw->fn);
    self->sync_waits_.erase(sw);
    f(result);
  };
  sync_waits_.emplace(raw, std::move(w));
  seg.sync->sync_after(raw);
}

void Spool::retry_at(const SpoolRecord& rec, uint32_t attempts, int64_t next_unix) {
  append_line(encode_retry(rec.env.id, attempts, next_unix));
}

void Spool::delay_warned(const SpoolRecord& rec) {
  append_state(rec.segment, encode_warned(rec.env.id));
}

void Spool::maybe_drop(uint64_t key) {
  auto it = segments_.find(key);
  if (it == segments_.end()) return;
  Segment& seg = it->second;
  if (seg.live > 0 || key == current_ || seg.dropping || (seg.sync && !seg.sync->idle())) return;
  // Lines about records that are still here (tombstones of another
  // segment's records, their finished recipients, holds) would be lost
  // with this file, and those records would come back after a restart:
  // they are written again into the current segment and this one goes
  // only once that is durable.
  std::string again;
  std::vector<Carried> carried;
  for (auto& c : seg.carried) {
    auto t = segments_.find(c.target);
    if (t == segments_.end() || t->second.dropping) continue;
    again += c.line;
    carried.push_back(std::move(c));
  }
  seg.carried.clear();
  if (carried.empty()) {
    unlink_segment(key);
    return;
  }
  auto cur = segments_.find(current_);
  if (cur == segments_.end() || !cur->second.appendable || !cur->second.sync ||
      write_tail(cur->second, {again}) != 0) {
    seg.carried = std::move(carried);  // kept until it can go safely
    return;
  }
  for (auto& c : carried) cur->second.carried.push_back(std::move(c));
  seg.dropping = true;
  after_sync(cur->second, [this, key](int result) {
    // After a failed sync the file stays; recovery reads both copies.
    if (result == 0) unlink_segment(key);
  });
}

void Spool::unlink_segment(uint64_t key) {
  auto it = segments_.find(key);
  if (it == segments_.end()) return;
  Segment& seg = it->second;
  // Not synced: if the unlink is lost in a crash, the segment comes back and
  // its records are delivered again, idempotently.
  (void)io_.unlink(dir_ + "/queue/" + seg.name);
  if (seg.sync) dropped_syncs_ += seg.sync->fsyncs();
  segments_.erase(it);
}

namespace {

bool parse_u64(std::string_view s, uint64_t* out) {
  if (s.empty() || s.size() > 19 || s.find_first_not_of("0123456789") != std::string_view::npos) {
    return false;
  }
  *out = std::strtoull(std::string(s).c_str(), nullptr, 10);
  return true;
}

}  // namespace

// A "ringmail-rcpt" or "ringmail-retry" line at the start of `in`: records
// it and returns its length (with the LF), or 0 when there is none.
size_t Spool::scan_state_line(std::string_view in, Scan* out) {
  const bool rcpt = in.substr(0, kRcptPrefix.size()) == kRcptPrefix;
  const bool retry = !rcpt && in.substr(0, kRetryPrefix.size()) == kRetryPrefix;
  const bool warned = !rcpt && !retry && in.substr(0, kWarnedPrefix.size()) == kWarnedPrefix;
  const bool hold = !rcpt && !retry && !warned && in.substr(0, kHoldPrefix.size()) == kHoldPrefix;
  if (!rcpt && !retry && !warned && !hold) return 0;
  const size_t nl = in.find('\n');
  if (nl == std::string_view::npos || nl > 200) return 0;
  if (warned) {
    const std::string_view id = in.substr(kWarnedPrefix.size(), nl - kWarnedPrefix.size());
    if (id.empty() || id.find(' ') != std::string_view::npos) return 0;
    out->warned.insert(std::string(id));
    return nl + 1;
  }
  std::string_view line = in.substr(0, nl).substr(
      rcpt ? kRcptPrefix.size() : (hold ? kHoldPrefix.size() : kRetryPrefix.size()));
  std::string_view f[3];
  for (auto& field : f) {
    const size_t sp = line.find(' ');
    field = line.substr(0, sp);
    line = sp == std::string_view::npos ? std::string_view() : line.substr(sp + 1);
  }
  uint64_t a = 0, b = 0;
  if (f[0].empty() || !line.empty()) return 0;
  if (rcpt) {
    if (!parse_u64(f[1], &a) || a > 100000 || (f[2] != "d" && f[2] != "b" && f[2] != "x")) {
      return 0;
    }
    out->rcpt_done[std::string(f[0])][static_cast<uint32_t>(a)] = f[2][0];
  } else if (hold) {
    if (!parse_u64(f[1], &a) || (f[2] != "0" && f[2] != "1")) return 0;
    auto& h = out->hold[std::string(f[0])];
    if (a >= h.first) h = {a, f[2] == "1"};  // the highest sequence number wins
  } else {
    if (!parse_u64(f[1], &a) || !parse_u64(f[2], &b)) return 0;
    out->retry[std::string(f[0])] = {static_cast<uint32_t>(a), static_cast<int64_t>(b)};
  }
  return nl + 1;
}

Spool::Scan Spool::scan(FileIo& io, const std::string& data_dir) {
  Scan out;
  const std::string dir = data_dir + "/spool";
  std::vector<std::string> names;
  if (io.list_dir(dir + "/queue", &names) != 0) return out;
  std::set<std::string> sorted;
  for (auto& n : names) {
    if (is_segment_name(n)) sorted.insert(n);
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
    // A prepared segment ends in zero bytes not yet written over; every
    // record and tombstone ends in a newline, so the data ends at the last
    // byte that is not zero.
    std::string_view in = data;
    const size_t end = in.find_last_not_of('\0');
    in = in.substr(0, end == std::string_view::npos ? 0 : end + 1);
    size_t pos = 0;
    while (pos < in.size()) {
      std::string_view rest = in.substr(pos);
      if (size_t used = scan_state_line(rest, &out); used > 0) {
        pos += used;
        continue;
      }
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
      // A damaged region ends where the next record or state line starts.
      const size_t next = rest.find(std::string("\n") + std::string(kLinePrefix), 1);
      const size_t len = next == std::string_view::npos ? rest.size() : next + 1;
      seg.damaged.emplace_back(pos, len);
      pos += len;
    }
    out.segments.push_back(std::move(seg));
  }
  return out;
}

namespace {
// The ids of the records whose headers are readable in damaged bytes
// ("id X" right after a magic line), for the log: "A1, B1".
std::string ids_in(std::string_view bytes) {
  std::string ids;
  const std::string magic = std::string(kSpoolMagic) + "id ";
  for (size_t at = bytes.find(magic); at != std::string_view::npos;
       at = bytes.find(magic, at + 1)) {
    const size_t start = at + magic.size();
    const size_t end = bytes.find('\n', start);
    if (end == std::string_view::npos || end - start > 64) continue;
    ids += (ids.empty() ? "" : ", ") + std::string(bytes.substr(start, end - start));
  }
  return ids;
}
}  // namespace

Spool::RecoveryStats Spool::recover(FileIo& io, const std::string& data_dir,
                                    std::vector<RecoveredSegment>* out,
                                    const std::function<void(const std::string&)>& log,
                                    std::vector<std::string>* obsolete) {
  RecoveryStats st;
  const std::string dir = data_dir + "/spool";
  std::vector<std::string> names;
  if (io.list_dir(dir + "/queue", &names) == 0) {
    for (const auto& n : names) {
      if (is_spare_name(n)) (void)io.unlink(dir + "/queue/" + n);  // never held a record
    }
  }
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
      int r = io.read_at(path, offset, len, &bytes);
      if (r == 0) {
        const int fd = io.create_and_write(dest, {bytes});
        r = fd < 0 ? fd : io.fsync_now(fd);
        if (fd >= 0) io.close(fd);
      }
      ++st.corrupt;
      const std::string ids = ids_in(bytes);
      log("spool: damaged region in " + seg.name + " at offset " + std::to_string(offset) + " (" +
          std::to_string(len) + " bytes" + (ids.empty() ? std::string() : ", message " + ids) +
          (r == 0 ? ") copied to " + dest
                  : ") could not be copied to " + dest + ": " + std::strerror(-r)));
    }
    RecoveredSegment keep;
    keep.name = seg.name;
    for (auto& r : seg.records) {
      if (sc.delivered.count(r.env.id)) {
        ++st.delivered_skipped;
        keep.finished_ids.push_back(r.env.id);
        continue;
      }
      // Recipients finished before the restart are not tried again.
      r.rcpt_done.assign(r.env.rcpts.size(), 0);
      size_t finished = 0;
      if (auto it = sc.rcpt_done.find(r.env.id); it != sc.rcpt_done.end()) {
        for (auto [i, state] : it->second) {
          if (i < r.rcpt_done.size() && r.rcpt_done[i] == 0) {
            r.rcpt_done[i] = state;
            ++finished;
          }
        }
      }
      if (finished == r.rcpt_done.size()) {
        ++st.delivered_skipped;  // every recipient done; only the tombstone was lost
        keep.finished_ids.push_back(r.env.id);
        continue;
      }
      if (auto it = sc.retry.find(r.env.id); it != sc.retry.end()) {
        r.attempts = it->second.first;
        r.next_attempt_unix = it->second.second;
      }
      r.delay_warned = sc.warned.count(r.env.id) > 0;
      if (auto it = sc.hold.find(r.env.id); it != sc.hold.end()) {
        r.held_seq = it->second.first;
        r.held = it->second.second;
      }
      keep.records.push_back(std::move(r));
    }
    if (keep.records.empty()) {
      if (obsolete != nullptr) {
        obsolete->push_back(seg.name);
      } else {
        st.removed += remove_obsolete(io, data_dir, {seg.name}, log);
      }
      continue;
    }
    st.recovered += keep.records.size();
    out->push_back(std::move(keep));
  }
  return st;
}

uint64_t Spool::remove_obsolete(FileIo& io, const std::string& data_dir,
                                const std::vector<std::string>& names,
                                const std::function<void(const std::string&)>& log) {
  uint64_t removed = 0;
  for (const auto& name : names) {
    // Counted only when it went (a read-only spool removes nothing).
    if (const int e = io.unlink(data_dir + "/spool/queue/" + name); e == 0) {
      ++removed;
    } else {
      log("spool: cannot remove the finished segment " + name + " (errno " + std::to_string(-e) +
          ")");
    }
  }
  return removed;
}

}  // namespace ringmail::storage
