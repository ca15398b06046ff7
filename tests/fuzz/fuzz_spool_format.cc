// libFuzzer target: the spool record decoder (recovery reads whatever is on
// disk). A record that decodes must re-encode to the same bytes.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "storage/spool_format.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace ringmail::storage;
  std::string_view in(reinterpret_cast<const char*>(data), size);
  SpoolRecord rec;
  if (decode_record(in, rec) != DecodeError::kNone) return 0;
  EncodedRecord e = encode_record(rec.env, rec.message);
  SpoolRecord again;
  std::string file = e.header + rec.message + e.trailer;
  if (decode_record(file, again) != DecodeError::kNone) __builtin_trap();
  if (again.message != rec.message || again.env.id != rec.env.id ||
      again.env.rcpts.size() != rec.env.rcpts.size()) {
    __builtin_trap();
  }
  return 0;
}
