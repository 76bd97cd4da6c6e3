// Memory for large tables that are read at random (the rebuild's row index and row arena):
// allocated in whole 2 MiB pages and marked for transparent huge pages, so that a random read
// costs one TLB entry per 2 MiB instead of one per 4 KiB. The first touch of each 2 MiB may
// make the kernel compact memory to find a huge page, so these are for background threads
// (rebuilds, projection runners), never for a command's path.
//
// Thread-safety: both functions may be called from any thread.
#pragma once

#include <cstddef>

namespace fidelis::storage {

// `bytes` of memory aligned to 64 bytes; at 2 MiB and above, in whole huge pages when the
// kernel allows it. Never null (throws std::bad_alloc like operator new).
void* AllocateLarge(size_t bytes);
// Frees memory from AllocateLarge(bytes) with the same `bytes`; at 2 MiB and above it goes back
// to the kernel at once.
void FreeLarge(void* memory, size_t bytes);

}  // namespace fidelis::storage
