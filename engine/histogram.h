// A Prometheus histogram for /metrics: counts of observations per bucket
// (upper bounds fixed at construction, +Inf implied) and their sum.
// Lock-free: one writer, the owning shard's thread, updates relaxed
// atomics; any thread may read them (a scrape sees each bucket whole, and
// _count is the sum of the buckets it read, so the series stay consistent
// with each other; _sum may lag by an observation).
#pragma once

#include <atomic>
#include <cassert>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <string>
#include <string_view>

namespace ringmail::engine {

class Histogram {
 public:
  static constexpr size_t kBoundsMax = 16;

  // `bounds`: increasing upper bounds (Prometheus' "le"), at most kBoundsMax.
  Histogram(std::initializer_list<double> bounds) {
    assert(bounds.size() <= kBoundsMax);
    for (double b : bounds) {
      assert(n_ == 0 || b > bounds_[n_ - 1]);
      bounds_[n_++] = b;
    }
  }
  Histogram(const Histogram&) = delete;
  Histogram& operator=(const Histogram&) = delete;

  // Owning thread only.
  void observe(double v) {
    size_t b = 0;
    while (b < n_ && v > bounds_[b]) ++b;
    counts_[b].store(counts_[b].load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
    sum_.store(sum_.load(std::memory_order_relaxed) + v, std::memory_order_relaxed);
  }

  // Any thread.
  size_t bounds() const { return n_; }
  double bound(size_t i) const { return bounds_[i]; }
  // Observations in bucket `i` alone (not cumulative); i == bounds(): above
  // the last bound.
  uint64_t bucket(size_t i) const { return counts_[i].load(std::memory_order_relaxed); }
  uint64_t count() const {
    uint64_t n = 0;
    for (size_t i = 0; i <= n_; ++i) n += bucket(i);
    return n;
  }
  double sum() const { return sum_.load(std::memory_order_relaxed); }

  // Appends NAME_bucket{LABELS,le="..."} (cumulative, +Inf last), NAME_sum
  // and NAME_count lines; `labels` is "" or a list like `shard="0"`. The
  // # HELP and # TYPE lines are the caller's (one per family).
  void append_text(std::string* out, std::string_view name, std::string_view labels) const;

 private:
  double bounds_[kBoundsMax] = {};
  size_t n_ = 0;
  std::atomic<uint64_t> counts_[kBoundsMax + 1] = {};
  std::atomic<double> sum_{0};
};

}  // namespace ringmail::engine
