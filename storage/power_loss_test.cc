// Power loss, simulated (docs/reliability.md): the spool, its recipient
// state and Maildir delivery run on a PowerLossFileIo; at a random moment
// every write not covered by a completed flush is dropped, and recovery
// must find every message that was acknowledged. kill -9 keeps the page
// cache and cannot show this; the crash test (tests/crash) covers the
// process side.
//
// RINGMAIL_POWER_LOSS_CYCLES (default 200) and RINGMAIL_POWER_LOSS_SEED
// (default 1) repeat it longer or differently; a failure names its seed
// and cycle.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <map>
#include <memory>
#include <random>
#include <set>

#include "storage/maildir.h"
#include "storage/power_loss_file_io.h"
#include "storage/spool.h"

namespace ringmail::storage {
namespace {

uint64_t env_or(const char* name, uint64_t fallback) {
  const char* v = std::getenv(name);
  return v != nullptr && *v != '\0' ? std::strtoull(v, nullptr, 10) : fallback;
}

struct Req : Spool::Commit {
  proto::Envelope env_storage;
  std::string text;
  std::set<std::string>* acked = nullptr;
};

struct Delivery : MaildirDelivery::Job {
  std::set<std::string>* delivered = nullptr;
};

TEST(PowerLoss, AcknowledgedMessagesSurviveEveryCycle) {
  const uint64_t cycles = env_or("RINGMAIL_POWER_LOSS_CYCLES", 200);
  const uint64_t seed = env_or("RINGMAIL_POWER_LOSS_SEED", 1);
  std::mt19937_64 rng(seed);
  TempDir dir;
  PowerLossFileIo io(dir.path());

  std::map<std::string, std::string> committed;  // id -> text: everything ever handed to commit()
  std::set<std::string> acked;                   // commit() said kOk: must survive
  std::set<std::string> delivered;   // Maildir said done: files durable, tombstone written
  std::vector<SpoolRecord> waiting;  // recovered, to adopt next cycle (by segment)
  std::vector<Spool::RecoveredSegment> recovered;
  std::vector<std::string> obsolete;  // removed once `recovered` is adopted
  uint64_t redelivered = 0, acked_total = 0, lost = 0, steps_total = 0;
  std::set<std::string> acked_seen;  // for the count of distinct acknowledged messages
  std::map<std::string, std::set<size_t>>
      rcpts_done;  // recipients the test finished (outbound state)
  std::map<std::string, size_t> rcpt_count;
  uint64_t rcpts_kept = 0, rcpts_again = 0;

  for (uint64_t cycle = 0; cycle < cycles; ++cycle) {
    SCOPED_TRACE("seed " + std::to_string(seed) + " cycle " + std::to_string(cycle));
    std::vector<std::unique_ptr<Req>> reqs;
    std::vector<std::unique_ptr<Delivery>> jobs;
    {
      auto spool =
          std::make_unique<Spool>(io, dir.path(), static_cast<uint32_t>(cycle % 3), 65536, false);
      ASSERT_EQ(spool->open(), 0);
      MaildirDelivery maildir(io, *spool, dir.path(), "mx.test",
                              MaildirDelivery::SyncMode::kPerFile);
      // What recovery found is this cycle's to deliver.
      std::vector<SpoolRecord> ready;
      for (auto& seg : recovered) {
        const uint64_t key = spool->adopt(seg);
        for (auto& r : seg.records) {
          r.segment = key;
          ready.push_back(std::move(r));
        }
      }
      recovered.clear();
      Spool::remove_obsolete(io, dir.path(), obsolete, [](const std::string&) {});
      const uint64_t steps = 1 + rng() % 80;
      steps_total += steps;
      for (uint64_t s = 0; s < steps; ++s) {
        const uint64_t action = rng() % 10;
        if (action < 4) {  // a new message, one to three local recipients
          auto r = std::make_unique<Req>();
          r->env_storage.id = "C" + std::to_string(cycle) + "x" + std::to_string(s);
          r->env_storage.client = "[127.0.0.1]";
          r->env_storage.helo = "c";
          r->env_storage.arrival_unix = 1790000000 + static_cast<int64_t>(cycle);
          r->env_storage.from = proto::Address{"a", "src.example"};
          for (uint64_t i = 0, n = 1 + rng() % 3; i < n; ++i) {
            r->env_storage.rcpts.push_back(
                proto::Address{"u" + std::to_string(rng() % 4), "example.test"});
          }
          r->text = "Subject: " + r->env_storage.id + "\r\n\r\n" + std::string(rng() % 3000, 'x') +
                    "\r\n";
          r->env = &r->env_storage;
          r->message = r->text;
          r->acked = &acked;
          r->done = [](Spool::Commit* c, proto::CommitResult res) {
            auto* q = static_cast<Req*>(c);
            if (res == proto::CommitResult::kOk) q->acked->insert(q->env_storage.id);
          };
          committed[r->env_storage.id] = r->text;
          rcpt_count[r->env_storage.id] = r->env_storage.rcpts.size();
          spool->commit(r.get());
          reqs.push_back(std::move(r));
        } else if (action < 8) {  // flushes complete (acknowledgements, deliveries)
          io.complete_fsyncs(1 + rng() % 3);
        } else if (action == 8 && !ready.empty()) {
          // Outbound state: a recovered message's recipient is finished
          // elsewhere (delivered by SMTP, or bounced), and its retry noted.
          SpoolRecord& rec = ready[rng() % ready.size()];
          const size_t i = rng() % rec.env.rcpts.size();
          spool->retry_at(rec, rec.attempts + 1, 1790000000 + static_cast<int64_t>(cycle) * 60);
          spool->recipient_done(rec, i, rng() % 2 == 0);
          rcpts_done[rec.env.id].insert(i);
        } else {  // deliver an acknowledged message, this cycle's or a recovered one
          std::vector<SpoolRecord> candidates;
          for (auto& r : reqs) {
            if (acked.count(r->env_storage.id) && !delivered.count(r->env_storage.id)) {
              SpoolRecord rec;
              rec.env = r->env_storage;
              rec.message = r->text;
              rec.segment = r->segment;
              rec.offset = r->offset;
              rec.length = r->length;
              candidates.push_back(std::move(rec));
            }
          }
          for (auto& r : ready) candidates.push_back(r);
          if (candidates.empty()) continue;
          SpoolRecord rec = candidates[rng() % candidates.size()];
          bool busy = false;
          for (auto& j : jobs) busy |= j->rec.env.id == rec.env.id;
          if (busy) continue;
          if (rec.message.empty()) {
            ASSERT_EQ(spool->load(rec), 0);
          }
          auto j = std::make_unique<Delivery>();
          j->rec = std::move(rec);
          j->delivered = &delivered;
          j->done = [](MaildirDelivery::Job* job, const proto::DeliveryResult& result) {
            auto* d = static_cast<Delivery*>(job);
            if (result.outcome == proto::Outcome::kOk) d->delivered->insert(d->rec.env.id);
          };
          maildir.deliver(j.get());
          jobs.push_back(std::move(j));
        }
      }
      // The power goes at this instant: whatever is held never completes.
      io.power_loss();
    }
    // Recovery, as at the next start.
    Spool::RecoveryStats st;
    obsolete.clear();
    Spool::recover(
        io, dir.path(), &recovered, [](const std::string&) {}, &obsolete);
    std::set<std::string> found;
    for (auto& seg : recovered) {
      for (auto& r : seg.records) {
        ASSERT_TRUE(committed.count(r.env.id))
            << "recovered a message never committed: " << r.env.id;
        // Recipient state: only recipients we finished come back finished
        // (one finished before the crash may come back pending: it is then
        // tried again, counted).
        for (size_t i = 0; i < r.rcpt_done.size(); ++i) {
          if (r.rcpt_done[i] != 0) {
            EXPECT_TRUE(rcpts_done[r.env.id].count(i))
                << r.env.id << " recipient " << i << " finished by nobody";
            ++rcpts_kept;
          }
        }
        for (size_t i : rcpts_done[r.env.id]) {
          if (i < r.rcpt_done.size() && r.rcpt_done[i] == 0) ++rcpts_again;
        }
        SpoolRecord copy = r;
        ASSERT_EQ(Spool::load_from(io, dir.path(), seg.name, copy), 0) << r.env.id;
        EXPECT_NE(copy.message.find(committed[r.env.id]), std::string::npos)
            << "content of " << r.env.id;
        found.insert(r.env.id);
      }
    }
    for (const auto& id : acked) {
      // Every recipient finished (delivered elsewhere or bounced): done,
      // whether or not the tombstone made it.
      const bool all_finished = rcpts_done[id].size() == rcpt_count[id];
      if (delivered.count(id) || all_finished) {
        // Delivered: its files were durable before the tombstone was even
        // written. Recovered again means one more (idempotent) delivery.
        if (found.count(id)) ++redelivered;
        continue;
      }
      if (!found.count(id)) {
        ++lost;
        ADD_FAILURE() << "acknowledged message " << id << " lost";
      }
    }
    // Every delivered message's files are there (durable before `done`):
    // names are <arrival>.<id>_<index>.<host>.
    std::set<std::string> in_maildirs;
    std::error_code ec;
    for (std::filesystem::recursive_directory_iterator it(dir.path() + "/mail", ec), end;
         !ec && it != end; it.increment(ec)) {
      const std::string name = it->path().filename().string();
      const size_t dot = name.find('.'), us = name.find('_');
      if (it->path().parent_path().filename() == "new" && dot != std::string::npos &&
          us != std::string::npos) {
        in_maildirs.insert(name.substr(dot + 1, us - dot - 1));
      }
    }
    for (const auto& id : delivered) {
      EXPECT_TRUE(in_maildirs.count(id))
          << "delivered message " << id << " has no file in a Maildir's new/";
    }
    for (const auto& id : acked) acked_total += acked_seen.insert(id).second ? 1 : 0;
    // What was not recovered is finished for good; what was is delivered
    // again in the next cycles. The Maildirs are emptied (checked above)
    // so the tree stays small.
    delivered.clear();
    for (auto it = acked.begin(); it != acked.end();)
      it = found.count(*it) ? std::next(it) : acked.erase(it);
    std::filesystem::remove_all(dir.path() + "/mail", ec);
    io.settle();
    if (HasFailure()) break;
  }
  std::printf(
      "power loss: %llu cycles (seed %llu), %llu steps, %llu messages acknowledged, %llu lost, "
      "%llu delivered again after a crash, %llu files gone and %llu rolled back by the crashes; "
      "recipients finished: %llu found finished after a crash, %llu to be tried again\n",
      static_cast<unsigned long long>(cycles), static_cast<unsigned long long>(seed),
      static_cast<unsigned long long>(steps_total), static_cast<unsigned long long>(acked_total),
      static_cast<unsigned long long>(lost), static_cast<unsigned long long>(redelivered),
      static_cast<unsigned long long>(io.files_lost()),
      static_cast<unsigned long long>(io.files_rolled_back()),
      static_cast<unsigned long long>(rcpts_kept), static_cast<unsigned long long>(rcpts_again));
  EXPECT_EQ(lost, 0u);
}

}  // namespace
}  // namespace ringmail::storage
