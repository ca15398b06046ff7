#include "proto/dns.h"

#include <algorithm>

namespace ringmail::proto {

const char* to_string(DnsStatus s) {
  switch (s) {
    case DnsStatus::kOk:
      return "ok";
    case DnsStatus::kNoData:
      return "no such record";
    case DnsStatus::kNxDomain:
      return "no such domain";
    case DnsStatus::kTempFail:
      return "temporary DNS failure";
  }
  return "?";
}

namespace {

constexpr size_t kHeaderBytes = 12;
constexpr uint16_t kTypeSoa = 6;

class Reader {
 public:
  explicit Reader(std::span<const uint8_t> m) : m_(m) {}
  bool has(size_t n) const { return pos_ <= m_.size() && m_.size() - pos_ >= n; }
  size_t pos() const { return pos_; }
  void skip(size_t n) { pos_ += n; }
  uint16_t u16() {
    const uint16_t v = static_cast<uint16_t>(m_[pos_] << 8 | m_[pos_ + 1]);
    pos_ += 2;
    return v;
  }
  uint32_t u32() {
    const uint32_t hi = u16();
    return hi << 16 | u16();
  }
  // Skips a domain name: labels up to the root, or up to a compression
  // pointer (which ends it: RFC 1035 section 4.1.4).
  bool skip_name() {
    for (size_t labels = 0; labels <= 127; ++labels) {
      if (!has(1)) return false;
      const uint8_t len = m_[pos_];
      if ((len & 0xC0) == 0xC0) {
        if (!has(2)) return false;
        pos_ += 2;
        return true;
      }
      if ((len & 0xC0) != 0) return false;  // reserved label types
      if (len == 0) {
        pos_ += 1;
        return true;
      }
      if (!has(1 + size_t{len})) return false;
      pos_ += 1 + size_t{len};
    }
    return false;
  }

 private:
  std::span<const uint8_t> m_;
  size_t pos_ = 0;
};

uint32_t ttl_value(uint32_t raw) { return (raw & 0x80000000u) != 0 ? 0 : raw; }

}  // namespace

std::optional<DnsTtls> read_ttls(std::span<const uint8_t> msg) {
  Reader r(msg);
  if (!r.has(kHeaderBytes)) return std::nullopt;
  r.skip(4);
  const uint16_t questions = r.u16();
  const uint16_t answers = r.u16();
  const uint16_t authority = r.u16();
  r.skip(2);  // additional records: not needed
  for (uint16_t i = 0; i < questions; ++i) {
    if (!r.skip_name() || !r.has(4)) return std::nullopt;
    r.skip(4);
  }
  DnsTtls out;
  for (uint32_t i = 0; i < uint32_t{answers} + authority; ++i) {
    if (!r.skip_name() || !r.has(10)) return std::nullopt;
    const uint16_t type = r.u16();
    r.skip(2);  // class
    const uint32_t ttl = ttl_value(r.u32());
    const uint16_t rdlength = r.u16();
    if (!r.has(rdlength)) return std::nullopt;
    const size_t end = r.pos() + rdlength;
    if (i < answers) {
      out.answer = out.answer ? std::min(*out.answer, ttl) : ttl;
    } else if (type == kTypeSoa) {
      // MNAME, RNAME, then SERIAL, REFRESH, RETRY, EXPIRE, MINIMUM.
      if (!r.skip_name() || !r.skip_name() || r.pos() + 20 != end) return std::nullopt;
      r.skip(16);
      const uint32_t minimum = ttl_value(r.u32());
      const uint32_t neg = std::min(ttl, minimum);
      out.negative = out.negative ? std::min(*out.negative, neg) : neg;
    }
    r.skip(end - r.pos());
  }
  return out;
}

}  // namespace ringmail::proto
