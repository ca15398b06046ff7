// smtp-blaster --http: load for an HTTP injection API (ringmaild's
// POST /api/inject/v1, KumoMTA's format: docs/inject.md) on the same
// engine Backend as the SMTP mode. Keep-alive HTTP/1.1 connections, one
// request in flight on each; responses are read with Debian's http-parser
// and the 200 bodies' success_count and fail_count with nlohmann-json.
#include <http_parser.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cctype>
#include <cstring>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "bench/blaster.h"
#include "engine/send_buffer.h"
#include "proto/quoted.h"

namespace ringmail::blaster {
namespace {

using engine::Backend;
using engine::Event;
using engine::MemberCompletion;

// A response body longer than this breaks the connection (a load generator
// reads two counters from it).
constexpr size_t kBodyBytesMax = 1 << 20;

// Bytes the message builder writes before the text body (Date, From,
// Subject, To, Message-Id, MIME-Version, Content-Type and the blank line:
// 233 for short addresses, proto::build_message measured): taken off
// --size so that each built message is about that size.
constexpr size_t kBuiltHeaderBytes = 240;

// One HTTP/1.1 response at a time read from a byte stream with http-parser
// (HTTP_RESPONSE mode). The parser pauses at the end of each response, so
// bytes after it (which a client with one request in flight never asked
// for) are an error, not the start of another response.
class ResponseReader {
 public:
  enum class Status { kPartial, kDone, kError };

  ResponseReader() {
    http_parser_settings_init(&settings_);
    settings_.on_body = [](http_parser* p, const char* at, size_t n) {
      auto* r = static_cast<ResponseReader*>(p->data);
      if (r->body_.size() + n > kBodyBytesMax) return 1;
      r->body_.append(at, n);
      return 0;
    };
    settings_.on_message_complete = [](http_parser* p) {
      auto* r = static_cast<ResponseReader*>(p->data);
      r->done_ = true;
      r->keep_alive_ = http_should_keep_alive(p) != 0;
      http_parser_pause(p, 1);
      return 0;
    };
    reset();
  }
  ResponseReader(const ResponseReader&) = delete;
  ResponseReader& operator=(const ResponseReader&) = delete;

  // Ready for the next response (on a new connection too).
  void reset() {
    http_parser_init(&parser_, HTTP_RESPONSE);
    parser_.data = this;
    body_.clear();
    any_ = done_ = false;
    keep_alive_ = true;
    error_.clear();
  }
  // Consumes bytes; kDone once the response is whole (status(), body(),
  // keep_alive()), kError (error()) when the stream is not one response.
  Status feed(std::string_view in) {
    if (done_) {
      error_ = "bytes after the response";
      return Status::kError;
    }
    any_ |= !in.empty();
    const size_t used = http_parser_execute(&parser_, &settings_, in.data(), in.size());
    return after(used, in.size());
  }
  // The server closed the connection: a response whose end is the close
  // is done now; one cut short is an error.
  Status eof() {
    if (done_) return Status::kDone;
    http_parser_execute(&parser_, &settings_, nullptr, 0);
    return after(0, 0);
  }
  // Whether any byte of a response came.
  bool started() const { return any_; }
  int status() const { return static_cast<int>(parser_.status_code); }
  const std::string& body() const { return body_; }
  bool keep_alive() const { return keep_alive_; }
  const std::string& error() const { return error_; }

 private:
  Status after(size_t used, size_t given) {
    const auto err = HTTP_PARSER_ERRNO(&parser_);
    if (err != HPE_OK && !(err == HPE_PAUSED && done_)) {
      error_ = err == HPE_CB_body ? "response body over 1 MiB" : http_errno_description(err);
      return Status::kError;
    }
    if (done_ && used != given) {
      error_ = "bytes after the response";
      return Status::kError;
    }
    return done_ ? Status::kDone : Status::kPartial;
  }

  http_parser parser_{};
  http_parser_settings settings_{};
  std::string body_;
  bool any_ = false;
  bool done_ = false;
  bool keep_alive_ = true;
  std::string error_;
};

struct HttpStats : ConnectionStats {
  uint64_t sent = 0, answered = 0;
  uint64_t bytes = 0;  // of the requests answered 200, head and body
  uint64_t recipients_accepted = 0, recipients_failed = 0;
  uint64_t unreadable = 0;           // 200 bodies without the two counts
  std::map<int, uint64_t> statuses;  // HTTP status: responses
  Histogram latency;
};

class HttpBlaster;

// One keep-alive connection: connect, then request, response, request...
// until the run ends or the server closes (then a new connection).
struct HttpConn {
  HttpBlaster* b = nullptr;
  size_t slot = 0;  // {c}: 0..connections-1
  int fd = -1;
  bool recv_armed = false;
  bool closing = false;                  // the end is under way: on_recv or on_send closes
  bool in_flight = false;                // a request sent (or being sent) and not answered
  bool idle = false;                     // open loop: waiting for the next request's due time
  std::string error;                     // why the connection failed, when it did
  Clock::time_point t_connect, t_start;  // t_start: sent (open loop: due)
  size_t request_bytes = 0;
  std::string request;
  engine::SendBuffer out;
  ResponseReader reader;

  void on_connect(const Event& ev);
  void on_recv(const Event& ev);
  void on_bytes(std::string_view in);
  void on_send(const Event& ev);
  void pump();
  void drop(std::string why);

  MemberCompletion<HttpConn, &HttpConn::on_connect> on_connect_op;
  MemberCompletion<HttpConn, &HttpConn::on_recv> on_recv_op;
  MemberCompletion<HttpConn, &HttpConn::on_send> on_send_op;
};

class HttpBlaster : public Driver<HttpBlaster, HttpConn, HttpStats> {
 public:
  HttpBlaster(const Settings& s, const HttpTarget& h, const sockaddr_storage& addr, socklen_t len,
              std::unique_ptr<Backend> be)
      : Driver(s, addr, len, std::move(be)), h_(h) {
    head_ = "Host: " + h_.host_header +
            "\r\nContent-Type: application/json\r\nAuthorization: Bearer " + h_.token +
            "\r\nContent-Length: ";
    for (size_t i = 0; i < conns_.size(); ++i) {
      conns_[i].b = this;
      conns_[i].slot = i;
      conns_[i].on_connect_op.owner = conns_[i].on_recv_op.owner = conns_[i].on_send_op.owner =
          &conns_[i];
    }
  }

  // Whether another request may go (now or, open loop, later).
  bool more() const { return !gave_up_ && within_bounds(stats_.sent, h_.requests); }
  // Open loop: the next request's time has come.
  bool due() const { return due_after(stats_.sent); }

  // The next request into c->request. Request k carries messages
  // k*N .. k*N+N-1 (N recipients a request): recipient i is message
  // number n+i for --to's {n} and the domain mix, and its substitutions.
  void next_request(HttpConn* c) {
    const uint64_t k = stats_.sent++;
    const uint64_t n = k * static_cast<uint64_t>(h_.recipients_per_request);
    const std::string from = work_.sender(n, c->slot);
    const size_t size = work_.next_size();
    // Whole filler lines, then one short line to reach the size where the
    // header leaves room (as the SMTP mode does).
    std::string text = "Hello {{name}},\r\n\r\n";
    if (size > kBuiltHeaderBytes + text.size() + 2) {
      const size_t room = size - kBuiltHeaderBytes - text.size();
      const size_t whole = room - room % kFillerLine;
      text.append(work_.filler(), 0, whole);
      if (room - whole >= 2) text += std::string(room - whole - 2, 'x') + "\r\n";
    }
    nlohmann::ordered_json rcpts = nlohmann::ordered_json::array();
    for (int i = 0; i < h_.recipients_per_request; ++i) {
      const uint64_t m = n + static_cast<uint64_t>(i);
      rcpts.push_back({{"email", work_.recipient(m, c->slot)},
                       {"substitutions",
                        {{"n", std::to_string(m)}, {"name", "recipient " + std::to_string(m)}}}});
    }
    const nlohmann::ordered_json body = {
        {"envelope_sender", from},
        {"content",
         {{"from", {{"email", from}}}, {"subject", "blaster {{n}}"}, {"text_body", text}}},
        {"recipients", std::move(rcpts)}};
    // Replaced, not thrown: a pattern that is not UTF-8 is the server's to refuse.
    const std::string json = body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    c->request = "POST " + h_.path + " HTTP/1.1\r\n" + head_ + std::to_string(json.size()) +
                 "\r\n\r\n" + json;
    c->request_bytes = c->request.size();
    c->t_start = start_time(k);
  }

  // The response to c's request came.
  void answered(HttpConn* c, int status, const std::string& body) {
    ++stats_.answered;
    ++stats_.statuses[status];
    stats_.latency.add(std::chrono::duration<double>(Clock::now() - c->t_start).count());
    if (status != 200) return;
    stats_.bytes += c->request_bytes;
    const auto j = nlohmann::json::parse(body, nullptr, false);
    if (!j.is_object() || !j.contains("success_count") ||
        !j["success_count"].is_number_unsigned() || !j.contains("fail_count") ||
        !j["fail_count"].is_number_unsigned()) {
      ++stats_.unreadable;
      return;
    }
    stats_.recipients_accepted += j["success_count"].get<uint64_t>();
    stats_.recipients_failed += j["fail_count"].get<uint64_t>();
  }

  void open(HttpConn* c) {
    if (!more()) return;
    c->recv_armed = c->closing = c->in_flight = c->idle = false;
    c->error.clear();
    c->request.clear();
    c->out.clear();
    c->reader.reset();
    connect(c);
  }

  // No operation of c's is in flight any more: the connection is over,
  // and a new one starts if there is work left. A request that got no
  // answer is lost (not sent again: the server may have taken it).
  void closed(HttpConn* c) {
    if (c->in_flight && c->error.empty()) c->error = "connection closed by the server";
    if (!c->error.empty()) count_failure(c->error);
    end(c);
  }

 private:
  friend Driver;
  void progress() { show_progress(stats_.answered, "answered", "req/s"); }

  void report() {
    using ull = unsigned long long;
    const double t = seconds();
    const HttpStats& st = stats_;
    if (s_.json) {
      std::string statuses;
      for (const auto& [k, v] : st.statuses)
        statuses +=
            (statuses.empty() ? "\"" : ", \"") + std::to_string(k) + "\": " + std::to_string(v);
      std::printf(
          "{\"seconds\": %.3f, \"requests\": %llu, \"answered\": %llu, \"statuses\": {%s}, "
          "\"recipients_accepted\": %llu, \"recipients_failed\": %llu, "
          "\"unreadable_responses\": %llu, \"connection_errors\": %llu, \"connections\": %llu, "
          "\"requests_per_s\": %.1f, \"recipients_per_s\": %.1f, \"bytes_per_s\": %.0f, "
          "\"bytes\": %llu, \"errors\": {%s}, \"latency_s\": {%s}, \"connect_s\": {%s}}\n",
          t, ull(st.sent), ull(st.answered), statuses.c_str(), ull(st.recipients_accepted),
          ull(st.recipients_failed), ull(st.unreadable), ull(st.conn_errors), ull(st.connects),
          st.answered / t, st.recipients_accepted / t, st.bytes / t, ull(st.bytes),
          errors_json(st).c_str(), latency_json(st.latency).c_str(),
          latency_json(st.connect).c_str());
      return;
    }
    if (::isatty(2)) std::fprintf(stderr, "\n");
    std::printf(
        "%.2f s: %llu requests, %llu answered, %llu connection errors (%llu connections, %s)\n", t,
        ull(st.sent), ull(st.answered), ull(st.conn_errors), ull(st.connects),
        config::to_string(be_->kind()));
    std::printf("%.1f requests/s, %.1f recipients/s, %.2f MB/s\n", st.answered / t,
                st.recipients_accepted / t, st.bytes / t / 1e6);
    std::string statuses;
    for (const auto& [k, v] : st.statuses)
      statuses += " " + std::to_string(k) + ":" + std::to_string(v);
    std::printf("statuses:%s\n", statuses.c_str());
    std::printf("recipients: %llu accepted, %llu failed\n", ull(st.recipients_accepted),
                ull(st.recipients_failed));
    if (st.unreadable > 0)
      std::printf("unreadable: %llu responses 200 without success_count and fail_count\n",
                  ull(st.unreadable));
    print_failures(st);
    print_latency("request", st.latency);
    print_latency("connect", st.connect);
  }

  const HttpTarget& h_;
  std::string head_;  // the request's header fields, up to Content-Length's value
};

void HttpConn::on_connect(const Event& ev) {
  if (ev.res < 0) {
    error = std::string("connect: ") + std::strerror(-ev.res);
    b->closed(this);
    return;
  }
  b->stats().connect.add(std::chrono::duration<double>(Clock::now() - t_connect).count());
  recv_armed = true;
  b->backend().recv(fd, &on_recv_op);
  pump();
}

// Sends the next request when there is one and it is due; ends the
// connection when the run is over.
void HttpConn::pump() {
  idle = false;
  if (in_flight || closing || !out.idle()) return;
  if (!b->more()) {
    closing = true;
    ::shutdown(fd, SHUT_RDWR);  // the receive ends; on_recv closes
    return;
  }
  if (!b->due()) {
    idle = true;  // the loop comes back every millisecond
    return;
  }
  b->next_request(this);
  in_flight = true;
  out.take(request);
  out.start(b->backend(), fd, &on_send_op);
}

void HttpConn::on_bytes(std::string_view in) {
  const auto st = reader.feed(in);
  if (st == ResponseReader::Status::kError) {
    drop("HTTP: " + reader.error());
  } else if (st == ResponseReader::Status::kDone && !in_flight) {
    drop("HTTP: a response to no request");
  } else if (st == ResponseReader::Status::kDone) {
    in_flight = false;
    b->answered(this, reader.status(), reader.body());
    const bool again = reader.keep_alive();
    reader.reset();
    if (again) {
      pump();
    } else {
      closing = true;  // Connection: close; a new connection goes on
      ::shutdown(fd, SHUT_RDWR);
    }
  }
}

void HttpConn::on_recv(const Event& ev) {
  if (!receive_ended(this, b->backend(), ev)) return;
  // The end of the stream: a response delimited by the close is whole now.
  if (in_flight && !closing && reader.started()) {
    if (reader.eof() == ResponseReader::Status::kDone) {
      in_flight = false;
      b->answered(this, reader.status(), reader.body());
    } else if (error.empty()) {
      error = "HTTP: " + reader.error();
    }
  }
  if (ev.res < 0 && in_flight && error.empty())
    error = std::string("receive: ") + std::strerror(-ev.res);
  if (out.busy()) {
    closing = true;  // on_send finishes it
    return;
  }
  b->closed(this);
}

void HttpConn::on_send(const Event& ev) {
  const bool ok = out.on_sent(ev);
  if (!ok || closing) {
    if (ev.res < 0 && error.empty()) error = std::string("send: ") + std::strerror(-ev.res);
    closing = true;
    ::shutdown(fd, SHUT_RDWR);
    if (!recv_armed) b->closed(this);  // *this is the next connection afterwards
    return;
  }
  out.start(b->backend(), fd, &on_send_op);  // the rest of a partial send
  if (out.idle() && !in_flight) pump();      // answered before it was all sent
}

// The connection cannot go on: the receive ends and on_recv closes.
void HttpConn::drop(std::string why) {
  if (error.empty()) error = std::move(why);
  closing = true;
  ::shutdown(fd, SHUT_RDWR);
}

}  // namespace

bool parse_http_url(const std::string& url, HttpTarget* h, std::string* host, std::string* port,
                    std::string* why) {
  http_parser_url u;
  http_parser_url_init(&u);
  if (http_parser_parse_url(url.data(), url.size(), 0, &u) != 0 ||
      (u.field_set & (1 << UF_SCHEMA)) == 0 || (u.field_set & (1 << UF_HOST)) == 0) {
    *why = "--http must be a URL, http://HOST:PORT/PATH";
    return false;
  }
  auto field = [&](int f) {
    return (u.field_set & (1 << f)) == 0 ? std::string()
                                         : url.substr(u.field_data[f].off, u.field_data[f].len);
  };
  std::string scheme = field(UF_SCHEMA);
  for (char& ch : scheme) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  if (scheme != "http") {
    *why = "--http takes http:// URLs only (no TLS in the HTTP mode), not " + scheme + "://";
    return false;
  }
  if ((u.field_set & ((1 << UF_USERINFO) | (1 << UF_FRAGMENT))) != 0) {
    *why = "--http: no user or #fragment in the URL (the token goes in --token)";
    return false;
  }
  *host = field(UF_HOST);
  *port = (u.field_set & (1 << UF_PORT)) != 0 ? std::to_string(u.port) : "80";
  // The authority as written: the Host field (RFC 9112 section 3.2).
  const size_t start = u.field_data[UF_SCHEMA].off + u.field_data[UF_SCHEMA].len + 3;
  const size_t end = (u.field_set & (1 << UF_PATH)) != 0    ? u.field_data[UF_PATH].off
                     : (u.field_set & (1 << UF_QUERY)) != 0 ? u.field_data[UF_QUERY].off - 1
                                                            : url.size();
  h->host_header = url.substr(start, end - start);
  h->path = field(UF_PATH);
  if (h->path.empty()) h->path = "/";
  if ((u.field_set & (1 << UF_QUERY)) != 0) h->path += "?" + field(UF_QUERY);
  return true;
}

int run_http(const Settings& s, const HttpTarget& h, const sockaddr_storage& addr, socklen_t len,
             std::unique_ptr<engine::Backend> be) {
  HttpBlaster b(s, h, addr, len, std::move(be));
  return b.run();
}

}  // namespace ringmail::blaster
