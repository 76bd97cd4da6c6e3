#include "storage/huge_pages.h"

#include <sys/mman.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <new>

namespace fidelis::storage {

namespace {
constexpr size_t kHugePage = 2 << 20;
size_t Rounded(size_t bytes) { return (bytes + kHugePage - 1) / kHugePage * kHugePage; }
}  // namespace

void* AllocateLarge(size_t bytes) {
  if (bytes < kHugePage) {
    // aligned_alloc may return null for zero bytes; a zero-byte request gets one line.
    void* memory = std::aligned_alloc(64, std::max<size_t>(64, (bytes + 63) / 64 * 64));
    if (memory == nullptr) throw std::bad_alloc();
    return memory;
  }
  // A mapping of its own, returned to the kernel by FreeLarge(): were it heap memory, the huge
  // page advice would outlive it there, and the allocator's later small, scattered uses of the
  // range would each take a whole 2 MiB page.
  const size_t size = Rounded(bytes);
  void* mapped =
      mmap(nullptr, size + kHugePage, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (mapped == MAP_FAILED) throw std::bad_alloc();
  // Keeps the 2 MiB-aligned part of a mapping one huge page too large.
  const size_t head = (kHugePage - reinterpret_cast<uintptr_t>(mapped) % kHugePage) % kHugePage;
  char* const memory = static_cast<char*>(mapped) + head;
  if (head > 0) munmap(mapped, head);
  if (head < kHugePage) munmap(memory + size, kHugePage - head);
  // Advice only: where THP is off this is plain memory.
  madvise(memory, size, MADV_HUGEPAGE);
  return memory;
}

void FreeLarge(void* memory, size_t bytes) {
  if (memory == nullptr) return;
  if (bytes < kHugePage) {
    std::free(memory);
  } else {
    munmap(memory, Rounded(bytes));
  }
}

}  // namespace fidelis::storage
