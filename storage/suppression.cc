#include "storage/suppression.h"

#include <charconv>
#include <cstring>

namespace ringmail::storage {
namespace {

uint64_t rotl(uint64_t x, int b) { return (x << b) | (x >> (64 - b)); }

void round(uint64_t& v0, uint64_t& v1, uint64_t& v2, uint64_t& v3) {
  v0 += v1;
  v1 = rotl(v1, 13);
  v1 ^= v0;
  v0 = rotl(v0, 32);
  v2 += v3;
  v3 = rotl(v3, 16);
  v3 ^= v2;
  v0 += v3;
  v3 = rotl(v3, 21);
  v3 ^= v0;
  v2 += v1;
  v1 = rotl(v1, 17);
  v1 ^= v2;
  v2 = rotl(v2, 32);
}

uint64_t load_le(const unsigned char* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

char lower(char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c + 32) : c; }

bool has_space(std::string_view s) {
  for (char c : s) {
    if (c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\0') return true;
  }
  return false;
}

}  // namespace

uint64_t siphash24(uint64_t k0, uint64_t k1, std::string_view data) {
  uint64_t v0 = 0x736f6d6570736575ull ^ k0;
  uint64_t v1 = 0x646f72616e646f6dull ^ k1;
  uint64_t v2 = 0x6c7967656e657261ull ^ k0;
  uint64_t v3 = 0x7465646279746573ull ^ k1;
  const auto* p = reinterpret_cast<const unsigned char*>(data.data());
  const size_t n = data.size();
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const uint64_t m = load_le(p + i);
    v3 ^= m;
    round(v0, v1, v2, v3);
    round(v0, v1, v2, v3);
    v0 ^= m;
  }
  uint64_t b = static_cast<uint64_t>(n) << 56;
  for (size_t j = 0; i + j < n; ++j) b |= static_cast<uint64_t>(p[i + j]) << (8 * j);
  v3 ^= b;
  round(v0, v1, v2, v3);
  round(v0, v1, v2, v3);
  v0 ^= b;
  v2 ^= 0xff;
  for (int r = 0; r < 4; ++r) round(v0, v1, v2, v3);
  return v0 ^ v1 ^ v2 ^ v3;
}

SuppressionSet::SuppressionSet(uint64_t k0, uint64_t k1) : k0_(k0), k1_(k1) { reserve(0); }

uint64_t SuppressionSet::key(std::string_view scope, std::string_view address) const {
  // "scope\0address", both lower case, hashed in one pass.
  char stack[320];
  std::string heap;
  const size_t n = scope.size() + 1 + address.size();
  char* buf = stack;
  if (n > sizeof stack) {
    heap.resize(n);
    buf = heap.data();
  }
  size_t at = 0;
  for (char c : scope) buf[at++] = lower(c);
  buf[at++] = '\0';
  for (char c : address) buf[at++] = lower(c);
  return siphash24(k0_, k1_, std::string_view(buf, n));
}

void SuppressionSet::reserve(size_t n) {
  size_t want = 16;
  while (want * 3 / 4 < n) want *= 2;
  if (want <= slots_.size()) return;
  std::vector<uint64_t> old = std::move(slots_);
  slots_.assign(want, 0);
  shift_ = 64;
  for (size_t s = want; s > 1; s >>= 1) --shift_;
  size_ = 0;
  for (uint64_t k : old) {
    if (k != 0) insert(k);
  }
}

void SuppressionSet::grow() { reserve(slots_.size()); }

bool SuppressionSet::insert(uint64_t key) {
  if (key == 0) key = 1;
  if ((size_ + 1) * 4 > slots_.size() * 3) grow();
  const size_t mask = slots_.size() - 1;
  for (size_t i = slot_of(key);; i = (i + 1) & mask) {
    if (slots_[i] == key) return false;
    if (slots_[i] == 0) {
      slots_[i] = key;
      ++size_;
      return true;
    }
  }
}

bool SuppressionSet::contains(uint64_t key) const {
  if (key == 0) key = 1;
  const size_t mask = slots_.size() - 1;
  for (size_t i = slot_of(key);; i = (i + 1) & mask) {
    if (slots_[i] == key) return true;
    if (slots_[i] == 0) return false;
  }
}

bool SuppressionSet::erase(uint64_t key) {
  if (key == 0) key = 1;
  const size_t mask = slots_.size() - 1;
  size_t i = slot_of(key);
  for (;; i = (i + 1) & mask) {
    if (slots_[i] == 0) return false;
    if (slots_[i] == key) break;
  }
  // Backward-shift deletion: no tombstones, so lookups stay short.
  size_t hole = i;
  for (size_t j = (i + 1) & mask; slots_[j] != 0; j = (j + 1) & mask) {
    const size_t home = slot_of(slots_[j]);
    // Move slots_[j] into the hole when its home is not in (hole, j].
    const bool between = hole <= j ? (home > hole && home <= j) : (home > hole || home <= j);
    if (!between) {
      slots_[hole] = slots_[j];
      hole = j;
    }
  }
  slots_[hole] = 0;
  --size_;
  return true;
}

std::string format_suppression_change(const SuppressionChange& c) {
  std::string out = c.add ? "+ " : "- ";
  out += std::to_string(c.unix_time) + " " + c.scope + " " + c.address;
  if (c.add && !c.reason.empty()) {
    out += ' ';
    for (char ch : c.reason) out.push_back(ch == '\r' || ch == '\n' ? ' ' : ch);
  }
  out += '\n';
  return out;
}

Result<SuppressionChange> parse_suppression_change(std::string_view line) {
  SuppressionChange c;
  if (line.size() < 2 || (line[0] != '+' && line[0] != '-') || line[1] != ' ') {
    return Error{"a line must start with \"+ \" or \"- \""};
  }
  c.add = line[0] == '+';
  line.remove_prefix(2);
  auto word = [&line]() {
    const size_t sp = line.find(' ');
    std::string_view w = line.substr(0, sp);
    line.remove_prefix(sp == std::string_view::npos ? line.size() : sp + 1);
    return w;
  };
  const std::string_view t = word();
  auto r = std::from_chars(t.data(), t.data() + t.size(), c.unix_time);
  if (t.empty() || r.ec != std::errc() || r.ptr != t.data() + t.size() || c.unix_time < 0) {
    return Error{"the time is not a number of seconds"};
  }
  c.scope = word();
  if (c.scope.empty()) return Error{"no scope (* or a domain)"};
  c.address = word();
  if (c.address.empty() || c.address.find('@') == std::string::npos) {
    return Error{"no address (local@domain)"};
  }
  if (has_space(c.scope) || has_space(c.address)) return Error{"a control character"};
  if (c.add) {
    c.reason = line;
  } else if (!line.empty()) {
    return Error{"a removal has no reason"};
  }
  return c;
}

}  // namespace ringmail::storage
