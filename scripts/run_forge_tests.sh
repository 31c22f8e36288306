#!/usr/bin/env bash
# Runs the Foundry suites (test/foundry, settings in foundry.toml) offline with the npm solc:
# the v2 invariant campaigns (EscrowInvariants.t.sol) and the deadline-boundary unit tests
# (EscrowDeadlines.t.sol). Prints how many random calls the invariant campaigns made and how
# long the run took, and fails when a test fails. Extra arguments go to `forge test`
# (e.g. --mt invariant, or --mc EscrowDeadlinesTest).
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
start=$SECONDS
"$FORGE" test --offline --fuzz-seed "$seed" "$@" 2>&1 | tee "$log" || status=$?

# forge prints "(runs: R, calls: C, reverts: V)" for each invariant test
calls=$(grep -oE 'calls: [0-9]+' "$log" | awk '{ total += $2 } END { print total + 0 }')
echo "invariant calls: $calls"
echo "forge run took: $((SECONDS - start)) s"
exit "$status"
