#include "storage/event_store.h"

#include <algorithm>

#include "absl/synchronization/notification.h"
#include "domain/status_macros.h"
#include "domain/strings.h"

namespace fidelis::storage {

absl::StatusOr<std::vector<v1::StoredEvent>> EventStore::ReadAll(uint64_t from_position,
                                                                 size_t max_count) const {
  std::vector<v1::StoredEvent> events;
  RETURN_IF_ERROR(Scan(from_position, max_count, [&events](const v1::StoredEvent& event) {
    events.push_back(event);
    return true;
  }));
  return events;
}

absl::Status EventStore::ScanRaw(
    uint64_t from_position, size_t max_count,
    const std::function<bool(uint64_t, std::string_view)>& visit) const {
  std::string bytes;
  return Scan(from_position, max_count, [&](const v1::StoredEvent& event) {
    event.SerializeToString(&bytes);
    return visit(event.global_position(), bytes);
  });
}

absl::StatusOr<AppendResult> EventStore::Append(AppendRequest request) {
  absl::Notification written;
  absl::StatusOr<AppendResult> result;
  AppendAsync(std::move(request), [&](absl::StatusOr<AppendResult> outcome) {
    result = std::move(outcome);
    written.Notify();
  });
  written.WaitForNotification();
  return result;
}

absl::Status EventStore::AwaitPosition(uint64_t position, absl::Duration /*timeout*/) const {
  const uint64_t head = HeadPosition();
  if (position > head) {
    return absl::OutOfRangeError(StrCat(position, " is beyond the head of the log (", head, ")"));
  }
  return absl::OkStatus();
}

bool EventStore::WaitUntilNoPendingAppends(absl::Duration /*timeout*/) const {
  return PendingAppends() == 0;
}

void EventStore::AddHeadListener(HeadListener* listener) const {
  absl::MutexLock lock(&listeners_mu_);
  listeners_.push_back(listener);
  listener_count_.store(listeners_.size(), std::memory_order_release);
}

void EventStore::RemoveHeadListener(HeadListener* listener) const {
  absl::MutexLock lock(&listeners_mu_);
  listeners_.erase(std::remove(listeners_.begin(), listeners_.end(), listener), listeners_.end());
  listener_count_.store(listeners_.size(), std::memory_order_release);
}

void EventStore::NotifyHeadListeners(uint64_t head) const {
  if (listener_count_.load(std::memory_order_acquire) == 0) return;
  absl::MutexLock lock(&listeners_mu_);
  for (HeadListener* listener : listeners_) listener->OnHeadAdvanced(head);
}

}  // namespace fidelis::storage
