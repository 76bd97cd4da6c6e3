// fidelis projection ...: listing projections, rebuilding them with a live progress bar,
// following and cancelling rebuilds, and the blue-green operations (promote, abort, rollback,
// retire, diff).
#include <unistd.h>

#include <cstdio>
#include <iostream>

#include "clients/cli.h"
#include "clients/rebuild_view.h"
#include "google/protobuf/util/time_util.h"

namespace fidelis::clients {
namespace {

using google::protobuf::util::TimeUtil;

// One line per build of a projection: live, then shadow and previous when there are any.
void PrintBuilds(const v1::ProjectionInfo& p) {
  auto line = [&](const char* role, const v1::ProjectionBuild& b) {
    std::string state = b.state();
    if (!b.rebuild_id().empty() && state.find(b.rebuild_id()) == std::string::npos) {
      state += " (" + b.rebuild_id() + ")";
    }
    std::printf("%-16s  %-8s  %-6s  %12llu  %12llu  %s\n", p.name().c_str(), role,
                b.build().c_str(), static_cast<unsigned long long>(b.checkpoint()),
                static_cast<unsigned long long>(b.lag()), state.c_str());
  };
  line("live", p.live());
  if (p.has_shadow()) line("shadow", p.shadow());
  if (p.has_previous()) {
    v1::ProjectionBuild previous = p.previous();
    previous.set_state(previous.state() + ", kept until " +
                       TimeUtil::ToString(previous.retire_at()).substr(0, 19) + "Z");
    line("previous", previous);
  }
  if (p.rebuild_needed()) {
    std::printf("%-16s  %-8s  %-6s  rebuild needed: the newest version is v%u\n", "", "", "",
                p.newest_version());
  }
}

// The result of DiffProjection as a table, then the differing rows.
void PrintDiff(const std::string& name, const v1::DiffProjectionResponse& r) {
  std::printf("%s at global position %llu\n", name.c_str(),
              static_cast<unsigned long long>(r.checkpoint()));
  std::printf("  %-10s  %-8s  %10s\n", "", "BUILD", "ROWS");
  std::printf("  %-10s  %-8s  %10llu\n", "a", r.a().build().c_str(),
              static_cast<unsigned long long>(r.a().rows()));
  std::printf("  %-10s  %-8s  %10llu\n", "b", r.b().build().c_str(),
              static_cast<unsigned long long>(r.b().rows()));
  std::printf("  differing rows: %llu (only in a: %llu, only in b: %llu)\n",
              static_cast<unsigned long long>(r.differing_rows()),
              static_cast<unsigned long long>(r.only_in_a()),
              static_cast<unsigned long long>(r.only_in_b()));
  for (const auto& d : r.differences()) {
    std::printf("\n  %s\n", d.key().c_str());
    std::printf("    a: %s\n", d.a().empty() ? "(missing)" : d.a().c_str());
    std::printf("    b: %s\n", d.b().empty() ? "(missing)" : d.b().c_str());
    std::string fields = d.fields();
    for (size_t at = 0;
         (at = fields.find('\n', at)) != std::string::npos && at + 1 < fields.size();) {
      fields.replace(at, 1, "\n            ");
      at += 13;
    }
    while (!fields.empty() && fields.back() == '\n') fields.pop_back();
    std::printf("    fields: %s\n", fields.c_str());
  }
  if (static_cast<uint64_t>(r.differences_size()) < r.differing_rows()) {
    std::printf("\n  ... %llu more (raise --max)\n",
                static_cast<unsigned long long>(r.differing_rows() - r.differences_size()));
  }
}

int RunList(Cli& cli) {
  v1::ListProjectionsResponse response;
  grpc::Status status =
      cli.admin().ListProjections(cli.Context().get(), v1::ListProjectionsRequest(), &response);
  if (!status.ok()) return ReportStatus(status);
  if (cli.json) {
    std::cout << ToJson(response) << "\n";
    return 0;
  }
  std::printf("%-16s  %-8s  %-6s  %12s  %12s  %s\n", "PROJECTION", "ROLE", "BUILD", "CHECKPOINT",
              "LAG", "STATE");
  for (const auto& p : response.projections()) PrintBuilds(p);
  return 0;
}

struct RebuildFlags {
  std::string projection, unknown_policy = "skip", handler_policy = "skip";
  int batch_size = 0;
  uint64_t max_rate = 0;
  bool strict = false, blue_green = false, in_place = false, no_promote = false, no_yield = false,
       no_idle_priority = false;
  uint32_t target_version = 0, nice = 0;
};

// Shows a rebuild's progress stream until it ends; the exit status says how it went.
int FollowRebuild(Cli& cli, grpc::ClientReader<v1::RebuildProgress>& reader, bool strict,
                  bool all_projections) {
  const bool tty = !cli.json && isatty(STDOUT_FILENO);
  RebuildView view(stdout, tty);
  v1::RebuildProgress progress;
  while (reader.Read(&progress)) {
    if (cli.json) {
      std::cout << ToJson(progress) << std::endl;
    } else {
      view.Update(progress);
    }
  }
  grpc::Status status = reader.Finish();
  if (!status.ok()) return ReportStatus(status);
  if (cli.json) return progress.result().success() ? 0 : 1;
  return view.Finish(strict, all_projections);
}

int RunRebuild(Cli& cli, const RebuildFlags& f) {
  v1::RebuildProjectionRequest request;
  request.set_projection(f.projection);
  request.set_batch_size(f.batch_size);
  request.set_unknown_event_policy(f.unknown_policy == "fail" ? v1::FAIL : v1::SKIP);
  request.set_handler_error_policy(f.handler_policy == "fail" ? v1::FAIL : v1::SKIP);
  request.set_max_events_per_second(f.max_rate);
  request.set_mode(f.blue_green ? v1::BLUE_GREEN
                   : f.in_place ? v1::IN_PLACE
                                : v1::MODE_UNSPECIFIED);
  request.set_no_promote(f.no_promote);
  request.set_target_version(f.target_version);
  request.set_nice(f.nice);
  request.set_no_yield(f.no_yield);
  request.set_no_idle_priority(f.no_idle_priority);
  auto context = cli.Context(/*stream=*/true);  // No deadline: a rebuild takes as long as it takes.
  auto reader = cli.admin().RebuildProjection(context.get(), request);
  return FollowRebuild(cli, *reader, f.strict, f.projection.empty());
}

int RunWatch(Cli& cli, const std::string& rebuild_id, bool strict) {
  v1::WatchRebuildRequest request;
  request.set_rebuild_id(rebuild_id);
  auto context = cli.Context(/*stream=*/true);
  auto reader = cli.admin().WatchRebuild(context.get(), request);
  return FollowRebuild(cli, *reader, strict, false);
}

int RunStatus(Cli& cli, const std::string& rebuild_id) {
  v1::ListRebuildsResponse response;
  grpc::Status status;
  if (!rebuild_id.empty()) {
    v1::GetRebuildRequest request;
    request.set_rebuild_id(rebuild_id);
    status = cli.admin().GetRebuild(cli.Context().get(), request, response.add_rebuilds());
  } else {
    status = cli.admin().ListRebuilds(cli.Context().get(), v1::ListRebuildsRequest(), &response);
  }
  if (!status.ok()) return ReportStatus(status);
  if (cli.json) {
    std::cout << ToJson(response) << "\n";
    return 0;
  }
  if (response.rebuilds().empty()) std::cout << "no rebuilds since the server started\n";
  for (const auto& info : response.rebuilds()) {
    std::cout << RebuildView::PlainLine(info.progress()) << "\n";
  }
  return 0;
}

int RunCancel(Cli& cli, const std::string& rebuild_id) {
  v1::CancelRebuildRequest request;
  request.set_rebuild_id(rebuild_id);
  v1::RebuildInfo info;
  grpc::Status status = cli.admin().CancelRebuild(cli.Context().get(), request, &info);
  if (!status.ok()) return ReportStatus(status);
  if (cli.json) {
    std::cout << ToJson(info) << "\n";
  } else {
    std::cout << RebuildView::PlainLine(info.progress()) << "\n";
  }
  return 0;
}

// promote, abort, rollback and retire: one call naming the projection, answered with its
// builds.
template <typename Request>
int RunSwitch(Cli& cli, const std::string& projection,
              grpc::Status (v1::ProjectionAdmin::Stub::*call)(grpc::ClientContext*, const Request&,
                                                              v1::ProjectionInfo*)) {
  Request request;
  request.set_projection(projection);
  v1::ProjectionInfo info;
  grpc::Status status = (cli.admin().*call)(cli.Context().get(), request, &info);
  if (!status.ok()) return ReportStatus(status);
  if (cli.json) {
    std::cout << ToJson(info) << "\n";
  } else {
    PrintBuilds(info);
  }
  return 0;
}

struct DiffFlags {
  std::string projection, a = "live", b = "shadow";
  int max_differences = 0;
};

int RunDiff(Cli& cli, const DiffFlags& f) {
  v1::DiffProjectionRequest request;
  request.set_projection(f.projection);
  request.set_a(f.a);
  request.set_b(f.b);
  request.set_max_differences(f.max_differences);
  v1::DiffProjectionResponse response;
  grpc::Status status = cli.admin().DiffProjection(cli.Context().get(), request, &response);
  if (!status.ok()) return ReportStatus(status);
  if (cli.json) {
    std::cout << ToJson(response) << "\n";
  } else {
    PrintDiff(f.projection, response);
  }
  // Like diff(1): 0 when the builds hold the same rows, 1 when they differ.
  return response.differing_rows() == 0 ? 0 : 1;
}

void AddRebuildOptions(CLI::App* rebuild, RebuildFlags& f) {
  rebuild->add_option("--projection", f.projection, "Projection name; omit for all");
  rebuild->add_option("--batch-size", f.batch_size, "Events per write batch (default 1000)");
  rebuild->add_option("--unknown-events", f.unknown_policy, "skip or fail")
      ->check(CLI::IsMember({"skip", "fail"}))
      ->capture_default_str();
  rebuild->add_option("--handler-errors", f.handler_policy, "skip or fail")
      ->check(CLI::IsMember({"skip", "fail"}))
      ->capture_default_str();
  rebuild->add_option("--max-rate", f.max_rate, "Replay at most this many events per second");
  rebuild->add_flag("--strict", f.strict, "Treat skipped events as an error (exit status 1)");
  auto* blue_green = rebuild->add_flag(
      "--blue-green", f.blue_green,
      "Build a shadow beside the live build, catch up, then promote it (default for a live "
      "projection)");
  rebuild
      ->add_flag("--in-place", f.in_place,
                 "Truncate and replay the live build (queries get UNAVAILABLE meanwhile)")
      ->excludes(blue_green);
  rebuild->add_flag("--no-promote", f.no_promote,
                    "Blue-green: stop when the shadow has caught up; promote or abort later");
  rebuild->add_option("--target-version", f.target_version,
                      "Blue-green: version to build (default: the newest the server has)");
  rebuild->add_option("--nice", f.nice, "Niceness of the rebuild's threads, 1-19 (default: server)")
      ->check(CLI::Range(0, 19));
  rebuild->add_flag("--no-yield", f.no_yield,
                    "Do not pause between batches while commands wait for the log writer");
  rebuild->add_flag("--no-idle-priority", f.no_idle_priority,
                    "Run the rebuild's threads at their niceness, not under SCHED_IDLE");
}

}  // namespace

void AddProjectionCommands(CLI::App& app, Cli& cli) {
  CLI::App* projection = app.add_subcommand("projection", "Operate projections");
  projection->require_subcommand(1);

  CLI::App* list = projection->add_subcommand("list", "Show projections, checkpoints and lag");
  OnRun(list, cli, [&cli] { return RunList(cli); });

  auto rebuild_flags = std::make_shared<RebuildFlags>();
  CLI::App* rebuild = projection->add_subcommand("rebuild", "Rebuild projections from the log");
  AddRebuildOptions(rebuild, *rebuild_flags);
  OnRun(rebuild, cli, [&cli, rebuild_flags] { return RunRebuild(cli, *rebuild_flags); });

  auto name = std::make_shared<std::string>();
  CLI::App* promote = projection->add_subcommand(
      "promote", "Make a caught-up shadow live (the live build is kept for a rollback)");
  CLI::App* abort =
      projection->add_subcommand("abort", "Stop a blue-green rebuild and drop its shadow");
  CLI::App* rollback = projection->add_subcommand("rollback", "Make the previous build live again");
  CLI::App* retire = projection->add_subcommand("retire", "Drop the previous build now");
  for (CLI::App* command : {promote, abort, rollback, retire}) {
    command->add_option("projection", *name, "Projection name")->required();
  }
  using Stub = v1::ProjectionAdmin::Stub;
  OnRun(promote, cli, [&cli, name] {
    return RunSwitch<v1::PromoteProjectionRequest>(cli, *name, &Stub::PromoteProjection);
  });
  OnRun(abort, cli, [&cli, name] {
    return RunSwitch<v1::AbortRebuildRequest>(cli, *name, &Stub::AbortRebuild);
  });
  OnRun(rollback, cli, [&cli, name] {
    return RunSwitch<v1::RollbackProjectionRequest>(cli, *name, &Stub::RollbackProjection);
  });
  OnRun(retire, cli, [&cli, name] {
    return RunSwitch<v1::RetireProjectionRequest>(cli, *name, &Stub::RetireProjection);
  });

  auto diff_flags = std::make_shared<DiffFlags>();
  CLI::App* diff = projection->add_subcommand(
      "diff", "Compare two builds of a projection at the same checkpoint");
  diff->add_option("projection", diff_flags->projection, "Projection name")->required();
  diff->add_option("a", diff_flags->a, "live, shadow, previous, a version (2) or a build (v2.1)")
      ->capture_default_str();
  diff->add_option("b", diff_flags->b, "Same choices as a")->capture_default_str();
  diff->add_option("--max", diff_flags->max_differences, "Differing rows to show (default 20)");
  OnRun(diff, cli, [&cli, diff_flags] { return RunDiff(cli, *diff_flags); });

  auto rebuild_id = std::make_shared<std::string>();
  auto strict = std::make_shared<bool>(false);
  CLI::App* status = projection->add_subcommand("status", "Show rebuilds (or one rebuild)");
  status->add_option("id", *rebuild_id, "Rebuild id");
  OnRun(status, cli, [&cli, rebuild_id] { return RunStatus(cli, *rebuild_id); });
  CLI::App* watch = projection->add_subcommand("watch", "Follow a running rebuild");
  watch->add_option("id", *rebuild_id, "Rebuild id")->required();
  watch->add_flag("--strict", *strict, "Treat skipped events as an error (exit status 1)");
  OnRun(watch, cli, [&cli, rebuild_id, strict] { return RunWatch(cli, *rebuild_id, *strict); });
  CLI::App* cancel = projection->add_subcommand("cancel", "Cancel a running rebuild");
  cancel->add_option("id", *rebuild_id, "Rebuild id")->required();
  OnRun(cancel, cli, [&cli, rebuild_id] { return RunCancel(cli, *rebuild_id); });
}

}  // namespace fidelis::clients
