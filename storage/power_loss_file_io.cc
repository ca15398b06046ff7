#include "storage/power_loss_file_io.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace ringmail::storage {

namespace fs = std::filesystem;

namespace {

std::string contents_of_fd(int fd) {
  struct stat st {};
  if (::fstat(fd, &st) != 0) return {};
  std::string out(static_cast<size_t>(st.st_size), '\0');
  size_t got = 0;
  while (got < out.size()) {
    const ssize_t n = ::pread(fd, out.data() + got, out.size() - got, static_cast<off_t>(got));
    if (n <= 0) break;
    got += static_cast<size_t>(n);
  }
  out.resize(got);
  return out;
}

}  // namespace

std::map<std::string, ino_t> PowerLossFileIo::listing(const std::string& dir) const {
  std::map<std::string, ino_t> out;
  std::error_code ec;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    struct stat st {};
    if (::lstat(it->path().c_str(), &st) == 0 && S_ISREG(st.st_mode)) {
      out[it->path().filename().string()] = st.st_ino;
    }
  }
  return out;
}

void PowerLossFileIo::settle() {
  names_.clear();
  contents_.clear();
  std::error_code ec;
  names_[root_] = listing(root_);
  for (fs::recursive_directory_iterator it(root_, ec), end; !ec && it != end; it.increment(ec)) {
    if (it->is_directory(ec)) names_[it->path().string()] = listing(it->path().string());
  }
  for (const auto& [dir, names] : names_) {
    for (const auto& [name, ino] : names) {
      std::ifstream f(dir + "/" + name, std::ios::binary);
      std::ostringstream ss;
      ss << f.rdbuf();
      contents_[ino] = ss.str();
    }
  }
}

void PowerLossFileIo::synced(int fd) {
  struct stat st {};
  if (::fstat(fd, &st) != 0) return;
  if (S_ISDIR(st.st_mode)) {
    auto it = fds_.find(fd);
    if (it != fds_.end()) names_[it->second] = listing(it->second);
  } else {
    contents_[st.st_ino] = contents_of_fd(fd);
  }
}

void PowerLossFileIo::on_completed(BlockingOp* op, int result) {
  if (result != 0) return;
  switch (op->kind) {
    case BlockingOp::Kind::kFsync:
    case BlockingOp::Kind::kDataSync:
    case BlockingOp::Kind::kZeroFill:
      synced(op->fd);
      break;
    case BlockingOp::Kind::kSyncfs:
      settle();  // the whole file system
      break;
    case BlockingOp::Kind::kCall:
      break;
  }
}

int PowerLossFileIo::create_and_write(const std::string& path,
                                      const std::vector<std::string_view>& parts) {
  const int fd = TestFileIo::create_and_write(path, parts);
  if (fd >= 0) fds_[fd] = path;
  return fd;
}

int PowerLossFileIo::open_rw(const std::string& path, bool create) {
  const int fd = TestFileIo::open_rw(path, create);
  if (fd >= 0) fds_[fd] = path;
  return fd;
}

int PowerLossFileIo::open_dir(const std::string& path) {
  const int fd = TestFileIo::open_dir(path);
  if (fd >= 0) fds_[fd] = fs::path(path).lexically_normal().string();
  return fd;
}

int PowerLossFileIo::fsync_now(int fd) {
  const int r = TestFileIo::fsync_now(fd);
  if (r == 0) synced(fd);
  return r;
}

void PowerLossFileIo::close(int fd) {
  fds_.erase(fd);
  TestFileIo::close(fd);
}

void PowerLossFileIo::power_loss() {
  drop_held();
  for (const auto& [fd, path] : fds_) ::close(fd);
  fds_.clear();
  // Every directory now under the root (a directory made since the last
  // settle has no durable names: it comes back empty).
  std::vector<std::string> dirs{root_};
  std::error_code ec;
  for (fs::recursive_directory_iterator it(root_, ec), end; !ec && it != end; it.increment(ec)) {
    if (it->is_directory(ec)) dirs.push_back(it->path().string());
  }
  for (const auto& dir : dirs) {
    const auto now = listing(dir);
    const auto found = names_.find(dir);
    const std::map<std::string, ino_t> none;
    const auto& durable = found == names_.end() ? none : found->second;
    std::map<std::string, std::string> before;
    for (const auto& [name, ino] : now) {
      if (durable.count(name) == 0) ++files_lost_;
      std::ifstream f(dir + "/" + name, std::ios::binary);
      std::ostringstream ss;
      ss << f.rdbuf();
      before[name] = ss.str();
      ::unlink((dir + "/" + name).c_str());
    }
    for (const auto& [name, ino] : durable) {
      auto c = contents_.find(ino);
      const std::string data =
          c == contents_.end() ? std::string() : c->second;  // never flushed: empty
      auto b = before.find(name);
      if (b == before.end() || b->second != data) ++rolled_back_;
      std::ofstream(dir + "/" + name, std::ios::binary | std::ios::trunc) << data;
    }
  }
  settle();  // what is on disk now is what the next start finds
}

}  // namespace ringmail::storage
