// Incremental reader for SMTP message content (RFC 5321 4.5.2 and 4.1.1.4)
// and for BDAT chunks (RFC 3030). Pure: bytes in, message bytes appended to a
// string, no I/O.
//
// Line endings must be CRLF. A bare LF or bare CR ends the reading with
// kBareLineEnding: after one, a DATA stream's end cannot be found without
// guessing, which is exactly what SMTP smuggling (CVE-2023-51764 class)
// exploits, so the session closes.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace ringmail::proto {

inline constexpr size_t kTextLineBytesMax = 1000;  // RFC 5321 4.5.3.1.6, with CRLF

class DataReader {
 public:
  enum class Mode { kDotTerminated, kChunked };
  enum class Status {
    kMore,            // all input consumed, the message goes on
    kDone,            // end of data reached (the final ".CRLF" or the chunk end)
    kBareLineEnding,  // fatal for a DATA stream
  };
  // Problems that do not stop reading: reported once the content is complete.
  struct Findings {
    bool too_big = false;           // more than bytes_max
    bool line_too_long = false;     // a line over kTextLineBytesMax
    bool bare_line_ending = false;  // only in chunked mode
    uint32_t received_headers = 0;  // "Received:" lines in the header section
  };

  // `out` receives the unstuffed content while it stays within `bytes_max`;
  // past that, bytes are counted but dropped. `out` must outlive the reader.
  DataReader(Mode mode, std::string* out, size_t bytes_max);

  // Starts a new BDAT chunk of `bytes` octets (chunked mode only). Line state
  // carries over between chunks: a line may continue in the next chunk.
  void begin_chunk(uint64_t bytes);
  uint64_t chunk_remaining() const { return chunk_remaining_; }

  // Consumes a prefix of `in` and returns the status; `consumed` is how much of
  // `in` was used. With kDone, the rest of `in` belongs to the next command.
  Status feed(std::string_view in, size_t& consumed);

  // Chunked mode: call after the LAST chunk; a final line without CRLF counts
  // as a bare line ending.
  void finish_chunked();

  const Findings& findings() const { return findings_; }
  uint64_t total_bytes() const { return total_bytes_; }

 private:
  void append(const char* p, size_t n);
  void end_line();
  void note_header_bytes(const char* p, size_t n);

  Mode mode_;
  std::string* out_;
  size_t bytes_max_;
  uint64_t total_bytes_ = 0;
  uint64_t chunk_remaining_ = 0;
  size_t line_bytes_ = 0;  // octets of the current line so far, without CRLF
  bool at_line_start_ = true;
  bool dot_line_ = false;    // the current line began with a (removed) dot
  bool pending_cr_ = false;  // the last octet seen was a CR
  bool in_headers_ = true;
  uint8_t header_prefix_len_ = 0;
  char header_prefix_[9] = {};
  Findings findings_;
};

// Finds the first CR or LF in [p, end) (SSE2), or returns end.
const char* find_cr_or_lf(const char* p, const char* end);

}  // namespace ringmail::proto
