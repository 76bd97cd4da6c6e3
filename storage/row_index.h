// RowIndex: a ProjectionBatch's cached rows, found by key.
//
// An open-addressing hash table with linear probing, a little over half full at most, whose every
// slot is one 64-byte cache line holding the key's hash, the row, and the key itself when it is
// short (account ids are 32 bytes). A rebuild looks up one row per event in an index that outgrows
// the CPU cache, so each lookup would miss it twice (the slot, then the row). This layout lets a
// replay load both ahead of time: Prefetch() some events ahead loads the line where the key
// will be found (its home slot and the next; at this load most keys sit in one of them), and
// PrefetchRow() a few events later finds the key in lines already loaded and loads the row.
// absl::flat_hash_set cannot do the first step: it prefetches only the first slot of a probe
// group, and keys sit anywhere in the group.
//
// Keys and rows are not owned: the caller keeps both alive until Clear() (ProjectionBatch puts
// them on its arena). Not thread-safe; used by one thread at a time.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string_view>

#include "google/protobuf/message.h"

namespace fidelis::storage {

class RowIndex {
 public:
  struct alignas(64) Slot {
    static constexpr size_t kInlineKey =
        64 - sizeof(uint64_t) - 2 * sizeof(void*) - sizeof(uint32_t) - sizeof(bool);

    // The key, read from the slot when it fits there.
    std::string_view key() const {
      return std::string_view(key_size <= kInlineKey ? inline_key : key_data, key_size);
    }

    uint64_t hash;
    google::protobuf::Message* row;  // Null in an empty slot.
    const char* key_data;            // The caller's copy, stable until Clear().
    uint32_t key_size;
    bool dirty;  // The caller's flag; false on insert.
    char inline_key[kInlineKey];
  };
  static_assert(sizeof(Slot) == 64);

  RowIndex() = default;
  RowIndex(const RowIndex&) = delete;
  RowIndex& operator=(const RowIndex&) = delete;

  // The slot of `key`, or null. Valid until the next Insert() or Clear().
  Slot* Find(std::string_view key) { return FindHashed(key, Hash(key)); }

  // Adds `key`, which must not be present, with `row` (not null). `key`'s bytes must stay valid
  // until Clear(). Returns its slot, valid until the next Insert() or Clear().
  Slot* Insert(std::string_view key, google::protobuf::Message* row);

  // Starts loading the lines where `key` is or would be.
  void Prefetch(std::string_view key) const {
    if (capacity_ == 0) return;
    const size_t home = Hash(key) & (capacity_ - 1);
    __builtin_prefetch(&slots_[home]);
    __builtin_prefetch(&slots_[(home + 1) & (capacity_ - 1)]);
  }

  // Starts loading the first `lines` cache lines of `key`'s row, when it is present.
  void PrefetchRow(std::string_view key, int lines) {
    const Slot* slot = Find(key);
    if (slot == nullptr) return;
    const char* row = reinterpret_cast<const char*>(slot->row);
    for (int line = 0; line < lines; ++line) __builtin_prefetch(row + ptrdiff_t{64} * line);
  }

  size_t size() const { return size_; }

  // Forgets every key and frees the slots.
  void Clear() {
    slots_.reset();
    capacity_ = 0;
    size_ = 0;
  }

 private:
  static uint64_t Hash(std::string_view key);
  Slot* FindHashed(std::string_view key, uint64_t hash) {
    if (capacity_ == 0) return nullptr;
    const size_t mask = capacity_ - 1;
    for (size_t i = hash & mask;; i = (i + 1) & mask) {
      Slot& slot = slots_[i];
      if (slot.row == nullptr) return nullptr;
      if (slot.hash == hash && slot.key() == key) return &slot;
    }
  }
  // Moves every slot into a table of `capacity` (a power of two) slots.
  void Rehash(size_t capacity);

  struct FreeSlots {
    size_t capacity;
    void operator()(Slot* slots) const;
  };
  using Slots = std::unique_ptr<Slot[], FreeSlots>;
  static Slots NewSlots(size_t capacity);

  Slots slots_{nullptr, FreeSlots{0}};
  size_t capacity_ = 0;  // Zero or a power of two.
  size_t size_ = 0;
};

}  // namespace fidelis::storage
