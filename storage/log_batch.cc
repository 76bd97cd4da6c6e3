#include "storage/log_batch.h"

#include "absl/container/flat_hash_set.h"
#include "absl/strings/cord.h"
#include "domain/status_macros.h"
#include "domain/strings.h"
#include "storage/key_format.h"

namespace fidelis::storage {

absl::Status CheckAppendRequest(const AppendRequest& request) {
  if (request.streams.empty()) return absl::InvalidArgumentError("append names no stream");
  absl::flat_hash_set<std::string_view> seen;
  for (const StreamAppend& stream : request.streams) {
    if (stream.stream_id.empty() || stream.stream_id.size() > 512 ||
        stream.stream_id.find('\0') != std::string::npos) {
      return absl::InvalidArgumentError("stream id must be 1 to 512 bytes without NUL");
    }
    if (!seen.insert(stream.stream_id).second) {
      return absl::InvalidArgumentError(
          StrCat("stream ", stream.stream_id, " appears twice in one append"));
    }
    if (stream.events.empty()) {
      return absl::InvalidArgumentError(StrCat("no events for stream ", stream.stream_id));
    }
    if (stream.expected_version < kExpectAny) {
      return absl::InvalidArgumentError("expected version must be -1 (any) or >= 0");
    }
  }
  return absl::OkStatus();
}

absl::Status VersionConflict(std::string_view stream_id, int64_t expected, int64_t actual) {
  absl::Status status =
      absl::AbortedError(StrCat("version conflict on stream ", stream_id, ": expected version ",
                                expected, ", current version is ", actual));
  status.SetPayload(kCurrentVersionPayloadKey, absl::Cord(StrCat(actual)));
  status.SetPayload(kConflictStreamPayloadKey, absl::Cord(ToAbsl(stream_id)));
  return status;
}

AppendResult ResultFromRecord(const v1::CommandRecord& record) {
  AppendResult result;
  result.first_position = record.first_position();
  result.last_position = record.last_position();
  result.streams.assign(record.streams().begin(), record.streams().end());
  result.deduplicated = true;
  return result;
}

BatchAssembler::BatchAssembler(uint64_t next_position, HeadLookup head_of,
                               CommandLookup find_command, v1::LogBatch* batch)
    : next_position_(next_position),
      head_of_(std::move(head_of)),
      find_command_(std::move(find_command)),
      batch_(batch) {
  batch_->Clear();
}

absl::StatusOr<int64_t> BatchAssembler::HeadOf(const std::string& stream_id) {
  if (auto it = heads_.find(stream_id); it != heads_.end()) return it->second;
  return head_of_(stream_id);
}

BatchAssembler::Outcome BatchAssembler::Add(const AppendRequest& request) {
  const int index = static_cast<int>(fingerprints_.size());
  fingerprints_.push_back(request.fingerprint);
  Outcome outcome;
  if (!request.command_id.empty()) {
    auto [it, first] = commands_.emplace(request.command_id, index);
    if (!first) {
      if (fingerprints_[it->second] != request.fingerprint) {
        outcome.result = absl::AlreadyExistsError(
            StrCat("command_id ", request.command_id, " was already used for a different request"));
      } else {
        outcome.alias_of = it->second;
      }
      return outcome;
    }
    absl::StatusOr<std::optional<v1::CommandRecord>> earlier = find_command_(request.command_id);
    if (!earlier.ok()) {
      outcome.result = earlier.status();
      return outcome;
    }
    if (earlier->has_value()) {
      if ((*earlier)->fingerprint() != request.fingerprint) {
        outcome.result = absl::AlreadyExistsError(
            StrCat("command_id ", request.command_id, " was already used for a different request"));
      } else {
        outcome.result = ResultFromRecord(**earlier);
      }
      return outcome;
    }
  }
  // Check every expectation before adding anything, so a rejected request adds nothing.
  std::vector<int64_t> versions;
  versions.reserve(request.streams.size());
  for (const StreamAppend& stream : request.streams) {
    absl::StatusOr<int64_t> head = HeadOf(stream.stream_id);
    if (!head.ok()) {
      outcome.result = head.status();
      return outcome;
    }
    if (stream.expected_version != kExpectAny && stream.expected_version != *head) {
      outcome.result = VersionConflict(stream.stream_id, stream.expected_version, *head);
      return outcome;
    }
    versions.push_back(*head);
  }
  AppendResult result;
  result.first_position = next_position_;
  for (size_t i = 0; i < request.streams.size(); ++i) {
    const StreamAppend& stream = request.streams[i];
    int64_t version = versions[i];
    for (const EventToAppend& event : stream.events) {
      v1::StoredEvent* record = batch_->add_events();
      record->set_global_position(next_position_++);
      record->set_stream_id(stream.stream_id);
      record->set_stream_version(++version);
      record->set_type(event.type);
      record->set_schema_version(event.schema_version);
      record->set_timestamp_micros(event.timestamp_micros);
      record->set_payload(event.payload);
      *record->mutable_metadata() = event.metadata;
    }
    heads_[stream.stream_id] = version;
    v1::StreamVersion* sv = &result.streams.emplace_back();
    sv->set_stream_id(stream.stream_id);
    sv->set_version(version);
  }
  result.last_position = next_position_ - 1;
  if (!request.command_id.empty()) {
    v1::CommandEntry* entry = batch_->add_commands();
    entry->set_command_id(request.command_id);
    v1::CommandRecord* record = entry->mutable_record();
    record->set_fingerprint(request.fingerprint);
    record->set_first_position(result.first_position);
    record->set_last_position(result.last_position);
    for (const auto& sv : result.streams) *record->add_streams() = sv;
  }
  outcome.result = std::move(result);
  return outcome;
}

void WriteLogBatch(const v1::LogBatch& batch, const LogFamilies& families,
                   rocksdb::WriteBatch& out) {
  std::string value;
  for (const v1::StoredEvent& event : batch.events()) {
    event.SerializeToString(&value);
    const std::string key = EventKey(event.global_position());
    out.Put(families.events, key, value);
    out.Put(families.streams, StreamKey(event.stream_id(), event.stream_version()), key);
  }
  for (const v1::CommandEntry& entry : batch.commands()) {
    out.Put(families.commands, entry.command_id(), entry.record().SerializeAsString());
  }
}

}  // namespace fidelis::storage
