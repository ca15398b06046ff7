// Test helper: run a parameterized engine test on both backends.
#pragma once

#include <gtest/gtest.h>

#include <string>

#include "engine/backend.h"

namespace ringmail::engine {

inline std::string backend_test_name(const ::testing::TestParamInfo<config::BackendKind>& info) {
  return info.param == config::BackendKind::kUring ? "uring" : "epoll";
}

#define RINGMAIL_ON_BOTH_BACKENDS(Suite)                                                        \
  INSTANTIATE_TEST_SUITE_P(                                                                     \
      Both, Suite, ::testing::Values(config::BackendKind::kUring, config::BackendKind::kEpoll), \
      backend_test_name)

}  // namespace ringmail::engine
