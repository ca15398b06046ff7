#include "proto/quoted.h"

#include <gtest/gtest.h>

namespace ringmail::proto {
namespace {

TEST(Quoted, EscapesQuotesBackslashesAndControls) {
  EXPECT_EQ(quoted(""), "\"\"");
  EXPECT_EQ(quoted("plain text"), "\"plain text\"");
  EXPECT_EQ(quoted("a\"b\\c"), "\"a\\\"b\\\\c\"");
  EXPECT_EQ(quoted(std::string_view("\r\n\t\x7f\0", 5)), "\"\\u000d\\u000a\\u0009\\u007f\\u0000\"");
  EXPECT_EQ(quoted("caf\xc3\xa9"), "\"caf\xc3\xa9\"");  // UTF-8 stays as it is
}

}  // namespace
}  // namespace ringmail::proto
