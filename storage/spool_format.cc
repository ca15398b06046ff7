#include "storage/spool_format.h"

#include <charconv>
#include <cstdio>

#include "storage/crc32c.h"

namespace ringmail::storage {
namespace {

bool take_line(std::string_view& in, std::string_view key, std::string_view& value) {
  size_t nl = in.find('\n');
  if (nl == std::string_view::npos) return false;
  std::string_view line = in.substr(0, nl);
  if (line.size() < key.size() + 1 || line.substr(0, key.size()) != key ||
      line[key.size()] != ' ') {
    return false;
  }
  value = line.substr(key.size() + 1);
  in.remove_prefix(nl + 1);
  return true;
}

bool parse_u64(std::string_view s, uint64_t& v) {
  if (s.empty()) return false;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  return ec == std::errc() && p == s.data() + s.size();
}

bool parse_path(std::string_view s, bool allow_null, proto::Address& out) {
  size_t consumed = 0;
  return proto::parse_path(s, allow_null, false, out, consumed) == proto::AddressError::kNone &&
         consumed == s.size();
}

}  // namespace

const char* to_string(DecodeError e) {
  switch (e) {
    case DecodeError::kNone:
      return "ok";
    case DecodeError::kBadMagic:
      return "not a ringmail spool file (bad magic line)";
    case DecodeError::kBadHeader:
      return "malformed envelope header";
    case DecodeError::kTruncated:
      return "truncated file";
    case DecodeError::kBadChecksum:
      return "checksum mismatch";
    case DecodeError::kTrailingBytes:
      return "bytes after the end marker";
  }
  return "?";
}

EncodedRecord encode_record(const proto::Envelope& env, std::string_view message) {
  EncodedRecord r;
  std::string& h = r.header;
  h.reserve(256 + 64 * env.rcpts.size());
  h += kSpoolMagic;
  h += "id " + env.id + "\n";
  h += "arrival " + std::to_string(env.arrival_unix) + "\n";
  h += "client " + env.client + "\n";
  h += "helo " + env.helo + "\n";
  std::string flags;
  if (env.smtputf8) flags += "smtputf8";
  if (env.body_8bit) flags += flags.empty() ? "8bitmime" : ",8bitmime";
  h += "flags " + (flags.empty() ? std::string("-") : flags) + "\n";
  h += "from <" + env.from.to_string() + ">\n";
  for (const auto& r : env.rcpts) h += "rcpt <" + r.to_string() + ">\n";
  if (!env.metadata.empty()) h += "meta " + env.metadata + "\n";
  h += "message " + std::to_string(message.size()) + "\n";
  uint32_t crc = crc32c(h);
  crc = crc32c(message, crc);
  crc = crc32c("\n", crc);
  char end[32];
  std::snprintf(end, sizeof end, "\nend %08x\n", crc);
  r.trailer = end;
  return r;
}

std::string encode_tombstone(std::string_view id) {
  return std::string(kTombstonePrefix) + std::string(id) + "\n";
}

DecodeError decode_record(std::string_view file, SpoolRecord& out) {
  size_t consumed = 0;
  DecodeError e = decode_record_prefix(file, out, consumed);
  if (e == DecodeError::kNone && consumed != file.size()) return DecodeError::kTrailingBytes;
  return e;
}

DecodeError decode_record_prefix(std::string_view file, SpoolRecord& out, size_t& consumed) {
  out = SpoolRecord{};
  consumed = 0;
  std::string_view in = file;
  if (in.substr(0, kSpoolMagic.size()) != kSpoolMagic) return DecodeError::kBadMagic;
  in.remove_prefix(kSpoolMagic.size());
  std::string_view v;
  uint64_t n = 0;
  if (!take_line(in, "id", v) || v.empty()) return DecodeError::kBadHeader;
  out.env.id.assign(v);
  if (!take_line(in, "arrival", v) || !parse_u64(v, n)) return DecodeError::kBadHeader;
  out.env.arrival_unix = static_cast<int64_t>(n);
  if (!take_line(in, "client", v)) return DecodeError::kBadHeader;
  out.env.client.assign(v);
  if (!take_line(in, "helo", v)) return DecodeError::kBadHeader;
  out.env.helo.assign(v);
  if (!take_line(in, "flags", v)) return DecodeError::kBadHeader;
  out.env.smtputf8 = v.find("smtputf8") != std::string_view::npos;
  out.env.body_8bit = v.find("8bitmime") != std::string_view::npos;
  if (!take_line(in, "from", v) || !parse_path(v, true, out.env.from)) {
    return DecodeError::kBadHeader;
  }
  while (in.substr(0, 5) == "rcpt ") {
    proto::Address a;
    if (!take_line(in, "rcpt", v) || !parse_path(v, false, a)) return DecodeError::kBadHeader;
    out.env.rcpts.push_back(std::move(a));
  }
  if (out.env.rcpts.empty()) return DecodeError::kBadHeader;
  if (in.substr(0, 5) == "meta ") {
    if (!take_line(in, "meta", v) || v.empty()) return DecodeError::kBadHeader;
    out.env.metadata.assign(v);
  }
  if (!take_line(in, "message", v) || !parse_u64(v, n)) {
    return in.find('\n') == std::string_view::npos ? DecodeError::kTruncated
                                                   : DecodeError::kBadHeader;
  }
  const size_t header_bytes = file.size() - in.size();
  // message bytes, "\nend " + 8 hex + "\n"
  if (in.size() < n + 14) return DecodeError::kTruncated;
  std::string_view message = in.substr(0, n);
  std::string_view trailer = in.substr(n);
  if (trailer.substr(0, 5) != "\nend " || trailer[13] != '\n') return DecodeError::kTruncated;
  uint64_t want = 0;
  auto [p, ec] = std::from_chars(trailer.data() + 5, trailer.data() + 13, want, 16);
  if (ec != std::errc() || p != trailer.data() + 13) return DecodeError::kBadChecksum;
  uint32_t crc = crc32c(file.substr(0, header_bytes + n + 1));
  if (crc != want) return DecodeError::kBadChecksum;
  out.message.assign(message);
  consumed = header_bytes + n + 14;
  return DecodeError::kNone;
}

std::string encode_rcpt_done(std::string_view id, size_t index, bool bounced) {
  return encode_rcpt_state(id, index, bounced ? 'b' : 'd');
}

std::string encode_rcpt_state(std::string_view id, size_t index, char state) {
  return std::string(kRcptPrefix) + std::string(id) + " " + std::to_string(index) + " " + state +
         "\n";
}

std::string encode_hold(std::string_view id, uint64_t seq, bool held) {
  return std::string(kHoldPrefix) + std::string(id) + " " + std::to_string(seq) +
         (held ? " 1\n" : " 0\n");
}

std::string encode_warned(std::string_view id) {
  return std::string(kWarnedPrefix) + std::string(id) + "\n";
}

std::string encode_retry(std::string_view id, uint32_t attempts, int64_t next_unix) {
  return std::string(kRetryPrefix) + std::string(id) + " " + std::to_string(attempts) + " " +
         std::to_string(next_unix) + "\n";
}

}  // namespace ringmail::storage
