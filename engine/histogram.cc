#include "engine/histogram.h"

#include <cstdio>

namespace ringmail::engine {

void Histogram::append_text(std::string* out, std::string_view name,
                            std::string_view labels) const {
  const std::string n(name);
  const std::string sep = labels.empty() ? "" : std::string(labels) + ",";
  uint64_t cumulative = 0;
  char le[64];
  for (size_t b = 0; b <= n_; ++b) {
    cumulative += bucket(b);
    if (b < n_) {
      std::snprintf(le, sizeof le, "%g", bounds_[b]);
    } else {
      std::snprintf(le, sizeof le, "+Inf");
    }
    *out += n + "_bucket{" + sep + "le=\"" + le + "\"} " + std::to_string(cumulative) + "\n";
  }
  char num[64];
  std::snprintf(num, sizeof num, "%.17g", sum());
  const std::string braces = labels.empty() ? "" : "{" + std::string(labels) + "}";
  *out += n + "_sum" + braces + " " + std::string(num) + "\n";
  *out += n + "_count" + braces + " " + std::to_string(cumulative) + "\n";
}

}  // namespace ringmail::engine
