#include "storage/file_io.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstdio>

namespace ringmail::storage {

namespace {

// Writes every part (at `offset`, or at the file position when it is -1),
// resuming after short writes.
int write_all(int fd, const std::vector<std::string_view>& parts, int64_t offset = -1) {
  std::vector<iovec> iov;
  iov.reserve(parts.size());
  size_t total = 0;
  for (auto p : parts) {
    if (p.empty()) continue;
    iov.push_back({const_cast<char*>(p.data()), p.size()});
    total += p.size();
  }
  size_t done = 0;
  size_t first = 0;
  while (done < total) {
    // pwritev takes at most IOV_MAX parts at a time (a batch of records
    // may have more).
    const int cnt = static_cast<int>(std::min<size_t>(iov.size() - first, IOV_MAX));
    ssize_t n = offset < 0 ? ::writev(fd, iov.data() + first, cnt)
                           : ::pwritev(fd, iov.data() + first, cnt,
                                       static_cast<off_t>(offset + static_cast<int64_t>(done)));
    if (n < 0) {
      if (errno == EINTR) continue;
      return -errno;
    }
    done += static_cast<size_t>(n);
    size_t left = static_cast<size_t>(n);
    while (first < iov.size() && left >= iov[first].iov_len) {
      left -= iov[first].iov_len;
      ++first;
    }
    if (first < iov.size()) {
      iov[first].iov_base = static_cast<char*>(iov[first].iov_base) + left;
      iov[first].iov_len -= left;
    }
  }
  return 0;
}

// Zeroes [0, bytes) for real (not as unwritten extents: overwriting those
// later would cost a metadata update in every fdatasync) and makes it durable.
int zero_fill(int fd, uint64_t bytes) {
  static const std::string zeros(1 << 20, '\0');
  for (uint64_t off = 0; off < bytes;) {
    const size_t n = static_cast<size_t>(std::min<uint64_t>(zeros.size(), bytes - off));
    if (int r = write_all(fd, {std::string_view(zeros).substr(0, n)}, static_cast<int64_t>(off));
        r < 0) {
      return r;
    }
    off += n;
  }
  return ::fdatasync(fd) == 0 ? 0 : -errno;
}

}  // namespace

int run_blocking_op(BlockingOp* op) {
  const int fd = op->fd;
  int r = 0;
  switch (op->kind) {
    case BlockingOp::Kind::kFsync:
      r = ::fsync(fd);
      break;
    case BlockingOp::Kind::kDataSync:
      r = ::fdatasync(fd);
      break;
    case BlockingOp::Kind::kSyncfs:
      r = ::syncfs(fd);
      break;
    case BlockingOp::Kind::kZeroFill:
      return zero_fill(fd, op->bytes);
    case BlockingOp::Kind::kCall:
      return op->work(op);
  }
  return r == 0 ? 0 : -errno;
}

int PosixFileIo::create_and_write(const std::string& path,
                                  const std::vector<std::string_view>& parts) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) return -errno;
  if (int r = write_all(fd, parts); r < 0) {
    ::close(fd);
    ::unlink(path.c_str());
    return r;
  }
  return fd;
}

int PosixFileIo::open_rw(const std::string& path, bool create) {
  int flags = O_RDWR | O_CLOEXEC | (create ? O_CREAT | O_EXCL : 0);
  int fd = ::open(path.c_str(), flags, 0600);
  return fd >= 0 ? fd : -errno;
}

int PosixFileIo::write_at(int fd, uint64_t offset, const std::vector<std::string_view>& parts) {
  return write_all(fd, parts, static_cast<int64_t>(offset));
}

int PosixFileIo::truncate(int fd, uint64_t size) {
  return ::ftruncate(fd, static_cast<off_t>(size)) == 0 ? 0 : -errno;
}

int PosixFileIo::fsync_now(int fd) { return ::fsync(fd) == 0 ? 0 : -errno; }

void PosixFileIo::submit(BlockingOp* op) { deferred_.emplace_back(op, run_blocking_op(op)); }

size_t PosixFileIo::run_deferred() {
  size_t ran = 0;
  while (!deferred_.empty()) {
    auto batch = std::move(deferred_);
    deferred_.clear();
    for (auto& [op, res] : batch) {
      op->done(op, res);
      ++ran;
    }
  }
  return ran;
}

void PosixFileIo::close(int fd) { ::close(fd); }

int PosixFileIo::rename(const std::string& from, const std::string& to, bool no_replace) {
  if (no_replace) {
    if (::renameat2(AT_FDCWD, from.c_str(), AT_FDCWD, to.c_str(), RENAME_NOREPLACE) == 0) return 0;
    return -errno;
  }
  return ::rename(from.c_str(), to.c_str()) == 0 ? 0 : -errno;
}

int PosixFileIo::unlink(const std::string& path) {
  return ::unlink(path.c_str()) == 0 ? 0 : -errno;
}

int PosixFileIo::open_dir(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  return fd >= 0 ? fd : -errno;
}

int PosixFileIo::make_dirs(const std::string& path) {
  std::string cur;
  size_t pos = 0;
  while (pos != std::string::npos) {
    pos = path.find('/', pos + 1);
    cur = path.substr(0, pos);
    if (cur.empty()) continue;
    if (::mkdir(cur.c_str(), 0700) != 0 && errno != EEXIST) return -errno;
  }
  return 0;
}

int PosixFileIo::read_file(const std::string& path, std::string* out) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -errno;
  out->clear();
  char buf[65536];
  while (true) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      int err = -errno;
      ::close(fd);
      return err;
    }
    if (n == 0) break;
    out->append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  return 0;
}

int PosixFileIo::read_at(const std::string& path, uint64_t offset, size_t len, std::string* out) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -errno;
  out->resize(len);
  size_t got = 0;
  while (got < len) {
    ssize_t n = ::pread(fd, out->data() + got, len - got, static_cast<off_t>(offset + got));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      int err = n < 0 ? -errno : -EIO;
      ::close(fd);
      return err;
    }
    got += static_cast<size_t>(n);
  }
  ::close(fd);
  return 0;
}

int PosixFileIo::list_dir(const std::string& path, std::vector<std::string>* names) {
  DIR* d = ::opendir(path.c_str());
  if (d == nullptr) return -errno;
  names->clear();
  while (dirent* e = ::readdir(d)) {
    std::string_view n = e->d_name;
    if (n == "." || n == "..") continue;
    names->emplace_back(n);
  }
  ::closedir(d);
  return 0;
}

bool PosixFileIo::exists(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0;
}

}  // namespace ringmail::storage
