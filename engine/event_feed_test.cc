#include "engine/event_feed.h"

#include <gtest/gtest.h>

#include <fstream>

#include "storage/test_file_io.h"

namespace ringmail::engine {
namespace {

void append(const std::string& path, const std::string& text) {
  std::ofstream f(path, std::ios::binary | std::ios::app);
  f << text;
}

std::string line(int n, const char* type) {
  return "{\"id\":\"e" + std::to_string(n) + "\",\"type\":\"" + type + "\"}";
}

EventListing listing_of(const std::string& dir) {
  auto l = storage::list_event_segments(dir);
  EXPECT_TRUE(l) << l.error();
  return l ? *l : EventListing{};
}

TEST(EventFeed, StartsAtTheEndAndMovesOnlyPastAckedBatches) {
  storage::TempDir d;
  const std::string seg = d.path() + "/ev-0000000000000001-0.jsonl";
  append(seg, line(1, "Reception") + "\n");
  EventFeed feed("test", d.path() + "/cursor-test", {"Delivery"}, 2, 4);
  feed.open(listing_of(d.path()));  // new: at the end, e1 is history
  append(seg, line(2, "Delivery") + "\n" + line(3, "Reception") + "\n" + line(4, "Delivery") +
                  "\n" + line(5, "Delivery") + "\n" + line(6, "Delivery"));  // e6 torn
  std::vector<std::string> lines;
  ASSERT_TRUE(feed.next_batch(listing_of(d.path()), &lines));
  EXPECT_EQ(lines, (std::vector<std::string>{line(2, "Delivery"), line(4, "Delivery")}));
  // Not acked: the same batch again.
  ASSERT_TRUE(feed.next_batch(listing_of(d.path()), &lines));
  EXPECT_EQ(lines.front(), line(2, "Delivery"));
  feed.acked(0);
  feed.flush(0, true);
  ASSERT_TRUE(feed.next_batch(listing_of(d.path()), &lines));
  EXPECT_EQ(lines, (std::vector<std::string>{line(5, "Delivery")}));
  feed.acked(0);
  feed.flush(0, true);
  EXPECT_FALSE(feed.next_batch(listing_of(d.path()), &lines));

  // A second feed on the same cursor file goes on from there.
  EventFeed again("test", d.path() + "/cursor-test", {}, 10, 4);
  again.open(listing_of(d.path()));
  append(seg, "\n");  // e6 complete
  ASSERT_TRUE(again.next_batch(listing_of(d.path()), &lines));
  EXPECT_EQ(lines, (std::vector<std::string>{line(6, "Delivery")}));
}

TEST(EventFeed, BackoffDoublesUpToTheMaximum) {
  storage::TempDir d;
  EventFeed feed("test", d.path() + "/cursor-test", {}, 1, 5);
  EXPECT_EQ(feed.failed(), 1u);
  EXPECT_EQ(feed.failed(), 2u);
  EXPECT_EQ(feed.failed(), 4u);
  EXPECT_EQ(feed.failed(), 5u);
  feed.succeeded();
  EXPECT_EQ(feed.failed(), 1u);
}

TEST(EventFeed, EventLineId) {
  EXPECT_EQ(storage::event_line_id(line(7, "Bounce")), "e7");
  EXPECT_EQ(storage::event_line_id("{\"type\":\"x\",\"id\":\"no\"}"), "");
}

}  // namespace
}  // namespace ringmail::engine
