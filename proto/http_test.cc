#include "proto/http.h"

#include <gtest/gtest.h>

namespace ringmail::proto {
namespace {

TEST(Http, GetWithQueryAndHeaders) {
  HttpRequestReader r;
  std::vector<HttpRequest> out;
  ASSERT_TRUE(r.feed(
      "GET /api/queue?domain=example.com HTTP/1.1\r\nHost: x\r\nX-Thing: A b\r\n\r\n", &out));
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].method, "GET");
  EXPECT_EQ(out[0].path, "/api/queue");
  EXPECT_EQ(out[0].query, "domain=example.com");
  EXPECT_EQ(out[0].header("x-thing"), "A b");
  EXPECT_EQ(out[0].header("host"), "x");
  EXPECT_TRUE(out[0].keep_alive);
}

TEST(Http, PipelinedAndSplitByteByByte) {
  const std::string two =
      "POST /a HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello"
      "GET /b HTTP/1.1\r\nConnection: close\r\n\r\n";
  HttpRequestReader r;
  std::vector<HttpRequest> out;
  for (char c : two) ASSERT_TRUE(r.feed(std::string_view(&c, 1), &out));
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out[0].body, "hello");
  EXPECT_TRUE(out[0].keep_alive);
  EXPECT_EQ(out[1].path, "/b");
  EXPECT_FALSE(out[1].keep_alive);
  HttpRequestReader whole;
  out.clear();
  ASSERT_TRUE(whole.feed(two, &out));
  EXPECT_EQ(out.size(), 2u);
}

TEST(Http, ChunkedBodyAndHttp10) {
  HttpRequestReader r;
  std::vector<HttpRequest> out;
  ASSERT_TRUE(r.feed(
      "POST /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n",
      &out));
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].body, "abcde");
  HttpRequestReader old;
  out.clear();
  ASSERT_TRUE(old.feed("GET / HTTP/1.0\r\n\r\n", &out));
  ASSERT_EQ(out.size(), 1u);
  EXPECT_FALSE(out[0].keep_alive);
}

TEST(Http, Refusals) {
  std::vector<HttpRequest> out;
  HttpRequestReader big(10);
  EXPECT_FALSE(big.feed("POST / HTTP/1.1\r\nContent-Length: 11\r\n\r\n", &out));
  EXPECT_EQ(big.status(), 413);
  HttpRequestReader chunky(4);
  EXPECT_FALSE(
      chunky.feed("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nabcde\r\n", &out));
  EXPECT_EQ(chunky.status(), 413);
  HttpRequestReader garbage;
  EXPECT_FALSE(garbage.feed("HELO there\r\n\r\n", &out));
  EXPECT_EQ(garbage.status(), 400);
  EXPECT_FALSE(garbage.feed("GET / HTTP/1.1\r\n\r\n", &out));  // stays broken
  HttpRequestReader fields;
  EXPECT_FALSE(fields.feed("GET / HTTP/1.1\r\nX: " + std::string(20000, 'a') + "\r\n\r\n", &out));
  EXPECT_EQ(fields.status(), 431);
  HttpRequestReader upgrade;
  EXPECT_FALSE(
      upgrade.feed("GET / HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n", &out));
  EXPECT_EQ(upgrade.status(), 400);
  EXPECT_TRUE(out.empty());
}

TEST(Http, ExpectContinueIsAskedForOnceWhileTheBodyIsAwaited) {
  std::vector<HttpRequest> out;
  HttpRequestReader r;
  ASSERT_TRUE(
      r.feed("POST /a HTTP/1.1\r\nExpect: 100-Continue\r\nContent-Length: 3\r\n\r\n", &out));
  EXPECT_TRUE(r.take_continue());
  EXPECT_FALSE(r.take_continue());  // once
  ASSERT_TRUE(r.feed("abc", &out));
  ASSERT_EQ(out.size(), 1u);
  // A request that came whole needs none; nor one without the header.
  ASSERT_TRUE(
      r.feed("POST /b HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\nx"
             "POST /c HTTP/1.1\r\nContent-Length: 2\r\n\r\n",
             &out));
  EXPECT_EQ(out.size(), 2u);
  EXPECT_FALSE(r.take_continue());
  // Too large: refused, not continued.
  HttpRequestReader small(10);
  EXPECT_FALSE(
      small.feed("POST / HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 11\r\n\r\n", &out));
  EXPECT_FALSE(small.take_continue());
  EXPECT_EQ(small.path(), "/");
}

TEST(Http, Response) {
  EXPECT_EQ(http_response(404, "text/plain", "no\n", true),
            "HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\nContent-Length: 3\r\n\r\nno\n");
  EXPECT_NE(http_response(200, "text/plain", "", false).find("Connection: close\r\n"),
            std::string::npos);
}

TEST(Http, Query) {
  std::vector<std::pair<std::string, std::string>> q;
  std::string bad;
  ASSERT_TRUE(parse_query("domain=example.net&sender=a%40b.test&&limit=5&x&note=a+b", &q, &bad));
  ASSERT_EQ(q.size(), 5u);
  EXPECT_EQ(q[0], (std::pair<std::string, std::string>{"domain", "example.net"}));
  EXPECT_EQ(q[1].second, "a@b.test");
  EXPECT_EQ(q[2].second, "5");
  EXPECT_EQ(q[3], (std::pair<std::string, std::string>{"x", ""}));
  EXPECT_EQ(q[4].second, "a b");
  q.clear();
  EXPECT_FALSE(parse_query("a=1&b=%4", &q, &bad));
  EXPECT_EQ(bad, "b=%4");
  EXPECT_FALSE(parse_query("c=%zz", &q, &bad));
  EXPECT_EQ(bad, "c=%zz");
  std::string seg;
  ASSERT_TRUE(percent_decode("b%C3%BCcher.test+x", &seg));
  EXPECT_EQ(seg,
            "b\xC3\xBC"
            "cher.test+x");
  EXPECT_FALSE(percent_decode("a%2", &seg));
}

}  // namespace
}  // namespace ringmail::proto
