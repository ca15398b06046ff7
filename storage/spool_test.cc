#include "storage/spool.h"

#include <gtest/gtest.h>

#include <cerrno>
#include <fstream>

#include "storage/test_file_io.h"

namespace ringmail::storage {
namespace {

struct Req : Spool::Commit {
  proto::Envelope env_storage;
  std::string msg;
  bool finished = false;
  proto::CommitResult result = proto::CommitResult::kTempFail;
};

void on_done(Spool::Commit* c, proto::CommitResult r) {
  auto* q = static_cast<Req*>(c);
  q->finished = true;
  q->result = r;
}

std::unique_ptr<Req> make_req(const std::string& id) {
  auto r = std::make_unique<Req>();
  r->env_storage.id = id;
  r->env_storage.client = "[127.0.0.1]";
  r->env_storage.helo = "c";
  r->env_storage.from = proto::Address{"a", "src.example"};
  r->env_storage.rcpts = {proto::Address{"bob", "example.test"}};
  r->msg = "Subject: " + id + "\r\n\r\nbody\r\n";
  r->env = &r->env_storage;
  r->message = r->msg;
  r->done = &on_done;
  return r;
}

class SpoolTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_EQ(spool.open(), 0); }
  TempDir dir;
  TestFileIo io;
  Spool spool{io, dir.path()};
};

TEST_F(SpoolTest, AcknowledgesOnlyAfterFileAndDirectoryFsync) {
  auto r = make_req("ID1");
  spool.commit(r.get());
  EXPECT_FALSE(r->finished);
  EXPECT_EQ(io.complete_fsyncs(1), 1u);  // the file
  EXPECT_FALSE(r->finished);             // renamed, directory not yet synced
  EXPECT_TRUE(io.exists(spool.queue_path("ID1")));
  EXPECT_EQ(io.complete_fsyncs(1), 1u);  // the directory
  ASSERT_TRUE(r->finished);
  EXPECT_EQ(r->result, proto::CommitResult::kOk);
}

TEST_F(SpoolTest, GroupCommitSharesDirectoryFsync) {
  std::vector<std::unique_ptr<Req>> reqs;
  for (int i = 0; i < 10; ++i) {
    reqs.push_back(make_req("G" + std::to_string(i)));
    spool.commit(reqs.back().get());
  }
  EXPECT_EQ(io.complete_fsyncs(10), 10u);  // ten file fsyncs
  io.complete_fsyncs();                    // directory fsyncs
  for (auto& r : reqs) EXPECT_EQ(r->result, proto::CommitResult::kOk);
  // The first rename starts a directory fsync; the other nine share the next.
  EXPECT_EQ(spool.dir_fsyncs(), 2u);
  EXPECT_EQ(io.fsync_calls, 12u);
}

TEST_F(SpoolTest, FsyncFailureGives451AndLeavesNothing) {
  auto r = make_req("F1");
  spool.commit(r.get());
  io.fail_fsyncs_with = -EIO;
  io.fail_fsyncs_count = 1;
  io.complete_fsyncs();
  ASSERT_TRUE(r->finished);
  EXPECT_EQ(r->result, proto::CommitResult::kTempFail);
  EXPECT_FALSE(io.exists(spool.queue_path("F1")));
  EXPECT_FALSE(io.exists(dir.path() + "/spool/tmp/F1"));
}

TEST_F(SpoolTest, DirectoryFsyncFailureRemovesTheMessage) {
  auto r = make_req("D1");
  spool.commit(r.get());
  io.complete_fsyncs(1);
  io.fail_fsyncs_with = -EIO;
  io.fail_fsyncs_count = 1;
  io.complete_fsyncs();
  EXPECT_EQ(r->result, proto::CommitResult::kTempFail);
  EXPECT_FALSE(io.exists(spool.queue_path("D1")));
}

TEST_F(SpoolTest, DiskFullGives452) {
  auto r = make_req("N1");
  io.fail_writes_with = -ENOSPC;
  spool.commit(r.get());
  ASSERT_TRUE(r->finished);
  EXPECT_EQ(r->result, proto::CommitResult::kNoSpace);
}

TEST_F(SpoolTest, RecoveryKeepsValidMovesCorruptRemovesTmp) {
  auto good = make_req("OK1");
  spool.commit(good.get());
  io.complete_fsyncs();
  ASSERT_EQ(good->result, proto::CommitResult::kOk);
  auto bad = make_req("BAD1");
  spool.commit(bad.get());
  io.complete_fsyncs();
  {
    std::fstream f(spool.queue_path("BAD1"), std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(40);
    f.put('#');
  }
  std::ofstream(dir.path() + "/spool/tmp/LEFTOVER") << "partial";
  std::vector<SpoolRecord> got;
  std::vector<std::string> logs;
  Spool fresh(io, dir.path());
  ASSERT_EQ(fresh.open(), 0);
  auto st = fresh.recover([&](SpoolRecord&& r) { got.push_back(std::move(r)); },
                          [&](const std::string& l) { logs.push_back(l); });
  EXPECT_EQ(st.recovered, 1u);
  EXPECT_EQ(st.corrupt, 1u);
  EXPECT_EQ(st.tmp_removed, 1u);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].env.id, "OK1");
  EXPECT_EQ(got[0].message, good->msg);
  ASSERT_EQ(logs.size(), 1u);
  EXPECT_NE(logs[0].find("BAD1"), std::string::npos);
  EXPECT_TRUE(io.exists(dir.path() + "/spool/corrupt/BAD1"));
  EXPECT_FALSE(io.exists(dir.path() + "/spool/tmp/LEFTOVER"));
}

}  // namespace
}  // namespace ringmail::storage
