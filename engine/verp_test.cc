#include "engine/verp.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "proto/verp.h"
#include "tls/hmac.h"

namespace ringmail::engine {
namespace {

std::string h(std::string_view id, std::string_view rcpt, std::string_view secret) {
  return proto::verp::hash(id, rcpt, secret, [](std::string_view k, std::string_view d) {
    return tls::hmac_sha256(k, d);
  });
}

TEST(Verp, ReplyInText) {
  EXPECT_EQ(reply_in_text("Sorry.\r\n\r\n  host said:\r\n    550 5.1.1 <a@b>: no such user\r\n"),
            "550 5.1.1 <a@b>: no such user");
  EXPECT_EQ(reply_in_text("Remote: 452-4.2.2 The mailbox is full"),
            "452-4.2.2 The mailbox is full");
  EXPECT_EQ(reply_in_text("order 4550 5.1.1 x\nno code here\n250 2.0.0 ok\n"), "");
  EXPECT_EQ(reply_in_text(""), "");
}

TEST(Verp, FindsTheRecipientByItsHashInTheRightShardsSegments) {
  const std::string dir = ::testing::TempDir() + "/verp-events";
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  // 1K20SP1514B01: shard 1; its time lies after the segments' start.
  const std::string id = "1K20SP1514B01";
  auto write = [&](const std::string& name, const std::string& text) {
    std::ofstream(dir + "/" + name) << text;
  };
  auto reception = [&](const std::string& rcpt) {
    return "{\"id\":\"x\",\"type\":\"Reception\",\"timestamp\":1,\"queue_id\":\"" + id +
           "\",\"sender\":\"news@src.example\",\"recipient\":\"" + rcpt +
           "\",\"received\":1796627182}\n";
  };
  // The same queue id in shard 0's segment must not be read.
  write("ev-0000000000000001-0.jsonl", reception("wrong@far.test"));
  write("ev-0000000000000001-1.jsonl", "{\"type\":\"Delivery\"}\n");
  write("ev-0000000000000002-1.jsonl",
        reception("a@far.test") + reception("b@far.test") + "{\"torn\":");
  SecretKeys keys;
  keys.secrets = {"new", "old"};
  auto o = find_verp_original(dir, id, h(id, "b@far.test", "new"), keys);
  ASSERT_TRUE(o);
  EXPECT_EQ(o->recipient, "b@far.test");
  EXPECT_EQ(o->sender, "news@src.example");
  EXPECT_EQ(o->received, 1796627182);
  // A retired secret still verifies; others and other ids do not.
  EXPECT_TRUE(find_verp_original(dir, id, h(id, "a@far.test", "old"), keys));
  EXPECT_FALSE(find_verp_original(dir, id, h(id, "a@far.test", "other"), keys));
  EXPECT_FALSE(find_verp_original(dir, id, h(id, "wrong@far.test", "new"), keys));
  EXPECT_FALSE(find_verp_original(dir, "1K20SP1514B02", h(id, "a@far.test", "new"), keys));
  EXPECT_FALSE(find_verp_original(dir, "not an id", "abcdefgh", keys));
  EXPECT_FALSE(find_verp_original(dir + "/missing", id, h(id, "a@far.test", "new"), keys));
}

}  // namespace
}  // namespace ringmail::engine
