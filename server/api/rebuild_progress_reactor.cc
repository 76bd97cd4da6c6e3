#include "server/api/rebuild_progress_reactor.h"

#include <algorithm>

namespace fidelis::server {
namespace {

constexpr absl::Duration kMinInterval = absl::Milliseconds(100);
constexpr absl::Duration kMaxInterval = absl::Seconds(1);

}  // namespace

RebuildProgressReactor::RebuildProgressReactor(std::vector<std::shared_ptr<RebuildJob>> jobs,
                                               ServingState* serving, const Clock* clock)
    : StreamReactor(serving, clock), jobs_(std::move(jobs)) {
  jobs_[0]->Subscribe(this);
  Begin();
}

RebuildProgressReactor::Next RebuildProgressReactor::Advance() {
  Next next;
  if (current_ >= jobs_.size()) {
    next.end = grpc::Status::OK;
    return next;
  }
  RebuildJob& job = *jobs_[current_];
  const absl::Time now = clock().Now();
  std::vector<v1::RebuildProgress> changes = job.PhaseChanges(phases_sent_);
  if (!changes.empty()) {
    ++phases_sent_;
    last_sent_ = now;
    sent_seq_ = job.update_seq();
    next.message = std::make_unique<v1::RebuildProgress>(std::move(changes.front()));
    if (next.message->has_result()) {
      // The job has ended: follow the next one, if any.
      job.Unsubscribe(this);
      if (++current_ < jobs_.size()) {
        phases_sent_ = 0;
        sent_seq_ = 0;
        jobs_[current_]->Subscribe(this);
      }
    }
    return next;
  }
  const uint64_t seq = job.update_seq();
  const absl::Time heartbeat = last_sent_ + kMaxInterval;
  if (now - last_sent_ >= kMinInterval && (seq != sent_seq_ || now >= heartbeat)) {
    last_sent_ = now;
    sent_seq_ = seq;
    next.message = std::make_unique<v1::RebuildProgress>(job.Progress());
    return next;
  }
  // Phase changes wake this stream at once; progress within a phase is read on this timer.
  next.wake_at =
      seq != sent_seq_ ? last_sent_ + kMinInterval : std::min(heartbeat, now + kMinInterval);
  return next;
}

void RebuildProgressReactor::Detach() {
  if (current_ < jobs_.size()) jobs_[current_]->Unsubscribe(this);
}

}  // namespace fidelis::server
