#include "storage/data_dir_lock.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>

namespace ringmail::storage {

namespace {

std::string lock_path(const std::string& data_dir) {
  return data_dir + "/" + DataDirLock::kFileName;
}

long read_pid(int fd) {
  char buf[32] = {};
  const ssize_t n = ::pread(fd, buf, sizeof buf - 1, 0);
  if (n <= 0) return -1;
  char* end = nullptr;
  const long pid = std::strtol(buf, &end, 10);
  return pid > 0 ? pid : -1;
}

}  // namespace

DataDirLock::~DataDirLock() {
  if (fd_ >= 0) ::close(fd_);  // releases the lock; the file stays
}

Result<void> DataDirLock::acquire(const std::string& data_dir) {
  std::error_code ec;
  std::filesystem::create_directories(data_dir, ec);
  if (ec) return Error{data_dir + ": " + ec.message()};
  const std::string path = lock_path(data_dir);
  // O_CLOEXEC: a pipe delivery's child must not keep the lock after we die.
  const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) return Error{path + ": " + std::strerror(errno)};
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    const int e = errno;
    Error why;
    if (e == EWOULDBLOCK) {
      const long pid = read_pid(fd);
      why.message = "another ringmaild" +
                    (pid > 0 ? " (pid " + std::to_string(pid) + ")" : std::string()) + " uses " +
                    data_dir + "; stop it first (its lock: " + path + ")";
    } else {
      why.message = path + ": flock: " + std::strerror(e);
    }
    ::close(fd);
    return why;
  }
  const std::string pid = std::to_string(::getpid()) + "\n";
  if (::ftruncate(fd, 0) != 0 ||
      ::pwrite(fd, pid.data(), pid.size(), 0) != static_cast<ssize_t>(pid.size())) {
    Error why{path + ": " + std::strerror(errno)};
    ::close(fd);
    return why;
  }
  if (fd_ >= 0) ::close(fd_);
  fd_ = fd;
  return {};
}

long DataDirLock::holder(const std::string& data_dir) {
  const int fd = ::open(lock_path(data_dir).c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return 0;
  long pid = 0;
  // A shared lock is refused only while a daemon holds the exclusive one.
  if (::flock(fd, LOCK_SH | LOCK_NB) == 0) {
    ::flock(fd, LOCK_UN);
  } else if (errno == EWOULDBLOCK) {
    pid = read_pid(fd);
  }
  ::close(fd);
  return pid;
}

}  // namespace ringmail::storage
