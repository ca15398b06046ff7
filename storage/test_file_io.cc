#include "storage/test_file_io.h"

#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <filesystem>
#include <string>

namespace ringmail::storage {

int TestFileIo::create_and_write(const std::string& path,
                                 const std::vector<std::string_view>& parts) {
  if (fail_writes_with != 0) {
    int e = fail_writes_with;
    fail_writes_with = 0;
    return e;
  }
  return PosixFileIo::create_and_write(path, parts);
}

int TestFileIo::write_at(int fd, uint64_t offset, const std::vector<std::string_view>& parts) {
  if (fail_appends_with != 0) {
    int e = fail_appends_with;
    fail_appends_with = 0;
    std::string all;
    for (auto p : parts) all.append(p);
    PosixFileIo::write_at(fd, offset, {std::string_view(all).substr(0, fail_appends_after_bytes)});
    return e;
  }
  return PosixFileIo::write_at(fd, offset, parts);
}

void TestFileIo::submit(BlockingOp* op) {
  ++fsync_calls;
  held_.push_back(op);
}

size_t TestFileIo::complete_fsyncs(size_t n) {
  size_t done = 0;
  while (!held_.empty() && (n == 0 || done < n)) {
    BlockingOp* op = held_.front();
    held_.pop_front();
    int res = 0;
    if (fail_fsyncs_count > 0) {
      --fail_fsyncs_count;
      res = fail_fsyncs_with;
    } else {
      res = run_blocking_op(op);
    }
    on_completed(op, res);
    op->done(op, res);
    ++done;
  }
  return done;
}

TempDir::TempDir() {
  const char* base = std::getenv("TMPDIR");
  std::string tmpl = std::string(base ? base : "/tmp") + "/ringmail-test-XXXXXX";
  char* p = ::mkdtemp(tmpl.data());
  if (p == nullptr) std::abort();
  path_ = p;
}

TempDir::~TempDir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

}  // namespace ringmail::storage
