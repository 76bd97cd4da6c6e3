#!/usr/bin/env bash
# Builds the libFuzzer targets with clang (ASan + UBSan) in their own build directory and runs
# each for a bounded time. tests/fuzz/corpus/<target> holds the regression inputs (every crash
# ever found), replayed first on every run; new coverage goes to a working corpus in the build
# directory. A crash leaves its input in <build>/artifacts: add it to the regression corpus.
#   tests/fuzz/run_fuzzers.sh [SECONDS_PER_TARGET] [build-dir]
set -euo pipefail
seconds=${1:-20}
root=$(cd "$(dirname "$0")/../.." && pwd)
build=${2:-$root/build-fuzz}
sanitize="-fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=undefined"
mkdir -p "$build"
cmake -S "$root" -B "$build" -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo -DFIDELIS_BUILD_TESTS=OFF -DFIDELIS_FUZZ=ON \
  -DCMAKE_CXX_FLAGS="$sanitize" > "$build/configure.log" 2>&1 || { cat "$build/configure.log"; exit 1; }
cmake --build "$build" -j2 --target event_decoder_fuzzer command_fuzzer
for target in event_decoder command; do
  corpus="$build/corpus/$target"
  mkdir -p "$corpus" "$build/artifacts"
  echo "fuzzing $target for ${seconds}s"
  "$build/tests/fuzz/${target}_fuzzer" -max_total_time="$seconds" -print_final_stats=1 \
    -artifact_prefix="$build/artifacts/$target-" "$corpus" "$root/tests/fuzz/corpus/$target" \
    2>&1 | tail -15
done
echo "fuzzing passed: no crash in $((2 * seconds)) s"
