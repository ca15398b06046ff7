#include "proto/http.h"

#include <http_parser.h>

#include <climits>

#include "proto/address.h"
#include "proto/ascii.h"

namespace ringmail::proto {
namespace {

constexpr size_t kHeaderBytesMax = 16 * 1024;  // request line and fields
constexpr size_t kHeadersMax = 100;
// on_headers_complete's 1 means "no body" to http-parser: anything above 2
// is the error return there.
constexpr int kStopHeaders = 3;

}  // namespace

std::string HttpRequest::header(std::string_view name) const {
  for (const auto& [k, v] : headers) {
    if (k == name) return v;
  }
  return "";
}

struct HttpRequestReader::Impl {
  http_parser parser{};
  http_parser_settings settings{};
  size_t body_max;
  HttpRequest current;
  std::string url;
  bool in_value = false;  // the last callback was a header value
  size_t header_bytes = 0;
  std::vector<HttpRequest>* out = nullptr;
  int fail_status = 0;
  std::string fail_reason;
  bool wants_continue = false;

  explicit Impl(size_t max) : body_max(max) {
    http_parser_init(&parser, HTTP_REQUEST);
    parser.data = this;
    settings.on_message_begin = [](http_parser* p) {
      Impl* s = self(p);
      s->current = HttpRequest{};
      s->url.clear();
      s->in_value = false;
      s->header_bytes = 0;
      return 0;
    };
    settings.on_url = [](http_parser* p, const char* at, size_t n) {
      Impl* s = self(p);
      s->url.append(at, n);
      return s->count(n);
    };
    settings.on_header_field = [](http_parser* p, const char* at, size_t n) {
      Impl* s = self(p);
      if (s->current.headers.empty() || s->in_value) {
        if (s->current.headers.size() >= kHeadersMax) return s->fail(431, "too many header fields");
        s->current.headers.emplace_back();
      }
      s->in_value = false;
      std::string& name = s->current.headers.back().first;
      for (size_t i = 0; i < n; ++i) name += to_lower(at[i]);
      return s->count(n);
    };
    settings.on_header_value = [](http_parser* p, const char* at, size_t n) {
      Impl* s = self(p);
      s->in_value = true;
      if (!s->current.headers.empty()) s->current.headers.back().second.append(at, n);
      return s->count(n);
    };
    settings.on_headers_complete = [](http_parser* p) {
      Impl* s = self(p);
      http_parser_url u;
      http_parser_url_init(&u);
      if (http_parser_parse_url(s->url.data(), s->url.size(), 0, &u) != 0) {
        return kStopHeaders * s->fail(400, "the request target is not a URL");
      }
      if (u.field_set & (1 << UF_PATH)) {
        s->current.path = s->url.substr(u.field_data[UF_PATH].off, u.field_data[UF_PATH].len);
      }
      if (u.field_set & (1 << UF_QUERY)) {
        s->current.query = s->url.substr(u.field_data[UF_QUERY].off, u.field_data[UF_QUERY].len);
      }
      s->current.method = http_method_str(static_cast<http_method>(p->method));
      if (p->content_length != ULLONG_MAX && p->content_length > s->body_max) {
        return kStopHeaders *
               s->fail(413, "the body is larger than " + std::to_string(s->body_max) + " bytes");
      }
      s->wants_continue = p->content_length != 0 && p->content_length != ULLONG_MAX &&
                          iequals(trim_space(s->current.header("expect")), "100-continue");
      return 0;
    };
    settings.on_body = [](http_parser* p, const char* at, size_t n) {
      Impl* s = self(p);
      if (s->current.body.size() + n > s->body_max) {
        return s->fail(413, "the body is larger than " + std::to_string(s->body_max) + " bytes");
      }
      s->current.body.append(at, n);
      return 0;
    };
    settings.on_message_complete = [](http_parser* p) {
      Impl* s = self(p);
      if (p->upgrade) return s->fail(400, "protocol upgrades are not supported");
      if (s->fail_status != 0) return 1;
      s->current.keep_alive = http_should_keep_alive(p) != 0;
      s->wants_continue = false;
      s->out->push_back(std::move(s->current));
      s->current = HttpRequest{};
      return 0;
    };
  }

  static Impl* self(http_parser* p) { return static_cast<Impl*>(p->data); }
  int count(size_t n) {
    header_bytes += n;
    if (header_bytes > kHeaderBytesMax) return fail(431, "the request line and fields pass 16 KiB");
    return 0;
  }
  int fail(int status, std::string why) {
    fail_status = status;
    fail_reason = std::move(why);
    return 1;  // stops the parser (HPE_CB_*)
  }
};

const std::string& HttpRequestReader::path() const { return impl_->current.path; }

bool HttpRequestReader::take_continue() {
  const bool w = impl_->wants_continue && status_ == 0;
  impl_->wants_continue = false;
  return w;
}

HttpRequestReader::HttpRequestReader(size_t body_max) : impl_(std::make_unique<Impl>(body_max)) {}
HttpRequestReader::~HttpRequestReader() = default;

bool HttpRequestReader::feed(std::string_view in, std::vector<HttpRequest>* out) {
  if (status_ != 0) return false;
  impl_->out = out;
  const size_t n = http_parser_execute(&impl_->parser, &impl_->settings, in.data(), in.size());
  const auto err = HTTP_PARSER_ERRNO(&impl_->parser);
  if (impl_->fail_status != 0) {
    status_ = impl_->fail_status;
    error_ = impl_->fail_reason;
    return false;
  }
  if (err != HPE_OK) {
    status_ = err == HPE_HEADER_OVERFLOW ? 431 : 400;
    error_ = std::string(http_errno_description(err));
    return false;
  }
  if (impl_->parser.upgrade) {
    status_ = 400;
    error_ = "protocol upgrades are not supported";
    return false;
  }
  if (n != in.size()) {
    status_ = 400;
    error_ = "bytes after the end of the stream";
    return false;
  }
  return true;
}

const char* http_reason(int status) {
  switch (status) {
    case 200:
      return "OK";
    case 202:
      return "Accepted";
    case 400:
      return "Bad Request";
    case 401:
      return "Unauthorized";
    case 403:
      return "Forbidden";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 413:
      return "Content Too Large";
    case 415:
      return "Unsupported Media Type";
    case 429:
      return "Too Many Requests";
    case 431:
      return "Request Header Fields Too Large";
    case 500:
      return "Internal Server Error";
    case 503:
      return "Service Unavailable";
    default:
      return "Unknown";
  }
}

std::string http_response(int status, std::string_view content_type, std::string_view body,
                          bool keep_alive, std::string_view extra_headers) {
  std::string r = "HTTP/1.1 " + std::to_string(status) + " " + http_reason(status) + "\r\n";
  r += "Content-Type: ";
  r += content_type;
  r += "\r\nContent-Length: " + std::to_string(body.size()) + "\r\n";
  if (!keep_alive) r += "Connection: close\r\n";
  r += extra_headers;
  r += "\r\n";
  r += body;
  return r;
}

namespace {

bool url_decode(std::string_view in, std::string* out, bool plus_is_space = true) {
  out->clear();
  for (size_t i = 0; i < in.size(); ++i) {
    if (in[i] == '+' && plus_is_space) {
      out->push_back(' ');
    } else if (in[i] == '%') {
      if (i + 2 >= in.size()) return false;
      const int hi = hex_value(in[i + 1]), lo = hex_value(in[i + 2]);
      if (hi < 0 || lo < 0) return false;
      out->push_back(static_cast<char>(hi * 16 + lo));
      i += 2;
    } else {
      out->push_back(in[i]);
    }
  }
  return true;
}

}  // namespace

bool percent_decode(std::string_view in, std::string* out) { return url_decode(in, out, false); }

bool parse_query(std::string_view query, std::vector<std::pair<std::string, std::string>>* out,
                 std::string* bad) {
  while (!query.empty()) {
    const size_t amp = query.find('&');
    const std::string_view pair = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view() : query.substr(amp + 1);
    if (pair.empty()) continue;
    const size_t eq = pair.find('=');
    std::string name, value;
    if (!url_decode(pair.substr(0, eq), &name) ||
        (eq != std::string_view::npos && !url_decode(pair.substr(eq + 1), &value))) {
      *bad = std::string(pair);
      return false;
    }
    out->emplace_back(std::move(name), std::move(value));
  }
  return true;
}

}  // namespace ringmail::proto
