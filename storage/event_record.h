// A zero-copy view of one record of the event log: the envelope of a serialized
// fidelis.v1.StoredEvent (see key_format.h), read without building the message.
//
// Bulk readers (rebuilds) read millions of records; parsing each into a StoredEvent costs a
// heap allocation per string field and per metadata message, and the envelope is only looked
// at, never kept. An EventRecord's views point into the bytes it was parsed from and are valid
// as long as those bytes are.
#pragma once

#include <cstdint>
#include <string_view>

#include "fidelis/v1/events.pb.h"

namespace fidelis::storage {

struct EventRecord {
  uint64_t global_position = 0;
  std::string_view stream_id;
  int64_t stream_version = 0;
  std::string_view type;
  uint32_t schema_version = 0;
  int64_t timestamp_micros = 0;
  std::string_view payload;
};

// Parses the envelope fields of a serialized StoredEvent from `bytes` into `*out`, with the
// wire-format rules of protobuf: a later occurrence of a field wins, and unknown fields are
// skipped; the metadata is checked but not kept. False exactly when StoredEvent's own parser
// would refuse `bytes` (truncated, a bad tag, a string field that is not UTF-8); `*out` is
// then unspecified.
bool ParseEventRecord(std::string_view bytes, EventRecord* out);

// The envelope of an already parsed `event`; the views point into `event`, which must outlive
// the result.
EventRecord RecordOf(const v1::StoredEvent& event);

}  // namespace fidelis::storage
