#include "engine/webhooks.h"

#include <curl/curl.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <map>

#include "engine/log.h"
#include "storage/event_cursor.h"
#include "storage/event_reader.h"
#include "storage/file_io.h"
#include "tls/hmac.h"

namespace ringmail::engine {
namespace {

// How often an endpoint with nothing to send looks for new lines.
constexpr int64_t kPollMs = 75;
// A cursor is written (fsync, rename, fsync of the directory) at most
// this often, and at stop. Each write forces a journal commit that the
// spool's fdatasyncs wait behind: one per 2xx cost half the relay rate
// at 10 sessions (docs/performance.md). A cursor behind by up to this
// much only means the events since are sent again after a crash; it
// never moves past an event that was not answered 2xx.
constexpr int64_t kCursorWriteMs = 100;

int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

std::vector<std::unique_ptr<WebhookCounters>>& counters_mut() {
  static std::vector<std::unique_ptr<WebhookCounters>> v;
  return v;
}

size_t discard(char*, size_t size, size_t n, void*) { return size * n; }

using Listing = std::map<uint32_t, std::vector<storage::EventSegment>>;

}  // namespace

const std::vector<std::unique_ptr<WebhookCounters>>& webhook_counters() { return counters_mut(); }

std::string webhook_signature(std::string_view secret, std::string_view body) {
  static const char kHex[] = "0123456789abcdef";
  const std::string mac = tls::hmac_sha256(secret, body);
  std::string out = "sha256=";
  for (unsigned char c : mac) {
    out += kHex[c >> 4];
    out += kHex[c & 15];
  }
  return out;
}

struct Webhooks::Endpoint {
  enum class State { kIdle, kSending, kWaiting };

  config::WebhookConfig cfg;
  std::string cursor_path;
  WebhookCounters* counters = nullptr;
  storage::EventCursor acked;  // acknowledged (durable unless cursor_dirty)
  bool cursor_dirty = false;
  int64_t cursor_written_ms = 0;
  // The batch in flight or waiting for its retry: sent again unchanged.
  std::string body;
  uint64_t count = 0;
  storage::EventCursor batch_end;
  CURL* easy = nullptr;
  curl_slist* headers = nullptr;
  State state = State::kIdle;
  int64_t next_ms = 0;  // kIdle: next look for lines; kWaiting: the retry
  uint32_t backoff_s = 0;
  bool down = false;
  std::string read_error;  // the last one logged, to log each once

  bool wants(std::string_view line) const {
    if (cfg.types.empty()) return true;
    const std::string_view t = storage::event_line_type(line);
    return std::find(cfg.types.begin(), cfg.types.end(), t) != cfg.types.end();
  }
  std::string who() const { return "webhook " + cfg.name; }
};

namespace {

using Endpoint = Webhooks::Endpoint;

void write_cursor(Endpoint& e) {
  if (auto r = storage::write_event_cursor(e.cursor_path, e.acked); !r) {
    log_line(e.who() + ": cannot write the cursor: " + r.error(), LogLevel::kError);
    e.cursor_dirty = true;  // tried again at the next move
    return;
  }
  e.cursor_dirty = false;
  e.cursor_written_ms = now_ms();
}

// The end of the log as it is: each shard's newest segment after its last
// complete line.
storage::EventCursor end_of(const Listing& all) {
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

// Reads up to `want` events of `e`'s types from one shard's segments
// from `*p` on, appending them to `lines`; `*p` moves past every line
// read (those of other types too).
void take(Endpoint& e, uint32_t shard, const std::vector<storage::EventSegment>& segs,
          storage::EventPosition* p, size_t want, std::vector<std::string>* lines) {
  if (segs.empty()) return;
  size_t i = 0;
  if (p->segment.empty()) {
    *p = {segs.front().name, 0};
  } else {
    while (i < segs.size() && segs[i].name < p->segment) ++i;
    if (i == segs.size()) return;  // nothing as new as the cursor (yet)
    if (segs[i].name != p->segment) {
      log_line(e.who() + ": segment " + p->segment + " of shard " + std::to_string(shard) +
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
      if (r.error() != e.read_error) {
        log_line(e.who() + ": " + r.error(), LogLevel::kError);
        e.read_error = r.error();
      }
      return;
    }
    e.read_error.clear();
    for (size_t k = 0; k < r->lines.size(); ++k) {
      if (e.wants(r->lines[k])) {
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

}  // namespace

Webhooks::Webhooks(std::vector<config::WebhookConfig> hooks, std::string events_dir)
    : hooks_(std::move(hooks)), dir_(std::move(events_dir)) {}

Webhooks::~Webhooks() {
  stop();
  join();
  for (auto& e : endpoints_) {
    if (e->easy != nullptr) {
      if (multi_ != nullptr) curl_multi_remove_handle(static_cast<CURLM*>(multi_), e->easy);
      curl_easy_cleanup(e->easy);
    }
    curl_slist_free_all(e->headers);
  }
  if (multi_ != nullptr) curl_multi_cleanup(static_cast<CURLM*>(multi_));
}

Result<void> Webhooks::start() {
  if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
    return Error{"webhooks: libcurl refused to start"};
  multi_ = curl_multi_init();
  if (multi_ == nullptr) return Error{"webhooks: curl_multi_init failed"};
  // The shards make the directory too; the cursors may be written first.
  storage::PosixFileIo io;
  if (const int r = io.make_dirs(dir_); r < 0) {
    return Error{"webhooks: cannot make " + dir_ + ": " + std::strerror(-r)};
  }
  auto listing = storage::list_event_segments(dir_);
  if (!listing) return Error{"webhooks: " + listing.error()};
  for (const config::WebhookConfig& h : hooks_) {
    auto e = std::make_unique<Endpoint>();
    e->cfg = h;
    e->cursor_path = dir_ + "/cursor-" + h.name;
    auto c = storage::read_event_cursor(e->cursor_path);
    if (!c) {
      // Never skip an event: without a readable cursor, send what the log
      // holds (duplicates are dropped by id at the receiver).
      log_line(e->who() + ": " + c.error() + "; sending the whole log again from its oldest event",
               LogLevel::kError);
      e->acked = {};
      write_cursor(*e);
    } else if (!c->has_value()) {
      e->acked = end_of(*listing);
      log_line(e->who() + ": new, starting at the end of the event log");
      write_cursor(*e);
    } else {
      e->acked = std::move(**c);
    }
    e->easy = curl_easy_init();
    if (e->easy == nullptr) return Error{"webhooks: curl_easy_init failed"};
    auto counters = std::make_unique<WebhookCounters>();
    counters->name = h.name;
    e->counters = counters.get();
    counters_mut().push_back(std::move(counters));
    endpoints_.push_back(std::move(e));
  }
  thread_ = std::thread([this] { run(); });
  log_line("webhooks: " + std::to_string(endpoints_.size()) + " endpoint" +
           (endpoints_.size() == 1 ? "" : "s") + " from " + dir_);
  return {};
}

void Webhooks::stop() {
  if (stop_.exchange(true)) return;
  if (multi_ != nullptr) curl_multi_wakeup(static_cast<CURLM*>(multi_));
}

void Webhooks::join() {
  if (thread_.joinable()) thread_.join();
}

void Webhooks::run() {
  CURLM* multi = static_cast<CURLM*>(multi_);
  Listing listing;
  int64_t listed_ms = -1;
  const auto send = [&](Endpoint& e) {
    CURL* h = e.easy;
    curl_easy_reset(h);
    curl_slist_free_all(e.headers);
    e.headers = nullptr;
    e.headers = curl_slist_append(e.headers, "Content-Type: application/json");
    e.headers = curl_slist_append(
        e.headers, ("X-Ringmail-Signature: " + webhook_signature(e.cfg.secret, e.body)).c_str());
    e.headers = curl_slist_append(e.headers, ("X-Ringmail-Webhook: " + e.cfg.name).c_str());
    e.headers = curl_slist_append(e.headers, "Expect:");  // no 100-continue round trip
    curl_easy_setopt(h, CURLOPT_URL, e.cfg.url.c_str());
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_PROXY, "");  // never a proxy from the environment
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_USERAGENT, "ringmail-webhook");
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, e.headers);
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, e.body.data());
    curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(e.body.size()));
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, static_cast<long>(e.cfg.timeout_s) * 1000);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, discard);
    curl_easy_setopt(h, CURLOPT_PRIVATE, &e);
    curl_multi_add_handle(multi, h);
    e.state = Endpoint::State::kSending;
  };
  // Forms `e`'s next batch from the log; true when there is one to send.
  const auto next_batch = [&](Endpoint& e, int64_t now) {
    if (listed_ms != now) {
      auto l = storage::list_event_segments(dir_);
      if (!l) {
        if (l.error() != e.read_error) log_line(e.who() + ": " + l.error(), LogLevel::kError);
        e.read_error = l.error();
        return false;
      }
      listing = std::move(*l);
      listed_ms = now;
    }
    storage::EventCursor pos = e.acked;
    std::vector<std::string> lines;
    const size_t want = e.cfg.batch_size;
    // A fair share of the batch for each shard first, then the rest from any.
    const size_t share = std::max<size_t>(1, want / std::max<size_t>(1, listing.size()));
    for (size_t pass = 0; pass < 2 && lines.size() < want; ++pass) {
      for (const auto& [shard, segs] : listing) {
        if (lines.size() >= want) break;
        const size_t n = std::min(want - lines.size(), pass == 0 ? share : want);
        take(e, shard, segs, &pos[shard], n, &lines);
      }
    }
    for (auto it = pos.begin(); it != pos.end();) {  // shards with no segment yet
      it = it->second.segment.empty() ? pos.erase(it) : std::next(it);
    }
    if (lines.empty()) {
      if (pos != e.acked) {
        e.acked = std::move(pos);
        e.cursor_dirty = true;
      }
      return false;
    }
    e.body = "[";
    for (size_t i = 0; i < lines.size(); ++i) {
      if (i != 0) e.body += ',';
      e.body += lines[i];
    }
    e.body += ']';
    e.count = lines.size();
    e.batch_end = std::move(pos);
    return true;
  };
  const auto finished = [&](Endpoint& e, CURLcode code) {
    long status = 0;
    curl_easy_getinfo(e.easy, CURLINFO_RESPONSE_CODE, &status);
    curl_multi_remove_handle(multi, e.easy);
    const int64_t now = now_ms();
    if (code == CURLE_OK && status >= 200 && status < 300) {
      e.acked = std::move(e.batch_end);
      e.batch_end.clear();
      e.cursor_dirty = true;
      if (now - e.cursor_written_ms >= kCursorWriteMs) write_cursor(e);
      e.counters->events_sent.fetch_add(e.count, std::memory_order_relaxed);
      e.body.clear();
      e.count = 0;
      e.backoff_s = 0;
      if (e.down) {
        e.down = false;
        e.counters->up.store(true, std::memory_order_relaxed);
        log_line(e.who() + ": back up (" + e.cfg.url + " answered " + std::to_string(status) + ")");
      }
      e.state = Endpoint::State::kIdle;
      e.next_ms = now;  // more may be waiting already
      return;
    }
    e.counters->failures.fetch_add(1, std::memory_order_relaxed);
    e.backoff_s = e.backoff_s == 0 ? 1 : std::min(e.backoff_s * 2, e.cfg.max_backoff_s);
    e.backoff_s = std::min(e.backoff_s, e.cfg.max_backoff_s);
    if (!e.down) {
      e.down = true;
      e.counters->up.store(false, std::memory_order_relaxed);
      const std::string why = code != CURLE_OK ? std::string(curl_easy_strerror(code))
                                               : "answered " + std::to_string(status);
      log_line(e.who() + ": down: " + e.cfg.url + " " + why + "; retrying the batch of " +
                   std::to_string(e.count) + " events with backoff up to " +
                   std::to_string(e.cfg.max_backoff_s) + " s",
               LogLevel::kWarning);
    }
    e.state = Endpoint::State::kWaiting;
    e.next_ms = now + int64_t{e.backoff_s} * 1000;
  };

  for (;;) {
    const bool stopping = stop_.load();
    int64_t now = now_ms();
    bool sending = false;
    for (auto& ep : endpoints_) {
      Endpoint& e = *ep;
      if (!stopping && e.state != Endpoint::State::kSending && e.next_ms <= now) {
        if (e.state == Endpoint::State::kWaiting || next_batch(e, now)) {
          send(e);
        } else {
          e.next_ms = now + kPollMs;
        }
      }
      if (e.cursor_dirty && (stopping || now - e.cursor_written_ms >= kCursorWriteMs)) {
        write_cursor(e);
      }
      sending = sending || e.state == Endpoint::State::kSending;
    }
    if (stopping && !sending) break;
    int64_t wait = kPollMs;
    for (auto& ep : endpoints_) {
      if (ep->state != Endpoint::State::kSending) wait = std::min(wait, ep->next_ms - now);
    }
    if (stopping) wait = kPollMs;
    if (wait > 0) curl_multi_poll(multi, nullptr, 0, static_cast<int>(wait), nullptr);
    int running = 0;
    curl_multi_perform(multi, &running);
    int left = 0;
    while (CURLMsg* m = curl_multi_info_read(multi, &left)) {
      if (m->msg != CURLMSG_DONE) continue;
      Endpoint* e = nullptr;
      curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, &e);
      if (e != nullptr) finished(*e, m->data.result);
    }
  }
  log_line("webhooks: stopped");
}

}  // namespace ringmail::engine
