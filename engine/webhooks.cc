#include "engine/webhooks.h"

#include <curl/curl.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <map>

#include "engine/event_feed.h"
#include "engine/log.h"
#include "storage/file_io.h"
#include "tls/hmac.h"

namespace ringmail::engine {
namespace {

std::vector<std::unique_ptr<WebhookCounters>>& counters_mut() {
  static std::vector<std::unique_ptr<WebhookCounters>> v;
  return v;
}

size_t discard(char*, size_t size, size_t n, void*) { return size * n; }

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

  Endpoint(const config::WebhookConfig& c, const std::string& dir)
      : cfg(c),
        feed("webhook " + c.name, dir + "/cursor-" + c.name, c.types, c.batch_size,
             c.max_backoff_s) {}

  config::WebhookConfig cfg;
  EventFeed feed;
  WebhookCounters* counters = nullptr;
  // The batch in flight or waiting for its retry: sent again unchanged.
  std::string body;
  uint64_t count = 0;
  CURL* easy = nullptr;
  curl_slist* headers = nullptr;
  State state = State::kIdle;
  int64_t next_ms = 0;  // kIdle: next look for lines; kWaiting: the retry
  bool down = false;
};

using Endpoint = Webhooks::Endpoint;

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
    auto e = std::make_unique<Endpoint>(h, dir_);
    e->feed.open(*listing);
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
  EventListing listing;
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
    std::vector<std::string> lines;
    if (!e.feed.list(dir_, now, &listing, &listed_ms) || !e.feed.next_batch(listing, &lines)) {
      return false;
    }
    e.body = "[";
    for (size_t i = 0; i < lines.size(); ++i) {
      if (i != 0) e.body += ',';
      e.body += lines[i];
    }
    e.body += ']';
    e.count = lines.size();
    return true;
  };
  const auto finished = [&](Endpoint& e, CURLcode code) {
    long status = 0;
    curl_easy_getinfo(e.easy, CURLINFO_RESPONSE_CODE, &status);
    curl_multi_remove_handle(multi, e.easy);
    const int64_t now = steady_now_ms();
    if (code == CURLE_OK && status >= 200 && status < 300) {
      e.feed.acked(now);
      e.counters->events_sent.fetch_add(e.count, std::memory_order_relaxed);
      e.body.clear();
      e.count = 0;
      e.feed.succeeded();
      if (e.down) {
        e.down = false;
        e.counters->up.store(true, std::memory_order_relaxed);
        log_line(e.feed.who() + ": back up (" + e.cfg.url + " answered " + std::to_string(status) +
                 ")");
      }
      e.state = Endpoint::State::kIdle;
      e.next_ms = now;  // more may be waiting already
      return;
    }
    e.counters->failures.fetch_add(1, std::memory_order_relaxed);
    const uint32_t backoff_s = e.feed.failed();
    if (!e.down) {
      e.down = true;
      e.counters->up.store(false, std::memory_order_relaxed);
      const std::string why = code != CURLE_OK ? std::string(curl_easy_strerror(code))
                                               : "answered " + std::to_string(status);
      log_line(e.feed.who() + ": down: " + e.cfg.url + " " + why + "; retrying the batch of " +
                   std::to_string(e.count) + " events with backoff up to " +
                   std::to_string(e.cfg.max_backoff_s) + " s",
               LogLevel::kWarning);
    }
    e.state = Endpoint::State::kWaiting;
    e.next_ms = now + int64_t{backoff_s} * 1000;
  };

  for (;;) {
    const bool stopping = stop_.load();
    int64_t now = steady_now_ms();
    bool sending = false;
    for (auto& ep : endpoints_) {
      Endpoint& e = *ep;
      if (!stopping && e.state != Endpoint::State::kSending && e.next_ms <= now) {
        if (e.state == Endpoint::State::kWaiting || next_batch(e, now)) {
          send(e);
        } else {
          e.next_ms = now + kEventPollMs;
        }
      }
      e.feed.flush(now, stopping);
      sending = sending || e.state == Endpoint::State::kSending;
    }
    if (stopping && !sending) break;
    int64_t wait = kEventPollMs;
    for (auto& ep : endpoints_) {
      if (ep->state != Endpoint::State::kSending) wait = std::min(wait, ep->next_ms - now);
    }
    if (stopping) wait = kEventPollMs;
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
