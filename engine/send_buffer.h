// The bytes one connection has handed to Backend::send and not yet seen
// go: one send in flight at a time, a partial send continued from where it
// stopped. Shared by the SMTP server connection, the outbound session and
// the HTTP connection.
#pragma once

#include <cstddef>
#include <string>

#include "engine/backend.h"
#include "tls/session.h"

namespace ringmail::engine {

class SendBuffer {
 public:
  bool busy() const { return busy_; }
  bool empty() const { return bytes_.empty(); }
  // Nothing in flight and nothing waiting.
  bool idle() const { return !busy_ && bytes_.empty(); }
  // When empty: takes `out`'s bytes (by swap: `out` keeps a buffer).
  void take(std::string& out) {
    if (!bytes_.empty()) return;
    bytes_.swap(out);
    out.clear();
    sent_ = 0;
  }
  // When empty: an SMTP client's output `plain`, through `tls` when there
  // is a session (encrypted once its handshake is done; until then only
  // the handshake's own records go).
  void take_through(std::string& plain, tls::TlsSession* tls) {
    if (!bytes_.empty()) return;
    if (tls == nullptr) {
      take(plain);
      return;
    }
    if (tls->handshake_done() && !plain.empty()) {
      tls->write(plain);
      plain.clear();
    }
    take(tls->output());
  }
  // Sends what is left, unless a send is in flight or nothing is left.
  void start(Backend& be, int fd, Completion* c) {
    if (busy_ || sent_ >= bytes_.size()) return;
    busy_ = true;
    be.send(fd, bytes_.data() + sent_, bytes_.size() - sent_, c);
  }
  // A send completed: false on an error. What was sent whole is dropped.
  bool on_sent(const Event& ev) {
    busy_ = false;
    if (ev.res < 0) return false;
    sent_ += static_cast<size_t>(ev.res);
    if (sent_ >= bytes_.size()) clear();
    return true;
  }
  // Forgets what waits (the memory stays until a send in flight is done).
  void clear() {
    bytes_.clear();
    sent_ = 0;
  }

 private:
  std::string bytes_;
  size_t sent_ = 0;
  bool busy_ = false;
};

}  // namespace ringmail::engine
