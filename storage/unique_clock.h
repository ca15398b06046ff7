// Microseconds since the epoch, strictly increasing per instance: names that
// must be unique across restarts (message ids, spool segments) as long as
// the wall clock does not go back by more than the run's own advance.
#pragma once

#include <cstdint>
#include <ctime>

namespace ringmail::storage {

class UniqueClock {
 public:
  uint64_t next_us() {
    timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t us =
        static_cast<uint64_t>(ts.tv_sec) * 1000000u + static_cast<uint64_t>(ts.tv_nsec) / 1000u;
    if (us <= last_us_) us = last_us_ + 1;
    last_us_ = us;
    return us;
  }

 private:
  uint64_t last_us_ = 0;
};

}  // namespace ringmail::storage
