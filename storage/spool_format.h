// Encoding of one spooled message, as specified in docs/spool-format.md.
// Pure functions: no I/O.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "proto/smtp_server.h"

namespace ringmail::storage {

inline constexpr std::string_view kSpoolMagic = "ringmail-spool 1\n";

inline constexpr std::string_view kTombstonePrefix = "ringmail-done ";
// "ringmail-rcpt <ID> <index> <d|b>": one recipient is finished, delivered
// (d) or bounced (b); "ringmail-retry <ID> <attempts> <unix>": the next
// attempt; "ringmail-warned <ID>": the sender was told of the delay
// (docs/spool-format.md).
inline constexpr std::string_view kRcptPrefix = "ringmail-rcpt ";
inline constexpr std::string_view kRetryPrefix = "ringmail-retry ";
inline constexpr std::string_view kWarnedPrefix = "ringmail-warned ";
// "ringmail-hold <ID> <seq> <1|0>": held or released by an administrator;
// the line with the highest <seq> wins, wherever it is.
inline constexpr std::string_view kHoldPrefix = "ringmail-hold ";
// Every line type starts with this: where reading resumes after damage.
inline constexpr std::string_view kLinePrefix = "ringmail-";

struct SpoolRecord {
  proto::Envelope env;
  std::string message;  // Received header + content, CRLF line endings
  // Where the record is (not encoded): spool segment key, byte offset and
  // length of the record in it. The message may be dropped from memory and
  // read again from there (Spool::load).
  uint64_t segment = 0;
  uint64_t offset = 0;
  uint64_t length = 0;
  // Delivery state recovered from the spool: per recipient 0 (pending),
  // 'd' (delivered), 'b' (bounced) or 'x' (deleted by an administrator);
  // attempts so far and the next one.
  std::vector<char> rcpt_done;
  uint32_t attempts = 0;
  int64_t next_attempt_unix = 0;
  bool delay_warned = false;  // a delay warning DSN went to the sender
  bool held = false;          // held by an administrator (ringmail queue hold)
  uint64_t held_seq = 0;      // the hold line's sequence number
};

// The file is header + message + trailer; the message is not copied.
struct EncodedRecord {
  std::string header;
  std::string trailer;
};
EncodedRecord encode_record(const proto::Envelope& env, std::string_view message);

enum class DecodeError { kNone, kBadMagic, kBadHeader, kTruncated, kBadChecksum, kTrailingBytes };
const char* to_string(DecodeError e);

// Validates the whole input as one record (structure, lengths, checksum).
DecodeError decode_record(std::string_view file, SpoolRecord& out);
// Decodes the record at the start of `in`; `consumed` is its length.
DecodeError decode_record_prefix(std::string_view in, SpoolRecord& out, size_t& consumed);

// "ringmail-done <id>\n": the message was delivered (see spool-format.md).
std::string encode_tombstone(std::string_view id);
std::string encode_rcpt_done(std::string_view id, size_t index, bool bounced);
// `state`: 'd' delivered, 'b' bounced, 'x' deleted by an administrator.
std::string encode_rcpt_state(std::string_view id, size_t index, char state);
std::string encode_hold(std::string_view id, uint64_t seq, bool held);
std::string encode_retry(std::string_view id, uint32_t attempts, int64_t next_unix);
std::string encode_warned(std::string_view id);

}  // namespace ringmail::storage
