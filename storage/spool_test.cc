#include "storage/spool.h"

#include <gtest/gtest.h>

#include <cerrno>
#include <fstream>
#include <set>

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

SpoolRecord record_of(const Req& r) {
  SpoolRecord rec;
  rec.env = r.env_storage;
  rec.message = r.msg;
  rec.segment = r.segment;
  rec.offset = r.offset;
  rec.length = r.length;
  return rec;
}

class SpoolTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_EQ(spool->open(), 0); }

  std::vector<Spool::RecoveredSegment> recover(Spool::RecoveryStats* st = nullptr,
                                               std::vector<std::string>* logs = nullptr) {
    std::vector<Spool::RecoveredSegment> out;
    auto s = Spool::recover(io, dir.path(), &out, [&](const std::string& l) {
      if (logs) logs->push_back(l);
    });
    if (st) *st = s;
    return out;
  }

  // Damages the record holding `text` in the segment at `path` (one byte
  // of it changed), so its checksum no longer matches.
  void damage(const std::string& path, const std::string& text) {
    std::string data;
    ASSERT_EQ(io.read_file(path, &data), 0);
    const size_t at = data.find(text);
    ASSERT_NE(at, std::string::npos);
    std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(static_cast<std::streamoff>(at));
    f.put('#');
  }

  TempDir dir;
  TestFileIo io;
  std::unique_ptr<Spool> spool = std::make_unique<Spool>(io, dir.path(), 0);
};

TEST_F(SpoolTest, AcknowledgesOnlyAfterTheSegmentIsSynced) {
  auto r = make_req("ID1");
  spool->commit(r.get());
  EXPECT_FALSE(r->finished);
  std::string data;
  ASSERT_EQ(io.read_file(spool->current_segment_path(), &data), 0);
  EXPECT_NE(data.find("id ID1\n"), std::string::npos);  // appended, not yet durable
  EXPECT_EQ(io.complete_fsyncs(), 1u);
  ASSERT_TRUE(r->finished);
  EXPECT_EQ(r->result, proto::CommitResult::kOk);
  // A delivery backlog may drop the message from memory and read it back.
  auto second = make_req("ID2");
  spool->commit(second.get());
  io.complete_fsyncs();
  SpoolRecord rec = record_of(*second);
  rec.message.clear();
  ASSERT_EQ(spool->load(rec), 0);
  EXPECT_EQ(rec.message, second->msg);
}

TEST_F(SpoolTest, GroupCommitSharesOneSync) {
  std::vector<uint64_t> batches;  // messages per fdatasync, as /metrics gets them
  spool->set_sync_observer([&](uint64_t n) { batches.push_back(n); });
  std::vector<std::unique_ptr<Req>> reqs;
  for (int i = 0; i < 10; ++i) {
    reqs.push_back(make_req("G" + std::to_string(i)));
    spool->commit(reqs.back().get());
  }
  // The first append starts a sync; the nine that arrive while it runs share
  // the next one.
  EXPECT_EQ(io.complete_fsyncs(1), 1u);
  EXPECT_TRUE(reqs[0]->finished);
  EXPECT_FALSE(reqs[1]->finished);
  EXPECT_EQ(io.complete_fsyncs(), 1u);
  for (auto& r : reqs) EXPECT_EQ(r->result, proto::CommitResult::kOk);
  EXPECT_EQ(io.fsync_calls, 2u);
  EXPECT_EQ(batches, (std::vector<uint64_t>{1, 9}));
  // A round with state lines only carries no message: not reported.
  spool->delivered(record_of(*reqs[0]));
  bool synced = false;
  spool->sync([&](int) { synced = true; });
  io.complete_fsyncs();
  EXPECT_TRUE(synced);
  EXPECT_EQ(batches.size(), 2u);
}

TEST_F(SpoolTest, SyncFailureGives451AndTombstonesTheCopy) {
  auto r = make_req("F1");
  spool->commit(r.get());
  const std::string old_segment = spool->current_segment_path();
  io.fail_fsyncs_with = -EIO;
  io.fail_fsyncs_count = 1;
  io.complete_fsyncs();
  ASSERT_TRUE(r->finished);
  EXPECT_EQ(r->result, proto::CommitResult::kTempFail);
  EXPECT_NE(spool->current_segment_path(), old_segment);  // stopped appending there
  // The client will send it again: after a restart this copy is not delivered.
  spool.reset();
  EXPECT_TRUE(recover().empty());
}

// A batch (the HTTP injection API's request): one append, one fdatasync,
// one result for all of its messages.
struct BatchReq : Spool::Batch {
  std::vector<std::unique_ptr<Req>> reqs;  // their envelopes and messages
  bool finished = false;
  proto::CommitResult result = proto::CommitResult::kTempFail;
};

std::unique_ptr<BatchReq> make_batch(const std::string& prefix, size_t n) {
  auto b = std::make_unique<BatchReq>();
  for (size_t i = 0; i < n; ++i) {
    b->reqs.push_back(make_req(prefix + std::to_string(i)));
    b->items.push_back({b->reqs.back()->env, b->reqs.back()->message});
  }
  b->done = [](Spool::Batch* x, proto::CommitResult r) {
    auto* q = static_cast<BatchReq*>(x);
    q->finished = true;
    q->result = r;
  };
  return b;
}

TEST_F(SpoolTest, DiskFullGives452AndCutsThePartialRecords) {
  auto ok = make_req("K1");
  spool->commit(ok.get());
  io.complete_fsyncs();
  io.fail_appends_with = -ENOSPC;
  io.fail_appends_after_bytes = 10;  // a short write, then ENOSPC
  auto r = make_req("N1");
  spool->commit(r.get());
  ASSERT_TRUE(r->finished);
  EXPECT_EQ(r->result, proto::CommitResult::kNoSpace);
  // A batch: two records and a part of the third fit; none of it stays.
  io.fail_appends_with = -ENOSPC;
  io.fail_appends_after_bytes = 300;
  auto b = make_batch("B", 10);
  spool->commit_batch(b.get());
  ASSERT_TRUE(b->finished);
  EXPECT_EQ(b->result, proto::CommitResult::kNoSpace);
  spool.reset();
  Spool::RecoveryStats st;
  auto segs = recover(&st);
  EXPECT_EQ(st.corrupt, 0u);
  ASSERT_EQ(segs.size(), 1u);
  ASSERT_EQ(segs[0].records.size(), 1u);
  EXPECT_EQ(segs[0].records[0].env.id, "K1");
}

TEST_F(SpoolTest, BatchIsAcknowledgedByOneSync) {
  std::vector<uint64_t> batches;
  spool->set_sync_observer([&](uint64_t n) { batches.push_back(n); });
  // More records than one pwritev takes parts (IOV_MAX is 1024; 3 parts a record).
  auto b = make_batch("B", 400);
  spool->commit_batch(b.get());
  EXPECT_FALSE(b->finished);
  EXPECT_EQ(io.complete_fsyncs(), 1u);
  ASSERT_TRUE(b->finished);
  EXPECT_EQ(b->result, proto::CommitResult::kOk);
  EXPECT_EQ(batches, (std::vector<uint64_t>{400}));
  // Each item knows where its record is.
  SpoolRecord rec;
  rec.env = b->reqs[399]->env_storage;
  rec.segment = b->segment;
  rec.offset = b->items[399].offset;
  rec.length = b->items[399].length;
  ASSERT_EQ(spool->load(rec), 0);
  EXPECT_EQ(rec.message, b->reqs[399]->msg);
  spool.reset();
  auto segs = recover();
  ASSERT_EQ(segs.size(), 1u);
  EXPECT_EQ(segs[0].records.size(), 400u);
}

TEST_F(SpoolTest, BatchWhoseSyncFailsIsTombstonedWhole) {
  auto b = make_batch("F", 5);
  spool->commit_batch(b.get());
  io.fail_fsyncs_with = -EIO;
  io.fail_fsyncs_count = 1;
  io.complete_fsyncs();
  ASSERT_TRUE(b->finished);
  EXPECT_EQ(b->result, proto::CommitResult::kTempFail);
  // The next batch goes to a fresh segment and is kept.
  auto c = make_batch("G", 2);
  spool->commit_batch(c.get());
  io.complete_fsyncs();
  EXPECT_EQ(c->result, proto::CommitResult::kOk);
  spool.reset();
  std::set<std::string> ids;
  for (const auto& seg : recover()) {
    for (const auto& r : seg.records) ids.insert(r.env.id);
  }
  EXPECT_EQ(ids, (std::set<std::string>{"G0", "G1"}));
}

TEST_F(SpoolTest, DeliveredRecordsAreNotRecoveredAndEmptySegmentsGo) {
  auto a = make_req("A");
  auto b = make_req("B");
  spool->commit(a.get());
  spool->commit(b.get());
  io.complete_fsyncs();
  spool->delivered(record_of(*a));
  spool.reset();
  Spool::RecoveryStats st;
  auto segs = recover(&st);
  ASSERT_EQ(segs.size(), 1u);
  ASSERT_EQ(segs[0].records.size(), 1u);
  EXPECT_EQ(segs[0].records[0].env.id, "B");
  EXPECT_EQ(st.delivered_skipped, 1u);
  // Recovery keeps envelopes only; the message is read back on demand.
  SpoolRecord rec = segs[0].records[0];
  EXPECT_TRUE(rec.message.empty());
  Spool fresh(io, dir.path(), 1);
  ASSERT_EQ(fresh.open(), 0);
  rec.segment = fresh.adopt(segs[0]);
  ASSERT_EQ(fresh.load(rec), 0);
  EXPECT_EQ(rec.message, b->msg);
}

// Regression (issue 19, defect 12): a read-only start logged "2 empty
// segments removed" when nothing was removed.
TEST_F(SpoolTest, FinishedSegmentsAreCountedOnlyWhenRemoved) {
  auto a = make_req("RO");
  spool->commit(a.get());
  io.complete_fsyncs();
  spool->delivered(record_of(*a));
  spool.reset();
  io.fail_unlinks_with = -EROFS;
  Spool::RecoveryStats st;
  std::vector<std::string> logs;
  recover(&st, &logs);
  EXPECT_EQ(st.removed, 0u);
  ASSERT_FALSE(logs.empty());
  EXPECT_NE(logs[0].find("cannot remove the finished segment"), std::string::npos) << logs[0];
  EXPECT_NE(logs[0].find("(errno " + std::to_string(EROFS) + ")"), std::string::npos) << logs[0];
  io.fail_unlinks_with = 0;
  recover(&st);
  EXPECT_EQ(st.removed, 1u);
}

TEST_F(SpoolTest, RotatesAndDropsFullyDeliveredSegments) {
  spool.reset();
  std::vector<std::string> names;
  io.list_dir(dir.path() + "/spool/queue", &names);
  const size_t before = names.size();                       // the (empty) segment of SetUp's spool
  spool = std::make_unique<Spool>(io, dir.path(), 3, 200);  // tiny segments
  ASSERT_EQ(spool->open(), 0);
  std::vector<std::unique_ptr<Req>> reqs;
  for (int i = 0; i < 5; ++i) {
    reqs.push_back(make_req("R" + std::to_string(i)));
    spool->commit(reqs.back().get());
    io.complete_fsyncs();
  }
  EXPECT_GE(spool->segment_count(), 3u);
  for (auto& r : reqs) spool->delivered(record_of(*r));
  EXPECT_EQ(spool->segment_count(), 1u);  // only the current one is left
  io.list_dir(dir.path() + "/spool/queue", &names);
  EXPECT_EQ(names.size(), before + 1);
}

TEST_F(SpoolTest, RecoveryMovesDamageAsideAndKeepsTheRest) {
  auto a = make_req("A1");
  auto b = make_req("B1");
  auto c = make_req("C1");
  spool->commit(a.get());
  spool->commit(b.get());
  spool->commit(c.get());
  io.complete_fsyncs();
  const std::string path = spool->current_segment_path();
  spool.reset();
  damage(path, "Subject: B1");
  std::ofstream(path, std::ios::app) << "ringmail-spool 1\nid TORN\narr";  // torn tail
  Spool::RecoveryStats st;
  std::vector<std::string> logs;
  auto segs = recover(&st, &logs);
  ASSERT_EQ(segs.size(), 1u);
  ASSERT_EQ(segs[0].records.size(), 2u);
  EXPECT_EQ(segs[0].records[0].env.id, "A1");
  EXPECT_EQ(segs[0].records[1].env.id, "C1");
  EXPECT_EQ(st.corrupt, 2u);
  ASSERT_EQ(logs.size(), 2u);
  // Regression (issue 19, defect 12): the lines name the messages whose
  // headers are still readable.
  EXPECT_NE(logs[0].find(", message B1) copied to "), std::string::npos) << logs[0];
  EXPECT_NE(logs[1].find(", message TORN) copied to "), std::string::npos) << logs[1];
  std::vector<std::string> kept;
  io.list_dir(dir.path() + "/spool/corrupt", &kept);
  EXPECT_EQ(kept.size(), 2u);
}

// Regression (issue 20, found by [[nodiscard]]): a damaged region whose copy
// to corrupt/ failed was still logged as "copied to"; the line now says it
// could not be copied, and why.
TEST_F(SpoolTest, DamagedRegionThatCannotBeCopiedIsNotLoggedAsCopied) {
  auto a = make_req("A1");
  auto b = make_req("B1");
  spool->commit(a.get());
  spool->commit(b.get());
  io.complete_fsyncs();
  const std::string path = spool->current_segment_path();
  spool.reset();
  damage(path, "Subject: B1");
  io.fail_writes_with = -ENOSPC;  // the copy to corrupt/ fails
  Spool::RecoveryStats st;
  std::vector<std::string> logs;
  auto segs = recover(&st, &logs);
  ASSERT_EQ(segs.size(), 1u);
  EXPECT_EQ(st.corrupt, 1u);
  ASSERT_EQ(logs.size(), 1u);
  EXPECT_NE(logs[0].find(", message B1) could not be copied to "), std::string::npos) << logs[0];
  EXPECT_NE(logs[0].find("No space left on device"), std::string::npos) << logs[0];
  EXPECT_EQ(logs[0].find(") copied to "), std::string::npos) << logs[0];
}

// Per-recipient state: finished recipients and the retry schedule survive a
// restart; a message whose recipients are all finished is not recovered.
TEST_F(SpoolTest, RecipientStateAndRetrySurviveARestart) {
  auto a = make_req("RA");
  a->env_storage.rcpts = {proto::Address{"b", "peer.example"}, proto::Address{"c", "peer.example"},
                          proto::Address{"d", "other.example"}};
  auto z = make_req("RZ");
  spool->commit(a.get());
  spool->commit(z.get());
  io.complete_fsyncs();
  ASSERT_EQ(a->result, proto::CommitResult::kOk);
  SpoolRecord ra = record_of(*a);
  ra.env = a->env_storage;
  spool->recipient_done(ra, 0, false);
  spool->recipient_done(ra, 2, true);
  EXPECT_GE(io.held(), 1u);  // a flush was asked for
  io.complete_fsyncs();
  spool->retry_at(ra, 3, 1795440000);
  spool->retry_at(ra, 4, 1795450000);  // the latest wins
  spool->delay_warned(ra);
  SpoolRecord rz = record_of(*z);
  spool->recipient_done(rz, 0, false);  // RZ's only recipient: finished
  io.complete_fsyncs();
  spool.reset();
  Spool::RecoveryStats st;
  auto segs = recover(&st);
  ASSERT_EQ(segs.size(), 1u);
  ASSERT_EQ(segs[0].records.size(), 1u);
  const SpoolRecord& r = segs[0].records[0];
  EXPECT_EQ(r.env.id, "RA");
  EXPECT_EQ(r.rcpt_done, (std::vector<char>{'d', 0, 'b'}));
  EXPECT_EQ(r.attempts, 4u);
  EXPECT_EQ(r.next_attempt_unix, 1795450000);
  EXPECT_TRUE(r.delay_warned);
  EXPECT_EQ(st.delivered_skipped, 1u);  // RZ
  EXPECT_EQ(st.corrupt, 0u);
}

// Regression: a tombstone went into the segment being appended to; when that
// segment's own records were all delivered it was unlinked, although the
// older segment holding the tombstoned record was still there (kept by one
// deferred message), so after a restart the record was delivered again.
TEST_F(SpoolTest, TombstonesOutliveTheSegmentTheyAreIn) {
  spool = std::make_unique<Spool>(io, dir.path(), 3, 200);  // tiny segments: one record each
  ASSERT_EQ(spool->open(), 0);
  auto old1 = make_req("OLD1");
  auto kept = make_req("KEPT");  // deferred: keeps the first segment
  spool->commit(old1.get());
  spool->commit(kept.get());
  io.complete_fsyncs();
  auto next = make_req("NEXT");  // rotates: the tombstone below goes after it
  spool->commit(next.get());
  io.complete_fsyncs();
  spool->delivered(record_of(*old1));
  SpoolRecord rk = record_of(*kept);
  spool->hold(rk, true);
  auto more = make_req("MORE");  // rotates again, so NEXT's segment can go
  spool->commit(more.get());
  io.complete_fsyncs();
  spool->delivered(record_of(*next));
  io.complete_fsyncs();  // the carried lines' sync, then the unlink
  spool->delivered(record_of(*more));
  io.complete_fsyncs();
  spool.reset();
  Spool::RecoveryStats st;
  auto segs = recover(&st);
  std::vector<std::string> ids;
  for (auto& seg : segs) {
    for (auto& r : seg.records) {
      ids.push_back(r.env.id);
      EXPECT_TRUE(r.held) << r.env.id;
    }
  }
  EXPECT_EQ(ids, std::vector<std::string>{"KEPT"});
}

// At a start, lines about recovered records may be in segments with
// nothing left to deliver: adopt() writes them again before those go.
TEST_F(SpoolTest, AdoptionKeepsStateWhenFinishedSegmentsGo) {
  spool = std::make_unique<Spool>(io, dir.path(), 3, 200);
  ASSERT_EQ(spool->open(), 0);
  auto a = make_req("A1");
  auto k = make_req("K1");
  k->env_storage.rcpts = {proto::Address{"b", "peer.example"}, proto::Address{"c", "peer.example"}};
  spool->commit(a.get());
  spool->commit(k.get());
  io.complete_fsyncs();
  auto n = make_req("N1");
  spool->commit(n.get());
  io.complete_fsyncs();
  spool->delivered(record_of(*a));
  SpoolRecord rk = record_of(*k);
  rk.env = k->env_storage;
  spool->recipient_deleted(rk, 1);
  spool->hold(rk, true);
  spool->hold(rk, false);
  spool->hold(rk, true);
  spool->delivered(record_of(*n));
  io.complete_fsyncs();
  spool.reset();
  for (int restart = 0; restart < 3; ++restart) {
    SCOPED_TRACE("restart " + std::to_string(restart));
    std::vector<Spool::RecoveredSegment> segs;
    std::vector<std::string> obsolete;
    Spool::recover(
        io, dir.path(), &segs, [](const std::string&) {}, &obsolete);
    ASSERT_EQ(segs.size(), 1u);
    ASSERT_EQ(segs[0].records.size(), 1u);
    EXPECT_EQ(segs[0].records[0].env.id, "K1");
    EXPECT_EQ(segs[0].records[0].rcpt_done, (std::vector<char>{0, 'x'}));
    EXPECT_TRUE(segs[0].records[0].held);
    Spool again(io, dir.path(), 4 + restart, 200);
    ASSERT_EQ(again.open(), 0);
    again.adopt(segs[0]);
    Spool::remove_obsolete(io, dir.path(), obsolete, [](const std::string&) {});
  }
}

TEST_F(SpoolTest, TheLatestHoldWinsWhateverItsPlace) {
  Spool::Scan sc;
  const std::string lines = encode_hold("H1", 20, false) + encode_hold("H1", 10, true) +
                            encode_hold("H2", 5, true) + encode_rcpt_state("H2", 0, 'x');
  std::string_view in = lines;
  while (!in.empty()) {
    const size_t used = Spool::scan_state_line(in, &sc);
    ASSERT_GT(used, 0u);
    in.remove_prefix(used);
  }
  EXPECT_EQ(sc.hold["H1"], (std::pair<uint64_t, bool>{20, false}));
  EXPECT_EQ(sc.hold["H2"], (std::pair<uint64_t, bool>{5, true}));
  EXPECT_EQ(sc.rcpt_done["H2"][0], 'x');
  EXPECT_EQ(Spool::scan_state_line("ringmail-hold H3 7 2\n", &sc), 0u);
  EXPECT_EQ(Spool::scan_state_line("ringmail-rcpt H3 0 q\n", &sc), 0u);
}

// Segment preparation: the next segment is zero-filled in the background and
// records then overwrite it in place.
class PreparedSpoolTest : public SpoolTest {
 protected:
  void SetUp() override {
    spool = std::make_unique<Spool>(io, dir.path(), 0, kSeg, true);
    ASSERT_EQ(spool->open(), 0);
    EXPECT_FALSE(spool->preparing());
    spool->start_preparing();
  }
  // The first commit starts the first spare; once it is filled the spool
  // moves to it. P0 is then delivered, so its (unprepared) segment goes.
  void first_commit() {
    EXPECT_FALSE(spool->preparing());  // nothing is prepared before mail comes
    auto p0 = make_req("P0");
    spool->commit(p0.get());
    EXPECT_TRUE(spool->preparing());
    ASSERT_EQ(io.complete_fsyncs(1), 1u);  // the zero-fill
    EXPECT_EQ(spool->prepared_segments_used(), 1u);
    io.complete_fsyncs();  // P0's sync, and the next spare
    ASSERT_EQ(p0->result, proto::CommitResult::kOk);
    EXPECT_FALSE(spool->preparing());
    spool->delivered(record_of(*p0));
  }
  std::vector<std::string> queue_names() {
    std::vector<std::string> names;
    io.list_dir(dir.path() + "/spool/queue", &names);
    return names;
  }
  static constexpr uint64_t kSeg = 64 * 1024;
};

TEST_F(PreparedSpoolTest, SwitchesToTheZeroFilledSegmentAndWritesInPlace) {
  first_commit();
  const std::string path = spool->current_segment_path();
  auto a = make_req("PA");
  auto b = make_req("PB");
  spool->commit(a.get());
  spool->commit(b.get());
  EXPECT_FALSE(a->finished);
  io.complete_fsyncs();
  ASSERT_TRUE(a->finished && b->finished);
  EXPECT_EQ(a->result, proto::CommitResult::kOk);
  std::string data;
  ASSERT_EQ(io.read_file(path, &data), 0);
  EXPECT_EQ(data.size(), kSeg);  // written over, not appended
  EXPECT_EQ(b->offset, a->offset + a->length);
  EXPECT_EQ(data.substr(a->offset, 16), "ringmail-spool 1");
  EXPECT_EQ(data.back(), '\0');
  spool.reset();
  // At start the spare (never a segment) goes and the records come back.
  Spool::RecoveryStats st;
  auto segs = recover(&st);
  ASSERT_EQ(segs.size(), 1u);
  ASSERT_EQ(segs[0].records.size(), 2u);
  EXPECT_EQ(segs[0].records[1].env.id, "PB");
  EXPECT_EQ(st.corrupt, 0u);
  for (const auto& n : queue_names()) EXPECT_FALSE(Spool::is_spare_name(n)) << n;
  SpoolRecord rec = segs[0].records[1];
  ASSERT_EQ(Spool::load_from(io, dir.path(), segs[0].name, rec), 0);
  EXPECT_EQ(rec.message, b->msg);
}

TEST_F(PreparedSpoolTest, TornRecordInTheZeroedTailIsMovedAside) {
  first_commit();
  auto a = make_req("TA");
  spool->commit(a.get());
  io.complete_fsyncs();  // the record's sync and the next spare's zero-fill
  ASSERT_EQ(a->result, proto::CommitResult::kOk);
  const std::string path = spool->current_segment_path();
  spool.reset();
  {
    // A write that reached the disk only in part before a crash.
    std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(static_cast<std::streamoff>(a->offset + a->length));
    f << "ringmail-spool 1\nid TORN\narr";
  }
  Spool::RecoveryStats st;
  std::vector<std::string> logs;
  auto segs = recover(&st, &logs);
  ASSERT_EQ(segs.size(), 1u);
  ASSERT_EQ(segs[0].records.size(), 1u);
  EXPECT_EQ(segs[0].records[0].env.id, "TA");
  EXPECT_EQ(st.corrupt, 1u);
  ASSERT_EQ(logs.size(), 1u);
  // Only the torn bytes, not the zeros after them.
  EXPECT_NE(logs[0].find("(28 bytes, message TORN)"), std::string::npos) << logs[0];
}

TEST_F(PreparedSpoolTest, FailedZeroFillFallsBackToEmptySegments) {
  auto a = make_req("FA");
  spool->commit(a.get());
  io.fail_fsyncs_with = -ENOSPC;
  io.fail_fsyncs_count = 1;
  io.complete_fsyncs(1);  // the zero-fill fails
  EXPECT_FALSE(spool->preparing());
  EXPECT_EQ(spool->prepared_segments_used(), 0u);
  for (const auto& n : queue_names()) EXPECT_FALSE(Spool::is_spare_name(n)) << n;
  // The mail is still acknowledged, from the empty segment.
  io.complete_fsyncs();
  EXPECT_EQ(a->result, proto::CommitResult::kOk);
  // The next rotation tries again.
  std::vector<std::unique_ptr<Req>> reqs;
  for (int i = 0; !spool->preparing() && i < 100; ++i) {
    reqs.push_back(make_req("F" + std::to_string(i)));
    reqs.back()->msg.append(std::string(4000, 'x') + "\r\n");
    reqs.back()->message = reqs.back()->msg;
    spool->commit(reqs.back().get());
    io.complete_fsyncs(1);
  }
  EXPECT_TRUE(spool->preparing());
  io.complete_fsyncs();
}

}  // namespace
}  // namespace ringmail::storage
