#!/usr/bin/env bash
# A short fuzzing pass for CI (docs/testing.md, "Fuzzing"): installs cargo-fuzz if missing, builds
# every target of fuzz/ (release, debug assertions, AddressSanitizer), then runs each for
# FUZZ_SECONDS (default 20) from its checked-in corpus. Any crash fails the script; the crashing
# input is in fuzz/artifacts/<target>/ and printed (base64) in the log.
#
# cargo-fuzz needs nightly-only rustc flags (-Zsanitizer=address, -Cpasses=sancov-module, ...);
# RUSTC_BOOTSTRAP=1 lets the stable toolchain accept them. It applies to this script only.
set -euo pipefail

CARGO_FUZZ_VERSION=0.13.2
FUZZ_SECONDS=${FUZZ_SECONDS:-20}

cd "$(dirname "$0")/.."
export RUSTC_BOOTSTRAP=1

if [[ $(cargo fuzz --version 2>/dev/null) != "cargo-fuzz $CARGO_FUZZ_VERSION" ]]; then
  echo "installing cargo-fuzz $CARGO_FUZZ_VERSION"
  cargo install cargo-fuzz --locked --version "$CARGO_FUZZ_VERSION"
fi
cargo fuzz --version

cargo fuzz build
mapfile -t targets < <(cargo fuzz list)
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
for t in "${targets[@]}"; do
  echo "-- fuzz $t for ${FUZZ_SECONDS}s"
  # New inputs go to a scratch directory, so the checked-in corpus stays as it is. One process
  # (no -jobs/-fork): CI machines have 2 cores. -print_final_stats prints the exec count.
  mkdir -p "$scratch/$t"
  log="$scratch/$t.log"
  if ! cargo fuzz run "$t" "$scratch/$t" "fuzz/corpus/$t" -- \
    -max_total_time="$FUZZ_SECONDS" -print_final_stats=1 >"$log" 2>&1; then
    tail -n 80 "$log"
    echo "fuzz target $t FAILED; the input is in fuzz/artifacts/$t/; reproduce with:"
    echo "  RUSTC_BOOTSTRAP=1 cargo fuzz run $t fuzz/artifacts/$t/<file>"
    exit 1
  fi
  grep -E '^#[0-9]+[[:space:]]+(INITED|DONE)|^stat::number_of_executed_units|^Done ' "$log" || true
done
echo "fuzzed ${#targets[@]} targets for ${FUZZ_SECONDS}s each"
