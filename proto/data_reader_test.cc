#include "proto/data_reader.h"

#include <gtest/gtest.h>

#include <random>

namespace ringmail::proto {
namespace {

struct Outcome {
  DataReader::Status status;
  size_t consumed;
  std::string out;
  DataReader::Findings findings;
};

// Feeds `in` in pieces of `piece` bytes (0 = all at once).
Outcome read_dot(std::string_view in, size_t piece = 0, size_t max = 1 << 20) {
  Outcome o{};
  DataReader r(DataReader::Mode::kDotTerminated, &o.out, max);
  size_t pos = 0;
  o.status = DataReader::Status::kMore;
  while (pos < in.size() && o.status == DataReader::Status::kMore) {
    size_t n = piece == 0 ? in.size() - pos : std::min(piece, in.size() - pos);
    size_t used = 0;
    o.status = r.feed(in.substr(pos, n), used);
    pos += used;
  }
  o.consumed = pos;
  o.findings = r.findings();
  return o;
}

TEST(DataReader, EndsAtDotLineAndUnstuffs) {
  std::string in = "Subject: x\r\n\r\n..leading dot\r\n.\r\nMAIL FROM";
  for (size_t piece : {0, 1, 2, 3, 7}) {
    Outcome o = read_dot(in, piece);
    EXPECT_EQ(o.status, DataReader::Status::kDone) << piece;
    EXPECT_EQ(o.out, "Subject: x\r\n\r\n.leading dot\r\n") << piece;
    EXPECT_EQ(in.substr(o.consumed), "MAIL FROM") << piece;
  }
}

TEST(DataReader, EmptyMessage) {
  Outcome o = read_dot(".\r\n");
  EXPECT_EQ(o.status, DataReader::Status::kDone);
  EXPECT_EQ(o.out, "");
}

TEST(DataReader, DotFollowedByTextIsNotTheEnd) {
  Outcome o = read_dot(". \r\n.x\r\n.\r\n");
  EXPECT_EQ(o.status, DataReader::Status::kDone);
  EXPECT_EQ(o.out, " \r\nx\r\n");
}

// SMTP smuggling: every non-CRLF line ending is fatal, wherever it is.
TEST(DataReader, BareLineEndingsAreFatal) {
  for (std::string_view in : {"a\n.\n", "a\r\n.\n", "a\n.\r\n", "a\r.\r", "a\rb\r\n.\r\n",
                              "mid\nline\r\n.\r\n", "x\r\n.\r\r\n"}) {
    for (size_t piece : {0, 1, 2}) {
      Outcome o = read_dot(in, piece);
      EXPECT_EQ(o.status, DataReader::Status::kBareLineEnding) << piece << " " << in;
    }
  }
}

TEST(DataReader, LongLine) {
  std::string ok(998, 'a');
  EXPECT_FALSE(read_dot(ok + "\r\n.\r\n").findings.line_too_long);
  Outcome o = read_dot(ok + "b\r\n.\r\n", 100);
  EXPECT_EQ(o.status, DataReader::Status::kDone);
  EXPECT_TRUE(o.findings.line_too_long);
}

TEST(DataReader, SizeLimitCountsButDrops) {
  Outcome o = read_dot("0123456789\r\n.\r\n", 3, 5);
  EXPECT_EQ(o.status, DataReader::Status::kDone);
  EXPECT_TRUE(o.findings.too_big);
  EXPECT_LE(o.out.size(), 5u);
}

TEST(DataReader, CountsReceivedHeadersOnlyInHeaderSection) {
  std::string in =
      "Received: a\r\n\tcont\r\nRECEIVED: b\r\nX-Received: c\r\nReceived:d\r\n\r\n"
      "Received: in body\r\n.\r\n";
  for (size_t piece : {0, 1, 4}) {
    EXPECT_EQ(read_dot(in, piece).findings.received_headers, 3u) << piece;
  }
}

TEST(DataReader, ChunkedReadsExactlyTheChunk) {
  std::string out;
  DataReader r(DataReader::Mode::kChunked, &out, 1 << 20);
  r.begin_chunk(5);
  size_t used = 0;
  EXPECT_EQ(r.feed(".a\r\nbRSET\r\n", used), DataReader::Status::kDone);
  EXPECT_EQ(used, 5u);
  EXPECT_EQ(out, ".a\r\nb");  // no unstuffing in BDAT
  r.begin_chunk(3);
  EXPECT_EQ(r.feed("c\r\n", used), DataReader::Status::kDone);
  r.finish_chunked();
  EXPECT_FALSE(r.findings().bare_line_ending);
  EXPECT_EQ(out, ".a\r\nbc\r\n");
}

TEST(DataReader, ChunkedNotesBareLineEndings) {
  std::string out;
  DataReader r(DataReader::Mode::kChunked, &out, 1 << 20);
  r.begin_chunk(4);
  size_t used = 0;
  EXPECT_EQ(r.feed("a\nb\n", used), DataReader::Status::kDone);
  EXPECT_TRUE(r.findings().bare_line_ending);
}

// Regression (issue 19, defect 9): BDAT LAST content without a final CRLF
// got "554 5.6.0 Bare CR or LF line ending", though it has neither; it is
// accepted and ended with CRLF.
TEST(DataReader, ChunkedMissingFinalCrlfIsEndedNotRefused) {
  std::string out;
  DataReader r(DataReader::Mode::kChunked, &out, 1 << 20);
  r.begin_chunk(17);
  size_t used = 0;
  EXPECT_EQ(r.feed("Subject: x\r\n\r\nabc", used), DataReader::Status::kDone);
  r.finish_chunked();
  EXPECT_FALSE(r.findings().bare_line_ending);
  EXPECT_EQ(out, "Subject: x\r\n\r\nabc\r\n");
}

TEST(DataReader, ChunkedFinalLoneCrIsBare) {
  std::string out;
  DataReader r(DataReader::Mode::kChunked, &out, 1 << 20);
  r.begin_chunk(4);
  size_t used = 0;
  EXPECT_EQ(r.feed("abc\r", used), DataReader::Status::kDone);
  r.finish_chunked();
  EXPECT_TRUE(r.findings().bare_line_ending);
}

// Any split of a valid message gives the same content.
TEST(DataReader, RandomSplitsAgree) {
  std::mt19937 rng(42);
  std::string msg;
  for (int i = 0; i < 300; ++i) {
    int len = static_cast<int>(rng() % 120);
    std::string line;
    for (int k = 0; k < len; ++k) line += static_cast<char>('!' + rng() % 90);
    if (rng() % 5 == 0) line = "." + line;
    msg += line + "\r\n";
  }
  std::string stuffed;
  std::string expect;
  size_t start = 0;
  while (start < msg.size()) {
    size_t e = msg.find("\r\n", start) + 2;
    std::string line = msg.substr(start, e - start);
    expect += line;
    stuffed += (line[0] == '.' ? "." : "") + line;
    start = e;
  }
  stuffed += ".\r\n";
  for (size_t piece : {1, 2, 5, 16, 17, 64, 1000}) {
    Outcome o = read_dot(stuffed, piece);
    ASSERT_EQ(o.status, DataReader::Status::kDone) << piece;
    EXPECT_EQ(o.out, expect) << piece;
  }
}

TEST(FindCrOrLf, AllPositions) {
  for (size_t n = 0; n < 40; ++n) {
    for (size_t at = 0; at <= n; ++at) {
      std::string s(n, 'x');
      if (at < n) s[at] = (at % 2) ? '\r' : '\n';
      EXPECT_EQ(find_cr_or_lf(s.data(), s.data() + n) - s.data(), static_cast<long>(at));
    }
  }
}

}  // namespace
}  // namespace ringmail::proto
