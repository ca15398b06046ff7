// Real shards on real backends: messages from the main thread and between
// shards (SPSC inbox + MSG_RING doorbell on io_uring, eventfd on epoll).
#include "engine/shard.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <latch>
#include <thread>

#include "engine/test_backends.h"

namespace ringmail::engine {
namespace {

class ShardMesh : public ::testing::TestWithParam<config::BackendKind> {
 protected:
  void SetUp() override {
    std::string why;
    if (GetParam() == config::BackendKind::kUring && !uring_available(&why)) GTEST_SKIP() << why;
    char tmpl[] = "/tmp/ringmail-shard-XXXXXX";
    dir_ = ::mkdtemp(tmpl);
    auto cfg = std::make_shared<config::Config>();
    cfg->hostname = "mx.test";
    cfg->data_dir = dir_;
    cfg->threads = 3;
    cfg->local_domains = {"example.test"};
    cfg->primary_domain = "example.test";
    for (uint32_t i = 0; i < 3; ++i) {
      shards_.push_back(std::make_unique<Shard>(i, cfg, std::vector<ListenSocket>{}, GetParam()));
      ASSERT_EQ(shards_.back()->open_spool(), 0);
    }
    std::vector<Shard*> peers;
    for (auto& s : shards_) peers.push_back(s.get());
    for (auto& s : shards_) s->set_peers(peers);
    std::latch ready(3);
    for (auto& s : shards_) threads_.emplace_back([&ready, sh = s.get()] { sh->run(ready); });
    ready.wait();
    for (auto& s : shards_) ASSERT_EQ(s->error(), "");
  }
  void TearDown() override {
    for (auto& s : shards_) s->post_from_main(msg::Stop{});
    for (auto& t : threads_) t.join();
    std::error_code ec;
    if (!dir_.empty()) std::filesystem::remove_all(dir_, ec);
  }
  static bool eventually(const std::function<bool()>& pred) {
    for (int i = 0; i < 500 && !pred(); ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    return pred();
  }
  std::string dir_;
  std::vector<std::unique_ptr<Shard>> shards_;
  std::vector<std::thread> threads_;
};

TEST_P(ShardMesh, EveryShardReachesEveryOther) {
  // The main thread asks each shard to send each other shard 100 messages;
  // each of those runs on its receiver's thread and counts there.
  std::atomic<int> got[3] = {0, 0, 0};
  std::atomic<int> wrong_thread{0};
  for (uint32_t from = 0; from < 3; ++from) {
    for (uint32_t to = 0; to < 3; ++to) {
      if (from == to) continue;
      for (int k = 0; k < 100; ++k) {
        Shard* target = shards_[to].get();
        shards_[from]->post_from_main(msg::Run{[&, target](Shard& sender) {
          target->post_from_shard(sender, msg::Run{[&, target](Shard& receiver) {
                                    if (&receiver != target) wrong_thread.fetch_add(1);
                                    got[receiver.index()].fetch_add(1);
                                  }});
        }});
      }
    }
  }
  // Each shard gets 100 from each of the two others.
  for (uint32_t i = 0; i < 3; ++i) {
    EXPECT_TRUE(eventually([&] { return got[i].load() == 200; }))
        << "shard " << i << " got " << got[i].load();
  }
  EXPECT_EQ(wrong_thread.load(), 0);
  EXPECT_EQ(shards_[0]->backend_kind(), GetParam());
}

RINGMAIL_ON_BOTH_BACKENDS(ShardMesh);

}  // namespace
}  // namespace ringmail::engine
