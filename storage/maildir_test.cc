#include "storage/maildir.h"

#include <gtest/gtest.h>

#include <cerrno>

#include "storage/test_file_io.h"

namespace ringmail::storage {
namespace {

struct Done : MaildirDelivery::Job {
  bool finished = false;
  proto::DeliveryResult result;
};

void on_done(MaildirDelivery::Job* j, const proto::DeliveryResult& r) {
  auto* d = static_cast<Done*>(j);
  d->finished = true;
  d->result = r;
}

using Mode = MaildirDelivery::SyncMode;

class MaildirTest : public ::testing::TestWithParam<Mode> {
 protected:
  void SetUp() override { ASSERT_EQ(spool.open(), 0); }

  // Commits a message to the spool and returns a delivery job for it.
  std::unique_ptr<Done> spooled(const std::string& id, std::vector<proto::Address> rcpts) {
    auto job = std::make_unique<Done>();
    job->rec.env.id = id;
    job->rec.env.arrival_unix = 1700000000;
    job->rec.env.client = "[127.0.0.1]";
    job->rec.env.helo = "c";
    job->rec.env.from = proto::Address{"a", "src.example"};
    job->rec.env.rcpts = std::move(rcpts);
    job->rec.message = "Received: x\r\n\ty\r\nSubject: hi\r\n\r\nline1\r\n.line2\r\n";
    job->done = &on_done;
    struct C : Spool::Commit {
      proto::CommitResult r = proto::CommitResult::kTempFail;
    } c;
    c.env = &job->rec.env;
    c.message = job->rec.message;
    c.done = [](Spool::Commit* x, proto::CommitResult r) { static_cast<C*>(x)->r = r; };
    spool.commit(&c);
    io.complete_fsyncs();
    EXPECT_EQ(c.r, proto::CommitResult::kOk);
    job->rec.segment = c.segment;
    return job;
  }

  // Runs every held sync (and the batch syncfs the shard would start).
  void settle() {
    do {
      md.flush();
    } while (io.complete_fsyncs() > 0);
  }

  std::string read(const std::string& p) {
    std::string s;
    EXPECT_EQ(io.read_file(p, &s), 0) << p;
    return s;
  }

  TempDir dir;
  TestFileIo io;
  // Ids still waiting for delivery, as a restart would find them.
  std::vector<std::string> pending() {
    std::vector<Spool::RecoveredSegment> segs;
    Spool::recover(io, dir.path(), &segs, [](const std::string&) {});
    std::vector<std::string> ids;
    for (auto& s : segs) {
      for (auto& r : s.records) ids.push_back(r.env.id);
    }
    return ids;
  }

  Spool spool{io, dir.path(), 0};
  MaildirDelivery md{io, spool, dir.path(), "mx.test", GetParam()};
};

TEST_P(MaildirTest, DeliversEachRecipientThenRemovesFromSpool) {
  auto job = spooled("M1", {{"Bob", "Example.TEST"}, {"carol", "example.test"}});
  md.deliver(job.get());
  EXPECT_FALSE(job->finished);
  settle();
  ASSERT_TRUE(job->finished);
  EXPECT_EQ(job->result.outcome, proto::Outcome::kOk);
  const std::string bob = dir.path() + "/mail/example.test/bob/Maildir/new/1700000000.M1_0.mx.test";
  EXPECT_EQ(read(bob),
            "Return-Path: <a@src.example>\nDelivered-To: Bob@Example.TEST\nReceived: x\n\ty\n"
            "Subject: hi\n\nline1\n.line2\n");
  EXPECT_TRUE(
      io.exists(dir.path() + "/mail/example.test/carol/Maildir/new/1700000000.M1_1.mx.test"));
  EXPECT_TRUE(pending().empty());
  std::vector<std::string> names;
  io.list_dir(dir.path() + "/mail/example.test/bob/Maildir/tmp", &names);
  EXPECT_TRUE(names.empty());
}

TEST_P(MaildirTest, RepeatedDeliveryDoesNotDuplicate) {
  auto job = spooled("M2", {{"bob", "example.test"}});
  md.deliver(job.get());
  settle();
  // As after a crash between delivery and spool removal: deliver again.
  auto again = spooled("M2", {{"bob", "example.test"}});
  md.deliver(again.get());
  settle();
  EXPECT_EQ(again->result.outcome, proto::Outcome::kOk);
  std::vector<std::string> names;
  io.list_dir(dir.path() + "/mail/example.test/bob/Maildir/new", &names);
  EXPECT_EQ(names.size(), 1u);
}

TEST_P(MaildirTest, FsyncFailureKeepsTheSpoolEntry) {
  auto job = spooled("M3", {{"bob", "example.test"}});
  md.deliver(job.get());
  io.fail_fsyncs_with = -EIO;
  io.fail_fsyncs_count = 1;
  settle();
  ASSERT_TRUE(job->finished);
  EXPECT_EQ(job->result.outcome, proto::Outcome::kTemp);
  EXPECT_EQ(job->result.reply, "maildir: Input/output error");
  EXPECT_EQ(pending(), std::vector<std::string>{"M3"});
}

TEST_P(MaildirTest, BatchModeSharesOneFileSystemSync) {
  if (GetParam() != Mode::kBatch) GTEST_SKIP() << "batch mode only";
  std::vector<std::unique_ptr<Done>> jobs;
  for (int i = 0; i < 5; ++i) {
    jobs.push_back(
        spooled("B" + std::to_string(i), {{"bob", "example.test"}, {"eve", "example.test"}}));
  }
  const uint64_t before = io.fsync_calls;
  for (auto& j : jobs) md.deliver(j.get());
  // Nothing starts until the owner flushes: then one syncfs covers all five.
  EXPECT_TRUE(md.sync_pending());
  EXPECT_EQ(io.held(), 0u);
  md.flush();
  EXPECT_EQ(io.held(), 1u);
  for (auto& j : jobs) EXPECT_FALSE(j->finished);
  io.complete_fsyncs();
  EXPECT_EQ(io.fsync_calls - before, 1u);
  EXPECT_FALSE(md.sync_pending());
  for (auto& j : jobs) EXPECT_EQ(j->result.outcome, proto::Outcome::kOk);
  EXPECT_TRUE(pending().empty());
}

INSTANTIATE_TEST_SUITE_P(Modes, MaildirTest, ::testing::Values(Mode::kPerFile, Mode::kBatch),
                         [](const auto& info) {
                           return info.param == Mode::kBatch ? std::string("batch")
                                                             : std::string("per_file");
                         });

}  // namespace
}  // namespace ringmail::storage
