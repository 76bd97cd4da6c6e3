// Comparing two builds of a projection row by row: the engine of DiffProjection.
//
// The caller (ProjectionEngine::Diff) brings both builds to one checkpoint under their leases
// and takes a RocksDB snapshot; the comparison then runs on the snapshot without holding
// anything, so the builds' tailing threads go on meanwhile.
#pragma once

#include <cstddef>
#include <cstdint>

#include "absl/status/statusor.h"
#include "fidelis/v1/admin.pb.h"
#include "server/read/projection_runner.h"
#include "storage/database.h"

namespace fidelis::server {

// Compares `a` and `b` as of `snapshot`, both at `checkpoint`: row counts, the number of rows
// that differ (and that only one side has), and the first `max_differences` of them with both
// rows as JSON and the fields that differ. Errors from reading the stores. Any thread.
absl::StatusOr<v1::DiffProjectionResponse> DiffBuilds(const ProjectionRunner& a,
                                                      const ProjectionRunner& b,
                                                      const storage::ReadSnapshot& snapshot,
                                                      uint64_t checkpoint, size_t max_differences);

}  // namespace fidelis::server
