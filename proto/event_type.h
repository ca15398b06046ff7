// The names of the event log's event types (docs/events.md, "Records"),
// as `"type"` carries them: what `[[events.webhook]] types` and `ringmail
// events tail --type` accept.
#pragma once

#include <algorithm>
#include <iterator>
#include <string_view>

namespace ringmail::proto {

inline constexpr std::string_view kEventTypeNames[] = {
    "Reception",   "Delivery",   "TransientFailure", "Bounce", "Expiration",
    "AdminBounce", "Suppressed", "Unsubscribe",      "OOB",    "Feedback"};

inline bool is_event_type_name(std::string_view name) {
  return std::find(std::begin(kEventTypeNames), std::end(kEventTypeNames), name) !=
         std::end(kEventTypeNames);
}

}  // namespace ringmail::proto
