// Result: a value or an Error, and Result<void>.
#include "proto/result.h"

#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

namespace ringmail {
namespace {

Result<int> half(int n) {
  if (n % 2 != 0) return Error{"odd: " + std::to_string(n)};
  return n / 2;
}

Result<void> check(bool good) {
  if (!good) return Error{"not good"};
  return {};
}

struct Base {
  virtual ~Base() = default;
  virtual int id() const { return 1; }
};
struct Derived : Base {
  int id() const override { return 2; }
};

Result<std::unique_ptr<Base>> make(bool derived) {
  if (derived) return std::make_unique<Derived>();
  return std::make_unique<Base>();
}

TEST(Result, ValueOrError) {
  auto r = half(8);
  ASSERT_TRUE(r);
  EXPECT_TRUE(r.ok());
  EXPECT_EQ(*r, 4);
  EXPECT_EQ(r.value(), 4);

  auto e = half(7);
  EXPECT_FALSE(e);
  EXPECT_FALSE(e.ok());
  EXPECT_EQ(e.error(), "odd: 7");
}

TEST(Result, Void) {
  auto r = check(true);
  EXPECT_TRUE(r);
  EXPECT_TRUE(r.ok());
  auto e = check(false);
  ASSERT_FALSE(e);
  EXPECT_EQ(e.error(), "not good");
}

TEST(Result, ConvertsAndMovesOut) {
  auto p = make(true);
  ASSERT_TRUE(p);
  EXPECT_EQ(p.value()->id(), 2);
  EXPECT_EQ((*p)->id(), 2);
  std::unique_ptr<Base> owned = *std::move(p);
  EXPECT_EQ(owned->id(), 2);

  Result<std::string> s = "literal";
  ASSERT_TRUE(s);
  EXPECT_EQ(s->size(), 7u);
  std::string moved = std::move(s).value();
  EXPECT_EQ(moved, "literal");
}

TEST(Result, StringValueAndErrorAreDistinct) {
  Result<std::string> v = std::string("value");
  Result<std::string> e = Error{"value"};
  EXPECT_TRUE(v);
  EXPECT_FALSE(e);
  EXPECT_EQ(*v, "value");
  EXPECT_EQ(e.error(), "value");
}

TEST(Result, ArrowAndMutation) {
  Result<std::vector<int>> r = std::vector<int>{1, 2};
  r->push_back(3);
  EXPECT_EQ(r->size(), 3u);
  (*r)[0] = 9;
  const auto& c = r;
  EXPECT_EQ(c.value()[0], 9);
  EXPECT_EQ(c->back(), 3);
}

TEST(Result, PropagatesAnError) {
  auto outer = [](int n) -> Result<std::string> {
    auto h = half(n);
    if (!h) return Error{"half: " + h.error()};
    return std::to_string(*h);
  };
  EXPECT_EQ(*outer(10), "5");
  EXPECT_EQ(outer(3).error(), "half: odd: 3");
}

}  // namespace
}  // namespace ringmail
