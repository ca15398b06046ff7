#include "storage/event_reader.h"

#include <gtest/gtest.h>

#include "storage/test_file_io.h"

namespace ringmail::storage {
namespace {

constexpr auto& write = write_test_file;
constexpr const char* kSeg0 = kTestSegment0;
constexpr const char* kSeg0b = kTestSegment0b;
constexpr const char* kSeg1 = kTestSegment1;

TEST(EventReader, ListsSegmentsByShardInOrder) {
  TempDir d;
  write(d.path() + "/" + kSeg0b, "");
  write(d.path() + "/" + kSeg0, "");
  write(d.path() + "/" + kSeg1, "");
  write(d.path() + "/cursor-x", "");
  auto all = list_event_segments(d.path());
  ASSERT_TRUE(all) << all.error();
  ASSERT_EQ(all->size(), 2u);
  ASSERT_EQ(all->at(0).size(), 2u);
  EXPECT_EQ(all->at(0)[0].name, kSeg0);
  EXPECT_EQ(all->at(0)[1].name, kSeg0b);
  EXPECT_EQ(all->at(1)[0].path, d.path() + "/" + kSeg1);
  auto none = list_event_segments(d.path() + "/missing");
  ASSERT_TRUE(none);
  EXPECT_TRUE(none->empty());
}

TEST(EventReader, TornLastLineIsNotReturned) {
  TempDir d;
  const std::string p = d.path() + "/" + kSeg0;
  write(p, "{\"id\":\"a\",\"type\":\"Reception\"}\n{\"id\":\"b\"}\n{\"id\":\"c\",\"ty");
  auto r = read_event_lines(p, 0);
  ASSERT_TRUE(r) << r.error();
  ASSERT_EQ(r->lines.size(), 2u);
  EXPECT_EQ(r->lines[0], "{\"id\":\"a\",\"type\":\"Reception\"}");
  EXPECT_EQ(r->lines[1], "{\"id\":\"b\"}");
  EXPECT_EQ(r->ends[0], 30u);
  EXPECT_EQ(r->ends[1], 41u);
  EXPECT_EQ(event_line_type(r->lines[0]), "Reception");
  EXPECT_EQ(event_line_type(r->lines[1]), "");
  // From the second line's end: nothing complete until the newline comes.
  auto rest = read_event_lines(p, r->ends[1]);
  ASSERT_TRUE(rest);
  EXPECT_TRUE(rest->lines.empty());
  write(p, "{\"id\":\"a\",\"type\":\"Reception\"}\n{\"id\":\"b\"}\n{\"id\":\"c\"}\n");
  rest = read_event_lines(p, r->ends[1]);
  ASSERT_TRUE(rest);
  ASSERT_EQ(rest->lines.size(), 1u);
  EXPECT_EQ(rest->lines[0], "{\"id\":\"c\"}");
}

TEST(EventReader, StopsAtLinesMaxAndReadsLongLines) {
  TempDir d;
  const std::string p = d.path() + "/" + kSeg0;
  const std::string big(600 * 1024, 'x');  // longer than one read
  write(p, "a\n" + big + "\nb\nc\n");
  auto r = read_event_lines(p, 0, 2);
  ASSERT_TRUE(r);
  ASSERT_EQ(r->lines.size(), 2u);
  EXPECT_EQ(r->lines[1], big);
  auto rest = read_event_lines(p, r->ends[1]);
  ASSERT_TRUE(rest);
  ASSERT_EQ(rest->lines.size(), 2u);
  EXPECT_EQ(rest->lines[0], "b");
  EXPECT_EQ(rest->ends[1], r->ends[1] + 4);
  auto gone = read_event_lines(d.path() + "/" + kSeg1, 0);
  EXPECT_FALSE(gone);
}

}  // namespace
}  // namespace ringmail::storage
