// SRS rewriting with a stand-in HMAC that records what it was given, so
// the tests see the exact fields hashed. engine/srs_test.cc checks the real
// HMAC against postsrsd and Mail::SRS.
#include "proto/srs.h"

#include <gtest/gtest.h>

#include <cctype>

#include "proto/address.h"
#include "proto/sasl.h"

namespace ringmail::proto::srs {
namespace {

constexpr int64_t kDay = 86400;
constexpr int64_t kToday = 1000 * kDay + 3600;  // day 1000: stamp "7I"

struct Recorder {
  std::vector<std::pair<std::string, std::string>> calls;  // key, data
};

// Not a MAC: 20 bytes of FNV-1a over key, NUL, data, each byte's state.
std::string fake_mac(std::string_view key, std::string_view data) {
  uint64_t h = 1469598103934665603u;
  auto mix = [&](char c) { h = (h ^ static_cast<uint8_t>(c)) * 1099511628211u; };
  for (char c : key) mix(c);
  mix('\0');
  for (char c : data) mix(c);
  std::string out;
  for (int i = 0; i < 20; ++i) {
    mix(static_cast<char>(i));
    out.push_back(static_cast<char>(h >> 56));
  }
  return out;
}

std::string hhhh(std::string_view key, std::string_view data) {
  return base64_encode(fake_mac(key, data)).substr(0, 4);
}

Config config(std::string domain, std::vector<std::string> secrets, Recorder* rec = nullptr) {
  Config c;
  c.domain = std::move(domain);
  c.secrets = std::move(secrets);
  c.hmac = [rec](std::string_view key, std::string_view data) {
    if (rec != nullptr) rec->calls.emplace_back(key, data);
    return fake_mac(key, data);
  };
  return c;
}

std::string fwd(const Config& c, std::string_view sender, int64_t now = kToday) {
  std::string out;
  const Error e = forward(c, sender, now, &out);
  return e == Error::kNone ? out : std::string("error: ") + to_string(e);
}

Error rev(const Config& c, std::string_view address, int64_t now, std::string* out = nullptr) {
  std::string ignored;
  return reverse(c, address, now, out != nullptr ? out : &ignored);
}

TEST(Srs, ForwardHashesLowerCasedStampHostUser) {
  Recorder rec;
  const Config c = config("fwd.example", {"k1", "k2"}, &rec);
  EXPECT_EQ(fwd(c, "User@Orig.Example"),
            "SRS0=" + hhhh("k1", "7iorig.exampleuser") + "=7I=Orig.Example=User@fwd.example");
  ASSERT_EQ(rec.calls.size(), 1u);
  EXPECT_EQ(rec.calls[0].first, "k1");  // the first secret signs
  EXPECT_EQ(rec.calls[0].second, "7iorig.exampleuser");
}

TEST(Srs, TimestampIsDayModulo1024InBase32) {
  const Config c = config("fwd.example", {"k"});
  EXPECT_NE(fwd(c, "u@o.example", 0).find("=AA=o.example"), std::string::npos);
  EXPECT_NE(fwd(c, "u@o.example", 1023 * kDay).find("=77=o.example"), std::string::npos);
  EXPECT_NE(fwd(c, "u@o.example", 1024 * kDay + kDay - 1).find("=AA=o.example"), std::string::npos);
  EXPECT_NE(fwd(c, "u@o.example", 33 * kDay).find("=BB=o.example"), std::string::npos);
}

TEST(Srs, ReverseGivesTheOriginal) {
  const Config c = config("fwd.example", {"k1"});
  std::string out;
  ASSERT_EQ(rev(c, fwd(c, "user=with=eq@orig.example"), kToday, &out), Error::kNone);
  EXPECT_EQ(out, "user=with=eq@orig.example");
  ASSERT_EQ(rev(c, fwd(c, "\"a@b\"@orig.example"), kToday, &out), Error::kNone);
  EXPECT_EQ(out, "\"a@b\"@orig.example");
}

// Some MTAs lower-case (or upper-case) local parts: the tag, hash and stamp
// match in any case, as in libsrs2.
TEST(Srs, ReverseIgnoresCase) {
  const Config c = config("fwd.example", {"k1"});
  const std::string a = fwd(c, "User@Orig.Example");
  std::string lower = a, upper = a, out;
  for (char& ch : lower) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  for (char& ch : upper) ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
  ASSERT_EQ(rev(c, lower, kToday, &out), Error::kNone);
  EXPECT_EQ(out, "user@orig.example");
  ASSERT_EQ(rev(c, upper, kToday, &out), Error::kNone);
  EXPECT_EQ(out, "USER@ORIG.EXAMPLE");
  EXPECT_TRUE(is_srs("srs0=x"));
}

TEST(Srs, Srs0BecomesSrs1) {
  Recorder rec;
  const Config first = config("fwd1.example", {"one"});
  const Config second = config("fwd2.example", {"two"}, &rec);
  const std::string srs0 = fwd(first, "user@orig.example");
  ASSERT_EQ(srs0.substr(0, 5), "SRS0=");
  const std::string rest = srs0.substr(4, srs0.find('@') - 4);  // "=HHHH=7I=orig.example=user"
  EXPECT_EQ(fwd(second, srs0), "SRS1=" + hhhh("two", "fwd1.example" + ascii_lower(rest)) +
                                   "=fwd1.example=" + rest + "@fwd2.example");
  ASSERT_EQ(rec.calls.size(), 1u);
  EXPECT_EQ(rec.calls[0].second, "fwd1.example" + ascii_lower(rest));

  // Bounced to fwd2: back to fwd1's SRS0 address; fwd1 then finds the sender.
  std::string out;
  ASSERT_EQ(rev(second, fwd(second, srs0), kToday, &out), Error::kNone);
  EXPECT_EQ(out, srs0);
  ASSERT_EQ(rev(first, out, kToday, &out), Error::kNone);
  EXPECT_EQ(out, "user@orig.example");
}

TEST(Srs, Srs0WithOtherSeparators) {
  const Config c = config("fwd2.example", {"two"});
  const std::string in = "SRS0+HHHH=7I=orig.example=user@fwd1.example";
  const std::string out = fwd(c, in);
  EXPECT_EQ(out.substr(4 + 1 + 4), "=fwd1.example=+HHHH=7I=orig.example=user@fwd2.example");
  std::string back;
  ASSERT_EQ(rev(c, out, kToday, &back), Error::kNone);
  EXPECT_EQ(back, in);
}

TEST(Srs, Srs1IsReforwardedWithANewHash) {
  const Config second = config("fwd2.example", {"two"});
  const Config third = config("fwd3.example", {"three"});
  const std::string srs0 = "SRS0=HHHH=7I=orig.example=user@fwd1.example";
  const std::string srs1 = fwd(second, srs0);
  const std::string again = fwd(third, srs1);
  EXPECT_EQ(again, "SRS1=" + hhhh("three", "fwd1.example=hhhh=7i=orig.example=user") +
                       "=fwd1.example==HHHH=7I=orig.example=user@fwd3.example");
  std::string out;
  ASSERT_EQ(rev(third, again, kToday, &out), Error::kNone);
  EXPECT_EQ(out, srs0);  // straight back to the first forwarder
  EXPECT_EQ(rev(second, again.substr(0, again.find('@')) + "@fwd2.example", kToday),
            Error::kBadHash);
}

TEST(Srs, ExpiresAfterMaxAgeDays) {
  Config c = config("fwd.example", {"k"});
  const std::string a = fwd(c, "u@orig.example");
  const int64_t day = kToday / kDay;
  EXPECT_EQ(rev(c, a, day * kDay), Error::kNone);
  EXPECT_EQ(rev(c, a, (day + 21) * kDay + kDay - 1), Error::kNone);  // the last day
  EXPECT_EQ(rev(c, a, (day + 22) * kDay), Error::kExpired);
  EXPECT_EQ(rev(c, a, (day - 1) * kDay), Error::kExpired);  // from the future: 1023 days old
  c.max_age_days = 3;
  EXPECT_EQ(rev(c, a, (day + 3) * kDay), Error::kNone);
  EXPECT_EQ(rev(c, a, (day + 4) * kDay), Error::kExpired);
  // Across the 1024-day wrap of the stamp.
  const std::string late = fwd(c, "u@orig.example", 1023 * kDay);
  EXPECT_EQ(rev(c, late, 1025 * kDay), Error::kNone);
  EXPECT_EQ(rev(c, late, 1027 * kDay), Error::kExpired);
}

TEST(Srs, ForgedHash) {
  const Config c = config("fwd.example", {"k"});
  const std::string a = fwd(c, "u@orig.example");
  std::string forged = a;
  forged[5] = forged[5] == 'A' || forged[5] == 'a' ? 'B' : 'A';
  EXPECT_EQ(rev(c, forged, kToday), Error::kBadHash);
  // Another sender under a good hash.
  std::string other = a;
  other.replace(other.find("=u@"), 3, "=v@");
  EXPECT_EQ(rev(c, other, kToday), Error::kBadHash);
  // Too short a hash; a longer one counts by its first four characters.
  EXPECT_EQ(rev(c, "SRS0=" + a.substr(5, 3) + a.substr(9), kToday), Error::kBadHash);
  EXPECT_EQ(rev(c, "SRS0=" + a.substr(5, 4) + "xyz" + a.substr(9), kToday), Error::kNone);
  // An expired address with a forged hash says forged.
  EXPECT_EQ(rev(c, forged, kToday + 100 * kDay), Error::kBadHash);
}

// Key rotation: the first secret signs, every secret verifies.
TEST(Srs, SecretRotation) {
  const std::string old_address = fwd(config("fwd.example", {"old"}), "u@orig.example");
  EXPECT_EQ(rev(config("fwd.example", {"new", "old"}), old_address, kToday), Error::kNone);
  EXPECT_EQ(rev(config("fwd.example", {"new"}), old_address, kToday), Error::kBadHash);
  EXPECT_EQ(fwd(config("fwd.example", {"new", "old"}), "u@orig.example"),
            fwd(config("fwd.example", {"new"}), "u@orig.example"));
}

TEST(Srs, Malformed) {
  const Config c = config("fwd.example", {"k"});
  const std::string h = hhhh("k", "7iorig.exampleuser");
  const std::vector<std::string> cases = {
      "SRS0=" + h + "=7I=orig.example@fwd.example",  // no user
      "SRS0==7I=orig.example=user@fwd.example",      // empty hash
      "SRS0=" + h + "==orig.example=user@fwd.example",
      "SRS0=" + h + "=7I==user@fwd.example",
      "SRS0=" + h + "=1I=orig.example=user@fwd.example",   // '1' is not base32
      "SRS0=" + h + "=7II=orig.example=user@fwd.example",  // three characters
      "SRS0=@fwd.example",
      "SRS1=abcd=fwd1.example@fwd.example",
      "SRS1=abcd==x@fwd.example",
  };
  for (const std::string& a : cases) {
    EXPECT_EQ(rev(c, a, kToday), Error::kMalformed) << a;
  }
  EXPECT_EQ(fwd(c, "SRS1=abcd=fwd1.example@fwd1.example"), "error: malformed SRS address");
}

TEST(Srs, NotOurs) {
  const Config c = config("fwd.example", {"k"});
  const std::string a = fwd(c, "u@orig.example");
  EXPECT_EQ(rev(c, a.substr(0, a.find('@')) + "@other.example", kToday), Error::kNotSrs);
  EXPECT_EQ(rev(c, "user@fwd.example", kToday), Error::kNotSrs);
  EXPECT_EQ(rev(c, "SRS2=a=b=c=d@fwd.example", kToday), Error::kNotSrs);
  EXPECT_EQ(rev(c, "SRS0", kToday), Error::kNotSrs);
  EXPECT_EQ(rev(c, "", kToday), Error::kNotSrs);
}

TEST(Srs, ForwardEdgeCases) {
  Config c = config("fwd.example", {"k"});
  EXPECT_EQ(fwd(c, ""), "");  // <> stays <>
  EXPECT_EQ(fwd(c, "local@FWD.Example"), "local@FWD.Example");
  EXPECT_EQ(fwd(c, "nodomain"), "error: malformed SRS address");
  EXPECT_EQ(fwd(c, "@orig.example"), "error: malformed SRS address");
  EXPECT_EQ(fwd(c, "u@orig=example"), "error: malformed SRS address");
  EXPECT_EQ(fwd(c, "u@"), "error: malformed SRS address");
  c.secrets.clear();
  EXPECT_EQ(fwd(c, "u@orig.example"), "error: no SRS secret configured");
  EXPECT_EQ(rev(c, "SRS0=abcd=7I=orig.example=u@fwd.example", kToday), Error::kNoSecret);
  c = config("fwd.example", {"k"});
  c.hmac = [](std::string_view, std::string_view) { return std::string(); };
  EXPECT_EQ(fwd(c, "u@orig.example"), "error: HMAC failed");
  EXPECT_EQ(rev(c, "SRS0=abcd=7I=orig.example=u@fwd.example", kToday), Error::kHmac);
}

}  // namespace
}  // namespace ringmail::proto::srs
