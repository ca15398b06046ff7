#!/usr/bin/env bash
# bench/tls.sh - TLS 1.3 handshakes per second and server CPU per handshake:
# ringmaild built with the bundled wolfSSL (assembly) against ringmaild built
# with Debian's libwolfssl, and OpenSSL's s_server as a reference, in one run,
# with an ECDSA P-256 and an RSA-2048 certificate.
#
# Load: `openssl s_time -new` (a full handshake per connection, no session
# reuse) against the implicit-TLS ("submissions") port, loopback only,
# bounded by SECONDS_PER_RUN. Run from the checkout after `tools/dev build`;
# the system-wolfSSL build is made in build-syswolfssl/ when missing.
set -uo pipefail

TOP=$(cd "$(dirname "$0")/.." && pwd)
SECS=${SECONDS_PER_RUN:-8}
THREADS=${RINGMAIL_THREADS:-1}
BUNDLED=${RINGMAILD:-$TOP/build/engine/ringmaild}
SYSDIR=${SYSTEM_BUILD_DIR:-$TOP/build-syswolfssl}
CLK_TCK=$(getconf CLK_TCK)
PY=/usr/bin/python3

log() { printf '# %s\n' "$*" >&2; }
die() { printf '# ERROR: %s\n' "$*" >&2; exit 1; }

command -v openssl >/dev/null || die "missing openssl"
[[ -x $BUNDLED ]] || die "build first (tools/dev build): $BUNDLED"
if [[ ! -x $SYSDIR/engine/ringmaild ]]; then
    log "building ringmaild with the system wolfSSL in $SYSDIR"
    if [[ ! -f $SYSDIR/build.ninja ]]; then
        meson setup "$SYSDIR" "$TOP" --buildtype=debugoptimized -Dwolfssl=system \
            -Dtests=false -Dbenchmarks=false >/dev/null || die "meson setup failed"
    fi
    ninja -C "$SYSDIR" engine/ringmaild >/dev/null || die "build with the system wolfSSL failed"
fi
SYSTEM=$SYSDIR/engine/ringmaild

WORK=$(mktemp -d "${TMPDIR:-/tmp}/ringmail-tls-bench.XXXXXX")
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
    wait 2>/dev/null
    rm -rf "$WORK"
}
trap cleanup EXIT

free_port() {
    "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
wait_port() {
    local i
    for ((i = 0; i < 100; i++)); do
        (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
        sleep 0.1
    done
    return 1
}
ticks() {
    local s
    s=$(<"/proc/$1/stat") || { echo 0; return; }
    s=${s##*) }
    # shellcheck disable=SC2206
    local f=($s)
    echo $((f[11] + f[12]))
}

for kind in ecdsa rsa; do
    d=$WORK/certs-$kind/bench.example.test
    mkdir -p "$d"
    if [[ $kind == ecdsa ]]; then key=(-newkey ec -pkeyopt ec_paramgen_curve:P-256); else key=(-newkey rsa:2048); fi
    openssl req -x509 "${key[@]}" -nodes -days 30 -keyout "$d/privkey.pem" -out "$d/fullchain.pem" \
        -subj /CN=bench.example.test -addext subjectAltName=DNS:bench.example.test >/dev/null 2>&1 \
        || die "openssl req failed"
done

start_ringmaild() {  # start_ringmaild BINARY KIND -> sets SRV_PID SRV_PORT
    local bin=$1 kind=$2 dir=$WORK/rm-$RANDOM
    mkdir -p "$dir"
    SRV_PORT=$(free_port)
    cat >"$dir/cfg.toml" <<EOF
hostname = "bench.example.test"
data_dir = "$dir/data"
local_domains = ["example.test"]
domains_dir = "$dir/domains"
threads = $THREADS
[[listener]]
address = "127.0.0.1:$(free_port)"
kind = "smtp"
[[listener]]
address = "127.0.0.1:$SRV_PORT"
kind = "submissions"
[tls]
cert_dirs = ["$WORK/certs-$kind"]
EOF
    "$bin" --config "$dir/cfg.toml" >"$dir/log" 2>&1 &
    SRV_PID=$!
    PIDS+=("$SRV_PID")
    wait_port "$SRV_PORT" || die "ringmaild did not start: $(tail -n 5 "$dir/log")"
}

start_s_server() {  # start_s_server KIND
    local d=$WORK/certs-$1/bench.example.test
    SRV_PORT=$(free_port)
    openssl s_server -quiet -tls1_3 -accept "127.0.0.1:$SRV_PORT" -cert "$d/fullchain.pem" \
        -key "$d/privkey.pem" -naccept 1000000 </dev/null >/dev/null 2>&1 &
    SRV_PID=$!
    PIDS+=("$SRV_PID")
    wait_port "$SRV_PORT" || die "s_server did not start"
}

run() {  # run NAME KIND
    local name=$1 kind=$2 c0 c1 out n
    c0=$(ticks "$SRV_PID")
    out=$(openssl s_time -connect "127.0.0.1:$SRV_PORT" -new -tls1_3 -time "$SECS" 2>&1)
    c1=$(ticks "$SRV_PID")
    n=$(printf '%s\n' "$out" | awk '/connections in/ && /real seconds/ {print $1; exit}')
    n=${n:-0}
    local rate cpu
    rate=$(awk -v n="$n" -v s="$SECS" 'BEGIN {printf "%.0f", n / s}')
    cpu=$(awk -v d="$((c1 - c0))" -v hz="$CLK_TCK" -v n="$n" \
        'BEGIN {if (n > 0) printf "%.3f", d / hz / n * 1000; else print "-"}')
    printf 'RESULT server=%s cert=%s handshakes=%s per_s=%s server_cpu_ms_per_handshake=%s\n' \
        "$name" "$kind" "$n" "$rate" "$cpu"
    kill "$SRV_PID" 2>/dev/null
    wait "$SRV_PID" 2>/dev/null
}

log "TLS 1.3 full handshakes, ${SECS}s per run, $THREADS shard(s), $(nproc) cpus"
for kind in ecdsa rsa; do
    start_ringmaild "$BUNDLED" "$kind"; run ringmail-bundled "$kind"
    start_ringmaild "$SYSTEM" "$kind"; run ringmail-system "$kind"
    start_s_server "$kind"; run openssl-s_server "$kind"
done
