#!/usr/bin/env bash
# CI's short fuzz run: builds every target (nightly, cargo-fuzz) and runs each for
# FUZZ_SECONDS (default 15) over its committed corpus, failing on any crash. New inputs go to a
# temporary directory, so the checkout stays clean; a crash input is kept under
# fuzz/artifacts/<target>/.
#   bash fuzz/smoke.sh                 # all targets
#   FUZZ_SECONDS=60 bash fuzz/smoke.sh enr report_json
set -euo pipefail
cd "$(dirname "$0")"
seconds=${FUZZ_SECONDS:-15}

if ! cargo +nightly --version >/dev/null 2>&1; then
  echo "fuzz smoke: SKIPPED, no nightly toolchain (rustup toolchain install nightly)" >&2
  exit 0
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "fuzz smoke: installing cargo-fuzz" >&2
  cargo install cargo-fuzz --locked
fi

# Longest input per target: a little above the largest real input (an ENR is at most 300
# bytes, a tree entry 400 characters, a DNS query over UDP 512 bytes), more for JSON bodies.
max_len() {
  case "$1" in
    enr) echo 512 ;;
    enrtree_entry) echo 1024 ;;
    dns_request | rfc2136_answer) echo 2048 ;;
    keystore_json | enrolment_json) echo 2048 ;;
    *) echo 8192 ;;
  esac
}

# No sanitizer: our crates forbid unsafe code, and panics, overflows (debug assertions are
# on by default in cargo fuzz builds), timeouts and OOMs are what the targets look for; ASan
# would cost 2-3x the executions.
build_flags=(--sanitizer none)
start=$(date +%s)
cargo +nightly fuzz build "${build_flags[@]}"
echo "fuzz smoke: build took $(( $(date +%s) - start )) s"

targets=("$@")
[ ${#targets[@]} -gt 0 ] || mapfile -t targets < <(cargo +nightly fuzz list)
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
failed=()
for target in "${targets[@]}"; do
  mkdir -p "$scratch/$target"
  if ! cargo +nightly fuzz run "${build_flags[@]}" "$target" "$scratch/$target" "corpus/$target" -- \
      -max_total_time="$seconds" -max_len="$(max_len "$target")" -timeout=10 \
      -rss_limit_mb=2048 -print_final_stats=1 2>"$scratch/$target.log"; then
    tail -40 "$scratch/$target.log" >&2
    failed+=("$target")
  fi
  grep -h "stat::number_of_executed_units" "$scratch/$target.log" | sed "s/^/$target: /" || true
done
echo "fuzz smoke: ${#targets[@]} targets in $(( $(date +%s) - start )) s"
if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz smoke: FAILED: ${failed[*]}" >&2
  exit 1
fi
