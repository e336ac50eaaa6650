#!/usr/bin/env bash
# Runs every fuzz target (fuzz/, `cargo fuzz` on the stable toolchain, no
# sanitizer) for SECONDS each (default 600), one after another, and prints
# each target's executions and executions per second. New inputs go to
# fuzz/corpus/TARGET (not committed); the committed seeds in
# fuzz/seeds/TARGET are read too. A crash stops the run and leaves its input
# in fuzz/artifacts/TARGET/.
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]
#   scripts/fuzz.sh seeds        rewrites the seeds made from real encodings
#
# Needs cargo-fuzz (`cargo install cargo-fuzz`). The build has its own
# target directory, fuzz/target (about 3.5 GB). BANMESH_FUZZ_BUILD adds
# flags to `cargo fuzz build` and `run` (scripts/test.sh uses `--dev`: half
# the compile time, slower runs).
set -euo pipefail
cd "$(dirname "$0")/../fuzz"

if [ "${1:-}" = seeds ]; then
    BANMESH_FUZZ_SEEDS="$PWD/seeds" cargo fuzz run -s none record -- -runs=0
    exit
fi

seconds=${1:-600}
shift || true
targets=("$@")
if [ "${#targets[@]}" -eq 0 ]; then
    mapfile -t targets < <(cargo fuzz list)
fi

read -r -a build <<<"${BANMESH_FUZZ_BUILD:-}"
cargo fuzz build -s none "${build[@]}"
summary=()
for target in "${targets[@]}"; do
    mkdir -p "corpus/$target" "seeds/$target"
    log=$(mktemp)
    status=0
    cargo fuzz run -s none "${build[@]}" "$target" "corpus/$target" "seeds/$target" -- \
        -max_total_time="$seconds" -print_final_stats=1 >"$log" 2>&1 || status=$?
    runs=$(awk '/stat::number_of_executed_units/ { print $2 }' "$log")
    time=$(awk '/stat::average_exec_per_sec/ { print $2 }' "$log")
    line="$target: ${runs:-?} executions in ${seconds} s, ${time:-?}/s"
    if [ "$status" -ne 0 ]; then
        tail -n 40 "$log" >&2
        echo "scripts/fuzz.sh: $target failed (exit $status); its input is in fuzz/artifacts/$target/" >&2
        rm -f "$log"
        exit "$status"
    fi
    rm -f "$log"
    echo "$line"
    summary+=("$line")
done
printf 'scripts/fuzz.sh: %s\n' "${summary[@]}"
