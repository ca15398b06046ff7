#include "storage/data_dir_lock.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

namespace ringmail::storage {
namespace {

std::string temp_dir() {
  char tmpl[] = "/tmp/ringmail-lock-XXXXXX";
  return ::mkdtemp(tmpl);
}

// Regression (issue 19, defect 1): a second ringmaild on the same data_dir
// ran spool recovery under the first one and removed its segments.
TEST(DataDirLock, SecondDaemonOnTheSameDataDirIsRefused) {
  const std::string dir = temp_dir() + "/data";  // made by acquire()
  DataDirLock first;
  const auto locked = first.acquire(dir);
  ASSERT_TRUE(locked) << locked.error();
  EXPECT_EQ(DataDirLock::holder(dir), ::getpid());

  DataDirLock second;  // flock conflicts between open files, even in one process
  EXPECT_EQ(second.acquire(dir).error(), "another ringmaild (pid " + std::to_string(::getpid()) +
                                             ") uses " + dir + "; stop it first (its lock: " + dir +
                                             "/ringmaild.lock)");
  std::filesystem::remove_all(std::filesystem::path(dir).parent_path());
}

TEST(DataDirLock, ReleasedWhenTheHolderGoes) {
  const std::string dir = temp_dir();
  {
    DataDirLock first;
    const auto locked = first.acquire(dir);
    ASSERT_TRUE(locked) << locked.error();
  }
  EXPECT_EQ(DataDirLock::holder(dir), 0);  // the stale file does not count
  DataDirLock again;
  const auto relocked = again.acquire(dir);
  EXPECT_TRUE(relocked) << relocked.error();
  std::filesystem::remove_all(dir);
}

TEST(DataDirLock, NobodyHoldsADirectoryWithoutALockFile) {
  const std::string dir = temp_dir();
  EXPECT_EQ(DataDirLock::holder(dir), 0);
  EXPECT_FALSE(std::filesystem::exists(dir + "/ringmaild.lock"));
  std::filesystem::remove_all(dir);
}

TEST(DataDirLock, UnusableDataDirIsAnError) {
  const std::string dir = temp_dir();
  std::ofstream(dir + "/file") << "x";
  DataDirLock l;
  const auto locked = l.acquire(dir + "/file/data");
  ASSERT_FALSE(locked);
  EXPECT_NE(locked.error().find(dir + "/file/data"), std::string::npos) << locked.error();
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace ringmail::storage
