#include "storage/spool_format.h"

#include <gtest/gtest.h>

namespace ringmail::storage {
namespace {

proto::Envelope sample() {
  proto::Envelope e;
  e.id = "0ABCDEF123456";
  e.client = "[IPv6:::1]";
  e.helo = "client.example";
  e.arrival_unix = 1795430311;
  e.from.local = "a";
  e.from.domain = "src.example";
  e.smtputf8 = true;
  proto::Address r1{"bob", "example.test"};
  proto::Address r2{"john doe", "example.test"};
  e.rcpts = {r1, r2};
  return e;
}

// Every field, the optional meta line included.
proto::Envelope with_meta() {
  proto::Envelope e = sample();
  e.metadata = R"({"k":"v"})";
  return e;
}

std::string encode(const proto::Envelope& e, std::string_view msg) {
  EncodedRecord r = encode_record(e, msg);
  return r.header + std::string(msg) + r.trailer;
}

TEST(SpoolFormat, RoundTrip) {
  const std::string msg = "Received: x\r\n\r\nbody\r\nend 00000000\n";
  std::string file = encode(sample(), msg);
  SpoolRecord rec;
  ASSERT_EQ(decode_record(file, rec), DecodeError::kNone);
  EXPECT_EQ(rec.message, msg);
  EXPECT_EQ(rec.env.id, "0ABCDEF123456");
  EXPECT_EQ(rec.env.client, "[IPv6:::1]");
  EXPECT_EQ(rec.env.arrival_unix, 1795430311);
  EXPECT_TRUE(rec.env.smtputf8);
  EXPECT_FALSE(rec.env.body_8bit);
  ASSERT_EQ(rec.env.rcpts.size(), 2u);
  EXPECT_EQ(rec.env.rcpts[1].local, "john doe");
  EXPECT_EQ(rec.env.from.to_string(), "a@src.example");
}

TEST(SpoolFormat, NullSender) {
  proto::Envelope e = sample();
  e.from = proto::Address{};
  SpoolRecord rec;
  ASSERT_EQ(decode_record(encode(e, "x\r\n"), rec), DecodeError::kNone);
  EXPECT_TRUE(rec.env.from.is_null());
}

TEST(SpoolFormat, MetadataRoundTripsAndIsOptional) {
  proto::Envelope e = sample();
  e.metadata = R"({"campaign":"spring","user_id":42})";
  const std::string file = encode(e, "x\r\n");
  EXPECT_NE(file.find("\nmeta {\"campaign\":\"spring\",\"user_id\":42}\nmessage 3\n"),
            std::string::npos);
  SpoolRecord rec;
  ASSERT_EQ(decode_record(file, rec), DecodeError::kNone);
  EXPECT_EQ(rec.env.metadata, e.metadata);
  ASSERT_EQ(decode_record(encode(sample(), "x\r\n"), rec), DecodeError::kNone);
  EXPECT_EQ(rec.env.metadata, "");
  // An empty meta line is not one the encoder writes.
  std::string bad = file;
  bad.replace(bad.find("meta {"), bad.find("\nmessage") - bad.find("meta {"), "meta ");
  EXPECT_EQ(decode_record(bad, rec), DecodeError::kBadHeader);
}

TEST(SpoolFormat, EveryTruncationIsDetected) {
  std::string file = encode(with_meta(), "Subject: t\r\n\r\nhello\r\n");
  for (size_t n = 0; n < file.size(); ++n) {
    SpoolRecord rec;
    EXPECT_NE(decode_record(file.substr(0, n), rec), DecodeError::kNone) << n;
  }
}

TEST(SpoolFormat, EveryByteFlipIsDetected) {
  std::string file = encode(with_meta(), "Subject: t\r\n\r\nhello\r\n");
  for (size_t i = 0; i < file.size(); ++i) {
    std::string bad = file;
    bad[i] = static_cast<char>(bad[i] ^ 0x01);
    SpoolRecord rec;
    EXPECT_NE(decode_record(bad, rec), DecodeError::kNone) << i;
  }
}

TEST(SpoolFormat, TrailingBytes) {
  SpoolRecord rec;
  EXPECT_EQ(decode_record(encode(sample(), "x\r\n") + "junk", rec), DecodeError::kTrailingBytes);
}

}  // namespace
}  // namespace ringmail::storage
