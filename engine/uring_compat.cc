#include "engine/uring_compat.h"

#include <sys/mman.h>

#include <cerrno>

namespace ringmail::engine {

io_uring_buf_ring* setup_buf_ring(io_uring* ring, unsigned nentries, int bgid, int* err) {
  const size_t bytes = nentries * sizeof(io_uring_buf);
  void* mem = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
  if (mem == MAP_FAILED) {
    *err = -errno;
    return nullptr;
  }
  auto* br = static_cast<io_uring_buf_ring*>(mem);
  io_uring_buf_ring_init(br);
  io_uring_buf_reg reg{};
  reg.ring_addr = reinterpret_cast<unsigned long>(br);
  reg.ring_entries = nentries;
  reg.bgid = static_cast<unsigned short>(bgid);
  int r = io_uring_register_buf_ring(ring, &reg, 0);
  if (r != 0) {
    ::munmap(mem, bytes);
    *err = r;
    return nullptr;
  }
  *err = 0;
  return br;
}

void free_buf_ring(io_uring* ring, io_uring_buf_ring* br, unsigned nentries, int bgid) {
  io_uring_unregister_buf_ring(ring, bgid);
  ::munmap(br, nentries * sizeof(io_uring_buf));
}

}  // namespace ringmail::engine
