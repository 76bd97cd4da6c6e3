// The on-disk key layout of the event log and projection storage, byte by byte.
//
// One RocksDB database holds several column families:
//
//   "events"     key:   8 bytes, the global position, big-endian (so keys sort by position)
//                value: a serialized fidelis.v1.StoredEvent
//   "streams"    key:   stream id bytes | 0x00 | 8 bytes stream version, big-endian
//                value: 8 bytes, the event's global position, big-endian
//                (stream ids never contain 0x00, so one stream's keys are contiguous and
//                sort by version)
//   "commands"   key:   command id bytes
//                value: a serialized fidelis.v1.CommandRecord
//   "snapshots"  key:   stream id bytes
//                value: a serialized aggregate snapshot (derived, disposable, written unsynced)
//   "meta"       in the log's instance, on a cluster node (storage/nats/):
//                key:   "replica/sequence"
//                value: 8 bytes big-endian, the JetStream sequence of the last batch the
//                       replica holds (written in the same batch as that batch's events)
//                in the projections' instance:
//                key:   "projection/<name>"
//                value: a serialized fidelis.v1.ProjectionCatalog (which builds exist, which
//                       is live, shadow and previous)
//   "p/<name>/v<version>" and "p/<name>/v<version>.<generation>"   one per projection build
//                (a version of its projector; generation > 0 for later builds of the same
//                version, made by blue-green rebuilds):
//                key:   'r' | row key bytes         value: a serialized row message
//                key:   'm' | "checkpoint"          value: 8 bytes big-endian global position
//                key:   'm' | "state"               value: "live" | "needs_rebuild" | "building"
//
// Global positions start at 1 and are gapless; stream versions start at 1.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace fidelis::storage {

inline constexpr char kEventsFamily[] = "events";
inline constexpr char kStreamsFamily[] = "streams";
inline constexpr char kCommandsFamily[] = "commands";
inline constexpr char kSnapshotsFamily[] = "snapshots";
inline constexpr char kMetaFamily[] = "meta";

inline constexpr char kReplicatedSequenceKey[] = "replica/sequence";

inline constexpr char kRowPrefix = 'r';
inline constexpr char kMetaPrefix = 'm';

void PutBigEndian64(std::string* out, uint64_t value);
uint64_t DecodeBigEndian64(std::string_view bytes);  // bytes.size() must be >= 8.

std::string EventKey(uint64_t global_position);
std::string StreamKey(std::string_view stream_id, int64_t version);
// The smallest key above every key of `stream_id` (the stream prefix with 0x01 for 0x00).
std::string StreamUpperBound(std::string_view stream_id);
// The prefix shared by every key of `stream_id`.
std::string StreamPrefix(std::string_view stream_id);

std::string ProjectionFamily(std::string_view name, uint32_t version, uint32_t generation = 0);
// The prefix shared by the families of every build of projection `name`.
std::string ProjectionFamilyPrefix(std::string_view name);
std::string CatalogKey(std::string_view projection);
std::string RowKey(std::string_view row_key);
std::string MetaKey(std::string_view name);

}  // namespace fidelis::storage
