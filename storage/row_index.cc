#include "storage/row_index.h"

#include <new>
#include <type_traits>
#include <utility>

#include "absl/hash/hash.h"
#include "absl/strings/string_view.h"
#include "storage/huge_pages.h"

namespace fidelis::storage {

uint64_t RowIndex::Hash(std::string_view key) {
  return absl::Hash<absl::string_view>()(absl::string_view(key.data(), key.size()));
}

void RowIndex::FreeSlots::operator()(Slot* slots) const {
  static_assert(std::is_trivially_destructible_v<Slot>, "freeing the memory ends the slots");
  FreeLarge(slots, capacity * sizeof(Slot));
}

RowIndex::Slots RowIndex::NewSlots(size_t capacity) {
  // The table is read at random, one line per key: in huge pages when it is large.
  Slot* slots = static_cast<Slot*>(AllocateLarge(capacity * sizeof(Slot)));
  for (size_t i = 0; i < capacity; ++i) new (&slots[i]) Slot();
  return Slots(slots, FreeSlots{capacity});
}

RowIndex::Slot* RowIndex::Insert(std::string_view key, google::protobuf::Message* row) {
  constexpr size_t kMinCapacity = 16;
  // At most 9/16 full: at that load most keys sit in their home slot or the next, the two lines
  // Prefetch() loads, and a rebuild's cache of 2^18 rows (plus the batch that overfills it
  // before it is dropped) fits in 2^19 slots, 32 MiB.
  if (16 * (size_ + 1) > 9 * capacity_) Rehash(capacity_ == 0 ? kMinCapacity : 2 * capacity_);
  const uint64_t hash = Hash(key);
  const size_t mask = capacity_ - 1;
  size_t i = hash & mask;
  while (slots_[i].row != nullptr) i = (i + 1) & mask;
  Slot& slot = slots_[i];
  slot.hash = hash;
  slot.row = row;
  slot.key_data = key.data();
  slot.key_size = static_cast<uint32_t>(key.size());
  slot.dirty = false;
  if (key.size() <= Slot::kInlineKey) std::memcpy(slot.inline_key, key.data(), key.size());
  ++size_;
  return &slot;
}

void RowIndex::Rehash(size_t capacity) {
  Slots old = std::move(slots_);
  const size_t old_capacity = capacity_;
  // Value-initialized: every row pointer starts null, so every slot starts empty.
  slots_ = NewSlots(capacity);
  capacity_ = capacity;
  const size_t mask = capacity - 1;
  for (size_t j = 0; j < old_capacity; ++j) {
    const Slot& from = old[j];
    if (from.row == nullptr) continue;
    size_t i = from.hash & mask;
    while (slots_[i].row != nullptr) i = (i + 1) & mask;
    slots_[i] = from;
  }
}

}  // namespace fidelis::storage
