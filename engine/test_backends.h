// Test helper: run a parameterized engine test on both backends.
#pragma once

#include <gtest/gtest.h>

#include <string>

#include "engine/backend.h"

namespace ringmail::engine {

inline std::string backend_test_name(const ::testing::TestParamInfo<BackendKind>& info) {
  return info.param == BackendKind::kUring ? "uring" : "epoll";
}

#define RINGMAIL_ON_BOTH_BACKENDS(Suite) \
  INSTANTIATE_TEST_SUITE_P(              \
      Both, Suite, ::testing::Values(BackendKind::kUring, BackendKind::kEpoll), backend_test_name)

}  // namespace ringmail::engine
