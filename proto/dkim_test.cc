// DKIM canonicalization against golden values (computed with dkimpy, the
// verifier the integration tests use), fed whole and split at every byte.
#include "proto/dkim.h"

#include <gtest/gtest.h>

#include <random>

#include "proto/dkim_test_reference.h"

namespace ringmail::proto::dkim {
namespace {

std::string body(std::string_view in, size_t split = std::string_view::npos) {
  std::string out;
  RelaxedBody b([&](std::string_view s) { out.append(s); });
  if (split == std::string_view::npos) {
    b.feed(in);
  } else {
    b.feed(in.substr(0, split));
    b.feed(in.substr(split));
  }
  b.finish();
  EXPECT_EQ(b.canonical_bytes(), out.size());
  return out;
}

TEST(RelaxedBody, GoldenCases) {
  const std::pair<std::string, std::string> cases[] = {
      {"", ""},
      {"\r\n", ""},
      {"\r\n\r\n", ""},
      {"hello\r\n", "hello\r\n"},
      {"hello", "hello\r\n"},
      {"a  b\t\tc \r\n", "a b c\r\n"},
      {" lead\r\n\r\n\r\n", " lead\r\n"},
      {"a\r\n  ", "a\r\n"},  // dkimpy: "a\r\n \r\n" (see RelaxedBody)
      {"x\r\n\r\ny\r\n\r\n", "x\r\n\r\ny\r\n"},
      {"tab\t\r\nend", "tab\r\nend\r\n"},
      {"cr\ronly\r\n", "cr\ronly\r\n"},
      {"  \r\n  \r\nz", "\r\n\r\nz\r\n"},
  };
  for (const auto& [in, want] : cases) {
    EXPECT_EQ(body(in), want) << "input: " << in;
    for (size_t i = 0; i <= in.size(); ++i) ASSERT_EQ(body(in, i), want) << "split at " << i;
  }
}

// Random bodies made of the bytes that matter (letters, SP, HTAB, CR, LF),
// long enough for the 16-byte scanner, against the line-by-line reference,
// whole and split at random points.
TEST(RelaxedBody, SameAsReferenceOnRandomBodies) {
  std::mt19937 rng(11);
  const char alphabet[] = {'a', 'b', ' ', ' ', '\t', '\r', '\n', '\r', '\n', 'c'};
  for (int round = 0; round < 3000; ++round) {
    std::string in(rng() % 120, ' ');
    for (auto& c : in) c = alphabet[rng() % (round % 2 ? 10 : 4)];  // odd rounds: more line ends
    const std::string want = reference::relaxed_body(in);
    ASSERT_EQ(body(in), want) << "input: " << in;
    ASSERT_EQ(body(in, rng() % (in.size() + 1)), want) << "input: " << in;
  }
}

TEST(RelaxedBody, ByteAtATime) {
  const std::string in = "Dear  all,\r\n\r\n  indented\t text \r\n.\r\n\r\n\r\n";
  std::string out;
  RelaxedBody b([&](std::string_view s) { out.append(s); });
  for (char c : in) b.feed(std::string_view(&c, 1));
  b.finish();
  EXPECT_EQ(out, "Dear all,\r\n\r\n indented text\r\n.\r\n");
}

TEST(Header, SplitAndRelaxed) {
  const std::string m =
      "Subject:  Hello   World  \r\n\tagain \r\nFROM :\tA <a@b>\r\nX:\r\n\r\nbody\r\n";
  size_t off = 0;
  auto f = split_header(m, &off);
  ASSERT_EQ(f.size(), 3u);
  EXPECT_EQ(m.substr(off), "body\r\n");
  EXPECT_EQ(relaxed_header(f[0]), "subject:Hello World again\r\n");
  EXPECT_EQ(relaxed_header(f[1]), "from:A <a@b>\r\n");
  EXPECT_EQ(relaxed_header(f[2]), "x:\r\n");
  // No body at all.
  f = split_header("A: b\r\n", &off);
  EXPECT_EQ(f.size(), 1u);
  EXPECT_EQ(off, 6u);
}

// BodyStart finds split_header's body offset from the message read in
// pieces of every size: folded fields, a line that is not a field, no empty
// line, a CRLF right at the end of what has arrived.
TEST(Header, BodyStartStreamingAgreesWithSplit) {
  const std::vector<std::string> msgs = {
      "Subject: a\r\n b\r\nFrom: x@y\r\n\r\nbody\r\n",
      "\r\nbody only\r\n",
      "A: b\r\n",
      "A: b\r\n\tc\r\n",
      "A: b\r\nnot a field\r\nC: d\r\n\r\nx",
      ":bad\r\n\r\n",
      "A: b\r\n ",
      "A: b\r",
      "Long:" + std::string(3000, 'v') + "\r\n\t" + std::string(3000, 'w') +
          "\r\nB: c\r\n\r\nz\r\n",
      "",
  };
  for (const auto& m : msgs) {
    size_t want = 0;
    split_header(m, &want);
    for (size_t step = 1; step <= m.size() + 1; step += (step < 16 ? 1 : 97)) {
      BodyStart s;
      size_t at = 0;
      while (at < m.size()) {
        at = std::min(m.size(), at + step);
        if (s.scan(std::string_view(m).substr(0, at))) {
          EXPECT_EQ(s.offset(), want) << m << " step " << step;
          break;
        }
      }
      EXPECT_EQ(s.finish(m), want) << m << " step " << step;
    }
  }
}

TEST(Header, ChoiceOverSignsFromAndSignsEveryInstance) {
  const std::string m =
      "Received: x\r\nFrom: a@b\r\nTo: c@d\r\nTo: e@f\r\nSubject: s\r\nX-Other: y\r\n\r\n";
  size_t off;
  const auto f = split_header(m, &off);
  const auto h = choose_signed_headers(f, default_signed_headers());
  EXPECT_EQ(h, (std::vector<std::string>{"from", "from", "to", "to", "subject"}));
}

TEST(Header, SignedDataTakesInstancesFromTheBottom) {
  const std::string m = "To: first\r\nFrom: a@b\r\nTo: second\r\n\r\n";
  size_t off;
  const auto f = split_header(m, &off);
  const std::string d = signed_header_data(f, {"from", "from", "to", "to", "cc"},
                                           "DKIM-Signature: v=1; a=rsa-sha256;\r\n\tb=");
  // The extra "from" and the absent "cc" add nothing.
  EXPECT_EQ(d, "from:a@b\r\nto:second\r\nto:first\r\ndkim-signature:v=1; a=rsa-sha256; b=");
}

TEST(Signature, FieldText) {
  SignatureParams p;
  p.algorithm = Algorithm::kEd25519Sha256;
  p.domain = "example.com";
  p.selector = "20261123";
  p.timestamp = 1795000000;
  p.headers = {"from", "from", "to", "subject"};
  p.body_hash_b64 = "frcCV1k9oG9oKj3dpUqdJg1PxRT2RSN/XKdLCPjaYaY=";
  EXPECT_EQ(signature_field(p),
            "DKIM-Signature: v=1; a=ed25519-sha256; c=relaxed/relaxed; d=example.com; "
            "s=20261123; t=1795000000;\r\n\th=from:from:to:subject;\r\n\t"
            "bh=frcCV1k9oG9oKj3dpUqdJg1PxRT2RSN/XKdLCPjaYaY=;\r\n\tb=");
  EXPECT_EQ(
      fold_b64(std::string(100, 'A'), 10),
      std::string(10, 'A') + "\r\n\t " + std::string(72, 'A') + "\r\n\t " + std::string(18, 'A'));
}

}  // namespace
}  // namespace ringmail::proto::dkim

namespace ringmail::proto::dkim {
namespace {

TEST(SimpleBody, Cases) {
  auto run = [](std::string_view in, size_t split) {
    std::string out;
    SimpleBody b([&](std::string_view s) { out.append(s); });
    b.feed(in.substr(0, split));
    b.feed(in.substr(split));
    b.finish();
    return out;
  };
  const std::pair<std::string, std::string> cases[] = {{"", "\r\n"},
                                                       {"\r\n", "\r\n"},
                                                       {"a  b \r\n\r\n\r\n", "a  b \r\n"},
                                                       {"x", "x\r\n"},
                                                       {"a\r\n\r\nb\r\n", "a\r\n\r\nb\r\n"},
                                                       {"cr\r", "cr\r\r\n"}};
  for (const auto& [in, want] : cases) {
    for (size_t i = 0; i <= in.size(); ++i) ASSERT_EQ(run(in, i), want) << in << " split " << i;
  }
}

TEST(Verify, ParseSignature) {
  auto parsed = parse_signature(
      " v=1; a=rsa-sha256; c=relaxed/simple; d=Example.COM; s=sel;\r\n\t t=100; x=200; l=5;\r\n"
      "\th=From : To:subject; bh=frcCV1k9oG9oKj3dpUqdJg1PxRT2RSN/XKdLCPjaYaY=;\r\n\tb=AAAA\r\n "
      "BBBB");
  ASSERT_TRUE(parsed) << parsed.error();
  const Signature& s = *parsed;
  EXPECT_EQ(s.domain, "example.com");
  EXPECT_EQ(s.headers, (std::vector<std::string>{"from", "to", "subject"}));
  EXPECT_TRUE(s.header_relaxed);
  EXPECT_FALSE(s.body_relaxed);
  EXPECT_EQ(s.length, 5);
  EXPECT_EQ(s.b_tag, "AAAABBBB");
  EXPECT_EQ(s.identity, "@example.com");
  const std::string ok =
      "v=1; a=rsa-sha256; d=a.test; s=x; h=from; bh=frcCV1k9oG9oKj3dpUqdJg1PxRT2RSN/XKdLCPjaYaY=; "
      "b=AAAA";
  auto r = parse_signature(ok);
  EXPECT_TRUE(r) << r.error();
  EXPECT_EQ(parse_signature("v=1; a=rsa-sha1; d=a.test").error(), "unsupported algorithm rsa-sha1");
  EXPECT_EQ(parse_signature("v=1; a=rsa-sha256; d=a.test; s=x; h=to; "
                            "bh=frcCV1k9oG9oKj3dpUqdJg1PxRT2RSN/XKdLCPjaYaY=; b=AAAA")
                .error(),
            "From is not signed");
  EXPECT_EQ(parse_signature(ok + "; i=@evil.test").error(), "i= is not in d=");
  r = parse_signature(ok + "; i=user@sub.a.test");
  EXPECT_TRUE(r) << r.error();
  EXPECT_FALSE(parse_signature(ok + "; d=b.test"));  // a tag twice
  EXPECT_EQ(parse_signature("v=1; a=rsa-sha256; s=x").error(), "a required tag is missing");
}

TEST(Verify, WithoutBValueKeepsBh) {
  const std::string f = "DKIM-Signature: v=1; bh=abc=; b=xyz\r\n\t123; d=a";
  HeaderField hf{std::string_view(f).substr(0, 14), std::string_view(f).substr(15)};
  EXPECT_EQ(without_b_value(hf), "DKIM-Signature: v=1; bh=abc=; b=; d=a");
  const std::string g = "DKIM-Signature: v=1; bh=abc=;\r\n\tb=xyz";
  HeaderField hg{std::string_view(g).substr(0, 14), std::string_view(g).substr(15)};
  EXPECT_EQ(without_b_value(hg), "DKIM-Signature: v=1; bh=abc=;\r\n\tb=");
}

TEST(Verify, KeyRecords) {
  auto k = parse_key_record("v=DKIM1; k=ed25519; p=11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=");
  ASSERT_TRUE(k) << k.error();
  EXPECT_TRUE(k->ed25519);
  EXPECT_EQ(k->public_key.size(), 32u);
  k = parse_key_record("v=DKIM1; p=; t=y:s");
  ASSERT_TRUE(k) << k.error();
  EXPECT_TRUE(k->public_key.empty());  // revoked
  EXPECT_TRUE(k->testing && k->strict_identity);
  EXPECT_FALSE(parse_key_record("v=DKIM1; k=dsa; p=AAAA"));
  EXPECT_EQ(parse_key_record("v=DKIM1; k=rsa").error(), "no p= in the key record");
}

}  // namespace
}  // namespace ringmail::proto::dkim
