#!/usr/bin/env bash
# Hot hits over TLS: evalgate's HTTPS listener beside nginx (proxy_cache, `ssl`), the same
# certificate, one core each, in one run; then the cost of a hit on a large flag
# configuration served identity, gzip and br by evalgate (issue 16). Bounded: every wrk run
# lasts DURATION seconds, every process started here is stopped by its PID on exit.
#
#   cargo build --release
#   apt-get install -y nginx wrk openssl python3     # once (nginx-light is enough)
#   bench/tls-hit.sh [-r REPEATS] [-d SECONDS]
#
# Layout of the run (2 cores): the target under test is pinned to CPU 0, wrk and the origin
# to CPU 1. The origin is evalgate itself, cleartext, embedded engine (it answers each
# distinct request once: every measured request is a hit). Each target gets a fresh process
# and an empty cache per repeat; repeats interleave the targets so drift spreads evenly.
# Reported per run: req/s, wrk's p50/p99 latency, and the target's CPU time per request
# (utime+stime from /proc/PID/stat over the measured window, divided by the requests).
# The report goes to stdout and to target/bench-results/tls-<timestamp>.md.
set -euo pipefail
cd "$(dirname "$0")/.."

REPEATS=3
DURATION=15
CONNECTIONS=64
POOL=1000
while getopts "r:d:c:" opt; do
    case $opt in
        r) REPEATS=$OPTARG ;;
        d) DURATION=$OPTARG ;;
        c) CONNECTIONS=$OPTARG ;;
        *) echo "usage: $0 [-r REPEATS] [-d SECONDS] [-c CONNECTIONS]" >&2; exit 64 ;;
    esac
done

BIN=${EVALGATE_BIN:-$PWD/target/release/evalgate}
for tool in nginx wrk openssl python3 taskset curl; do
    command -v "$tool" >/dev/null || { echo "$0: $tool is missing (apt-get install -y nginx-light wrk openssl python3 util-linux curl)" >&2; exit 69; }
done
[[ -x $BIN ]] || { echo "$0: $BIN is missing: cargo build --release" >&2; exit 69; }

KEY=server-evalgate-demo-key
WORK=$(mktemp -d /tmp/evalgate-tls-bench.XXXXXX)
PIDS=()
cleanup() {
    local pid
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    rm -rf "$WORK" /dev/shm/evalgate-tls-bench-cache
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# Waits (bounded, 10 s) until URL answers.
wait_up() {
    local url=$1 i
    for ((i = 0; i < 200; i++)); do
        curl -sk -o /dev/null --max-time 1 "$url" && return 0
        sleep 0.05
    done
    echo "$0: $url did not come up" >&2
    exit 1
}

# Requests the origin has answered so far.
origin_requests() {
    curl -s "http://127.0.0.1:$ORIGIN_ADMIN/metrics" |
        awk '/^evalgate_requests_total/ { n += $NF } END { printf "%d\n", n }'
}

# CPU seconds (user + system) a process has used so far.
cpu_secs() {
    local pid=$1 ticks
    # Fields 14 and 15 of /proc/PID/stat (after the parenthesized command name).
    ticks=$(awk '{sub(/^.*\) /, ""); print $12 + $13}' "/proc/$pid/stat")
    python3 -c "print($ticks / $(getconf CLK_TCK))"
}

# --- fixtures: certificate, a ~200 KB flag configuration, the origin --------------------
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
    -subj /CN=localhost -addext subjectAltName=DNS:localhost,IP:127.0.0.1 \
    -keyout "$WORK/key.pem" -out "$WORK/cert.pem" 2>/dev/null

python3 - "$PWD/flags.json" "$WORK/flags.json" <<'PY'
import json, sys
flags = json.load(open(sys.argv[1]))
out, n = [], 0
while len(json.dumps(out)) < 200_000:
    for f in flags:
        g = json.loads(json.dumps(f))
        g["key"] = f"{f['key']}-{n}"
        out.append(g)
    n += 1
json.dump(out, open(sys.argv[2], "w"))
PY
FLAGS_BYTES=$(stat -c %s "$WORK/flags.json")

ORIGIN_PORT=$(free_port)
ORIGIN_ADMIN=$(free_port)
# The origin's answers must be storable by the targets: no `Cache-Control: no-store` (the
# browser-facing default), so every measured request is a hit (checked: the origin's request
# count does not move during a measured run).
cat >"$WORK/origin.toml" <<TOML
[server]
listen = "127.0.0.1:$ORIGIN_PORT"
[upstream]
url = "embedded"
[embedded]
flags_file = "$WORK/flags.json"
deployment_keys = ["$KEY"]
[cache]
client_cache_control = ""
[admin]
listen = "127.0.0.1:$ORIGIN_ADMIN"
[log]
level = "warn"
TOML
taskset -c 1 "$BIN" --config "$WORK/origin.toml" >"$WORK/origin.log" 2>&1 &
PIDS+=($!)
wait_up "http://127.0.0.1:$ORIGIN_ADMIN/metrics"

# wrk script: cycle a pool of distinct /v1/vardata URLs (or one path) with the key.
cat >"$WORK/pool.lua" <<'LUA'
local pool, i = {}, 0
local n = tonumber(os.getenv("POOL") or "1000")
local path = os.getenv("WRK_PATH")
if path == "" then path = nil end
local headers = { ["Authorization"] = "Api-Key " .. os.getenv("KEY") }
local enc = os.getenv("ENCODING")
if enc and enc ~= "" then headers["Accept-Encoding"] = enc end
for k = 1, n do
  pool[k] = path or string.format("/v1/vardata?user_id=tls-bench-%d&device_id=d-%d", k, k)
end
request = function()
  i = i % n + 1
  return wrk.format("GET", pool[i], headers)
end
done = function(summary, latency, requests)
  io.write(string.format("RESULT requests=%d errors=%d p50_ms=%.3f p99_ms=%.3f\n",
    summary.requests,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.status + summary.errors.timeout,
    latency:percentile(50) / 1000, latency:percentile(99) / 1000))
end
LUA

# --- targets ------------------------------------------------------------------------------
start_evalgate() {
    local port=$1
    cat >"$WORK/evalgate.toml" <<TOML
[server]
listen = ""
[tls]
listen = "127.0.0.1:$port"
cert_file = "$WORK/cert.pem"
key_file = "$WORK/key.pem"
[upstream]
url = "http://127.0.0.1:$ORIGIN_PORT"
[cache]
max_bytes = 1073741824
[admin]
listen = ""
[log]
level = "warn"
TOML
    taskset -c 0 "$BIN" --config "$WORK/evalgate.toml" >"$WORK/evalgate.log" 2>&1 &
    TARGET_PID=$!
    PIDS+=("$TARGET_PID")
}

start_nginx() {
    local port=$1 run=$WORK/nginx
    rm -rf "$run" /dev/shm/evalgate-tls-bench-cache
    mkdir -p "$run"
    cat >"$run/nginx.conf" <<NGINX
worker_processes 1;
daemon off;
master_process off;
pid $run/nginx.pid;
error_log $run/error.log warn;
worker_rlimit_nofile 65536;
events { worker_connections 16384; }
http {
    access_log off;
    server_tokens off;
    sendfile off;
    tcp_nodelay on;
    keepalive_timeout 75s;
    keepalive_requests 1000000;
    client_body_temp_path $run/client_temp;
    proxy_temp_path $run/proxy_temp;
    fastcgi_temp_path $run/fastcgi_temp;
    uwsgi_temp_path $run/uwsgi_temp;
    scgi_temp_path $run/scgi_temp;
    proxy_cache_path /dev/shm/evalgate-tls-bench-cache levels=1:2 keys_zone=vardata:64m max_size=1g inactive=10m use_temp_path=off;
    open_file_cache max=20000 inactive=60s;
    open_file_cache_valid 30s;
    open_file_cache_min_uses 1;
    upstream origin { server 127.0.0.1:$ORIGIN_PORT; keepalive 64; }
    server {
        listen 127.0.0.1:$port ssl http2;
        ssl_certificate $WORK/cert.pem;
        ssl_certificate_key $WORK/key.pem;
        ssl_protocols TLSv1.2 TLSv1.3;
        ssl_session_cache shared:SSL:10m;
        location / {
            proxy_pass http://origin;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_cache vardata;
            proxy_cache_key "\$http_authorization|\$request_uri";
            proxy_cache_valid 200 60s;
            proxy_ignore_headers Cache-Control Expires Set-Cookie;
            proxy_cache_lock on;
        }
    }
}
NGINX
    taskset -c 0 nginx -c "$run/nginx.conf" -p "$run" >"$run/stdout.log" 2>&1 &
    TARGET_PID=$!
    PIDS+=("$TARGET_PID")
}

stop_target() {
    kill "$TARGET_PID" 2>/dev/null || true
    wait "$TARGET_PID" 2>/dev/null || true
}

# One measured wrk run against https://127.0.0.1:PORT: prints "req/s p50 p99 cpu_us/req".
measure() {
    local port=$1 path=${2:-} enc=${3:-} pool=$POOL out before after
    [[ -n $path ]] && pool=1
    # Warm: every URL of the pool once (it is a miss), then 2 s unmeasured.
    KEY=$KEY POOL=$pool WRK_PATH=$path ENCODING=$enc taskset -c 1 \
        wrk -t1 -c"$CONNECTIONS" -d2s -s "$WORK/pool.lua" "https://127.0.0.1:$port" >/dev/null
    before=$(cpu_secs "$TARGET_PID")
    local asked_before asked_after
    asked_before=$(origin_requests)
    out=$(KEY=$KEY POOL=$pool WRK_PATH=$path ENCODING=$enc taskset -c 1 \
        wrk -t1 -c"$CONNECTIONS" -d"${DURATION}s" --timeout 5s -s "$WORK/pool.lua" "https://127.0.0.1:$port")
    after=$(cpu_secs "$TARGET_PID")
    asked_after=$(origin_requests)
    python3 - "$out" "$before" "$after" "$DURATION" "$((asked_after - asked_before))" <<'PY'
import re, sys
out, before, after, duration = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
origin = int(sys.argv[5])
m = dict(kv.split("=") for kv in re.search(r"RESULT (.*)", out).group(1).split())
reqs = int(m["requests"])
errors = int(m["errors"])
print(f"{reqs / duration:.0f} {m['p50_ms']} {m['p99_ms']} {(after - before) * 1e6 / max(reqs, 1):.1f} {errors} {origin}")
PY
}

STAMP=$(date -u +%Y%m%d-%H%M%S)
mkdir -p target/bench-results
REPORT=target/bench-results/tls-$STAMP.md
{
    echo "# TLS hot hits, $STAMP UTC"
    echo
    echo "\`bench/tls-hit.sh -r $REPEATS -d $DURATION -c $CONNECTIONS\`; $(nproc) CPUs, $(uname -r);"
    echo "$("$BIN" --version 2>/dev/null || echo evalgate) ($(git rev-parse --short HEAD 2>/dev/null || echo '?')), $(nginx -v 2>&1), $(wrk -v 2>&1 | head -1 | cut -d' ' -f1-2)."
    echo "Target on CPU 0; wrk (1 thread, $CONNECTIONS keep-alive TLS connections, HTTP/1.1) and the origin on CPU 1."
    echo
    echo "## Hot hits: $POOL distinct /v1/vardata URLs, TLS"
    echo
    echo "| repeat | target | req/s | p50 ms | p99 ms | CPU µs/req | errors | origin requests |"
    echo "|---|---|---|---|---|---|---|---|"
} | tee "$REPORT"

for ((r = 1; r <= REPEATS; r++)); do
    for target in evalgate nginx; do
        port=$(free_port)
        "start_$target" "$port"
        wait_up "https://127.0.0.1:$port/v1/vardata?user_id=up"
        read -r rps p50 p99 cpu errors origin < <(measure "$port")
        stop_target
        echo "| $r | $target | $rps | $p50 | $p99 | $cpu | $errors | $origin |" | tee -a "$REPORT"
    done
done

{
    echo
    echo "## A flag configuration ($FLAGS_BYTES bytes identity) per hit, evalgate, by Accept-Encoding"
    echo
    echo "| repeat | encoding | req/s | p50 ms | p99 ms | CPU µs/req | errors | origin requests |"
    echo "|---|---|---|---|---|---|---|---|"
} | tee -a "$REPORT"
for ((r = 1; r <= REPEATS; r++)); do
    port=$(free_port)
    start_evalgate "$port"
    wait_up "https://127.0.0.1:$port/v1/vardata?user_id=up"
    for enc in identity gzip br; do
        read -r rps p50 p99 cpu errors origin < <(measure "$port" /sdk/v2/flags "$enc")
        echo "| $r | $enc | $rps | $p50 | $p99 | $cpu | $errors | $origin |" | tee -a "$REPORT"
    done
    stop_target
done
echo
echo "report: $REPORT"
