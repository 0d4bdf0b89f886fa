#!/usr/bin/env bash
# memory.sh: memory per cache entry of evalgate (one or more binaries), nginx proxy_cache and
# Varnish, and evalgate's RSS under constant eviction. See bench/README.md ("Memory").
#
# usage: bench/memory.sh [-b NAME=PATH]... [-t "evalgate nginx varnish"] [-n "100000 1000000"]
#
#   -b NAME=PATH  an evalgate binary to measure, named NAME in the report; repeat it to measure
#                 an old and a new binary in one invocation. Default: evalgate=target/release/
#                 evalgate, built first with cargo build --release --bin evalgate (only when no
#                 -b is given).
#   -t TARGETS    which targets (default "evalgate nginx varnish"); evalgate = every -b binary
#   -n COUNTS     entry counts to fill (default "100000 1000000"), each from 1000 to 10000000
#
# For each count and target: a fresh process with an empty cache (4 GiB budget), 1,000
# unique warm-up requests, the baseline memory, then exactly N distinct /v1/vardata requests
# (each once, 64 connections, bounded in time), checked (N answers 200, N upstream requests),
# then the memory again once the cache has settled. Then, per evalgate binary, a fresh process
# with cache.max_bytes = 256 MiB is filled with unique misses to 1.1 × the entries that fit,
# then gets 60 s more of unique misses at full speed (each one evicts an entry) while its RSS,
# weighted bytes, entries and evictions are sampled every 2 s. Then, per evalgate binary, the churn
# run: a fresh process with the same budget, filled the same way, then 60 s of three things at
# once: unique misses at full speed, a burst of 300 GET /sdk/v2/flags every 5 s (2,000 deployment
# keys d0000…d1999, answers of 100–500 KiB, every second request with Accept-Encoding: gzip, br),
# and a purge every 10 s over the admin listener (the misses' deployment k1, then everything, in
# turn); sampled the same way. Prints a markdown report and saves it to
# target/bench-results/memory-<timestamp>.md; progress goes to stderr.
#
# Environment (defaults after =):
#   UP_PORT=18180 NGINX_PORT=18182 VARNISH_PORT=18183 EVALGATE_PORT=18185 ADMIN_PORT=18186
#   FILL_CONNS=64 WARMUP_N=1000     connections of a fill / unique requests before the baseline
#   FILL_MIN_RATE=4000              a fill of N fails when it takes longer than 30 s + N / this
#   FILL_TTL_S=3600                 the proxies' TTL for 200 during a fill (their bench configs
#                                   say 60 s: a 1M fill must not expire its first entries)
#   NGINX_KEYS_ZONE=256m            nginx keys_zone during a fill (the bench config's 64m holds
#                                   ~500k keys; 256m holds ~2M)
#   EVICT_SECS=60 EVICT_MAX_BYTES=268435456 SAMPLE_S=2   the eviction run; EVICT_SECS=0 skips it
#   CHURN_SECS=60                   the churn run (same budget and sampling); CHURN_SECS=0 skips it
#   FLAGS_KEYS=2000 FLAGS_BYTES=102400-512000   deployment keys of the flag bursts, body sizes
#   BURST_N=300 BURST_EVERY_S=5 BURST_CONNS=16  requests per burst, seconds between, connections
#   PURGE_EVERY_S=10                seconds between purges (deployment k1, everything, in turn)
#   CHURN_MAX_RESPONSE_BYTES=4194304   upstream.max_response_bytes of the churn run (≥ FLAGS_BYTES' max)
#   RESULTS_DIR=<repo>/target/bench-results
#   SERVER_CPU=0 LOADGEN_CPU=1      the target's CPU / benchc's and the upstream's
set -uo pipefail
BENCH_DIR=$(cd "$(dirname "$0")" && pwd)
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$BENCH_DIR/lib.sh"

ARGS="" # the arguments, for the report: quoted when they need it
for a in "$@"; do
    if [[ $a =~ ^[A-Za-z0-9_./:=,-]+$ ]]; then ARGS+=" $a"; else ARGS+=" '$a'"; fi
done
BINS=() # NAME=PATH
TARGETS="evalgate nginx varnish"
COUNTS="100000 1000000"
while getopts "b:t:n:h" o; do
    case $o in
    b) BINS+=("$OPTARG") ;;
    t) TARGETS=$OPTARG ;;
    n) COUNTS=$OPTARG ;;
    *) sed -n '2,43p' "$0"; exit 2 ;;
    esac
done

UP_PORT=${UP_PORT:-18180} NGINX_PORT=${NGINX_PORT:-18182} VARNISH_PORT=${VARNISH_PORT:-18183}
EVALGATE_PORT=${EVALGATE_PORT:-18185} ADMIN_PORT=${ADMIN_PORT:-18186}
FILL_CONNS=${FILL_CONNS:-64} WARMUP_N=${WARMUP_N:-1000} FILL_MIN_RATE=${FILL_MIN_RATE:-4000}
FILL_TTL_S=${FILL_TTL_S:-3600} NGINX_KEYS_ZONE=${NGINX_KEYS_ZONE:-256m}
EVICT_SECS=${EVICT_SECS:-60} EVICT_MAX_BYTES=${EVICT_MAX_BYTES:-268435456} SAMPLE_S=${SAMPLE_S:-2}
CHURN_SECS=${CHURN_SECS:-60} FLAGS_KEYS=${FLAGS_KEYS:-2000} FLAGS_BYTES=${FLAGS_BYTES:-102400-512000}
BURST_N=${BURST_N:-300} BURST_EVERY_S=${BURST_EVERY_S:-5} BURST_CONNS=${BURST_CONNS:-16}
PURGE_EVERY_S=${PURGE_EVERY_S:-10} CHURN_MAX_RESPONSE_BYTES=${CHURN_MAX_RESPONSE_BYTES:-4194304}
FLAGS_KEY_PREFIX=d # the flag bursts' deployment keys: d0000, d0001, … (the upstream accepts d*)
FILL_MAX_BYTES=4294967296 # the 4 GiB budget every target gets in the load harness
RESULTS_DIR=${RESULTS_DIR:-$ROOT/target/bench-results}
NGINX_CONF=${NGINX_CONF:-$BENCH_DIR/nginx.conf} VARNISH_VCL=${VARNISH_VCL:-$BENCH_DIR/varnish.vcl}
# The same Varnish parameters as compare.sh (per-request log records masked).
VSL_OFF=-ReqStart,-ReqMethod,-ReqURL,-ReqProtocol,-ReqHeader,-ReqUnset,-ReqAcct,-RespProtocol,-RespStatus
VSL_OFF+=,-RespReason,-RespHeader,-RespUnset,-BereqMethod,-BereqURL,-BereqProtocol,-BereqHeader,-BereqUnset
VSL_OFF+=,-BereqAcct,-BerespProtocol,-BerespStatus,-BerespReason,-BerespHeader,-BerespUnset,-Timestamp
VSL_OFF+=,-VCL_call,-VCL_return,-VCL_use,-Begin,-End,-Link,-Hit,-TTL,-Storage,-Fetch_Body,-BackendOpen
VSL_OFF+=,-BackendClose,-Filters,-Length
VARNISH_PARAMS=${VARNISH_PARAMS:-"-s malloc,4G -p thread_pools=1 -p thread_pool_min=300 -p thread_pool_max=2000 -p timeout_idle=30 -p vsl_mask=$VSL_OFF"}

# ------------------------------------------------------------------ checks, before anything starts
need_int() { # need_int NAME VALUE MIN MAX
    if [[ ! $2 =~ ^[0-9]+$ ]] || (($2 < $3 || $2 > $4)); then
        die "$1 must be a whole number from $3 to $4, not '$2'"
    fi
}
[[ -n $COUNTS ]] || die "-n wants at least one entry count"
for n in $COUNTS; do need_int "-n entry count" "$n" 1000 10000000; done
need_int FILL_CONNS "$FILL_CONNS" 1 1000
need_int WARMUP_N "$WARMUP_N" 1 100000
need_int FILL_MIN_RATE "$FILL_MIN_RATE" 100 1000000
need_int FILL_TTL_S "$FILL_TTL_S" 60 86400
need_int EVICT_SECS "$EVICT_SECS" 0 3600
need_int EVICT_MAX_BYTES "$EVICT_MAX_BYTES" 1048576 17179869184
need_int SAMPLE_S "$SAMPLE_S" 1 60
need_int CHURN_SECS "$CHURN_SECS" 0 3600
need_int FLAGS_KEYS "$FLAGS_KEYS" 1 10000
need_int BURST_N "$BURST_N" 1 10000
need_int BURST_EVERY_S "$BURST_EVERY_S" 1 600
need_int BURST_CONNS "$BURST_CONNS" 1 1000
need_int PURGE_EVERY_S "$PURGE_EVERY_S" 1 3600
need_int CHURN_MAX_RESPONSE_BYTES "$CHURN_MAX_RESPONSE_BYTES" 1024 1073741824
if [[ ! $FLAGS_BYTES =~ ^([0-9]{4,10})-([0-9]{4,10})$ ]] || ((BASH_REMATCH[1] < 1024 ||
    BASH_REMATCH[1] > BASH_REMATCH[2] || BASH_REMATCH[2] > CHURN_MAX_RESPONSE_BYTES)); then
    die "FLAGS_BYTES must be MIN-MAX with 1024 ≤ MIN ≤ MAX ≤ CHURN_MAX_RESPONSE_BYTES ($CHURN_MAX_RESPONSE_BYTES), not '$FLAGS_BYTES'"
fi
[[ $AUTH =~ ^Api-Key\ ([A-Za-z0-9_.-]+)$ ]] || die "AUTH must be 'Api-Key KEY' (KEY of letters, digits, . _ -), not '$AUTH'"
PURGE_KEY=${BASH_REMATCH[1]} # the deployment of the /v1/vardata misses, purged on its own
[[ $PURGE_KEY != "$FLAGS_KEY_PREFIX"* ]] || die "AUTH's key '$PURGE_KEY' must not start with '$FLAGS_KEY_PREFIX' (the flag bursts' keys)"
[[ $NGINX_KEYS_ZONE =~ ^[1-9][0-9]*[km]$ ]] || die "NGINX_KEYS_ZONE must be a size like 256m, not '$NGINX_KEYS_ZONE'"
for c in $SERVER_CPU $LOADGEN_CPU; do
    [[ -d /sys/devices/system/cpu/cpu$c ]] || die "CPU $c does not exist: set SERVER_CPU / LOADGEN_CPU"
done
[[ $SERVER_CPU != "$LOADGEN_CPU" ]] || die "SERVER_CPU and LOADGEN_CPU must differ"
for t in $TARGETS; do
    case $t in
    evalgate) ;;
    nginx) command -v nginx >/dev/null || die "nginx not installed (apt-get install -y nginx)" ;;
    varnish) command -v varnishd >/dev/null || die "varnishd not installed (apt-get install -y varnish)" ;;
    *) die "unknown target '$t' in -t (evalgate nginx varnish)" ;;
    esac
done
HAS_EVALGATE=0
[[ " $TARGETS " == *" evalgate "* ]] && HAS_EVALGATE=1
if ((HAS_EVALGATE)); then
    if ((${#BINS[@]} == 0)); then
        log "building evalgate (cargo build --release --bin evalgate)"
        cargo build --release --quiet --bin evalgate --manifest-path "$ROOT/Cargo.toml" >&2 || die "cargo build --release failed"
        BINS=("evalgate=${CARGO_TARGET_DIR:-$ROOT/target}/release/evalgate")
    fi
    for b in "${BINS[@]}"; do
        [[ $b =~ ^[A-Za-z0-9_.-]+=.+$ ]] || die "-b wants NAME=PATH (NAME of letters, digits, . _ -), not '$b'"
        [[ -x ${b#*=} ]] || die "-b ${b%%=*}: ${b#*=} is not an executable"
    done
    names=$(printf '%s\n' "${BINS[@]%%=*}" | sort | uniq -d)
    [[ -z $names ]] || die "-b names must differ: $names"
fi
for c in taskset curl jq; do
    command -v "$c" >/dev/null || die "$c not installed (apt-get install -y ${c/taskset/util-linux})"
done
build_tools
for p in $UP_PORT $NGINX_PORT $VARNISH_PORT $EVALGATE_PORT $ADMIN_PORT; do
    port_free "$p" || die "port $p is already in use"
done

RUN=$(mktemp -d /tmp/bench-memory.XXXXXX)
chmod 755 "$RUN" # varnishd compiles the VCL as its own unprivileged user
STARTED=()
CACHE_DIRS=()
BG="" # backgrounded benchc (and purge loop) PIDs, space-separated
cleanup() {
    local p
    for p in $BG; do stop_tree "$p"; done
    for p in "${STARTED[@]}"; do stop_tree "$p"; done
    rm -rf "${CACHE_DIRS[@]}" "$RUN"
}
trap cleanup EXIT
trap 'log "interrupted"; exit 130' INT TERM

# start NAME CPU CMD...: start in the background pinned to CPU; sets $PID
start() {
    local name=$1 cpu=$2
    shift 2
    taskset -c "$cpu" "$@" >"$RUN/$name.out" 2>&1 &
    PID=$!
    STARTED+=("$PID")
}
stop() { # stop PID: stop it and forget it
    local p=$1 keep=() s
    stop_tree "$p"
    for s in "${STARTED[@]}"; do [[ $s == "$p" ]] || keep+=("$s"); done
    STARTED=("${keep[@]}")
}

# ------------------------------------------------------------------ measuring
calc() { awk "BEGIN{ $1 }"; } # calc 'printf "%.1f", 1/3'
rss_kb() { awk '/^VmRSS:/{print $2; f=1} END{if (!f) print 0}' "/proc/$1/status" 2>/dev/null || echo 0; }
# pss_kb PID: Pss summed over PID and its descendants (shared pages counted once, split)
pss_kb() {
    local p t=0 v
    for p in $(descendants "$1"); do
        v=$(awk '/^Pss:/{print $2}' "/proc/$p/smaps_rollup" 2>/dev/null)
        [[ -n $v ]] && t=$((t + v))
    done
    echo "$t"
}
du_kb() { du -sk "$1" 2>/dev/null | awk '{print $1}'; }
# stats: "entries weighted_bytes" from evalgate's /admin/stats ("- -" when it does not answer)
stats() {
    curl -s --max-time 5 "http://127.0.0.1:$ADMIN_PORT/admin/stats" |
        jq -r '"\(.cache.entries) \(.cache.weighted_bytes)"' 2>/dev/null || echo "- -"
}
up_json() { curl -s --max-time 5 "http://127.0.0.1:$UP_PORT/__count"; }
up_field() { jq -r ".$1" <<<"$2"; }

# fill PORT N PREFIX: benchc fill, bounded; sets FILL (its key=value line) and FILL_S
fill() {
    local port=$1 n=$2 prefix=$3 bound t0
    bound=$((30 + n / FILL_MIN_RATE))
    t0=$(now_s)
    FILL=$(timeout $((bound + 30)) taskset -c "$LOADGEN_CPU" "$BENCHC" fill --addr "127.0.0.1:$port" --n "$n" \
        --prefix "$prefix" --conns "$FILL_CONNS" --secs "$bound" --auth "$AUTH" 2>&1 | tail -1)
    FILL_S=$(calc "printf \"%.1f\", $(now_s) - $t0")
}

# fill_checked PORT N PREFIX: fill + the checks (every answer a 200, N upstream requests);
# sets FILL_ERR (empty when fine), KEY_B and BODY_B (mean key and body bytes of the fill)
fill_checked() {
    local port=$1 n=$2 prefix=$3 up count ok
    up_reset "$UP_PORT"
    fill "$port" "$n" "$prefix"
    up=$(up_json)
    count=$(up_field count "$up")
    ok=$(kv ok "$FILL")
    FILL_ERR=""
    if [[ $(kv complete "$FILL") != 1 ]]; then
        FILL_ERR="the fill did not finish within its bound ($((30 + n / FILL_MIN_RATE)) s): $FILL"
    elif [[ $ok != "$n" ]]; then
        FILL_ERR="not every answer was a 200: $FILL"
    elif [[ $count != "$n" ]]; then
        FILL_ERR="the upstream counted $count requests, not $n ($FILL)"
    fi
    local okc deploy=${AUTH#Api-Key }
    okc=$(up_field ok "$up")
    # the key evalgate stores: the deployment key + the canonical path and query it forwards
    KEY_B=$(calc "printf \"%.0f\", ${#deploy} + ($okc > 0 ? $(up_field ok_target_bytes "$up") / $okc : 0)")
    BODY_B=$(calc "printf \"%.0f\", ($okc > 0 ? $(up_field ok_body_bytes "$up") / $okc : 0)")
    [[ -n $FILL_ERR ]] && log "FAILED: $FILL_ERR"
    log "filled $n in $FILL_S s: $FILL"
}

warm_up() { # warm_up PORT
    fill "$1" "$WARMUP_N" warm
    [[ $(kv ok "$FILL") == "$WARMUP_N" ]] || log "WARNING: warm-up: $FILL"
}

mib() { calc "printf \"%.1f\", $1 / 1048576"; }

# ------------------------------------------------------------------ report rows
EVALGATE_ROWS=() PROXY_ROWS=() SUMMARY_ROWS=() EVICT_SECTIONS=() SUMMARY_EVICT=() FAILURES=() NOTES=()
CHURN_SECTIONS=() SUMMARY_CHURN=()

# start_evalgate NAME PATH MAX_BYTES [UPSTREAM_LINE]: sets PID; UPSTREAM_LINE goes into [upstream]
start_evalgate() {
    local name=$1 bin=$2 max=$3 extra=${4:-}
    cat >"$RUN/evalgate.toml" <<EOF
# bench/memory.sh: the load harness's settings (benches/harness.toml) with its own budget
[cache]
max_bytes = $max

[upstream]
pipeline_depth = 16
$extra
EOF
    start "evalgate-$name" "$SERVER_CPU" "$bin" --config "$RUN/evalgate.toml" --listen "127.0.0.1:$EVALGATE_PORT" \
        --upstream "http://127.0.0.1:$UP_PORT" --admin-listen "127.0.0.1:$ADMIN_PORT"
    if ! wait_port "$EVALGATE_PORT" 30 "$PID" || ! wait_port "$ADMIN_PORT" 10 "$PID"; then
        tail -20 "$RUN/evalgate-$name.out" >&2
        stop "$PID"
        PID=""
    fi
}

# settle_evalgate EXPECTED: until /admin/stats shows EXPECTED entries (or the same count
# twice in a row), at most 30 s; sets ST (entries weighted_bytes)
settle_evalgate() {
    local want=$1 prev="" i
    for i in $(seq 1 60); do
        ST=$(stats)
        [[ ${ST%% *} == "$want" ]] && return
        [[ $i -gt 4 && $ST == "$prev" ]] && return
        prev=$ST
        sleep 0.5
    done
}

fill_evalgate() { # fill_evalgate NAME PATH N
    local name=$1 bin=$2 n=$3 pid rss0 rss1 entries weighted
    log "=== evalgate $name: fill $n ==="
    start_evalgate "$name" "$bin" "$FILL_MAX_BYTES"
    pid=$PID
    if [[ -z $pid ]]; then
        FAILURES+=("evalgate $name, N=$n: did not start")
        return
    fi
    warm_up "$EVALGATE_PORT"
    settle_evalgate "$WARMUP_N"
    rss0=$(rss_kb "$pid")
    fill_checked "$EVALGATE_PORT" "$n" fill
    settle_evalgate $((WARMUP_N + n))
    rss1=$(rss_kb "$pid")
    read -r entries weighted <<<"$ST"
    kill -0 "$pid" 2>/dev/null || FILL_ERR+=" (evalgate exited)"
    stop "$pid"
    if [[ -n $FILL_ERR ]]; then
        FAILURES+=("evalgate $name, N=$n: $FILL_ERR")
        return
    fi
    [[ $entries =~ ^[0-9]+$ && $weighted =~ ^[0-9]+$ ]] || { entries=0 weighted=0; FAILURES+=("evalgate $name, N=$n: /admin/stats did not answer"); }
    local grow_b per wper ratio over
    grow_b=$(((rss1 - rss0) * 1024))
    per=$(calc "printf \"%.0f\", $grow_b / $n")
    # the weight of the N filled entries: the total less the warm-up's share
    wper=$(calc "printf \"%.0f\", ($entries > 0 ? $weighted / $entries : 0)")
    ratio=$(calc "printf \"%.2f\", ($grow_b > 0 ? $wper * $n / $grow_b : 0)")
    over=$((per - KEY_B - BODY_B))
    EVALGATE_ROWS+=("| $name | $n | $entries | $(mib $((rss0 * 1024))) | $(mib $((rss1 * 1024))) | $(mib "$grow_b") | **$per** | $(mib "$weighted") | $wper | $ratio | $KEY_B | $BODY_B | **$over** | $FILL_S |")
    SUMMARY_ROWS+=("| $n | evalgate ($name) | **$per** | $((KEY_B + BODY_B)) | $over | RSS growth |")
}

fill_nginx() { # fill_nginx N
    local n=$1 port=$NGINX_PORT cache pid conf fs pss0 pss1 du0 du1 files i prev=""
    log "=== nginx: fill $n ==="
    cache=/dev/shm/bench-memory-nginx.$$
    rm -rf "$cache" "$RUN/nginx"
    mkdir -p "$RUN/nginx"
    CACHE_DIRS+=("$cache")
    conf=$RUN/nginx/nginx.conf
    sed -e "s#@LISTEN_PORT@#$port#g; s#@UPSTREAM_PORT@#$UP_PORT#g; s#@RUNDIR@#$RUN/nginx#g; s#@CACHEDIR@#$cache#g" \
        -e "s#keys_zone=vardata:64m#keys_zone=vardata:$NGINX_KEYS_ZONE#; s#proxy_cache_valid 200 60s;#proxy_cache_valid 200 ${FILL_TTL_S}s;#" \
        "$NGINX_CONF" >"$conf"
    if ! grep -q "keys_zone=vardata:$NGINX_KEYS_ZONE" "$conf" || ! grep -q "proxy_cache_valid 200 ${FILL_TTL_S}s;" "$conf"; then
        die "$NGINX_CONF no longer has 'keys_zone=vardata:64m' and 'proxy_cache_valid 200 60s;': update memory.sh"
    fi
    start nginx "$SERVER_CPU" nginx -p "$RUN/nginx" -c "$conf" -e "$RUN/nginx/nginx-error.log"
    pid=$PID
    if ! wait_port "$port" 30 "$pid"; then
        tail -20 "$RUN/nginx.out" >&2
        stop "$pid"
        FAILURES+=("nginx, N=$n: did not start")
        return
    fi
    fs=$(stat -f -c %T /dev/shm 2>/dev/null)
    warm_up "$port"
    sleep 1
    pss0=$(pss_kb "$pid") du0=$(du_kb "$cache")
    fill_checked "$port" "$n" fill
    # settled: the cache directory's size the same twice in a row (at most 30 s)
    for i in $(seq 1 30); do
        du1=$(du_kb "$cache")
        [[ $du1 == "$prev" ]] && break
        prev=$du1
        sleep 1
    done
    pss1=$(pss_kb "$pid")
    files=$(timeout 120 find "$cache" -type f | wc -l)
    kill -0 "$pid" 2>/dev/null || FILL_ERR+=" (nginx exited)"
    stop "$pid"
    rm -rf "$cache"
    if [[ -n $FILL_ERR ]]; then
        FAILURES+=("nginx, N=$n: $FILL_ERR")
        return
    fi
    local dpss=$(((pss1 - pss0) * 1024)) ddu=$(((du1 - du0) * 1024)) per
    per=$(calc "printf \"%.0f\", ($dpss + $ddu) / $n")
    PROXY_ROWS+=("| nginx | $n | $files files | $(mib $((dpss + ddu))) | $(mib "$dpss") (Pss, master + workers) | $(mib "$ddu") (\`du\` of the cache dir, $fs) | **$per** | $((per - KEY_B - BODY_B)) | $FILL_S |")
    SUMMARY_ROWS+=("| $n | nginx | **$per** | $((KEY_B + BODY_B)) | $((per - KEY_B - BODY_B)) | Pss growth + cache files ($fs) |")
    [[ $fs == tmpfs ]] || NOTES+=("nginx's cache directory was on $fs, not tmpfs: the page cache holds its files, counted here by \`du\`.")
}

varnish_objects() { varnishstat -n "$RUN/varnish/work" -1 -f MAIN.n_object 2>/dev/null | awk '{print $2}'; }

fill_varnish() { # fill_varnish N
    local n=$1 port=$VARNISH_PORT pid child="" vcl rss0 rss1 nobj i prev=""
    log "=== varnish: fill $n ==="
    rm -rf "$RUN/varnish"
    mkdir -p "$RUN/varnish"
    vcl=$RUN/varnish/default.vcl
    sed -e "s#@UPSTREAM_PORT@#$UP_PORT#g; s#set beresp.ttl = 60s;#set beresp.ttl = ${FILL_TTL_S}s;#" "$VARNISH_VCL" >"$vcl"
    grep -q "set beresp.ttl = ${FILL_TTL_S}s;" "$vcl" || die "$VARNISH_VCL no longer has 'set beresp.ttl = 60s;': update memory.sh"
    # shellcheck disable=SC2086 # VARNISH_PARAMS is a list of options
    start varnish "$SERVER_CPU" varnishd -F -n "$RUN/varnish/work" -a "127.0.0.1:$port" -f "$vcl" $VARNISH_PARAMS
    pid=$PID
    if ! wait_port "$port" 60 "$pid"; then
        tail -20 "$RUN/varnish.out" >&2
        stop "$pid"
        FAILURES+=("varnish, N=$n: did not start")
        return
    fi
    # the child (cache-main) holds the cache; the manager is its parent
    for i in $(seq 1 50); do
        child=$(ps -o pid=,comm= --ppid "$pid" | awk '$2 == "cache-main" {print $1; exit}')
        [[ -n $child ]] && break
        sleep 0.1
    done
    [[ -n $child ]] || child=$(ps -o pid= --ppid "$pid" | head -1 | tr -d ' ')
    warm_up "$port"
    sleep 1
    rss0=$(rss_kb "$child")
    fill_checked "$port" "$n" fill
    for i in $(seq 1 60); do # settled: n_object as expected or the same twice (at most 30 s)
        nobj=$(varnish_objects)
        [[ $nobj == $((WARMUP_N + n)) || ($i -gt 4 && $nobj == "$prev") ]] && break
        prev=$nobj
        sleep 0.5
    done
    rss1=$(rss_kb "$child")
    kill -0 "$child" 2>/dev/null || FILL_ERR+=" (the varnishd child exited)"
    stop "$pid"
    if [[ -n $FILL_ERR ]]; then
        FAILURES+=("varnish, N=$n: $FILL_ERR")
        return
    fi
    local grow=$(((rss1 - rss0) * 1024)) per
    per=$(calc "printf \"%.0f\", $grow / $n")
    PROXY_ROWS+=("| varnish | $n | ${nobj:-?} objects (MAIN.n_object) | $(mib "$grow") | $(mib "$grow") (RSS, the cache child) | – | **$per** | $((per - KEY_B - BODY_B)) | $FILL_S |")
    SUMMARY_ROWS+=("| $n | varnish | **$per** | $((KEY_B + BODY_B)) | $((per - KEY_B - BODY_B)) | RSS growth of the cache child |")
}

# stats_full: "entries weighted_bytes evicted allocated_bytes allocator_resident_bytes" from
# /admin/stats ("- - - - -" when it does not answer; the last two are "-" without jemalloc)
stats_full() {
    curl -s --max-time 5 "http://127.0.0.1:$ADMIN_PORT/admin/stats" |
        jq -r '"\(.cache.entries) \(.cache.weighted_bytes) \(.cache.removed.size) \(.memory.allocated_bytes // "-") \(.memory.allocator_resident_bytes // "-")"' 2>/dev/null || echo "- - - - -"
}

# sample_while PID PHASE: a row at every tick of SAMPLE_S s (on the clock started at T0, next
# tick TICK) while benchc PID runs, and the one after it ends; at most MAXTICKS rows in all.
# Uses EPID (evalgate); sets ROWS, MAXRSS (kB, the max of this phase's rows), TICK.
sample_while() {
    local bg=$1 phase=$2 t rss e w ev a ar alive
    while ((TICK < MAXTICKS)); do
        sleep "$(calc "s = $T0 + $TICK * $SAMPLE_S - $(now_s); printf \"%.2f\", (s > 0 ? s : 0)")"
        alive=0
        kill -0 "$bg" 2>/dev/null && alive=1
        t=$(calc "printf \"%.0f\", $(now_s) - $T0")
        rss=$(rss_kb "$EPID")
        read -r e w ev a ar <<<"$(stats_full)"
        ((rss > MAXRSS)) && MAXRSS=$rss
        ROWS+=("| $t | $phase | $(mib $((rss * 1024))) | $([[ $ar =~ ^[0-9]+$ ]] && mib "$ar" || echo "–") | $([[ $a =~ ^[0-9]+$ ]] && mib "$a" || echo "–") | $([[ $w =~ ^[0-9]+$ ]] && mib "$w" || echo "?") | $e | $ev |")
        TICK=$((TICK + 1))
        ((alive)) || break
    done
}

# evict_evalgate NAME PATH: fill a fresh evalgate with cache.max_bytes = EVICT_MAX_BYTES up to
# 1.1 × what fits (from the warm-up's weight per entry), then EVICT_SECS s of unique misses, every
# one of them evicting an entry; RSS, weight, entries and evictions sampled throughout.
evict_evalgate() {
    local name=$1 bin=$2 rss0 e w m bound fill_line line max_fill max_evict
    log "=== evalgate $name: fill to full, then ${EVICT_SECS} s of constant eviction at cache.max_bytes = $EVICT_MAX_BYTES ==="
    start_evalgate "$name" "$bin" "$EVICT_MAX_BYTES"
    EPID=$PID
    if [[ -z $EPID ]]; then
        FAILURES+=("evalgate $name, eviction: did not start")
        return
    fi
    warm_up "$EVALGATE_PORT"
    settle_evalgate "$WARMUP_N"
    read -r e w <<<"$ST"
    rss0=$(rss_kb "$EPID")
    if [[ ! $e =~ ^[1-9][0-9]*$ || ! $w =~ ^[0-9]+$ ]]; then
        stop "$EPID"
        FAILURES+=("evalgate $name, eviction: /admin/stats did not answer after the warm-up")
        return
    fi
    # phase 1: enough unique misses to fill the budget, and 10 % more
    m=$(calc "printf \"%.0f\", 1.1 * $EVICT_MAX_BYTES / ($w / $e)")
    bound=$((30 + m / FILL_MIN_RATE))
    ROWS=() MAXRSS=0 TICK=0 MAXTICKS=$(((bound + EVICT_SECS) / SAMPLE_S + 20)) T0=$(now_s)
    timeout $((bound + 30)) taskset -c "$LOADGEN_CPU" "$BENCHC" fill --addr "127.0.0.1:$EVALGATE_PORT" \
        --n "$m" --prefix evict --conns "$FILL_CONNS" --secs "$bound" --auth "$AUTH" >"$RUN/evict-fill.out" 2>&1 &
    BG=$!
    sample_while "$BG" fill
    wait "$BG"
    BG=""
    fill_line=$(tail -1 "$RUN/evict-fill.out")
    max_fill=$MAXRSS
    # phase 2: EVICT_SECS s of unique misses past the ones of phase 1
    MAXRSS=0
    timeout $((EVICT_SECS + 30)) taskset -c "$LOADGEN_CPU" "$BENCHC" fill --addr "127.0.0.1:$EVALGATE_PORT" \
        --n 1000000000 --start "$m" --prefix evict --conns "$FILL_CONNS" --secs "$EVICT_SECS" --auth "$AUTH" \
        >"$RUN/evict.out" 2>&1 &
    BG=$!
    sample_while "$BG" evict
    wait "$BG"
    BG=""
    line=$(tail -1 "$RUN/evict.out")
    max_evict=$MAXRSS
    kill -0 "$EPID" 2>/dev/null || FAILURES+=("evalgate $name, eviction: evalgate exited during the run")
    stop "$EPID"
    local max_b=$(((max_fill > max_evict ? max_fill : max_evict) * 1024)) base_b=$((rss0 * 1024)) verdict
    bound=$(calc "printf \"%.0f\", 1.1 * $EVICT_MAX_BYTES + 64 * 1048576")
    if ((max_b <= bound)); then verdict="**PASS**"; else verdict="**FAIL**"; fi
    [[ $(kv complete "$fill_line") == 1 ]] || FAILURES+=("evalgate $name, eviction: the fill to full did not finish: $fill_line")
    EVICT_SECTIONS+=("### evalgate ($name): fill to full, then ${EVICT_SECS} s of unique misses at cache.max_bytes = $EVICT_MAX_BYTES ($(mib "$EVICT_MAX_BYTES") MiB)

- fill (1.1 × the entries that fit, by the warm-up's weight per entry): \`${fill_line:-benchc gave no result}\`
- eviction: \`${line:-benchc gave no result}\`
- baseline RSS (after the warm-up): $(mib "$base_b") MiB; max RSS while filling $(mib $((max_fill * 1024))) MiB, while evicting $(mib $((max_evict * 1024))) MiB
- max RSS: **$(mib "$max_b") MiB** = **$(calc "printf \"%.2f\", $max_b / $EVICT_MAX_BYTES") × max_bytes**; (max RSS − baseline) ÷ max_bytes = $(calc "printf \"%.2f\", ($max_b - $base_b) / $EVICT_MAX_BYTES")
- bound RSS ≤ 1.1 × max_bytes + 64 MiB = $(mib "$bound") MiB: $verdict

| t s | phase | RSS MiB | allocator resident MiB | allocated MiB | weighted MiB | entries | evicted (size) |
|---:|---|---:|---:|---:|---:|---:|---:|
$(printf '%s\n' "${ROWS[@]}")")
    SUMMARY_EVICT+=("| evalgate ($name) | $(mib "$max_b") | $(mib $((max_evict * 1024))) | $(calc "printf \"%.2f\", $max_b / $EVICT_MAX_BYTES") | $(calc "printf \"%.2f\", ($max_b - $base_b) / $EVICT_MAX_BYTES") | $verdict |")
}

# purge_loop T0 T_CLOCK COUNT: POST /admin/purge at T0 + i × PURGE_EVERY_S s for i = 1..COUNT, the
# misses' deployment (PURGE_KEY) and everything in turn; one line per purge: "t scope status", t
# in s on the clock started at T_CLOCK (the sample table's). Run in the background.
purge_loop() {
    local t0=$1 tc=$2 count=$3 i q scope code
    for ((i = 1; i <= count; i++)); do
        sleep "$(calc "s = $t0 + $i * $PURGE_EVERY_S - $(now_s); printf \"%.2f\", (s > 0 ? s : 0)")"
        if ((i % 2)); then scope="deployment $PURGE_KEY" q="?deployment=$PURGE_KEY"; else scope=all q=""; fi
        code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 -X POST "http://127.0.0.1:$ADMIN_PORT/admin/purge$q")
        echo "$(calc "printf \"%.1f\", $(now_s) - $tc") $scope $code"
    done
}

# churn_evalgate NAME PATH: a fresh evalgate with cache.max_bytes = EVICT_MAX_BYTES filled to 1.1 ×
# what fits as in the eviction run, then CHURN_SECS s of, at once: unique /v1/vardata misses at
# full speed; a burst of BURST_N GET /sdk/v2/flags every BURST_EVERY_S s over FLAGS_KEYS deployment
# keys (bodies of FLAGS_BYTES, every second request asking for gzip, br); a purge every
# PURGE_EVERY_S s (PURGE_KEY, then everything, in turn). RSS, weight, entries and evictions sampled.
churn_evalgate() {
    local name=$1 bin=$2 rss0 e w m bound fill_line line flags_line purges max_fill max_churn
    local bursts=$(((CHURN_SECS + BURST_EVERY_S - 1) / BURST_EVERY_S)) npurge=$(((CHURN_SECS - 1) / PURGE_EVERY_S))
    local bg_fill bg_flags bg_purge ct0 up counters
    log "=== evalgate $name: fill to full, then ${CHURN_SECS} s of churn (misses, flag bursts, purges) at cache.max_bytes = $EVICT_MAX_BYTES ==="
    start_evalgate "$name" "$bin" "$EVICT_MAX_BYTES" "max_response_bytes = $CHURN_MAX_RESPONSE_BYTES"
    EPID=$PID
    if [[ -z $EPID ]]; then
        FAILURES+=("evalgate $name, churn: did not start")
        return
    fi
    warm_up "$EVALGATE_PORT"
    settle_evalgate "$WARMUP_N"
    read -r e w <<<"$ST"
    rss0=$(rss_kb "$EPID")
    if [[ ! $e =~ ^[1-9][0-9]*$ || ! $w =~ ^[0-9]+$ ]]; then
        stop "$EPID"
        FAILURES+=("evalgate $name, churn: /admin/stats did not answer after the warm-up")
        return
    fi
    # phase 1: to full, as the eviction run
    m=$(calc "printf \"%.0f\", 1.1 * $EVICT_MAX_BYTES / ($w / $e)")
    bound=$((30 + m / FILL_MIN_RATE))
    ROWS=() MAXRSS=0 TICK=0 MAXTICKS=$(((bound + CHURN_SECS) / SAMPLE_S + 20)) T0=$(now_s)
    timeout $((bound + 30)) taskset -c "$LOADGEN_CPU" "$BENCHC" fill --addr "127.0.0.1:$EVALGATE_PORT" \
        --n "$m" --prefix churn --conns "$FILL_CONNS" --secs "$bound" --auth "$AUTH" >"$RUN/churn-fill.out" 2>&1 &
    BG=$!
    sample_while "$BG" fill
    wait "$BG"
    BG=""
    fill_line=$(tail -1 "$RUN/churn-fill.out")
    max_fill=$MAXRSS
    # phase 2: CHURN_SECS s of misses, flag bursts and purges, all at once
    MAXRSS=0
    up_reset "$UP_PORT"
    ct0=$(now_s)
    timeout $((CHURN_SECS + 30)) taskset -c "$LOADGEN_CPU" "$BENCHC" fill --addr "127.0.0.1:$EVALGATE_PORT" \
        --n 1000000000 --start "$m" --prefix churn --conns "$FILL_CONNS" --secs "$CHURN_SECS" --auth "$AUTH" \
        >"$RUN/churn.out" 2>&1 &
    bg_fill=$!
    timeout $((CHURN_SECS + 60)) taskset -c "$LOADGEN_CPU" "$BENCHC" flags --addr "127.0.0.1:$EVALGATE_PORT" \
        --keys "$FLAGS_KEYS" --key-prefix "$FLAGS_KEY_PREFIX" --n "$BURST_N" --bursts "$bursts" \
        --every "$BURST_EVERY_S" --conns "$BURST_CONNS" --secs "$CHURN_SECS" --encoded-every 2 \
        >"$RUN/churn-flags.out" 2>&1 &
    bg_flags=$!
    purge_loop "$ct0" "$T0" "$npurge" >"$RUN/churn-purges.out" 2>&1 &
    bg_purge=$!
    BG="$bg_fill $bg_flags $bg_purge"
    sample_while "$bg_fill" churn
    wait "$bg_fill"
    wait "$bg_flags"
    wait "$bg_purge"
    BG=""
    line=$(tail -1 "$RUN/churn.out")
    flags_line=$(tail -1 "$RUN/churn-flags.out")
    purges=$(awk '{printf "%s%s s: %s (%s)", (NR > 1 ? "; " : ""), $1, ($2 == "all" ? "everything" : $2 " " $3), $NF}' "$RUN/churn-purges.out")
    up=$(up_json)
    # what evalgate counted: compressions (stored variants), evictions by cause, purges
    counters=$(curl -s --max-time 5 "http://127.0.0.1:$ADMIN_PORT/metrics" |
        awk '/^evalgate_(compressions_total|compressions_skipped_total|cache_evictions_total|purges_total)\{/ {
            printf "%s%s %s", (n++ ? ", " : ""), $1, $2 }')
    max_churn=$MAXRSS
    kill -0 "$EPID" 2>/dev/null || FAILURES+=("evalgate $name, churn: evalgate exited during the run")
    stop "$EPID"
    local max_b=$(((max_fill > max_churn ? max_fill : max_churn) * 1024)) base_b=$((rss0 * 1024)) verdict
    bound=$(calc "printf \"%.0f\", 1.1 * $EVICT_MAX_BYTES + 64 * 1048576")
    if ((max_b <= bound)); then verdict="**PASS**"; else verdict="**FAIL**"; fi
    [[ $(kv complete "$fill_line") == 1 ]] || FAILURES+=("evalgate $name, churn: the fill to full did not finish: $fill_line")
    [[ $(kv bursts "$flags_line") =~ ^[1-9] && $(kv ok "$flags_line") =~ ^[1-9] ]] ||
        FAILURES+=("evalgate $name, churn: no flag configuration was answered 200: ${flags_line:-benchc flags gave no result}")
    (($(grep -c ' 200$' "$RUN/churn-purges.out") == npurge)) ||
        FAILURES+=("evalgate $name, churn: not every purge answered 200: ${purges:-none ran}")
    CHURN_SECTIONS+=("### evalgate ($name): fill to full, then ${CHURN_SECS} s of churn at cache.max_bytes = $EVICT_MAX_BYTES ($(mib "$EVICT_MAX_BYTES") MiB)

- fill (1.1 × the entries that fit, by the warm-up's weight per entry): \`${fill_line:-benchc gave no result}\`
- churn, unique \`/v1/vardata\` misses: \`${line:-benchc gave no result}\`
- churn, flag configurations ($BURST_N \`GET /sdk/v2/flags\` every $BURST_EVERY_S s over $BURST_CONNS connections, keys ${FLAGS_KEY_PREFIX}0000… of $FLAGS_KEYS, bodies of $FLAGS_BYTES bytes, every second request with \`Accept-Encoding: gzip, br\`): \`${flags_line:-benchc flags gave no result}\`; the upstream sent $(up_field flags_ok "$up") of them ($(mib "$(up_field flags_body_bytes "$up")") MiB), evalgate's misses
- churn, purges (t on the table's clock): ${purges:-none}
- evalgate's counters at the end (\`/metrics\`): ${counters:-none read}
- baseline RSS (after the warm-up): $(mib "$base_b") MiB; max RSS while filling $(mib $((max_fill * 1024))) MiB, while churning $(mib $((max_churn * 1024))) MiB
- max RSS: **$(mib "$max_b") MiB** = **$(calc "printf \"%.2f\", $max_b / $EVICT_MAX_BYTES") × max_bytes**; (max RSS − baseline) ÷ max_bytes = $(calc "printf \"%.2f\", ($max_b - $base_b) / $EVICT_MAX_BYTES")
- bound RSS ≤ 1.1 × max_bytes + 64 MiB = $(mib "$bound") MiB: $verdict

| t s | phase | RSS MiB | allocator resident MiB | allocated MiB | weighted MiB | entries | evicted (size) |
|---:|---|---:|---:|---:|---:|---:|---:|
$(printf '%s\n' "${ROWS[@]}")")
    SUMMARY_CHURN+=("| evalgate ($name) | $(mib "$max_b") | $(mib $((max_churn * 1024))) | $(calc "printf \"%.2f\", $max_b / $EVICT_MAX_BYTES") | $(calc "printf \"%.2f\", ($max_b - $base_b) / $EVICT_MAX_BYTES") | $verdict |")
}

# ------------------------------------------------------------------ the run
TS=$(date +%Y%m%d-%H%M%S)
T_START=$SECONDS
log "starting bench upstream on 127.0.0.1:$UP_PORT (CPU $LOADGEN_CPU)"
start upstream "$LOADGEN_CPU" "$UPSTREAM_BIN" --listen "127.0.0.1:$UP_PORT" --keys k1,k2 --delay-ms 0 \
    --key-prefix "$FLAGS_KEY_PREFIX" --flags-bytes "$FLAGS_BYTES"
UPSTREAM_PID=$PID
wait_port "$UP_PORT" 10 "$UPSTREAM_PID" || { cat "$RUN/upstream.out" >&2; die "upstream did not start"; }
[[ -n $(up_field ok_target_bytes "$(up_json)") && $(up_field ok_target_bytes "$(up_json)") != null ]] ||
    die "$UPSTREAM_BIN does not count ok_target_bytes: rebuild bench/upstream (rm $BENCHC)"
[[ $(up_field flags_ok "$(up_json)") =~ ^[0-9]+$ ]] ||
    die "$UPSTREAM_BIN does not answer /sdk/v2/flags: rebuild bench/upstream (rm $BENCHC)"

for n in $COUNTS; do
    for t in $TARGETS; do
        case $t in
        evalgate) for b in "${BINS[@]}"; do fill_evalgate "${b%%=*}" "${b#*=}" "$n"; done ;;
        nginx) fill_nginx "$n" ;;
        varnish) fill_varnish "$n" ;;
        esac
    done
done
if ((HAS_EVALGATE && EVICT_SECS > 0)); then
    for b in "${BINS[@]}"; do evict_evalgate "${b%%=*}" "${b#*=}"; done
fi
if ((HAS_EVALGATE && CHURN_SECS > 0)); then
    for b in "${BINS[@]}"; do churn_evalgate "${b%%=*}" "${b#*=}"; done
fi
ELAPSED=$((SECONDS - T_START))

# ------------------------------------------------------------------ report
versions() {
    echo "- date: $(date -u +%Y-%m-%dT%H:%M:%SZ); host: $(uname -r), $(nproc) vCPU ($(awk -F': ' '/model name/{print $2; exit}' /proc/cpuinfo)), $(awk '/MemTotal/{printf "%.0f GiB", $2/1048576}' /proc/meminfo)"
    if ((HAS_EVALGATE)); then
        for b in "${BINS[@]}"; do
            echo "- evalgate ${b%%=*}: \`${b#*=}\` ($("${b#*=}" --version 2>/dev/null | head -1), built $(date -u -r "${b#*=}" +%Y-%m-%dT%H:%M:%SZ)); config: \`[cache] max_bytes\` = $FILL_MAX_BYTES for the fills, $EVICT_MAX_BYTES for the eviction and churn runs, \`[upstream] pipeline_depth = 16\` (as benches/harness.toml), in the churn run also \`max_response_bytes = $CHURN_MAX_RESPONSE_BYTES\` (flag configurations of up to ${FLAGS_BYTES#*-} bytes), the rest default"
        done
    fi
    for t in $TARGETS; do
        case $t in
        nginx) echo "- $(nginx -v 2>&1): bench/nginx.conf with keys_zone $NGINX_KEYS_ZONE (64m holds ~500k keys) and \`proxy_cache_valid 200 ${FILL_TTL_S}s\`; max_size 4g, cache on /dev/shm" ;;
        varnish) echo "- $(varnishd -V 2>&1 | head -1): bench/varnish.vcl with \`beresp.ttl = ${FILL_TTL_S}s\`; params: \`${VARNISH_PARAMS/vsl_mask=$VSL_OFF/vsl_mask=<per-request records off>}\`" ;;
        esac
    done
    echo "- checkout $(git -C "$ROOT" describe --always --dirty 2>/dev/null || echo '?'); upstream and benchc: bench/upstream"
    echo "- command: \`bench/memory.sh$ARGS\`; FILL_CONNS=$FILL_CONNS WARMUP_N=$WARMUP_N EVICT_SECS=$EVICT_SECS SAMPLE_S=$SAMPLE_S CHURN_SECS=$CHURN_SECS FLAGS_KEYS=$FLAGS_KEYS FLAGS_BYTES=$FLAGS_BYTES BURST_N=$BURST_N BURST_EVERY_S=$BURST_EVERY_S BURST_CONNS=$BURST_CONNS PURGE_EVERY_S=$PURGE_EVERY_S"
    echo "- pinning: target on CPU $SERVER_CPU; benchc and the upstream on CPU $LOADGEN_CPU"
    echo "- the run took $((ELAPSED / 60)) min $((ELAPSED % 60)) s"
}

report() {
    echo "# Memory per cache entry $TS: evalgate, nginx proxy_cache, Varnish"
    echo
    versions
    echo
    echo "Each fill: a fresh process with an empty cache, $WARMUP_N unique warm-up requests, the"
    echo "baseline, then N distinct \`/v1/vardata\` requests (a ~180-byte \`context\`, user_id unique,"
    echo "\`Authorization: $AUTH\`), each sent once over $FILL_CONNS connections, every answer a 200 and N"
    echo "upstream requests (checked), then the memory again once the cache has settled. Key bytes ="
    echo "deployment key + the path and query the target forwarded (as the upstream received them);"
    echo "body bytes = the upstream's 200 bodies; overhead = bytes per entry − key − body."
    if ((${#FAILURES[@]})); then
        echo
        echo "## Failures"
        echo
        printf -- '- %s\n' "${FAILURES[@]}"
    fi
    echo
    echo "## Summary: bytes per entry"
    echo
    echo "| N | target | bytes per entry | key + body | overhead per entry | what is counted |"
    echo "|---:|---|---:|---:|---:|---|"
    ((${#SUMMARY_ROWS[@]})) && printf '%s\n' "${SUMMARY_ROWS[@]}"
    if ((${#SUMMARY_EVICT[@]})); then
        echo
        echo "| constant eviction | max RSS MiB | of it, while evicting | max RSS ÷ max_bytes | (max RSS − baseline) ÷ max_bytes | RSS ≤ 1.1 × max_bytes + 64 MiB |"
        echo "|---|---:|---:|---:|---:|---|"
        printf '%s\n' "${SUMMARY_EVICT[@]}"
    fi
    if ((${#SUMMARY_CHURN[@]})); then
        echo
        echo "| churn (misses + flag bursts + purges) | max RSS MiB | of it, while churning | max RSS ÷ max_bytes | (max RSS − baseline) ÷ max_bytes | RSS ≤ 1.1 × max_bytes + 64 MiB |"
        echo "|---|---:|---:|---:|---:|---|"
        printf '%s\n' "${SUMMARY_CHURN[@]}"
    fi
    if ((${#EVALGATE_ROWS[@]})); then
        echo
        echo "## evalgate: fill"
        echo
        echo "RSS = VmRSS of the process; weighted = \`cache.weighted_bytes\` of \`/admin/stats\` (entries include the warm-up's);"
        echo "weighted per entry = weighted ÷ entries; weighted ÷ RSS growth = weighted per entry × N ÷ RSS growth."
        echo
        echo "| binary | N | entries | RSS before MiB | RSS after MiB | RSS growth MiB | RSS growth per entry B | weighted MiB | weighted per entry B | weighted ÷ RSS growth | key B | body B | overhead per entry B | fill s |"
        echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
        printf '%s\n' "${EVALGATE_ROWS[@]}"
    fi
    if ((${#PROXY_ROWS[@]})); then
        echo
        echo "## nginx and Varnish: fill"
        echo
        echo "nginx: growth of Pss (from \`/proc/PID/smaps_rollup\`, summed over master and workers, so the shared keys_zone"
        echo "counts once) + growth of the cache directory (\`du -sk\`). Varnish: growth of the cache child's VmRSS."
        echo
        echo "| target | N | held | memory growth MiB | of it, process | of it, cache files | per entry B | overhead per entry B | fill s |"
        echo "|---|---:|---|---:|---|---|---:|---:|---:|"
        printf '%s\n' "${PROXY_ROWS[@]}"
    fi
    if ((${#EVICT_SECTIONS[@]})); then
        echo
        echo "## evalgate: constant eviction"
        for s in "${EVICT_SECTIONS[@]}"; do
            echo
            echo "$s"
        done
    fi
    if ((${#CHURN_SECTIONS[@]})); then
        echo
        echo "## evalgate: churn (misses, bursts of large flag configurations, purges)"
        for s in "${CHURN_SECTIONS[@]}"; do
            echo
            echo "$s"
        done
    fi
    if ((${#NOTES[@]})); then
        echo
        printf -- '- %s\n' "${NOTES[@]}"
    fi
    echo
    echo "Fill times are given to show the run's length, not throughput (nothing else was kept off the machine)."
}

mkdir -p "$RESULTS_DIR"
report | tee "$RESULTS_DIR/memory-$TS.md"
log "report: $RESULTS_DIR/memory-$TS.md ($((ELAPSED / 60)) min $((ELAPSED % 60)) s)"
((${#FAILURES[@]} == 0)) || exit 1
