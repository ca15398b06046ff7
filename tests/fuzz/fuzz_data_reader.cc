// libFuzzer target: the DATA/BDAT reader. Differential: feeding the input in
// pieces (sizes taken from the first byte) must give exactly what feeding it
// at once gives.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "proto/data_reader.h"

using ringmail::proto::DataReader;

namespace {
struct Run {
  DataReader::Status status = DataReader::Status::kMore;
  size_t consumed = 0;
  std::string out;
  DataReader::Findings f;
};

Run feed(DataReader::Mode mode, std::string_view in, size_t piece) {
  Run r;
  DataReader reader(mode, &r.out, 4096);
  if (mode == DataReader::Mode::kChunked) reader.begin_chunk(in.size() / 2);
  while (r.consumed < in.size() && r.status == DataReader::Status::kMore) {
    size_t n = piece == 0 ? in.size() - r.consumed : std::min(piece, in.size() - r.consumed);
    size_t used = 0;
    r.status = reader.feed(in.substr(r.consumed, n), used);
    if (used > n) __builtin_trap();
    r.consumed += used;
  }
  r.f = reader.findings();
  return r;
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const size_t piece = data[0] % 17 + 1;
  std::string_view in(reinterpret_cast<const char*>(data + 1), size - 1);
  for (auto mode : {DataReader::Mode::kDotTerminated, DataReader::Mode::kChunked}) {
    Run whole = feed(mode, in, 0);
    Run split = feed(mode, in, piece);
    if (whole.status != split.status || whole.consumed != split.consumed ||
        whole.out != split.out || whole.f.too_big != split.f.too_big ||
        whole.f.line_too_long != split.f.line_too_long ||
        whole.f.received_headers != split.f.received_headers) {
      __builtin_trap();
    }
    // Unstuffed content never grows beyond what came in, and never holds a
    // bare LF in DATA mode.
    if (whole.out.size() > in.size()) __builtin_trap();
    if (mode == DataReader::Mode::kDotTerminated) {
      for (size_t i = 0; i < whole.out.size(); ++i) {
        if (whole.out[i] == '\n' && (i == 0 || whole.out[i - 1] != '\r')) __builtin_trap();
      }
    }
  }
  return 0;
}
