#include "proto/data_reader.h"

#include <emmintrin.h>

#include <cassert>
#include <cstring>

namespace ringmail::proto {

const char* find_cr_or_lf(const char* p, const char* end) {
  const __m128i cr = _mm_set1_epi8('\r');
  const __m128i lf = _mm_set1_epi8('\n');
  while (end - p >= 16) {
    __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
    int mask = _mm_movemask_epi8(_mm_or_si128(_mm_cmpeq_epi8(v, cr), _mm_cmpeq_epi8(v, lf)));
    if (mask != 0) return p + __builtin_ctz(static_cast<unsigned>(mask));
    p += 16;
  }
  while (p < end && *p != '\r' && *p != '\n') ++p;
  return p;
}

DataReader::DataReader(Mode mode, std::string* out, size_t bytes_max)
    : mode_(mode), out_(out), bytes_max_(bytes_max) {}

void DataReader::begin_chunk(uint64_t bytes) {
  assert(mode_ == Mode::kChunked);
  chunk_remaining_ = bytes;
}

void DataReader::append(const char* p, size_t n) {
  if (n == 0) return;
  total_bytes_ += n;
  if (total_bytes_ > bytes_max_) {
    findings_.too_big = true;
    return;
  }
  out_->append(p, n);
}

void DataReader::note_header_bytes(const char* p, size_t n) {
  if (!in_headers_) return;
  while (n > 0 && header_prefix_len_ < sizeof header_prefix_) {
    header_prefix_[header_prefix_len_++] = *p++;
    --n;
  }
}

void DataReader::end_line() {
  if (line_bytes_ > kTextLineBytesMax - 2) findings_.line_too_long = true;
  if (in_headers_) {
    if (line_bytes_ == 0) {
      in_headers_ = false;
    } else if (header_prefix_len_ == 9) {
      static constexpr char kReceived[] = "received:";
      bool match = true;
      for (int i = 0; i < 9; ++i) {
        char c = header_prefix_[i];
        if (c >= 'A' && c <= 'Z') c = static_cast<char>(c + 32);
        if (c != kReceived[i]) match = false;
      }
      if (match) ++findings_.received_headers;
    }
  }
  header_prefix_len_ = 0;
  line_bytes_ = 0;
  at_line_start_ = true;
  dot_line_ = false;
  append("\r\n", 2);
}

DataReader::Status DataReader::feed(std::string_view in, size_t& consumed) {
  const char* p = in.data();
  const char* end = p + in.size();
  if (mode_ == Mode::kChunked && static_cast<uint64_t>(end - p) > chunk_remaining_) {
    end = p + chunk_remaining_;
  }
  const char* const begin = p;
  auto finish = [&](Status s) {
    consumed = static_cast<size_t>(p - begin);
    if (mode_ == Mode::kChunked) {
      chunk_remaining_ -= consumed;
      if (s == Status::kMore && chunk_remaining_ == 0) s = Status::kDone;
    }
    return s;
  };
  auto bare = [&]() {
    if (mode_ == Mode::kDotTerminated) return finish(Status::kBareLineEnding);
    // Chunked content is framed by length: note it and keep going.
    findings_.bare_line_ending = true;
    return Status::kMore;
  };

  while (p < end) {
    if (pending_cr_) {
      pending_cr_ = false;
      if (*p != '\n') {
        if (bare() == Status::kBareLineEnding) return Status::kBareLineEnding;
        // Chunked: treat the lone CR as content.
        append("\r", 1);
        ++line_bytes_;
        continue;
      }
      ++p;
      if (dot_line_ && line_bytes_ == 0 && mode_ == Mode::kDotTerminated) {
        return finish(Status::kDone);
      }
      end_line();
      continue;
    }
    if (at_line_start_) {
      at_line_start_ = false;
      if (mode_ == Mode::kDotTerminated && *p == '.') {
        // Transparency (RFC 5321 4.5.2): drop the first dot of the line. A
        // line holding only the dot ends the data.
        dot_line_ = true;
        ++p;
        continue;
      }
    }
    const char* q = find_cr_or_lf(p, end);
    const size_t n = static_cast<size_t>(q - p);
    note_header_bytes(p, n);
    append(p, n);
    line_bytes_ += n;
    p = q;
    if (p == end) break;
    if (*p == '\n') {
      if (bare() == Status::kBareLineEnding) return Status::kBareLineEnding;
      append("\n", 1);
      ++p;
      ++line_bytes_;
      continue;
    }
    // CR: its LF may be in the next buffer.
    ++p;
    pending_cr_ = true;
  }
  return finish(Status::kMore);
}

void DataReader::finish_chunked() {
  assert(mode_ == Mode::kChunked);
  if (pending_cr_) {
    // A CR at the very end: a bare CR like any other.
    append("\r", 1);
    findings_.bare_line_ending = true;
  } else if (!at_line_start_ || line_bytes_ != 0) {
    // The last line has no CRLF. BDAT frames content by length, so this is
    // no bare line ending (RFC 3030 asks for none): end it as Postfix and
    // Exim do, so the stored message ends in CRLF.
    end_line();  // appends the CRLF
  }
}

}  // namespace ringmail::proto
