#include "engine/event_feed.h"

#include <algorithm>
#include <chrono>

#include "engine/log.h"

namespace ringmail::engine {
namespace {

// A cursor is written (fsync, rename, fsync of the directory) at most
// this often, and at stop. Each write forces a journal commit that the
// spool's fdatasyncs wait behind: one per delivered batch cost half the
// relay rate at 10 sessions (docs/performance.md). A cursor behind by up
// to this much only means the events since are sent again after a crash;
// it never moves past an event that was not delivered.
constexpr int64_t kCursorWriteMs = 100;

// The end of the log as it is: each shard's newest segment after its last
// complete line.
storage::EventCursor end_of(const EventListing& all) {
  storage::EventCursor c;
  for (const auto& [shard, segs] : all) {
    const storage::EventSegment& s = segs.back();
    uint64_t end = 0;
    for (;;) {
      auto r = storage::read_event_lines(s.path, end, 4096);
      if (!r || r->lines.empty()) break;
      end = r->ends.back();
    }
    c[shard] = {s.name, end};
  }
  return c;
}

}  // namespace

int64_t steady_now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

EventFeed::EventFeed(std::string who, std::string cursor_path, std::vector<std::string> types,
                     size_t batch_size, uint32_t max_backoff_s)
    : who_(std::move(who)),
      cursor_path_(std::move(cursor_path)),
      types_(std::move(types)),
      batch_size_(batch_size),
      max_backoff_s_(max_backoff_s) {}

void EventFeed::open(const EventListing& listing) {
  auto c = storage::read_event_cursor(cursor_path_);
  if (!c) {
    // Never skip an event: without a readable cursor, send what the log
    // holds (duplicates are dropped by id at the receiver).
    log_line(who_ + ": " + c.error() + "; sending the whole log again from its oldest event",
             LogLevel::kError);
    acked_ = {};
    write_cursor();
  } else if (!c->has_value()) {
    acked_ = end_of(listing);
    log_line(who_ + ": new, starting at the end of the event log");
    write_cursor();
  } else {
    acked_ = std::move(**c);
  }
}

bool EventFeed::wants(std::string_view line) const {
  if (types_.empty()) return true;
  const std::string_view t = storage::event_line_type(line);
  return std::find(types_.begin(), types_.end(), t) != types_.end();
}

void EventFeed::write_cursor() {
  if (auto r = storage::write_event_cursor(cursor_path_, acked_); !r) {
    log_line(who_ + ": cannot write the cursor: " + r.error(), LogLevel::kError);
    dirty_ = true;  // tried again at the next move
    return;
  }
  dirty_ = false;
  written_ms_ = steady_now_ms();
}

void EventFeed::flush(int64_t now, bool force) {
  if (dirty_ && (force || now - written_ms_ >= kCursorWriteMs)) write_cursor();
}

bool EventFeed::list(const std::string& dir, int64_t now, EventListing* listing,
                     int64_t* listed_ms) {
  if (*listed_ms == now) return true;
  auto l = storage::list_event_segments(dir);
  if (!l) {
    if (l.error() != read_error_) log_line(who_ + ": " + l.error(), LogLevel::kError);
    read_error_ = l.error();
    return false;
  }
  *listing = std::move(*l);
  *listed_ms = now;
  return true;
}

// Reads up to `want` events of the wanted types from one shard's segments
// from `*p` on, appending them to `lines`; `*p` moves past every line
// read (those of other types too).
void EventFeed::take(uint32_t shard, const std::vector<storage::EventSegment>& segs,
                     storage::EventPosition* p, size_t want, std::vector<std::string>* lines) {
  if (segs.empty()) return;
  size_t i = 0;
  if (p->segment.empty()) {
    *p = {segs.front().name, 0};
  } else {
    while (i < segs.size() && segs[i].name < p->segment) ++i;
    if (i == segs.size()) return;  // nothing as new as the cursor (yet)
    if (segs[i].name != p->segment) {
      log_line(who_ + ": segment " + p->segment + " of shard " + std::to_string(shard) +
                   " was removed (retention) before its events were sent past byte " +
                   std::to_string(p->offset) + ": the rest of it is skipped; going on with " +
                   segs[i].name,
               LogLevel::kWarning);
      *p = {segs[i].name, 0};
    }
  }
  size_t got = 0;
  while (got < want) {
    // Whole lines only; read a little past `want` for lines skipped by type.
    auto r = storage::read_event_lines(segs[i].path, p->offset, want - got);
    if (!r) {
      if (r.error() != read_error_) {
        log_line(who_ + ": " + r.error(), LogLevel::kError);
        read_error_ = r.error();
      }
      return;
    }
    read_error_.clear();
    for (size_t k = 0; k < r->lines.size(); ++k) {
      if (wants(r->lines[k])) {
        lines->push_back(std::move(r->lines[k]));
        ++got;
      }
      p->offset = r->ends[k];
    }
    if (!r->lines.empty()) continue;  // maybe more in this segment
    // Nothing more here. A newer segment (listed before this read) means
    // this one is closed: what is left in it is a torn line.
    if (i + 1 == segs.size()) return;
    ++i;
    *p = {segs[i].name, 0};
  }
}

bool EventFeed::next_batch(const EventListing& listing, std::vector<std::string>* lines) {
  lines->clear();
  storage::EventCursor pos = acked_;
  const size_t want = batch_size_;
  // A fair share of the batch for each shard first, then the rest from any.
  const size_t share = std::max<size_t>(1, want / std::max<size_t>(1, listing.size()));
  for (size_t pass = 0; pass < 2 && lines->size() < want; ++pass) {
    for (const auto& [shard, segs] : listing) {
      if (lines->size() >= want) break;
      const size_t n = std::min(want - lines->size(), pass == 0 ? share : want);
      take(shard, segs, &pos[shard], n, lines);
    }
  }
  for (auto it = pos.begin(); it != pos.end();) {  // shards with no segment yet
    it = it->second.segment.empty() ? pos.erase(it) : std::next(it);
  }
  if (lines->empty()) {
    if (pos != acked_) {
      acked_ = std::move(pos);
      dirty_ = true;
    }
    return false;
  }
  batch_end_ = std::move(pos);
  return true;
}

void EventFeed::acked(int64_t now) {
  acked_ = std::move(batch_end_);
  batch_end_.clear();
  dirty_ = true;
  flush(now, false);
}

uint32_t EventFeed::failed() {
  backoff_s_ = backoff_s_ == 0 ? 1 : std::min(backoff_s_ * 2, max_backoff_s_);
  backoff_s_ = std::min(backoff_s_, max_backoff_s_);
  return backoff_s_;
}

}  // namespace ringmail::engine
