// Both backends against real sockets on loopback: the same contract.
#include "engine/backend.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <string>
#include <thread>

#include "engine/test_backends.h"

namespace ringmail::engine {
namespace {

struct Rec final : Completion {
  std::vector<Event> events;
  std::string data;
  Backend* b = nullptr;
  void complete(const Event& ev) override {
    events.push_back(ev);
    if (ev.res > 0 && ev.data != nullptr) {
      data.append(ev.data, static_cast<size_t>(ev.res));
      if (ev.has_buf) b->release(ev.buf_id);
    }
  }
};

class BackendTest : public ::testing::TestWithParam<config::BackendKind> {
 protected:
  void SetUp() override {
    std::string why;
    if (GetParam() == config::BackendKind::kUring && !uring_available(&why)) {
      GTEST_SKIP() << "io_uring unavailable: " << why;
    }
    b = make_backend(GetParam(), &why);
    ASSERT_NE(b, nullptr) << why;
    ASSERT_EQ(b->kind(), GetParam());
    lfd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_EQ(::bind(lfd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
    ASSERT_EQ(::listen(lfd, 16), 0);
    socklen_t len = sizeof a;
    ::getsockname(lfd, reinterpret_cast<sockaddr*>(&a), &len);
    addr = a;
  }
  void TearDown() override {
    if (lfd >= 0) ::close(lfd);
  }
  // Runs one BlockingOp to completion; its result, or 1 if it never came.
  int run_op(storage::BlockingOp::Kind kind, int fd, uint64_t bytes = 0) {
    storage::BlockingOp op;
    op.fd = fd;
    op.kind = kind;
    op.bytes = bytes;
    Rec rec;
    b->blocking(&op, &rec);
    if (!spin([&] { return !rec.events.empty(); })) return 1;
    return rec.events[0].res;
  }
  int connect_client() {
    int c = ::socket(AF_INET, SOCK_STREAM, 0);
    EXPECT_EQ(::connect(c, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
    return c;
  }
  // Runs the loop until pred() or ~5 s.
  template <typename P>
  bool spin(P pred) {
    for (int i = 0; i < 500 && !pred(); ++i) b->wait(10);
    return pred();
  }
  std::unique_ptr<Backend> b;
  int lfd = -1;
  sockaddr_in addr{};
};

TEST(IoError, ErrnoMapsOntoTheClosedSet) {
  EXPECT_EQ(io_error(0), IoError::kNone);
  EXPECT_EQ(io_error(4096), IoError::kNone);
  EXPECT_EQ(io_error(-ENOBUFS), IoError::kNoBuffers);
  EXPECT_EQ(io_error(-EMFILE), IoError::kNoDescriptors);
  EXPECT_EQ(io_error(-ENFILE), IoError::kNoDescriptors);
  EXPECT_EQ(io_error(-ENOMEM), IoError::kNoMemory);
  EXPECT_EQ(io_error(-EAGAIN), IoError::kTransient);
  EXPECT_EQ(io_error(-ECONNABORTED), IoError::kTransient);
  EXPECT_EQ(io_error(-ECANCELED), IoError::kCanceled);
  EXPECT_EQ(io_error(-ECONNRESET), IoError::kPeerGone);
  EXPECT_EQ(io_error(-EPIPE), IoError::kPeerGone);
  EXPECT_EQ(io_error(-EIO), IoError::kOther);
  Event ev;
  ev.res = -ENOBUFS;
  EXPECT_EQ(ev.error(), IoError::kNoBuffers);
}

TEST_P(BackendTest, AcceptRecvSendClose) {
  Rec acc;
  acc.b = b.get();
  b->accept(lfd, &acc);
  int c1 = connect_client();
  int c2 = connect_client();
  ASSERT_TRUE(spin([&] { return acc.events.size() >= 2; }));
  for (auto& ev : acc.events) {
    EXPECT_GE(ev.res, 0);
    EXPECT_TRUE(ev.more);
  }
  int s1 = acc.events[0].res;
  Rec rx;
  rx.b = b.get();
  b->recv(s1, &rx);
  std::string big(100000, 'x');
  big += "END";
  std::thread writer([&] {
    size_t off = 0;
    while (off < big.size()) {
      ssize_t n = ::write(c1, big.data() + off, big.size() - off);
      if (n <= 0) break;
      off += static_cast<size_t>(n);
    }
  });
  ASSERT_TRUE(spin([&] { return rx.data.size() >= big.size(); }));
  writer.join();
  EXPECT_EQ(rx.data, big);
  Rec tx;
  const std::string reply = "250 2.0.0 Ok\r\n";
  b->send(s1, reply.data(), reply.size(), &tx);
  ASSERT_TRUE(spin([&] { return !tx.events.empty(); }));
  EXPECT_EQ(tx.events[0].res, static_cast<int>(reply.size()));
  char buf[64];
  EXPECT_EQ(::read(c1, buf, sizeof buf), static_cast<ssize_t>(reply.size()));
  // Peer closes: the multishot receive ends with res 0 and no `more`.
  ::close(c1);
  ASSERT_TRUE(spin([&] { return !rx.events.empty() && !rx.events.back().more; }));
  EXPECT_EQ(rx.events.back().res, 0);
  b->close(s1);
  // shutdown() ends a pending receive too (how connections are closed).
  int s2 = acc.events[1].res;
  Rec rx2;
  rx2.b = b.get();
  b->recv(s2, &rx2);
  b->wait(0);
  ::shutdown(s2, SHUT_RDWR);
  ASSERT_TRUE(spin([&] { return !rx2.events.empty() && !rx2.events.back().more; }));
  b->close(s2);
  ::close(c2);
}

TEST_P(BackendTest, FsyncAndDoorbell) {
  char path[] = "/tmp/ringmail-backend-XXXXXX";
  int fd = ::mkstemp(path);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::write(fd, "x", 1), 1);
  EXPECT_EQ(run_op(storage::BlockingOp::Kind::kFsync, fd), 0);
  ::close(fd);
  ::unlink(path);
  // syncfs runs on a worker thread and completes on this one.
  int dfd = ::open("/tmp", O_RDONLY | O_DIRECTORY);
  EXPECT_EQ(run_op(storage::BlockingOp::Kind::kSyncfs, dfd), 0);
  EXPECT_EQ(run_op(storage::BlockingOp::Kind::kSyncfs, 999999), -EBADF);
  ::close(dfd);
  // A bad descriptor gives -EBADF, not success.
  EXPECT_EQ(run_op(storage::BlockingOp::Kind::kFsync, 999999), -EBADF);

  Rec bell;
  b->watch_doorbell(&bell);
  b->wait(0);
  std::thread other([&] { b->wake(); });
  other.join();
  ASSERT_TRUE(spin([&] { return !bell.events.empty(); }));
}

// fdatasync through the ring, zero-fill on a worker: the file then holds
// exactly that many zero bytes.
TEST_P(BackendTest, DataSyncAndZeroFill) {
  char path[] = "/tmp/ringmail-backend-XXXXXX";
  int fd = ::mkstemp(path);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::write(fd, "abc", 3), 3);
  EXPECT_EQ(run_op(storage::BlockingOp::Kind::kDataSync, fd), 0);
  const uint64_t n = (uint64_t{3} << 20) + 17;  // more than one chunk, not a multiple
  EXPECT_EQ(run_op(storage::BlockingOp::Kind::kZeroFill, fd, n), 0);
  struct stat st {};
  ASSERT_EQ(::fstat(fd, &st), 0);
  EXPECT_EQ(static_cast<uint64_t>(st.st_size), n);
  std::string head(4096, 'x');
  ASSERT_EQ(::pread(fd, head.data(), head.size(), 0), static_cast<ssize_t>(head.size()));
  EXPECT_EQ(head, std::string(4096, '\0'));
  ::close(fd);
  ::unlink(path);
  EXPECT_EQ(run_op(storage::BlockingOp::Kind::kZeroFill, 999999, 4096), -EBADF);
}

// One-shot polls on descriptors someone else reads (c-ares' sockets), and
// withdrawing one.
TEST_P(BackendTest, PollAndCancel) {
  int sv[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK, 0, sv), 0);
  Rec r;
  b->poll(sv[0], POLLIN, &r);
  b->wait(0);
  EXPECT_TRUE(r.events.empty());  // nothing to read yet
  ASSERT_EQ(::write(sv[1], "x", 1), 1);
  ASSERT_TRUE(spin([&] { return !r.events.empty(); }));
  EXPECT_TRUE(r.events[0].res & POLLIN);
  // Already readable when armed: completes at once.
  Rec again;
  b->poll(sv[0], POLLIN, &again);
  ASSERT_TRUE(spin([&] { return !again.events.empty(); }));
  char c;
  ASSERT_EQ(::read(sv[0], &c, 1), 1);
  // Withdrawn before anything happens: -ECANCELED, once.
  Rec w;
  b->poll(sv[0], POLLIN, &w);
  b->wait(0);
  b->cancel(sv[0], &w);
  ASSERT_TRUE(spin([&] { return !w.events.empty(); }));
  EXPECT_EQ(w.events[0].res, -ECANCELED);
  ::close(sv[0]);
  ::close(sv[1]);
  for (int i = 0; i < 5; ++i) b->wait(0);
  EXPECT_EQ(w.events.size(), 1u);
}

// AcceptMode::kOne: one connection per accept, then the caller arms it
// again (the shards sharing systemd's socket take turns that way).
TEST_P(BackendTest, AcceptOneEndsAfterAConnection) {
  Rec acc;
  acc.b = b.get();
  b->accept(lfd, &acc, AcceptMode::kOne);
  int c1 = connect_client();
  int c2 = connect_client();
  ASSERT_TRUE(spin([&] { return !acc.events.empty(); }));
  for (int i = 0; i < 5; ++i) b->wait(10);
  ASSERT_EQ(acc.events.size(), 1u);  // the second waits in the backlog
  EXPECT_GE(acc.events[0].res, 0);
  EXPECT_FALSE(acc.events[0].more);
  b->accept(lfd, &acc, AcceptMode::kOne);
  ASSERT_TRUE(spin([&] { return acc.events.size() == 2; }));
  EXPECT_GE(acc.events[1].res, 0);
  EXPECT_FALSE(acc.events[1].more);
  for (const Event& ev : acc.events) ::close(ev.res);
  ::close(c1);
  ::close(c2);
}

// Withdrawing a multishot accept (a shard stopping on a socket systemd
// passed): one -ECANCELED without `more`, and the socket still listens, so
// a client connecting afterwards waits in its backlog for whoever accepts
// next.
TEST_P(BackendTest, AcceptCancelLeavesTheSocketListening) {
  Rec acc;
  acc.b = b.get();
  b->accept(lfd, &acc);
  b->wait(0);
  b->cancel(lfd, &acc);
  ASSERT_TRUE(spin([&] { return !acc.events.empty(); }));
  EXPECT_EQ(acc.events[0].res, -ECANCELED);
  EXPECT_FALSE(acc.events[0].more);
  int c = connect_client();
  for (int i = 0; i < 5; ++i) b->wait(10);
  EXPECT_EQ(acc.events.size(), 1u);  // nothing accepted through the ring
  pollfd p{lfd, POLLIN, 0};
  ASSERT_EQ(::poll(&p, 1, 5000), 1);
  const int s = ::accept4(lfd, nullptr, nullptr, SOCK_CLOEXEC);
  EXPECT_GE(s, 0);
  if (s >= 0) ::close(s);
  ::close(c);
}

TEST_P(BackendTest, Connect) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  Rec ok;
  b->connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr, &ok);
  ASSERT_TRUE(spin([&] { return !ok.events.empty(); }));
  EXPECT_EQ(ok.events[0].res, 0);
  b->close(fd);
  // A port nobody listens on.
  sockaddr_in closed = addr;
  int probe = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in any{};
  any.sin_family = AF_INET;
  any.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(probe, reinterpret_cast<sockaddr*>(&any), sizeof any), 0);
  socklen_t len = sizeof closed;
  ::getsockname(probe, reinterpret_cast<sockaddr*>(&closed), &len);
  ::close(probe);  // bound, never listened: refused
  fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  Rec refused;
  b->connect(fd, reinterpret_cast<const sockaddr*>(&closed), sizeof closed, &refused);
  ASSERT_TRUE(spin([&] { return !refused.events.empty(); }));
  EXPECT_EQ(refused.events[0].res, -ECONNREFUSED);
  b->close(fd);
}

// MSG_RING (or eventfd) from one backend's thread to another's.
TEST_P(BackendTest, RingAnotherBackend) {
  std::string why;
  auto target = make_backend(GetParam(), &why);
  ASSERT_NE(target, nullptr);
  Rec bell;
  target->watch_doorbell(&bell);
  target->wait(0);
  for (int i = 0; i < 3; ++i) b->ring(*target);
  b->wait(0);  // submits the MSG_RING
  for (int i = 0; i < 200 && bell.events.empty(); ++i) {
    target->wait(10);
    b->wait(0);
  }
  EXPECT_FALSE(bell.events.empty());
}

RINGMAIL_ON_BOTH_BACKENDS(BackendTest);

}  // namespace
}  // namespace ringmail::engine
