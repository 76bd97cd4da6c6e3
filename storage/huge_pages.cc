#include "storage/huge_pages.h"

#include <sys/mman.h>

#include <cstdlib>
#include <new>

namespace fidelis::storage {

namespace {
constexpr size_t kHugePage = 2 << 20;
size_t Rounded(size_t bytes) { return (bytes + kHugePage - 1) / kHugePage * kHugePage; }
}  // namespace

void* AllocateLarge(size_t bytes) {
  if (bytes < kHugePage) {
    void* memory = std::aligned_alloc(64, (bytes + 63) / 64 * 64);
    if (memory == nullptr) throw std::bad_alloc();
    return memory;
  }
  void* memory = std::aligned_alloc(kHugePage, Rounded(bytes));
  if (memory == nullptr) throw std::bad_alloc();
  // Advice only: where the kernel has no huge pages (or THP is off) this is plain memory.
  madvise(memory, Rounded(bytes), MADV_HUGEPAGE);
  return memory;
}

void FreeLarge(void* memory, size_t /*bytes*/) { std::free(memory); }

}  // namespace fidelis::storage
