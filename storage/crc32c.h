// CRC-32C (Castagnoli), the spool's record checksum: SSE4.2 instruction when
// the CPU has it, a table otherwise. Same results either way.
#pragma once

#include <cstdint>
#include <string_view>

namespace ringmail::storage {

uint32_t crc32c(std::string_view data, uint32_t crc = 0);
uint32_t crc32c_portable(std::string_view data, uint32_t crc = 0);

}  // namespace ringmail::storage
