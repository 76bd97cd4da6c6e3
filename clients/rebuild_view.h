// Rendering a rebuild's progress stream for people: a live progress bar on a terminal, plain
// lines on a pipe, and a summary per projection at the end.
#pragma once

#include <cstdio>
#include <map>
#include <string>

#include "fidelis/v1/admin.pb.h"

namespace fidelis::clients {

class RebuildView {
 public:
  // `tty`: draw a progress bar that redraws in place; otherwise print one plain line per
  // phase change and at most one every `plain_interval_seconds`. `out` is not owned.
  RebuildView(FILE* out, bool tty, double plain_interval_seconds = 5.0)
      : out_(out), tty_(tty), plain_interval_(plain_interval_seconds) {}

  // Shows one progress message.
  void Update(const v1::RebuildProgress& progress);

  // Prints the closing line(s) and returns the exit status: 0 when every rebuild succeeded
  // (and, with `strict`, skipped nothing), 1 otherwise. `all_projections` adds the total line.
  int Finish(bool strict, bool all_projections);

  // The bar line for a progress message, without control characters.
  static std::string BarLine(const v1::RebuildProgress& progress, int width = 30);
  // A plain one-line description of a progress message.
  static std::string PlainLine(const v1::RebuildProgress& progress);

 private:
  void PrintResult(const v1::RebuildProgress& progress);

  FILE* const out_;
  const bool tty_;
  const double plain_interval_;
  bool bar_drawn_ = false;
  double last_plain_ = -1e9;
  std::map<std::string, v1::RebuildPhase> phases_;      // rebuild id -> last phase shown
  std::map<std::string, v1::RebuildProgress> results_;  // rebuild id -> final message
};

}  // namespace fidelis::clients
