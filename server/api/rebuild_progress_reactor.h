// RebuildProgressReactor: the stream of RebuildProjection and WatchRebuild. Follows one or more
// rebuild jobs in turn and writes, for each, every phase change and otherwise its progress at
// most ten and at least once a second, ending after the last job's result. Phase changes wake
// it (it is the job's RebuildJob::Listener); progress within a phase it reads on a 100 ms
// timer, so the job's idle-priority thread never calls into gRPC per batch. A client that goes
// away stops the stream, never the job.
#pragma once

#include <memory>
#include <vector>

#include "fidelis/v1/admin.pb.h"
#include "server/api/stream_reactor.h"
#include "server/read/rebuild_job.h"

namespace fidelis::server {

class RebuildProgressReactor final : public StreamReactor<v1::RebuildProgress>,
                                     private RebuildJob::Listener {
 public:
  // `jobs` is not empty. `serving` and `clock` must outlive the reactor.
  RebuildProgressReactor(std::vector<std::shared_ptr<RebuildJob>> jobs, ServingState* serving,
                         const Clock* clock);

 private:
  Next Advance() override;
  void Detach() override;
  void OnJobUpdate() override { Wake(); }

  const std::vector<std::shared_ptr<RebuildJob>> jobs_;
  // Only Advance and Detach use these, never at once (stream_reactor.h).
  size_t current_ = 0;      // The job being followed; jobs_.size() when all have ended.
  size_t phases_sent_ = 0;  // Of the current job.
  absl::Time last_sent_ = absl::InfinitePast();
  uint64_t sent_seq_ = 0;  // The job's update_seq() when a message was last written.
};

}  // namespace fidelis::server
