#include "engine/suppression.h"

#include <cerrno>
#include <cstring>
#include <fstream>
#include <random>

namespace ringmail::engine {

Result<std::shared_ptr<const storage::SuppressionSet>> load_suppressions(const std::string& path) {
  std::random_device rd;
  const uint64_t k0 = (uint64_t{rd()} << 32) | rd(), k1 = (uint64_t{rd()} << 32) | rd();
  auto set = std::make_shared<storage::SuppressionSet>(k0, k1);
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    if (errno == ENOENT) return std::shared_ptr<const storage::SuppressionSet>(std::move(set));
    return Error{path + ": " + std::strerror(errno)};
  }
  std::string line;
  for (size_t n = 1; std::getline(in, line); ++n) {
    if (in.eof()) break;  // no newline: torn by a crash before its fdatasync
    if (line.empty() || line[0] == '#') continue;
    auto c = storage::parse_suppression_change(line);
    if (!c) return Error{path + ":" + std::to_string(n) + ": " + c.error()};
    const uint64_t k = set->key(c->scope, c->address);
    if (c->add) {
      set->insert(k);
    } else {
      set->erase(k);
    }
  }
  return std::shared_ptr<const storage::SuppressionSet>(std::move(set));
}

namespace {

struct AppendWaiter : storage::DirSync::Waiter {
  std::function<void(int)> done;
  AppendWaiter() {
    storage::DirSync::Waiter::done = [](storage::DirSync::Waiter* w, int r) {
      std::unique_ptr<AppendWaiter> self(static_cast<AppendWaiter*>(w));
      self->done(r);
    };
  }
};

}  // namespace

SuppressionWriter::~SuppressionWriter() = default;

int SuppressionWriter::open() {
  const bool existed = io_.exists(path_);
  int fd = io_.open_rw(path_, !existed);
  if (fd < 0) return fd;
  std::string text;
  if (int r = io_.read_file(path_, &text); r < 0) {
    io_.close(fd);
    return r;
  }
  // A last line torn by a crash is cut off: the next one starts clean.
  end_ = text.rfind('\n') == std::string::npos ? 0 : text.rfind('\n') + 1;
  if (!existed) {
    // Its name durable before the first change in it is acknowledged.
    const size_t slash = path_.rfind('/');
    const int dir = io_.open_dir(slash == std::string::npos ? "." : path_.substr(0, slash));
    if (dir >= 0) {
      (void)io_.fsync_now(dir);
      io_.close(dir);
    }
  }
  fd_ = fd;
  sync_ = std::make_unique<storage::DirSync>(io_, fd, storage::BlockingOp::Kind::kDataSync);
  return 0;
}

void SuppressionWriter::append(const storage::SuppressionChange& c, std::function<void(int)> done) {
  if (!sync_) {
    if (int r = open(); r < 0) return done(r);
  }
  const std::string line = storage::format_suppression_change(c);
  if (int r = io_.write_at(fd_, end_, {line}); r < 0) return done(r);
  end_ += line.size();
  auto* w = new AppendWaiter();
  w->done = std::move(done);
  sync_->sync_after(w);
}

}  // namespace ringmail::engine
