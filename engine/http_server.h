// One connection to ringmaild's HTTP listener (a [[listener]] of kind
// "http") or to the admin socket ([admin] socket): requests read by proto::HttpRequestReader from
// the ring's receive buffers, answered in order by http_respond(), keep-alive and pipelining as
// HTTP/1.1 has them. An idle connection is closed after a minute; a broken request gets its
// 400/413/431 and the close.
#pragma once

#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "engine/admin_api.h"
#include "engine/backend.h"
#include "engine/send_buffer.h"
#include "engine/shard.h"
#include "proto/http.h"

namespace ringmail::engine {

// The answer to one request (shard thread): GET /healthz (200 ok, 503
// while stopping), GET /metrics (engine/metrics.h) and the admin API
// under /api/ (engine/admin_api.h). `reply` gets the whole response and
// whether the connection stays open (the request's keep-alive, cleared
// while stopping): at once, or later on this thread for /metrics and the
// admin API's queue requests.
void http_respond(Shard& shard, const proto::HttpRequest& req, const std::string& peer,
                  HttpAccess access, std::function<void(std::string, bool)> reply);

class HttpConnection {
 public:
  HttpConnection(Shard& shard, int fd, std::string peer, HttpAccess access);
  ~HttpConnection();
  HttpConnection(const HttpConnection&) = delete;
  HttpConnection& operator=(const HttpConnection&) = delete;

  void start();
  void abort();      // shutting down: close once the answers being made are sent
  void close_now();  // the stop's deadline passed
  int fd() const { return fd_; }

 private:
  struct Timer : TimerEntry {
    HttpConnection* conn = nullptr;
  };
  static constexpr int64_t kIdleS = 60;
  static constexpr size_t kPendingMax = 16 << 20;  // responses not yet sent

  void on_recv(const Event& ev);
  void on_send(const Event& ev);
  static void on_idle(TimerEntry* t);
  void flush();
  // Responses in request order; one that is not ready holds back those
  // after it (HTTP/1.1 pipelining). A slot outlives its connection.
  struct Slot {
    std::string data;
    bool ready = false, keep = true;
    HttpConnection* conn = nullptr;
  };
  std::deque<std::shared_ptr<Slot>> slots_;
  // Moves the ready responses at the front to pending_ and sends them.
  void collect();
  void begin_close();
  void maybe_finish();

  Shard& shard_;
  int fd_;
  std::string peer_;
  HttpAccess access_;
  proto::HttpRequestReader reader_;
  std::string pending_;  // responses not handed to out_ yet
  SendBuffer out_;
  bool recv_armed_ = false, shut_ = false, retired_ = false;
  bool close_after_send_ = false;
  bool stop_reading_ = false;  // a request said close, or was broken
  bool eof_ = false;           // the client is done sending
  MemberCompletion<HttpConnection, &HttpConnection::on_recv> recv_c_;
  MemberCompletion<HttpConnection, &HttpConnection::on_send> send_c_;
  Timer idle_;
};

}  // namespace ringmail::engine
