#include "engine/http_server.h"

#include <sys/socket.h>

#include <vector>

#include "engine/log.h"

namespace ringmail::engine {

HttpConnection::HttpConnection(Shard& shard, int fd, std::string peer)
    : shard_(shard), fd_(fd), peer_(std::move(peer)), reader_(shard.http_body_max()) {
  recv_c_.owner = this;
  send_c_.owner = this;
  idle_.conn = this;
  idle_.fire = &HttpConnection::on_idle;
}

void HttpConnection::start() {
  recv_armed_ = true;
  shard_.backend_->recv(fd_, &recv_c_);
  shard_.wheel_.schedule(&idle_, Shard::clock_s() + kIdleS);
}

void HttpConnection::on_idle(TimerEntry* t) { static_cast<Timer*>(t)->conn->begin_close(); }

void HttpConnection::on_recv(const Event& ev) {
  if (!ev.more) recv_armed_ = false;
  if (ev.res > 0) {
    if (!shut_ && !close_after_send_) {
      std::vector<proto::HttpRequest> reqs;
      const bool ok = reader_.feed(std::string_view(ev.data, static_cast<size_t>(ev.res)), &reqs);
      for (const auto& r : reqs) {
        bool keep = r.keep_alive;
        pending_ += shard_.http_respond(r, peer_, &keep);
        if (!keep) {
          close_after_send_ = true;
          break;
        }
      }
      if (!ok && !close_after_send_) {
        log_line("http client=" + peer_ + ": " + std::to_string(reader_.status()) + " " +
                 reader_.error());
        pending_ += proto::http_response(reader_.status(), "text/plain; charset=utf-8",
                                         reader_.error() + "\n", false);
        close_after_send_ = true;
      }
      if (pending_.size() > kPendingMax) begin_close();  // a client that never reads
      shard_.wheel_.cancel(&idle_);
      shard_.wheel_.schedule(&idle_, Shard::clock_s() + kIdleS);
    }
    if (ev.has_buf) shard_.backend_->release(ev.buf_id);
    flush();
    if (!recv_armed_ && !shut_) {
      recv_armed_ = true;
      shard_.backend_->recv(fd_, &recv_c_);
    }
    maybe_finish();
    return;
  }
  if (ev.has_buf) shard_.backend_->release(ev.buf_id);
  if (ev.res == -ENOBUFS && !shut_) {
    if (!recv_armed_) {
      recv_armed_ = true;
      shard_.backend_->recv(fd_, &recv_c_);
    }
    return;
  }
  if (ev.more) return;
  begin_close();
}

void HttpConnection::flush() {
  if (out_.busy() || shut_) return;
  out_.take(pending_);
  if (out_.empty()) {
    if (close_after_send_) begin_close();
    return;
  }
  out_.start(*shard_.backend_, fd_, &send_c_);
}

void HttpConnection::on_send(const Event& ev) {
  if (!out_.on_sent(ev)) {
    begin_close();
    return;
  }
  flush();
  maybe_finish();
}

void HttpConnection::abort() { begin_close(); }

void HttpConnection::begin_close() {
  if (!shut_) {
    shut_ = true;
    shard_.wheel_.cancel(&idle_);
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
