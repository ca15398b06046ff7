#include "storage/event_cursor.h"

#include <gtest/gtest.h>

#include "storage/test_file_io.h"

namespace ringmail::storage {
namespace {

constexpr auto& write = write_test_file;
constexpr const char* kSeg0 = kTestSegment0;
constexpr const char* kSeg0b = kTestSegment0b;
constexpr const char* kSeg1 = kTestSegment1;

TEST(EventCursor, RoundTrip) {
  TempDir d;
  const std::string p = d.path() + "/cursor-hook";
  auto missing = read_event_cursor(p);
  ASSERT_TRUE(missing);
  EXPECT_FALSE(missing->has_value());
  EventCursor c;
  c[0] = {kSeg0b, 4096};
  c[1] = {kSeg1, 0};
  ASSERT_TRUE(write_event_cursor(p, c));
  auto back = read_event_cursor(p);
  ASSERT_TRUE(back) << back.error();
  ASSERT_TRUE(back->has_value());
  EXPECT_EQ(**back, c);
  c[0].offset = 8192;
  ASSERT_TRUE(write_event_cursor(p, c));
  back = read_event_cursor(p);
  ASSERT_TRUE(back);
  EXPECT_EQ((**back)[0].offset, 8192u);
}

TEST(EventCursor, GarbageIsAClearError) {
  const std::string head = "ringmail-event-cursor 1\n";
  EXPECT_EQ(parse_event_cursor("").error(),
            "line 1: not a ringmail event cursor (no 'ringmail-event-cursor 1')");
  EXPECT_EQ(parse_event_cursor("\x01\x02garbage").error(),
            "line 1: not a ringmail event cursor (no 'ringmail-event-cursor 1')");
  EXPECT_EQ(parse_event_cursor(head + "0 " + kSeg0 + " 12").error(),
            "the last line has no newline (torn)");
  EXPECT_EQ(parse_event_cursor(head + "0 " + kSeg0 + " x\n").error(),
            "line 2: the offset is not a number");
  EXPECT_EQ(parse_event_cursor(head + "1 " + kSeg0 + " 1\n").error(),
            "line 2: not a segment name of that shard");
  EXPECT_EQ(parse_event_cursor(head + "0 " + kSeg0 + " 1\n0 " + kSeg0b + " 2\n").error(),
            "line 3: a shard named twice");
  EXPECT_EQ(parse_event_cursor(head + "zero\n").error(),
            "line 2: not '<shard> <segment> <offset>'");
  auto empty = parse_event_cursor(head);
  ASSERT_TRUE(empty);
  EXPECT_TRUE(empty->empty());
  TempDir d;
  write(d.path() + "/cursor-x", head + "0 ev-");
  auto r = read_event_cursor(d.path() + "/cursor-x");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error(), d.path() + "/cursor-x: the last line has no newline (torn)");
}

}  // namespace
}  // namespace ringmail::storage
