#include "proto/verp.h"

#include "proto/address.h"
#include "proto/ascii.h"

namespace ringmail::proto::verp {

namespace {

constexpr size_t kHashChars = 8;
// Queue ids are 13 characters of this alphabet (engine/shard.cc).
constexpr size_t kIdChars = 13;
constexpr std::string_view kBase32 = "0123456789abcdefghjkmnpqrstvwxyz";

bool all_base32(std::string_view s) {
  for (char c : s) {
    if (kBase32.find(to_lower(c)) == std::string_view::npos) return false;
  }
  return true;
}

}  // namespace

std::string hash(std::string_view queue_id, std::string_view recipient, std::string_view secret,
                 const HmacSha256& hmac) {
  std::string data = "ringmail verp";
  data += '\0';
  data += ascii_lower(queue_id);
  data += '\0';
  data += ascii_lower(recipient);
  const std::string mac = hmac(secret, data);
  if (mac.size() < 5) return {};
  uint64_t bits = 0;
  for (size_t i = 0; i < 5; ++i) bits = (bits << 8) | static_cast<unsigned char>(mac[i]);
  std::string out(kHashChars, '0');
  for (size_t i = kHashChars; i-- > 0;) {
    out[i] = kBase32[bits & 31];
    bits >>= 5;
  }
  return out;
}

std::string local_part(std::string_view queue_id, std::string_view recipient,
                       std::string_view secret, const HmacSha256& hmac) {
  const std::string h = hash(queue_id, recipient, secret, hmac);
  if (h.empty()) return {};
  return std::string(kLocalPrefix) + std::string(queue_id) + "-" + h;
}

std::optional<Parsed> parse_local_part(std::string_view local) {
  if (local.size() != kLocalPrefix.size() + kIdChars + 1 + kHashChars ||
      ascii_lower(local.substr(0, kLocalPrefix.size())) != kLocalPrefix) {
    return std::nullopt;
  }
  local.remove_prefix(kLocalPrefix.size());
  const std::string_view id = local.substr(0, kIdChars), h = local.substr(kIdChars + 1);
  if (local[kIdChars] != '-' || !all_base32(id) || !all_base32(h)) return std::nullopt;
  Parsed p;
  p.queue_id = id;
  for (char& c : p.queue_id) c = static_cast<char>(c >= 'a' && c <= 'z' ? c - 32 : c);
  p.hash = ascii_lower(h);
  return p;
}

}  // namespace ringmail::proto::verp
