// The outbound queue's administrative side (docs/admin-api.md): listing
// and summaries in slices, hold, release, delete and bounce while a message
// is waiting or out in a batch, and suspended destinations. Batches are
// answered by the test instead of a dispatcher; the spool is a real one.
#include "engine/outbound_queue.h"

#include <gtest/gtest.h>

#include "storage/test_file_io.h"

namespace ringmail::engine {
namespace {

using proto::Address;
using proto::Outcome;
using RcptResult = proto::SmtpClient::RcptResult;

constexpr int64_t kNow = 1'800'000'000;

class OutboundQueueTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(spool.open(), 0);
    OutboundQueue::Deps d;
    d.spool = &spool;
    d.dispatch = [this](OutboundBatch* b) { out.push_back(b); };
    d.bounce = [this](OutboundQueue::Bounce b, std::function<void(bool)> done) {
      bounces.push_back(std::move(b));
      done(true);
    };
    config::OutboundConfig cfg;
    cfg.retry_first_s = 600;
    cfg.retry_max_s = 600;
    q = std::make_unique<OutboundQueue>(std::move(d), cfg);
  }

  // A message from `from` to `rcpts`, arrived `age_s` ago.
  void add(const std::string& id, const std::string& from, std::vector<Address> rcpts,
           int64_t age_s = 0) {
    storage::SpoolRecord rec;
    rec.env.id = id;
    rec.env.arrival_unix = kNow - age_s;
    const size_t at = from.find('@');
    rec.env.from = Address{from.substr(0, at), from.substr(at + 1)};
    rec.env.rcpts = std::move(rcpts);
    rec.message = "Subject: " + id + "\r\n\r\nhi\r\n";
    std::vector<size_t> idx;
    for (size_t i = 0; i < rec.env.rcpts.size(); ++i) idx.push_back(i);
    q->add(std::move(rec), std::move(idx), kNow);
  }

  // Answers every batch out with `outcome` for each recipient.
  void answer(Outcome outcome, const std::string& reply = "451 4.3.0 later") {
    auto batches = std::move(out);
    out.clear();
    for (OutboundBatch* b : batches) {
      for (OutboundMessage* m : b->msgs) m->results.assign(m->rcpts.size(), {outcome, reply});
      q->batch_done(b);
    }
  }

  std::vector<OutboundQueue::MessageView> list(const OutboundQueue::Filter& f = {}) {
    std::vector<OutboundQueue::MessageView> v;
    EXPECT_EQ(q->list(f, "", 1000, 1000, &v), "");
    return v;
  }

  OutboundQueue::Change act(OutboundQueue::Action a, OutboundQueue::Selector sel,
                            int64_t now = kNow) {
    return q->apply(a, sel, now);
  }

  storage::TempDir dir;
  storage::TestFileIo io;
  storage::Spool spool{io, dir.path(), 0};
  std::unique_ptr<OutboundQueue> q;
  std::vector<OutboundBatch*> out;
  std::vector<OutboundQueue::Bounce> bounces;
};

TEST_F(OutboundQueueTest, HoldParksAMessageUntilReleased) {
  add("M1", "a@src.test", {Address{"x", "far.test"}});
  q->service(kNow);
  ASSERT_EQ(out.size(), 1u);
  OutboundQueue::Selector sel;
  sel.ids = {"M1"};
  EXPECT_EQ(act(OutboundQueue::Action::kHold, sel).messages, 1u);  // while in flight
  EXPECT_STREQ(list()[0].rcpts[0].state, "in_flight");
  answer(Outcome::kTemp);
  q->service(kNow);
  q->tick(kNow + 10'000);  // long past its retry: held, so nothing goes out
  EXPECT_TRUE(out.empty());
  auto v = list();
  ASSERT_EQ(v.size(), 1u);
  EXPECT_TRUE(v[0].held);
  EXPECT_STREQ(v[0].rcpts[0].state, "held");
  EXPECT_EQ(v[0].rcpts[0].last_reply, "451 4.3.0 later");
  EXPECT_EQ(act(OutboundQueue::Action::kFlush, {.all = true}).messages, 0u);  // held stays held
  EXPECT_EQ(act(OutboundQueue::Action::kRelease, sel, kNow + 10'000).messages, 1u);
  q->service(kNow + 10'000);
  EXPECT_EQ(out.size(), 1u);
  answer(Outcome::kOk, "250 ok");
  q->service(kNow + 10'000);
  EXPECT_TRUE(list().empty());
}

TEST_F(OutboundQueueTest, DeleteByDomainWhileInFlightIgnoresItsResult) {
  add("M1", "a@src.test", {Address{"x", "far.test"}, Address{"y", "near.test"}});
  q->service(kNow);
  ASSERT_EQ(out.size(), 2u);  // one batch per domain
  OutboundQueue::Selector sel;
  sel.domain = "near.test";
  const auto c = act(OutboundQueue::Action::kDelete, sel);
  EXPECT_EQ(c.messages, 1u);
  EXPECT_EQ(c.recipients, 1u);
  answer(Outcome::kTemp);  // near.test's answer comes back for a deleted recipient
  q->service(kNow);
  auto v = list();
  ASSERT_EQ(v.size(), 1u);
  EXPECT_STREQ(v[0].rcpts[0].state, "waiting");
  EXPECT_STREQ(v[0].rcpts[1].state, "deleted");
  OutboundQueue::Summary s;
  EXPECT_EQ(q->summarize(kNow, "", 100, &s), "");
  EXPECT_EQ(s.recipients, 1u);
  EXPECT_EQ(s.domains.count("near.test"), 0u);
  EXPECT_TRUE(bounces.empty());  // a deletion sends no DSN
}

TEST_F(OutboundQueueTest, BounceFailsTheRecipientsWithOneDsn) {
  add("M1", "a@src.test", {Address{"x", "far.test"}, Address{"y", "far.test"}});
  q->service(kNow);
  answer(Outcome::kTemp);
  q->service(kNow);
  const auto c = act(OutboundQueue::Action::kBounce, {.all = true});
  EXPECT_EQ(c.recipients, 2u);
  ASSERT_EQ(bounces.size(), 1u);
  EXPECT_EQ(bounces[0].failed.size(), 2u);
  EXPECT_NE(bounces[0].failed[0].second.reply.find("administrator"), std::string::npos);
  EXPECT_TRUE(list().empty());
}

TEST_F(OutboundQueueTest, ASuspendedDestinationWaits) {
  q->set_suspended({{"far.test", kNow + 100}});
  add("M1", "a@src.test", {Address{"x", "far.test"}});
  add("M2", "a@src.test", {Address{"x", "near.test"}});
  q->service(kNow);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0]->domain, "near.test");
  q->tick(kNow + 101);  // the suspension is over
  EXPECT_EQ(out.size(), 2u);
}

TEST_F(OutboundQueueTest, ListingAndSummaryGoOnWhereTheSliceEnded) {
  for (int i = 0; i < 5; ++i) {
    add("M" + std::to_string(i), i % 2 ? "odd@src.test" : "even@src.test",
        {Address{"u" + std::to_string(i), i == 4 ? "near.test" : "far.test"}}, i * 600);
  }
  std::vector<OutboundQueue::MessageView> v;
  std::string after = q->list({}, "", 10, 2, &v);
  EXPECT_EQ(after, "M1");
  EXPECT_EQ(v.size(), 2u);
  after = q->list({}, after, 10, 2, &v);
  after = q->list({}, after, 10, 2, &v);
  EXPECT_EQ(after, "");
  ASSERT_EQ(v.size(), 5u);
  EXPECT_EQ(v[4].id, "M4");
  OutboundQueue::Filter f;
  f.by_sender = true;
  f.sender = "odd@src.test";
  EXPECT_EQ(list(f).size(), 2u);
  f = {};
  f.domain = "near.test";
  EXPECT_EQ(list(f).size(), 1u);
  f = {};
  f.arrived_before = kNow - 1000;  // older than 1,000 s: M2 (1,200), M3, M4
  EXPECT_EQ(list(f).size(), 3u);
  OutboundQueue::Summary s;
  std::string at = q->summarize(kNow, "", 3, &s);
  EXPECT_EQ(at, "M2");
  EXPECT_EQ(q->summarize(kNow, at, 3, &s), "");
  EXPECT_EQ(s.messages, 5u);
  const auto& far = s.domains["far.test"];
  EXPECT_EQ(far.recipients, 4u);
  // Ages 0, 10, 20, 30 minutes: buckets 0-5, 10-20, 20-40, 20-40.
  EXPECT_EQ(std::vector<uint64_t>(far.ages, far.ages + 7),
            (std::vector<uint64_t>{1, 0, 1, 2, 0, 0, 0}));
  EXPECT_EQ(OutboundQueue::age_bucket(160 * 60), 6u);
  EXPECT_EQ(OutboundQueue::age_bucket(160 * 60 - 1), 5u);
}

}  // namespace
}  // namespace ringmail::engine
