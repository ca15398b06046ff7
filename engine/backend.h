// The I/O seam of a shard: one event loop backend per shard thread.
//
// Every operation is described by a caller-owned Completion that must stay
// alive until its last event (one without `more`). Nothing is allocated per
// operation. Results are a byte count / descriptor (>= 0) or -errno.
//
// Two implementations: io_uring (uring_backend.cc) and epoll
// (epoll_backend.cc), chosen at start-up: io_uring when uring_available()
// says the kernel allows it (or as `backend` forces), epoll otherwise.
#pragma once

#include <sys/socket.h>

#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "config/config.h"
#include "storage/file_io.h"

namespace ringmail::engine {

// What went wrong with an operation: errno mapped once, here, onto the
// few cases callers treat differently (TigerBeetle's io/linux.zig does the
// same). Callers switch on this; Event::res keeps the errno for the log.
enum class IoError : uint8_t {
  kNone,           // res >= 0
  kNoBuffers,      // ENOBUFS: the shard's receive buffers ran out for a moment
  kNoDescriptors,  // EMFILE, ENFILE
  kNoMemory,       // ENOMEM
  kTransient,      // EAGAIN, EINTR, ECONNABORTED: nothing to report, go on
  kCanceled,       // ECANCELED: the operation's own timeout expired
  kPeerGone,       // ECONNRESET, EPIPE, ENOTCONN, ECONNREFUSED, ETIMEDOUT,
                   // EHOSTUNREACH, ENETUNREACH
  kOther,          // anything else
};

constexpr IoError io_error(int res) {
  if (res >= 0) return IoError::kNone;
  switch (-res) {
    case ENOBUFS:
      return IoError::kNoBuffers;
    case EMFILE:
    case ENFILE:
      return IoError::kNoDescriptors;
    case ENOMEM:
      return IoError::kNoMemory;
    case EAGAIN:
    case EINTR:
    case ECONNABORTED:
      return IoError::kTransient;
    case ECANCELED:
      return IoError::kCanceled;
    case ECONNRESET:
    case EPIPE:
    case ENOTCONN:
    case ECONNREFUSED:
    case ETIMEDOUT:
    case EHOSTUNREACH:
    case ENETUNREACH:
      return IoError::kPeerGone;
    default:
      return IoError::kOther;
  }
}

struct Event {
  int res = 0;                 // a byte count, descriptor or poll mask; -errno on failure
  bool more = false;           // a multishot operation goes on
  const char* data = nullptr;  // recv: the bytes (valid until release())
  uint16_t buf_id = 0;         // recv: give back with Backend::release()
  bool has_buf = false;
  IoError error() const { return io_error(res); }
};

class Completion {
 public:
  virtual void complete(const Event& ev) = 0;

 protected:
  ~Completion() = default;
};

// The usual Completion: calls `Fn` on its owner, e.g. a connection's
// receive slot, `MemberCompletion<Connection, &Connection::on_recv>`. Set
// `owner` before the first operation.
template <typename T, void (T::*Fn)(const Event&)>
struct MemberCompletion final : Completion {
  T* owner = nullptr;
  void complete(const Event& ev) override { (owner->*Fn)(ev); }
};

// How long an accept() lasts.
enum class AcceptMode : uint8_t {
  // One event per new connection (res = descriptor) until an error.
  kMultishot,
  // One connection, then the accept ends (more == false) and the caller
  // arms it again. For a socket that other rings or processes accept on
  // too (socket activation: every shard on one socket): the kernel wakes
  // one waiter per connection, the first in the socket's queue, and a
  // multishot accept keeps that place, so one shard would take every
  // connection; a new accept each time queues behind the others.
  kOne,
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual config::BackendKind kind() const = 0;

  virtual void accept(int listen_fd, Completion* c, AcceptMode mode = AcceptMode::kMultishot) = 0;
  // Multishot receive into backend-provided buffers. res == 0 is end of
  // stream; the last event has more == false.
  virtual void recv(int fd, Completion* c) = 0;
  // Returns a receive buffer; call once the bytes are no longer needed.
  virtual void release(uint16_t buf_id) = 0;
  // One send (may be partial: res < n). `p` must stay valid until done.
  virtual void send(int fd, const char* p, size_t n, Completion* c) = 0;
  // Runs `op` (storage::BlockingOp): fsync and fdatasync through the ring
  // where there is one, everything else on a worker thread. `op` stays alive
  // until `c` completes.
  virtual void blocking(storage::BlockingOp* op, Completion* c) = 0;
  // One-shot readiness wait for a descriptor someone else reads and writes
  // (c-ares' sockets): `c` completes once, with res = the poll(2) revents
  // (POLLIN, POLLOUT, POLLERR, POLLHUP) or -errno. `events` is POLLIN
  // and/or POLLOUT.
  virtual void poll(int fd, uint32_t events, Completion* c) = 0;
  // Connects `fd` (a non-blocking socket) to `addr`, which stays valid
  // until `c` completes with 0 or -errno.
  virtual void connect(int fd, const sockaddr* addr, socklen_t len, Completion* c) = 0;
  // Withdraws a pending poll(), connect() or accept() (its completion
  // comes with -ECANCELED, or with its result if that was quicker) and
  // forgets `fd`, which its owner is about to close. Unlike shutdown(),
  // it leaves the socket itself alone: a listening socket that others
  // hold too (systemd's, under socket activation) keeps listening.
  virtual void cancel(int fd, Completion* c) = 0;
  // Closes a descriptor that has no operation in flight.
  virtual void close(int fd) = 0;

  // Cross-thread doorbell. `c` completes (once per wake-up, possibly
  // coalesced) after any thread called wake() or another shard rang().
  virtual void watch_doorbell(Completion* c) = 0;
  virtual void wake() = 0;                 // any thread
  virtual void ring(Backend& target) = 0;  // from this backend's thread

  // Submits pending work, waits up to timeout_ms for at least one event and
  // dispatches every available event. Returns the number dispatched.
  virtual int wait(int timeout_ms) = 0;
};

// Creates the backend for the calling thread. kAuto tries io_uring and falls
// back to epoll when the kernel or a seccomp profile refuses it; `why` then
// says why. Returns nullptr (with `why`) when a forced backend cannot start.
[[nodiscard]] std::unique_ptr<Backend> make_backend(config::BackendKind kind, std::string* why);

// io_uring usable here? (EPERM in containers, io_uring_disabled, ENOSYS.)
[[nodiscard]] bool uring_available(std::string* why);

}  // namespace ringmail::engine
