#include "clients/rebuild_view.h"

#include <chrono>
#include <cmath>

#include "clients/client_util.h"

namespace fidelis::clients {
namespace {

std::string PhaseName(v1::RebuildPhase phase) { return v1::RebuildPhase_Name(phase); }

std::string FormatDuration(double seconds) {
  if (!(seconds >= 0) || seconds > 359999) return "--:--";
  long s = std::lround(seconds);
  char buf[32];
  if (s >= 3600) {
    std::snprintf(buf, sizeof(buf), "%ld:%02ld:%02ld", s / 3600, (s / 60) % 60, s % 60);
  } else {
    std::snprintf(buf, sizeof(buf), "%ld:%02ld", s / 60, s % 60);
  }
  return buf;
}

double Percent(const v1::RebuildProgress& p) {
  if (p.events_total() == 0) return p.phase() == v1::DONE ? 100.0 : 0.0;
  return 100.0 * static_cast<double>(p.events_processed()) / static_cast<double>(p.events_total());
}

double Now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

}  // namespace

std::string RebuildView::BarLine(const v1::RebuildProgress& p, int width) {
  const double percent = Percent(p);
  const int filled = static_cast<int>(percent / 100.0 * width);
  std::string bar(filled, '#');
  bar.append(width - filled, '.');
  char buf[256];
  std::snprintf(buf, sizeof(buf), "%s [%s] %5.1f%%  %s/%s events  %s ev/s  ETA %s  %s",
                p.projection().c_str(), bar.c_str(), percent,
                WithThousands(p.events_processed()).c_str(),
                WithThousands(p.events_total()).c_str(),
                WithThousands(static_cast<uint64_t>(p.events_per_second())).c_str(),
                FormatDuration(p.eta_seconds()).c_str(), PhaseName(p.phase()).c_str());
  return buf;
}

std::string RebuildView::PlainLine(const v1::RebuildProgress& p) {
  char buf[256];
  std::snprintf(buf, sizeof(buf),
                "rebuild %s %s %s: %llu of %llu events (%.1f%%), %llu skipped, %.0f events/s, "
                "ETA %.0f s",
                p.rebuild_id().c_str(), p.projection().c_str(), PhaseName(p.phase()).c_str(),
                static_cast<unsigned long long>(p.events_processed()),
                static_cast<unsigned long long>(p.events_total()), Percent(p),
                static_cast<unsigned long long>(p.events_skipped()), p.events_per_second(),
                p.eta_seconds());
  return buf;
}

void RebuildView::Update(const v1::RebuildProgress& p) {
  auto [it, first] = phases_.emplace(p.rebuild_id(), p.phase());
  const bool phase_changed = first || it->second != p.phase();
  it->second = p.phase();
  if (tty_) {
    // \r returns to the line start and \x1b[K clears what a longer line left behind.
    std::fprintf(out_, "\r%s\x1b[K", BarLine(p).c_str());
    std::fflush(out_);
    bar_drawn_ = true;
  } else if (phase_changed || Now() - last_plain_ >= plain_interval_) {
    std::fprintf(out_, "%s\n", PlainLine(p).c_str());
    std::fflush(out_);
    last_plain_ = Now();
  }
  if (p.has_result()) {
    if (tty_ && bar_drawn_) {
      std::fprintf(out_, "\n");
      bar_drawn_ = false;
    }
    results_[p.rebuild_id()] = p;
    PrintResult(p);
  }
}

void RebuildView::PrintResult(const v1::RebuildProgress& p) {
  const v1::RebuildResult& r = p.result();
  if (p.phase() == v1::DONE) {
    std::fprintf(out_, "Rebuilt projection '%s': %s events processed, %s skipped.\n",
                 r.projection_name().c_str(), WithThousands(r.events_processed()).c_str(),
                 WithThousands(r.events_skipped()).c_str());
    if (p.mode() == v1::BLUE_GREEN) {
      std::fprintf(out_, "Build %s of '%s' is live; the previous build is kept for a rollback.\n",
                   p.build().c_str(), r.projection_name().c_str());
    }
  } else if (p.phase() == v1::READY) {
    std::fprintf(out_,
                 "Shadow build %s of projection '%s' is ready: %s events processed, %s skipped. "
                 "It follows new events; compare it with 'fidelis projection diff %s live "
                 "shadow', then 'fidelis projection promote %s' or 'abort %s'.\n",
                 p.build().c_str(), r.projection_name().c_str(),
                 WithThousands(r.events_processed()).c_str(),
                 WithThousands(r.events_skipped()).c_str(), r.projection_name().c_str(),
                 r.projection_name().c_str(), r.projection_name().c_str());
  } else {
    std::fprintf(out_, "Rebuild of projection '%s' %s after %s events: %s\n",
                 r.projection_name().c_str(),
                 p.phase() == v1::CANCELLED ? "was cancelled" : "failed",
                 WithThousands(r.events_processed()).c_str(), r.failure().c_str());
  }
  for (const auto& e : r.errors()) {
    std::fprintf(out_, "  error at global position %llu (%s): %s\n",
                 static_cast<unsigned long long>(e.global_position()), e.event_type().c_str(),
                 e.message().c_str());
  }
}

int RebuildView::Finish(bool strict, bool all_projections) {
  if (tty_ && bar_drawn_) std::fprintf(out_, "\n");
  uint64_t total = 0;
  bool ok = !results_.empty();
  for (const auto& [id, p] : results_) {
    total += p.result().events_processed();
    ok = ok && p.result().success() && (!strict || p.result().events_skipped() == 0);
  }
  if (all_projections) {
    std::fprintf(out_, "Rebuilt %zu projection(s), %s total events processed.\n", results_.size(),
                 WithThousands(total).c_str());
  }
  std::fflush(out_);
  return ok ? 0 : 1;
}

}  // namespace fidelis::clients
