#include "engine/http_server.h"

#include <sys/socket.h>

#include <cstdio>
#include <nlohmann/json.hpp>
#include <vector>

#include "engine/inject_api.h"
#include "engine/json_text.h"
#include "engine/log.h"
#include "engine/metrics.h"
#include "engine/unsubscribe.h"

namespace ringmail::engine {

void http_respond(Shard& shard, const proto::HttpRequest& req, const std::string& peer,
                  HttpAccess access, std::function<void(std::string, bool)> reply) {
  shard.counters().http_requests.fetch_add(1, std::memory_order_relaxed);
  const bool stopping = shard.stopping();
  const bool get = req.method == "GET" || req.method == "HEAD";
  int status = 200;
  std::string type = "text/plain; charset=utf-8", body;
  if (req.path == "/healthz") {
    if (!get) {
      status = 405;
      body = "use GET\n";
    } else if (stopping) {
      status = 503;
      body = "stopping\n";
    } else {
      body = "ok\n";
    }
  } else if (req.path == "/metrics") {
    if (!get) {
      status = 405;
      body = "use GET\n";
    } else {
      // Gathered from every shard by message: answered turns later.
      const bool head = req.method == "HEAD";
      const bool keep = req.keep_alive && !stopping;
      scrape_metrics(shard, !stopping, [head, keep, reply](std::string text) {
        std::string r =
            proto::http_response(200, "text/plain; version=0.0.4; charset=utf-8", text, keep);
        if (head) r.resize(r.size() - text.size());
        reply(std::move(r), keep);
      });
      return;
    }
  } else if (req.path.rfind("/u/", 0) == 0) {
    unsubscribe_http(shard, req, peer, std::move(reply));  // RFC 8058 one-click
    return;
  } else if (req.path.rfind("/api/", 0) == 0) {
    const bool head = req.method == "HEAD";
    const bool keep = req.keep_alive && !stopping;
    auto answer = [peer, method = req.method, path = req.path, head, keep, reply](ApiReply a) {
      if (a.status >= 400) {
        log_line("http client=" + peer + ": " + method + " " + path + " " +
                 std::to_string(a.status) + " " + a.body.substr(0, a.body.find('\n')));
      }
      std::string r = proto::http_response(a.status, "application/json", a.body, keep, a.headers);
      if (head) r.resize(r.size() - a.body.size());
      reply(std::move(r), keep);
    };
    if (req.path == "/api/inject/v1") {
      inject_api(shard, req, peer, [&shard, answer = std::move(answer)](ApiReply a) {
        shard.counters().count_inject_answer(a.status);
        answer(std::move(a));
      });
    } else {
      admin_api(shard, req, access, std::move(answer));
    }
    return;
  } else {
    status = 404;
    body = "no such path: " + req.path + " (try /metrics, /healthz or /api/status)\n";
  }
  if (status >= 400)
    log_line("http client=" + peer + ": " + req.method + " " + req.path + " " +
             std::to_string(status));
  const bool keep = req.keep_alive && !stopping;
  std::string r = proto::http_response(status, type, body, keep);
  if (req.method == "HEAD") r.resize(r.size() - body.size());
  reply(std::move(r), keep);
}

HttpConnection::HttpConnection(Shard& shard, int fd, std::string peer, HttpAccess access)
    : shard_(shard),
      fd_(fd),
      peer_(std::move(peer)),
      access_(access),
      reader_(shard.config().inject_body_bytes_max) {
  recv_c_.owner = this;
  send_c_.owner = this;
  idle_.conn = this;
  idle_.fire = &HttpConnection::on_idle;
}

HttpConnection::~HttpConnection() {
  for (auto& s : slots_) s->conn = nullptr;
}

void HttpConnection::start() {
  recv_armed_ = true;
  shard_.backend().recv(fd_, &recv_c_);
  shard_.wheel().schedule(&idle_, shard_.clock_s() + kIdleS);
}

void HttpConnection::on_idle(TimerEntry* t) { static_cast<Timer*>(t)->conn->begin_close(); }

void HttpConnection::on_recv(const Event& ev) {
  if (!ev.more) recv_armed_ = false;
  if (ev.res > 0) {
    if (!shut_ && !close_after_send_ && !stop_reading_) {
      std::vector<proto::HttpRequest> reqs;
      const bool ok = reader_.feed(std::string_view(ev.data, static_cast<size_t>(ev.res)), &reqs);
      bool closing = false;
      for (const auto& r : reqs) {
        auto slot = std::make_shared<Slot>();
        slot->conn = this;
        slots_.push_back(slot);
        http_respond(shard_, r, peer_, access_, [slot](std::string data, bool keep) {
          slot->data = std::move(data);
          slot->keep = keep;
          slot->ready = true;
          if (slot->conn != nullptr) slot->conn->collect();
        });
        if (!r.keep_alive) {
          closing = true;  // nothing after it is answered
          break;
        }
      }
      if (!ok && !closing) {
        log_line("http client=" + peer_ + ": " + std::to_string(reader_.status()) + " " +
                 reader_.error());
        auto slot = std::make_shared<Slot>();
        if (reader_.path() == "/api/inject/v1") {
          shard_.counters().count_inject_answer(reader_.status());
        }
        // The API's clients read JSON errors; the rest gets text.
        slot->data = reader_.path().rfind("/api/", 0) == 0
                         ? proto::http_response(
                               reader_.status(), "application/json",
                               json_text(nlohmann::json{{"error", reader_.error()}}) + "\n", false)
                         : proto::http_response(reader_.status(), "text/plain; charset=utf-8",
                                                reader_.error() + "\n", false);
        slot->keep = false;
        slot->ready = true;
        slots_.push_back(std::move(slot));
        closing = true;
      }
      if (closing) stop_reading_ = true;
      // A client waiting to send a large body (curl does past 1 MiB) is
      // told to go on, unless answers to earlier requests come first.
      if (reader_.take_continue() && !closing && slots_.empty()) {
        pending_ += "HTTP/1.1 100 Continue\r\n\r\n";
      }
      if (pending_.size() > kPendingMax) begin_close();  // a client that never reads
      shard_.wheel().cancel(&idle_);
      shard_.wheel().schedule(&idle_, shard_.clock_s() + kIdleS);
    }
    if (ev.has_buf) shard_.backend().release(ev.buf_id);
    collect();
    if (!recv_armed_ && !shut_) {
      recv_armed_ = true;
      shard_.backend().recv(fd_, &recv_c_);
    }
    maybe_finish();
    return;
  }
  if (ev.has_buf) shard_.backend().release(ev.buf_id);
  if (ev.error() == IoError::kNoBuffers && !shut_) {
    if (!recv_armed_) {
      recv_armed_ = true;
      shard_.backend().recv(fd_, &recv_c_);
    }
    return;
  }
  if (ev.more) return;
  if (!slots_.empty() && !shut_) {
    // The client sent its last request: answer what is still being made
    // (the admin API's queue requests), then close.
    stop_reading_ = eof_ = true;
    return;
  }
  begin_close();
}

void HttpConnection::collect() {
  while (!slots_.empty() && slots_.front()->ready && !close_after_send_) {
    pending_ += slots_.front()->data;
    if (!slots_.front()->keep) close_after_send_ = true;
    slots_.front()->conn = nullptr;
    slots_.pop_front();
  }
  if (eof_ && slots_.empty()) close_after_send_ = true;
  flush();
  maybe_finish();
}

void HttpConnection::flush() {
  if (out_.busy() || shut_) return;
  out_.take(pending_);
  if (out_.empty()) {
    if (close_after_send_) begin_close();
    return;
  }
  out_.start(shard_.backend(), fd_, &send_c_);
}

void HttpConnection::on_send(const Event& ev) {
  if (!out_.on_sent(ev)) {
    begin_close();
    return;
  }
  flush();
  maybe_finish();
}

void HttpConnection::abort() {
  // Requests being answered (an injection being stored) get their answer
  // first: a client must not lose the word on what was queued. Nothing
  // more is read. The stop's deadline closes it anyway (hard).
  if (!slots_.empty() && !shut_) {
    stop_reading_ = eof_ = true;
    return;
  }
  begin_close();
}

void HttpConnection::close_now() { begin_close(); }

void HttpConnection::begin_close() {
  if (!shut_) {
    shut_ = true;
    shard_.wheel().cancel(&idle_);
    ::shutdown(fd_, SHUT_RDWR);  // ends the multishot receive
  }
  maybe_finish();
}

void HttpConnection::maybe_finish() {
  if (!shut_ || retired_ || recv_armed_ || out_.busy()) return;
  retired_ = true;
  shard_.retire(this);
}

}  // namespace ringmail::engine
