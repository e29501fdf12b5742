#!/usr/bin/env bash
# Runs the fuzz targets of fuzz/ (cargo-fuzz, libFuzzer, AddressSanitizer).
#   scripts/fuzz.sh                         # every target, FUZZ_SECONDS (60) each
#   FUZZ_SECONDS=3600 scripts/fuzz.sh h1_forward config   # by hand: an hour each
#   scripts/fuzz.sh --smoke                 # CI: every target for 10 s
#   MERGE=1 scripts/fuzz.sh ...             # then fold what was found into fuzz/corpus
# First every input in fuzz/regressions/<target>/ (past crashes) is replayed and must
# pass. Each run starts from a copy of fuzz/corpus/<target> (the seeds, plus what
# earlier long runs found, minimised with MERGE=1), so a run leaves the tree clean.
# A crash stops the script; libFuzzer saves the input in fuzz/artifacts/<target>/.
# Fix it, then copy the input to fuzz/regressions/<target>/ with a name that says
# what it found: from then on every run checks it.
# Installs the nightly toolchain and cargo-fuzz if they are missing.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${FUZZ_SECONDS:-60}
if [ "${1:-}" = --smoke ]; then
  seconds=${FUZZ_SECONDS:-10}
  shift
fi
if ! rustup toolchain list | grep -q '^nightly'; then
  rustup toolchain install nightly --profile minimal
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
  cargo install cargo-fuzz --locked --version 0.13.2
fi
cd fuzz
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  mapfile -t targets < <(cargo +nightly fuzz list)
fi
cargo +nightly fuzz build
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for t in "${targets[@]}"; do
  if [ -d "regressions/$t" ] && [ -n "$(ls -A "regressions/$t")" ]; then
    echo "== $t: replaying $(ls "regressions/$t" | wc -l) past crashes"
    cargo +nightly fuzz run "$t" regressions/"$t"/* -- -runs=1 >"$work/$t.replay" 2>&1 \
      || { cat "$work/$t.replay"; echo "FAIL: $t: a past crash is back" >&2; exit 1; }
  fi
  mkdir -p "$work/$t"
  [ -d "corpus/$t" ] && cp -r "corpus/$t/." "$work/$t/"
  echo "== $t: ${seconds}s"
  if ! cargo +nightly fuzz run "$t" "$work/$t" -- -max_total_time="$seconds" \
      -rss_limit_mb=2048 -timeout=10 >"$work/$t.log" 2>&1; then
    tail -40 "$work/$t.log"
    echo "FAIL: $t crashed; the input is in fuzz/artifacts/$t/" >&2
    exit 1
  fi
  grep -E '^Done' "$work/$t.log" | sed "s/^/   /"
  if [ "${MERGE:-0}" = 1 ]; then
    mkdir -p "corpus/$t"
    cargo +nightly fuzz run "$t" "corpus/$t" "$work/$t" -- -merge=1 >/dev/null 2>&1
    echo "   corpus/$t: $(ls "corpus/$t" | wc -l) inputs"
  fi
done
echo "fuzz: ${#targets[@]} targets passed, ${seconds}s each"
