#!/usr/bin/env bash
# The long crash-consistency run: SIGKILLs the real fidelisd under load KILLS times (20 by
# default), checking the log and projections after every restart.
#   tests/e2e/crash_loop.sh [KILLS] [build-dir]
set -euo pipefail
kills=${1:-20}
build=${2:-build}
FIDELIS_CRASH_KILLS=$kills "$build/tests/e2e_tests" --gtest_filter='CrashTest.*'
