#include "storage/event_record.h"

#include <cstdint>
#include <cstring>

#include "google/protobuf/io/coded_stream.h"
#include "google/protobuf/wire_format_lite.h"

namespace fidelis::storage {
namespace {

using google::protobuf::internal::WireFormatLite;

// Field numbers of fidelis.v1.StoredEvent (proto/fidelis/v1/events.proto).
enum Field : int {
  kGlobalPosition = 1,
  kStreamId = 2,
  kStreamVersion = 3,
  kType = 4,
  kSchemaVersion = 5,
  kTimestampMicros = 6,
  kPayload = 7,
  kMetadata = 8,
};

// A cursor over a message's bytes. Known fields are read inline (this runs for every record
// of a rebuild); anything unusual goes through protobuf's own CodedInputStream.
class Reader {
 public:
  explicit Reader(std::string_view bytes)
      : at_(reinterpret_cast<const uint8_t*>(bytes.data())), end_(at_ + bytes.size()) {}

  bool done() const { return at_ == end_; }

  // A varint of at most `max_bytes` bytes, truncated to 64 bits as protobuf does.
  bool Varint(uint64_t* value, int max_bytes = 10) {
    uint64_t result = 0;
    for (int i = 0; i < max_bytes && at_ < end_; ++i) {
      const uint8_t byte = *at_++;
      result |= static_cast<uint64_t>(byte & 0x7f) << (7 * i);
      if (byte < 0x80) {
        *value = result;
        return true;
      }
    }
    return false;
  }

  // The next tag. False for a malformed one: field number 0, or a varint over five bytes.
  bool Tag(uint32_t* tag) {
    uint64_t value = 0;
    if (!Varint(&value, 5)) return false;
    *tag = static_cast<uint32_t>(value);
    return WireFormatLite::GetTagFieldNumber(*tag) != 0;
  }

  // A length-delimited field's contents, as a view into the bytes.
  bool View(std::string_view* out) {
    uint64_t length = 0;
    if (!Varint(&length, 5) || length > static_cast<uint64_t>(end_ - at_)) return false;
    *out = std::string_view(reinterpret_cast<const char*>(at_), length);
    at_ += length;
    return true;
  }

  // Skips the field whose tag was just read, groups included.
  bool Skip(uint32_t tag) {
    google::protobuf::io::CodedInputStream in(at_, static_cast<int>(end_ - at_));
    if (!WireFormatLite::SkipField(&in, tag)) return false;
    at_ += in.CurrentPosition();
    return true;
  }

 private:
  const uint8_t* at_;
  const uint8_t* const end_;
};

// Whether every byte of `text` is below 0x80, eight bytes at a time.
bool Ascii(std::string_view text) {
  uint64_t seen = 0;
  size_t i = 0;
  for (; i + 8 <= text.size(); i += 8) {
    uint64_t word;
    std::memcpy(&word, text.data() + i, 8);
    seen |= word;
  }
  for (; i < text.size(); ++i) seen |= static_cast<uint8_t>(text[i]);
  return (seen & 0x8080808080808080ull) == 0;
}

// proto3 string fields must hold UTF-8; the message parser refuses them otherwise. Stream ids,
// types and metadata are nearly always ASCII, which is UTF-8 and is checked here without a
// call into protobuf (that call was 5% of a rebuild's reading thread).
bool ValidUtf8(std::string_view text) {
  return Ascii(text) || WireFormatLite::VerifyUtf8String(text.data(), static_cast<int>(text.size()),
                                                         WireFormatLite::PARSE, "");
}

inline bool IsVarint(uint32_t tag) {
  return WireFormatLite::GetTagWireType(tag) == WireFormatLite::WIRETYPE_VARINT;
}
inline bool IsDelimited(uint32_t tag) {
  return WireFormatLite::GetTagWireType(tag) == WireFormatLite::WIRETYPE_LENGTH_DELIMITED;
}

// Checks that `bytes` is a well-formed fidelis.v1.EventMetadata, whose fields are all strings,
// without keeping anything, so that a record the message parser would refuse is refused here
// too.
bool ValidMetadata(std::string_view bytes) {
  Reader in(bytes);
  while (!in.done()) {
    uint32_t tag = 0;
    if (!in.Tag(&tag)) return false;
    const int field = WireFormatLite::GetTagFieldNumber(tag);
    std::string_view text;
    if (IsDelimited(tag) && field >= 1 && field <= 3) {
      if (!in.View(&text) || !ValidUtf8(text)) return false;
    } else if (!in.Skip(tag)) {
      return false;
    }
  }
  return true;
}

}  // namespace

bool ParseEventRecord(std::string_view bytes, EventRecord* out) {
  *out = EventRecord();
  Reader in(bytes);
  uint64_t value = 0;
  std::string_view metadata;
  while (!in.done()) {
    uint32_t tag = 0;
    if (!in.Tag(&tag)) return false;
    // A known field number with an unexpected wire type is an unknown field, as protobuf has it.
    bool ok = true;
    switch (IsVarint(tag) || IsDelimited(tag) ? WireFormatLite::GetTagFieldNumber(tag) : 0) {
      case kGlobalPosition:
        ok = IsVarint(tag) ? in.Varint(&out->global_position) : in.Skip(tag);
        break;
      case kStreamVersion:
        ok = IsVarint(tag) ? in.Varint(&value) : in.Skip(tag);
        if (IsVarint(tag)) out->stream_version = static_cast<int64_t>(value);
        break;
      case kSchemaVersion:
        ok = IsVarint(tag) ? in.Varint(&value) : in.Skip(tag);
        if (IsVarint(tag)) out->schema_version = static_cast<uint32_t>(value);
        break;
      case kTimestampMicros:
        ok = IsVarint(tag) ? in.Varint(&value) : in.Skip(tag);
        if (IsVarint(tag)) out->timestamp_micros = static_cast<int64_t>(value);
        break;
      case kStreamId:
        ok =
            IsDelimited(tag) ? in.View(&out->stream_id) && ValidUtf8(out->stream_id) : in.Skip(tag);
        break;
      case kType:
        ok = IsDelimited(tag) ? in.View(&out->type) && ValidUtf8(out->type) : in.Skip(tag);
        break;
      case kPayload:
        ok = IsDelimited(tag) ? in.View(&out->payload) : in.Skip(tag);
        break;
      case kMetadata:
        ok = IsDelimited(tag) ? in.View(&metadata) && ValidMetadata(metadata) : in.Skip(tag);
        break;
      default:
        ok = in.Skip(tag);
    }
    if (!ok) return false;
  }
  return true;
}

EventRecord RecordOf(const v1::StoredEvent& event) {
  EventRecord record;
  record.global_position = event.global_position();
  record.stream_id = event.stream_id();
  record.stream_version = event.stream_version();
  record.type = event.type();
  record.schema_version = event.schema_version();
  record.timestamp_micros = event.timestamp_micros();
  record.payload = event.payload();
  return record;
}

}  // namespace fidelis::storage
