#!/usr/bin/env bash
# Runs the Foundry invariant suite (test/foundry, settings in foundry.toml) offline with the
# npm solc, prints how many random calls the invariant campaigns made, and fails when a test
# fails. Extra arguments go to `forge test` (e.g. --fuzz-seed 0x1 or --mt invariant).
set -euo pipefail
cd "$(dirname "$0")/.."

FORGE="${FORGE:-node_modules/@foundry-rs/forge-linux-amd64/bin/forge}"
if [[ ! -x "$FORGE" ]]; then
    echo "forge not found at $FORGE: run \`npm ci\` (package @foundry-rs/forge-linux-amd64)" >&2
    exit 2
fi

# A fresh seed each run, printed so that a failure can be replayed with FUZZ_SEED=...
seed="${FUZZ_SEED:-0x$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')}"
echo "fuzz seed: $seed"

mkdir -p build/forge
log=build/forge/last-run.log
status=0
"$FORGE" test --offline --fuzz-seed "$seed" "$@" 2>&1 | tee "$log" || status=$?

# forge prints "(runs: R, calls: C, reverts: V)" for each invariant test
calls=$(grep -oE 'calls: [0-9]+' "$log" | awk '{ total += $2 } END { print total + 0 }')
echo "invariant calls: $calls"
exit "$status"
