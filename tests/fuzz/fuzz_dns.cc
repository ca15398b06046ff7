// libFuzzer target: the TTLs of a DNS response (proto/dns.cc read_ttls),
// which the DNS cache reads from every answer a server sends. Any bytes
// end in a result or a refusal, the same twice, and a message whose header
// counts no records has no TTLs.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <span>

#include "proto/dns.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using ringmail::proto::read_ttls;
  const std::span<const uint8_t> in(data, size);
  const auto a = read_ttls(in);
  const auto b = read_ttls(in);
  if (a.has_value() != b.has_value()) std::abort();
  if (!a) return 0;
  if (size < 12 || a->answer != b->answer || a->negative != b->negative) std::abort();
  const unsigned answers = data[6] << 8 | data[7];
  const unsigned authority = data[8] << 8 | data[9];
  if (answers == 0 && a->answer.has_value()) std::abort();
  if (authority == 0 && a->negative.has_value()) std::abort();
  if (a->answer && *a->answer > 0x7fffffffu) std::abort();
  return 0;
}
