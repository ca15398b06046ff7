// The engine's one source of time: wall-clock seconds (timestamps, SRS,
// retry schedules, session deadlines on the timer wheel) and monotonic
// milliseconds (durations, the loop's turn, delivery deferral). A shard
// reads it through the clock it was given, the system's in the daemon; a
// test gives it a ManualClock and moves time itself.
#pragma once

#include <time.h>

#include <atomic>
#include <cstdint>

namespace ringmail::engine {

class Clock {
 public:
  virtual ~Clock() = default;
  virtual int64_t wall_s() const = 0;   // seconds since the epoch
  virtual int64_t mono_ms() const = 0;  // milliseconds, never going back
};

// The kernel's coarse clocks: no system call, a few milliseconds of grain.
class SystemClock final : public Clock {
 public:
  int64_t wall_s() const override {
    timespec ts;
    clock_gettime(CLOCK_REALTIME_COARSE, &ts);
    return ts.tv_sec;
  }
  int64_t mono_ms() const override {
    timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
  }
};

// The process's SystemClock.
const Clock& system_clock();

// Time that moves only when the test says so (readable from any thread).
class ManualClock final : public Clock {
 public:
  explicit ManualClock(int64_t wall_s = 1'700'000'000, int64_t mono_ms = 1'000'000)
      : wall_s_(wall_s), mono_ms_(mono_ms) {}
  int64_t wall_s() const override { return wall_s_.load(); }
  int64_t mono_ms() const override { return mono_ms_.load(); }
  void advance_ms(int64_t ms) {
    mono_ms_ += ms;
    wall_s_ = wall_start_ + (mono_ms_.load() - mono_start_) / 1000;
  }

 private:
  std::atomic<int64_t> wall_s_;
  std::atomic<int64_t> mono_ms_;
  const int64_t wall_start_ = wall_s_.load();
  const int64_t mono_start_ = mono_ms_.load();
};

}  // namespace ringmail::engine
