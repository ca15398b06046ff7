// HTTP/1.1 requests read from a byte stream with Debian's http-parser
// (the parser node.js used; not hand-written), for ringmaild's HTTP
// listener (/metrics, /healthz, later the injection API). Pure parsing: the
// engine owns the socket. Requests come out whole, in order, pipelined ones
// included; responses are built by http_response().
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace ringmail::proto {

struct HttpRequest {
  std::string method;                                        // "GET", "POST", ...
  std::string path;                                          // the URL's path, without the query
  std::string query;                                         // after '?', or ""
  std::vector<std::pair<std::string, std::string>> headers;  // names lower case
  std::string body;
  bool keep_alive = true;
  // The first header of this name (lower case), or "".
  std::string header(std::string_view name) const;
};

class HttpRequestReader {
 public:
  explicit HttpRequestReader(size_t body_max = 1 << 20);
  ~HttpRequestReader();
  HttpRequestReader(const HttpRequestReader&) = delete;
  HttpRequestReader& operator=(const HttpRequestReader&) = delete;

  // Consumes bytes; complete requests are appended to *out. False once the
  // stream is broken (error() says why, status() the reply: 400, 413, 431);
  // nothing after that is read.
  bool feed(std::string_view in, std::vector<HttpRequest>* out);
  int status() const { return status_; }
  const std::string& error() const { return error_; }
  // The path of the request the stream broke in, when its request line
  // was read ("" otherwise).
  const std::string& path() const;
  // The request being read asked "Expect: 100-continue" and its body has
  // not all come: the server should send "100 Continue" (RFC 9110
  // 10.1.1) unless it answers first. True once per such request.
  bool take_continue();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  int status_ = 0;
  std::string error_;
};

// An application/x-www-form-urlencoded query ("a=1&b=x%40y"): its
// name=value pairs in order, %XX and '+' decoded. False (and `bad` the
// offending pair) on a broken %-escape.
bool parse_query(std::string_view query, std::vector<std::pair<std::string, std::string>>* out,
                 std::string* bad);

// A path segment's %XX escapes decoded ('+' stays '+'); false on a
// broken escape.
bool percent_decode(std::string_view in, std::string* out);

// A complete HTTP/1.1 response with Content-Length (and Connection: close
// when !keep_alive); `extra_headers` are more lines, each ending in CRLF.
std::string http_response(int status, std::string_view content_type, std::string_view body,
                          bool keep_alive, std::string_view extra_headers = {});
const char* http_reason(int status);

}  // namespace ringmail::proto
