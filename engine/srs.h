// SRS in the daemon ([srs], docs/aliases.md "Forwarding"): the secrets file
// (made on first start when absent) and the proto::srs configuration the
// shards use to rewrite the envelope sender of forwarded mail and to take
// bounces to rewritten addresses back.
#pragma once

#include <memory>
#include <string>

#include "config/config.h"
#include "proto/result.h"
#include "proto/srs.h"

namespace ringmail::engine {

// The SRS configuration, null when SRS is off ([srs] enabled = false), or
// an error when the secrets file can be neither read nor made.
Result<std::shared_ptr<const proto::srs::Config>> load_srs(const config::Config& cfg);

}  // namespace ringmail::engine
