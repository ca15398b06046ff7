#include "engine/clock.h"

namespace ringmail::engine {

const Clock& system_clock() {
  static const SystemClock clock;
  return clock;
}

}  // namespace ringmail::engine
