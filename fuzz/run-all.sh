#!/usr/bin/env bash
# Runs every fuzz target for a bounded time (FUZZ_SECONDS each, default 30), one after
# the other, starting from the committed seeds. Fails on the first crash, panic, failed
# property or timeout; libFuzzer leaves the input in fuzz/artifacts/<target>/.
#
#   fuzz/run-all.sh                    # every target, 30 s each
#   FUZZ_SECONDS=600 fuzz/run-all.sh flags_eval
#
# Runs on the stable toolchain: `--sanitizer none` needs no nightly flag, and the crate
# forbids unsafe code. Installs cargo-fuzz when it is missing (about a minute).
set -euo pipefail
cd "$(dirname "$0")"

seconds=${FUZZ_SECONDS:-30}
# One input taking longer than this is a failure (a pathological regex, say).
timeout_s=${FUZZ_TIMEOUT_S:-10}
targets=("$@")
if ((${#targets[@]} == 0)); then
    targets=(vardata_query sdk_user pipeline_codec config_toml flags_eval)
fi

# libfuzzer-sys builds libFuzzer's C++ sources.
if ! type -P c++ >/dev/null; then
    sudo=()
    ((EUID == 0)) || sudo=(sudo)
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 update -qq
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
        apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends g++
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install --locked cargo-fuzz
fi
cargo fuzz build --sanitizer none

# libFuzzer writes what it finds to its first corpus directory: a scratch one, so the
# committed seeds (the second, read-only) stay as they are.
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
for target in "${targets[@]}"; do
    mkdir -p "$scratch/$target"
    log="$scratch/$target.log"
    if ! cargo fuzz run --sanitizer none "$target" "$scratch/$target" "corpus/$target" -- \
        -max_total_time="$seconds" -timeout="$timeout_s" -print_final_stats=1 >"$log" 2>&1; then
        tail -n 80 "$log" >&2
        echo "fuzz: $target failed; the input is in fuzz/artifacts/$target/ (see fuzz/README.md)" >&2
        exit 1
    fi
    runs=$(grep -m1 -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo "?")
    echo "fuzz: $target: ${seconds}s, $runs inputs, no failure"
done
