// The event registry: which event types exist, in which schema versions, and how an old
// version is lifted to the current one (upcasting).
//
// Taxonomy:
//   EventRegistry  - built once at start-up, then read-only and safe to share between threads.
//   Upcaster       - a pure function from a payload of (type, v) to a payload of (type, v+1).
//   DecodedEvent   - an owned, current-schema payload message plus its type name.
//
// Upcasters compose: a payload stored at v1 passes through v1->v2, v2->v3 ... until it reaches
// the type's current version, so projectors and aggregates only ever see the current schema.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <utility>

#include "absl/status/statusor.h"
#include "google/protobuf/message.h"

namespace fidelis {

struct DecodedEvent {
  std::string type;
  uint32_t schema_version = 0;  // Always the current version after Decode.
  std::unique_ptr<google::protobuf::Message> payload;
};

class EventRegistry {
 public:
  // Lifts a parsed payload of version v to a new message of version v+1.
  using Upcaster = std::function<absl::StatusOr<std::unique_ptr<google::protobuf::Message>>(
      const google::protobuf::Message& old_payload)>;

  // Declares `prototype`'s message as the schema of (type, version). The prototype must outlive
  // the registry (generated default instances do). The highest registered version of a type is
  // its current version.
  void RegisterSchema(std::string_view type, uint32_t version,
                      const google::protobuf::Message* prototype);

  // Declares how (type, from_version) becomes (type, from_version + 1). Both schemas must be
  // registered.
  void RegisterUpcaster(std::string_view type, uint32_t from_version, Upcaster upcaster);

  // Parses a stored payload and upcasts it to the current schema.
  // NOT_FOUND when the type is unknown or the version has no schema or no upcaster path
  // (the "unknown event" of the rebuild policies); DATA_LOSS when the bytes do not parse.
  absl::StatusOr<DecodedEvent> Decode(std::string_view type, uint32_t schema_version,
                                      std::string_view payload) const;

  // Parses a stored payload as the schema it was written in, without upcasting.
  absl::StatusOr<std::unique_ptr<google::protobuf::Message>> ParseAsStored(
      std::string_view type, uint32_t schema_version, std::string_view payload) const;

  // The current schema version of `type`, or 0 when unknown.
  uint32_t CurrentVersion(std::string_view type) const;

  bool Knows(std::string_view type) const { return CurrentVersion(type) != 0; }

  // The schema of the current version of `type`, or null when unknown.
  const google::protobuf::Message* CurrentPrototype(std::string_view type) const;

 private:
  struct Version {
    const google::protobuf::Message* prototype = nullptr;
    Upcaster to_next;
  };
  // type -> version -> schema and upcaster.
  std::map<std::string, std::map<uint32_t, Version>, std::less<>> types_;
};

// Decodes events for one thread, looking each type's current schema up once. Not
// thread-safe: one decoder per thread. The registry must outlive it.
class EventDecoder {
 public:
  explicit EventDecoder(const EventRegistry* registry) : registry_(registry) {}

  // As EventRegistry::Decode, but the returned message belongs to the decoder and stays valid
  // until the next call (one message per type is reused, so a replay does not allocate per
  // event).
  absl::StatusOr<const google::protobuf::Message*> Decode(std::string_view type,
                                                          uint32_t schema_version,
                                                          std::string_view payload);

  // As Decode, but a payload in the current schema is parsed into a new message on `arena`
  // (valid as long as the arena), and an upcast result is handed to `*upcast`, which owns it.
  absl::StatusOr<const google::protobuf::Message*> DecodeOnArena(
      std::string_view type, uint32_t schema_version, std::string_view payload,
      google::protobuf::Arena* arena, std::unique_ptr<google::protobuf::Message>* upcast);

 private:
  struct Current {
    uint32_t version = 0;
    const google::protobuf::Message* prototype = nullptr;  // Null for an unknown type.
    std::unique_ptr<google::protobuf::Message> reused;     // Decode's message, made lazily.
  };

  // The current schema of `type`. Runs of one type are common, so the last one is checked
  // first (map nodes do not move, so the pointer stays valid).
  Current& CurrentOf(std::string_view type);

  const EventRegistry* const registry_;
  std::map<std::string, Current, std::less<>> current_;
  std::pair<const std::string, Current>* last_ = nullptr;
  std::unique_ptr<google::protobuf::Message> upcast_;  // Decode's last upcast result.
};

// The registry for the account domain: current schemas, the retired v1 schemas of
// AccountOpened, DepositMade and WithdrawalMade, and the v1->v2 upcasters, which round the
// floating-point units half to even at the currency's exponent and assign `default_currency`.
EventRegistry MakeAccountEventRegistry(std::string default_currency);

}  // namespace fidelis
