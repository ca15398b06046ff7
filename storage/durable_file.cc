#include "storage/durable_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

namespace ringmail::storage {

namespace {

int write_whole(int fd, std::string_view data) {
  while (!data.empty()) {
    const ssize_t w = ::write(fd, data.data(), data.size());
    if (w < 0 && errno == EINTR) continue;
    if (w < 0) return -errno;
    if (w == 0) return -EIO;
    data.remove_prefix(static_cast<size_t>(w));
  }
  return 0;
}

int fsync_parent(const std::string& path) {
  const size_t slash = path.rfind('/');
  const std::string dir = slash == std::string::npos ? "."
                          : slash == 0               ? "/"
                                                     : path.substr(0, slash);
  const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd < 0) return -errno;
  const int r = ::fsync(dfd) == 0 ? 0 : -errno;
  ::close(dfd);
  return r;
}

}  // namespace

int write_durable_file(const std::string& path, std::string_view data, mode_t mode,
                       Existing existing) {
  const std::string target =
      existing == Existing::kReplace ? path + ".tmp-" + std::to_string(::getpid()) : path;
  if (existing == Existing::kReplace) ::unlink(target.c_str());
  const int fd = ::open(target.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
  if (fd < 0) return -errno;
  int r = ::fchmod(fd, mode) == 0 ? 0 : -errno;
  if (r == 0) r = write_whole(fd, data);
  if (r == 0 && ::fsync(fd) != 0) r = -errno;
  ::close(fd);
  if (r == 0 && existing == Existing::kReplace && ::rename(target.c_str(), path.c_str()) != 0) {
    r = -errno;
  }
  if (r != 0) {
    ::unlink(target.c_str());
    return r;
  }
  return fsync_parent(path);
}

}  // namespace ringmail::storage
