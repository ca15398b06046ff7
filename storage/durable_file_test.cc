#include "storage/durable_file.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

namespace ringmail::storage {
namespace {

namespace fs = std::filesystem;

class DurableFile : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/ringmail-durable-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string read(const std::string& p) {
    std::ifstream f(p);
    std::stringstream ss;
    ss << f.rdbuf();
    return ss.str();
  }
  mode_t mode(const std::string& p) {
    struct stat st {};
    EXPECT_EQ(::stat(p.c_str(), &st), 0);
    return st.st_mode & 07777;
  }
  size_t entries() { return static_cast<size_t>(std::distance(fs::directory_iterator(dir_), {})); }
  std::string dir_;
};

TEST_F(DurableFile, RefuseWritesANewFileWithTheExactMode) {
  const mode_t old = ::umask(077);
  const std::string p = dir_ + "/aliases";
  EXPECT_EQ(write_durable_file(p, "a: b\n", 0644, Existing::kRefuse), 0);
  ::umask(old);
  EXPECT_EQ(read(p), "a: b\n");
  EXPECT_EQ(mode(p), 0644u);
}

TEST_F(DurableFile, RefuseLeavesAnExistingFileAlone) {
  const std::string p = dir_ + "/dkim:s1.pem";
  ASSERT_EQ(write_durable_file(p, "first", 0600, Existing::kRefuse), 0);
  EXPECT_EQ(write_durable_file(p, "second", 0600, Existing::kRefuse), -EEXIST);
  EXPECT_EQ(read(p), "first");
  EXPECT_EQ(entries(), 1u);
}

TEST_F(DurableFile, ReplaceSwapsTheWholeFileAndLeavesNoTemporary) {
  const std::string p = dir_ + "/users";
  ASSERT_EQ(write_durable_file(p, "old contents\n", 0600, Existing::kReplace), 0);
  ASSERT_EQ(write_durable_file(p, "new\n", 0640, Existing::kReplace), 0);
  EXPECT_EQ(read(p), "new\n");
  EXPECT_EQ(mode(p), 0640u);
  EXPECT_EQ(entries(), 1u);
}

TEST_F(DurableFile, AMissingDirectoryIsAnErrorAndLeavesNothing) {
  EXPECT_EQ(write_durable_file(dir_ + "/no/such/file", "x", 0644, Existing::kReplace), -ENOENT);
  EXPECT_EQ(write_durable_file(dir_ + "/no/such/file", "x", 0644, Existing::kRefuse), -ENOENT);
  EXPECT_EQ(entries(), 0u);
}

}  // namespace
}  // namespace ringmail::storage
