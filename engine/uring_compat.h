// liburing 2.3 (Debian 12) lacks io_uring_setup_buf_ring(), added in 2.4:
// the same contract, built from io_uring_register_buf_ring().
#pragma once

#include <liburing.h>

namespace ringmail::engine {

// Maps and registers a provided-buffer ring of `nentries` (a power of two)
// for buffer group `bgid`. Returns nullptr and sets *err (-errno) on failure.
io_uring_buf_ring* setup_buf_ring(io_uring* ring, unsigned nentries, int bgid, int* err);
// Unregisters and unmaps it.
void free_buf_ring(io_uring* ring, io_uring_buf_ring* br, unsigned nentries, int bgid);

}  // namespace ringmail::engine
