#include "storage/huge_pages.h"

#include <cstdint>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>

#include "gtest/gtest.h"

namespace fidelis::storage {
namespace {

constexpr size_t kHugePage = 2 << 20;

// The "THPeligible" line of the mapping in /proc/self/smaps that holds `address`, or -1.
int ThpEligible(const void* address) {
  const auto at = reinterpret_cast<uintptr_t>(address);
  std::ifstream smaps("/proc/self/smaps");
  std::string line;
  bool inside = false;
  while (std::getline(smaps, line)) {
    uintptr_t begin = 0, end = 0;
    char dash = 0;
    std::istringstream header(line);
    if (header >> std::hex >> begin >> dash >> end && dash == '-') {
      inside = begin <= at && at < end;
      continue;
    }
    if (inside && line.rfind("THPeligible:", 0) == 0) return std::stoi(line.substr(12));
  }
  return -1;
}

// Whether any mapping of this process holds `address`.
bool Mapped(const void* address) {
  const auto at = reinterpret_cast<uintptr_t>(address);
  std::ifstream maps("/proc/self/maps");
  std::string line;
  while (std::getline(maps, line)) {
    uintptr_t begin = 0, end = 0;
    char dash = 0;
    std::istringstream header(line);
    if (header >> std::hex >> begin >> dash >> end && begin <= at && at < end) return true;
  }
  return false;
}

// The system's transparent-huge-page mode ("always", "madvise", "never"), or empty.
std::string ThpMode() {
  std::ifstream file("/sys/kernel/mm/transparent_hugepage/enabled");
  std::string modes;
  std::getline(file, modes);
  const size_t open = modes.find('['), close = modes.find(']');
  if (open == std::string::npos || close == std::string::npos) return "";
  return modes.substr(open + 1, close - open - 1);
}

TEST(HugePagesTest, SmallAllocationsAreCacheLineAlignedAndUsable) {
  for (size_t bytes : {1ul, 63ul, 64ul, 4096ul, kHugePage - 1}) {
    auto* memory = static_cast<char*>(AllocateLarge(bytes));
    EXPECT_EQ(reinterpret_cast<uintptr_t>(memory) % 64, 0u) << bytes;
    std::memset(memory, 0x5a, bytes);
    EXPECT_EQ(memory[bytes - 1], 0x5a);
    FreeLarge(memory, bytes);
  }
}

TEST(HugePagesTest, ZeroBytesIsAnAllocationLikeAnyOther) {
  void* memory = AllocateLarge(0);
  EXPECT_NE(memory, nullptr);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(memory) % 64, 0u);
  FreeLarge(memory, 0);
}

TEST(HugePagesTest, LargeAllocationsStartOnAHugePageAndAreWhollyUsable) {
  const size_t bytes = 5 * kHugePage + 123;
  auto* memory = static_cast<unsigned char*>(AllocateLarge(bytes));
  EXPECT_EQ(reinterpret_cast<uintptr_t>(memory) % kHugePage, 0u);
  for (size_t i = 0; i < bytes; ++i) memory[i] = static_cast<unsigned char>(i * 7);
  for (size_t i = 0; i < bytes; i += 4099) {
    ASSERT_EQ(memory[i], static_cast<unsigned char>(i * 7)) << i;
  }
  FreeLarge(memory, bytes);
}

TEST(HugePagesTest, LargeAllocationsGoBackToTheKernelWhenFreed) {
  // Kept by the heap instead, the huge-page advice would outlive the block and make the heap's
  // later small uses of the range take whole 2 MiB pages.
  const size_t bytes = 3 * kHugePage;
  // glibc's malloc keeps blocks of a size it has seen freed (its mmap threshold adapts), so a
  // heap-backed implementation fails here even when this test runs alone.
  FreeLarge(AllocateLarge(4 * kHugePage), 4 * kHugePage);
  auto* memory = static_cast<char*>(AllocateLarge(bytes));
  memory[0] = memory[bytes - 1] = 1;
  ASSERT_TRUE(Mapped(memory));
  ASSERT_TRUE(Mapped(memory + bytes - 1));
  FreeLarge(memory, bytes);
  EXPECT_FALSE(Mapped(memory));
  EXPECT_FALSE(Mapped(memory + bytes - 1));
}

TEST(HugePagesTest, LargeAllocationsAreMarkedForTransparentHugePages) {
  const std::string mode = ThpMode();
  if (mode != "always" && mode != "madvise") {
    GTEST_SKIP() << "transparent huge pages are not available here (mode '" << mode << "')";
  }
  const size_t bytes = 4 * kHugePage;
  void* memory = AllocateLarge(bytes);
  const int eligible = ThpEligible(memory);
  if (eligible == -1) {
    FreeLarge(memory, bytes);
    GTEST_SKIP() << "this kernel's smaps has no THPeligible line";
  }
  // Under "madvise" only the advice makes the mapping eligible.
  EXPECT_EQ(eligible, 1);
  FreeLarge(memory, bytes);
}

}  // namespace
}  // namespace fidelis::storage
