#include "storage/event_log.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <set>

#include "storage/test_file_io.h"

namespace ringmail::storage {
namespace {

std::vector<std::string> segments(FileIo& io, const std::string& dir) {
  std::vector<std::string> names, out;
  EXPECT_EQ(io.list_dir(dir, &names), 0);
  for (auto& n : names) {
    uint64_t us = 0;
    uint32_t shard = 0;
    if (EventLog::parse_name(n, &us, &shard)) out.push_back(n);
  }
  std::sort(out.begin(), out.end());
  return out;
}

std::vector<std::string> lines_of(FileIo& io, const std::string& path) {
  std::string text;
  EXPECT_EQ(io.read_file(path, &text), 0);
  std::vector<std::string> out;
  size_t from = 0;
  for (size_t nl; (nl = text.find('\n', from)) != std::string::npos; from = nl + 1) {
    out.push_back(text.substr(from, nl - from));
  }
  return out;
}

struct Counter : DirSync::Waiter {
  int calls = 0;
  int result = 1;
  Counter() {
    done = [](DirSync::Waiter* w, int r) {
      auto* c = static_cast<Counter*>(w);
      ++c->calls;
      c->result = r;
    };
  }
};

TEST(EventLog, SegmentNames) {
  uint64_t us = 0;
  uint32_t shard = 0;
  EXPECT_TRUE(EventLog::parse_name("ev-00066202811b8004-1.jsonl", &us, &shard));
  EXPECT_EQ(us, 0x00066202811b8004u);
  EXPECT_EQ(shard, 1u);
  EXPECT_FALSE(EventLog::parse_name("ev-00066202811b8004-.jsonl", &us, &shard));
  EXPECT_FALSE(EventLog::parse_name("ev-0006620281zb8004-1.jsonl", &us, &shard));
  EXPECT_FALSE(EventLog::parse_name("seg-00066202811b8004-1", &us, &shard));
  EXPECT_FALSE(EventLog::parse_name("ev-00066202811b8004-1.json", &us, &shard));
}

TEST(EventLog, LinesGetIdsAndAreSyncedAtTheNextKick) {
  TempDir tmp;
  TestFileIo io;
  EventLog log(io, {tmp.path() + "/events", 3, 1 << 20, 7});
  ASSERT_EQ(log.open(), 0);
  ASSERT_EQ(log.append(R"({"type":"Reception","recipient":"a@example.org"})"), 0);
  ASSERT_EQ(log.append("{}"), 0);
  EXPECT_EQ(log.append("not an object"), -EINVAL);
  auto segs = segments(io, tmp.path() + "/events");
  ASSERT_EQ(segs.size(), 1u);
  auto lines = lines_of(io, tmp.path() + "/events/" + segs[0]);
  ASSERT_EQ(lines.size(), 2u);
  const std::string stem = segs[0].substr(3, 16);
  EXPECT_EQ(lines[0],
            "{\"id\":\"" + stem + "-3-0\",\"type\":\"Reception\",\"recipient\":\"a@example.org\"}");
  EXPECT_EQ(lines[1], "{\"id\":\"" + stem + "-3-" + std::to_string(lines[0].size() + 1) + "\"}");
  EXPECT_FALSE(log.idle());
  EXPECT_EQ(io.held(), 0u);  // nothing until the loop's kick
  log.kick();
  EXPECT_EQ(io.held(), 1u);
  log.kick();  // nothing new: no second round
  EXPECT_EQ(io.held(), 1u);
  EXPECT_EQ(io.complete_fsyncs(), 1u);
  EXPECT_TRUE(log.idle());
  EXPECT_EQ(log.fsyncs(), 1u);
  EXPECT_EQ(log.lines(), 2u);
}

// A waiter is answered by a round that began after it, never by the one
// already running.
TEST(EventLog, WaitersGetALaterRound) {
  TempDir tmp;
  TestFileIo io;
  EventLog log(io, {tmp.path(), 0, 1 << 20, 7});
  ASSERT_EQ(log.open(), 0);
  ASSERT_EQ(log.append("{\"n\":1}"), 0);
  log.kick();
  Counter c;
  log.sync_after(&c);
  log.kick();  // a round is running: c waits for the next
  ASSERT_EQ(io.complete_fsyncs(1), 1u);
  EXPECT_EQ(c.calls, 0);
  log.kick();
  ASSERT_EQ(io.complete_fsyncs(1), 1u);
  EXPECT_EQ(c.calls, 1);
  EXPECT_EQ(c.result, 0);
}

TEST(EventLog, RotatesBySizeAndKeepsIdsUnique) {
  TempDir tmp;
  TestFileIo io;
  EventLog log(io, {tmp.path(), 1, 200, 7});
  ASSERT_EQ(log.open(), 0);
  for (int i = 0; i < 20; ++i) {
    ASSERT_EQ(log.append("{\"n\":" + std::to_string(i) + ",\"pad\":\"xxxxxxxxxxxxxxxxxxxx\"}"), 0);
    log.kick();
  }
  for (int round = 0; round < 5 && !log.idle(); ++round) {
    io.complete_fsyncs();
    log.kick();
  }
  EXPECT_TRUE(log.idle());
  auto segs = segments(io, tmp.path());
  EXPECT_GE(segs.size(), 4u);
  std::set<std::string> ids;
  size_t n = 0;
  for (const auto& s : segs) {
    for (const auto& l : lines_of(io, tmp.path() + "/" + s)) {
      ids.insert(l.substr(0, l.find(',')));
      EXPECT_NE(l.find("\"n\":" + std::to_string(n)), std::string::npos) << l;
      ++n;
    }
  }
  EXPECT_EQ(n, 20u);
  EXPECT_EQ(ids.size(), 20u);
}

TEST(EventLog, EachStartBeginsANewSegment) {
  TempDir tmp;
  TestFileIo io;
  std::string first;
  {
    EventLog log(io, {tmp.path(), 0, 1 << 20, 7});
    ASSERT_EQ(log.open(), 0);
    ASSERT_EQ(log.append("{\"n\":1}"), 0);
    first = log.current_name();
  }
  EventLog log(io, {tmp.path(), 0, 1 << 20, 7});
  ASSERT_EQ(log.open(), 0);
  EXPECT_NE(log.current_name(), first);
  EXPECT_EQ(segments(io, tmp.path()).size(), 2u);
  EXPECT_EQ(lines_of(io, tmp.path() + "/" + first).size(), 1u);
}

TEST(EventLog, ExpiresClosedSegmentsPastTheRetention) {
  TempDir tmp;
  TestFileIo io;
  // Segments of shard 0 begun 30, 20 and 10 days ago (each closed when
  // the next began), one of shard 1 begun 30 days ago, and the current.
  const int64_t now = 1796600000;
  auto name = [](int64_t unix_s, int shard) {
    char b[64];
    std::snprintf(b, sizeof b, "ev-%016llx-%d.jsonl",
                  static_cast<unsigned long long>(unix_s) * 1000000ull, shard);
    return std::string(b);
  };
  for (auto [days, shard] : {std::pair{30, 0}, {20, 0}, {10, 0}, {30, 1}}) {
    int fd = io.create_and_write(tmp.path() + "/" + name(now - days * 86400, shard), {"{}\n"});
    ASSERT_GE(fd, 0);
    io.close(fd);
  }
  EventLog log(io, {tmp.path(), 0, 1 << 20, 15});
  ASSERT_EQ(log.open(), 0);
  log.expire(now);
  // The 30-day one closed 20 days ago: gone. The 20-day one closed 10
  // days ago: kept, as are the 10-day one, the current and shard 1's.
  std::vector<std::string> want = {name(now - 20 * 86400, 0), name(now - 10 * 86400, 0),
                                   name(now - 30 * 86400, 1), log.current_name()};
  std::sort(want.begin(), want.end());
  EXPECT_EQ(segments(io, tmp.path()), want);
}

TEST(EventLog, AFailedWriteIsNotInTheLog) {
  TempDir tmp;
  TestFileIo io;
  EventLog log(io, {tmp.path(), 0, 1 << 20, 7});
  ASSERT_EQ(log.open(), 0);
  io.fail_appends_with = -ENOSPC;
  io.fail_appends_after_bytes = 5;
  EXPECT_EQ(log.append("{\"n\":1}"), -ENOSPC);
  ASSERT_EQ(log.append("{\"n\":2}"), 0);
  auto lines = lines_of(io, tmp.path() + "/" + log.current_name());
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_NE(lines[0].find("\"n\":2"), std::string::npos);
  EXPECT_EQ(log.lines(), 1u);
}

}  // namespace
}  // namespace ringmail::storage
