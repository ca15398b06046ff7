#!/usr/bin/env bash
# bench/accept.sh - inbound SMTP accept throughput: ringmaild vs a private
# (durable, fsyncing) Postfix instance vs Postfix's smtp-sink (no storage).
#
# Load generator: Postfix smtp-source, 10 KiB messages, loopback only.
# Scenarios (per server):
#   multi_per_session : SESSIONS parallel sessions, many messages per session (-d)
#   one_per_session   : SESSIONS parallel sessions, one message per session
#
# Run as root (Postfix needs it).  See bench/README.md for all knobs.
set -uo pipefail

# ---------------------------------------------------------------- settings
TOP=$(cd "$(dirname "$0")/.." && pwd)
RINGMAILD=${RINGMAILD:-$TOP/build/engine/ringmaild}
RINGMAIL_THREADS=${RINGMAIL_THREADS:-2}
RINGMAILD_ARGS=${RINGMAILD_ARGS:-}          # extra flags, e.g. "--backend epoll"
RINGMAIL_TOML=${RINGMAIL_TOML:-}            # extra config lines, e.g. $'[limits]\ndelivery_sync_delay_ms = 200'
RINGMAIL_ALIAS=${RINGMAIL_ALIAS-rm-bench-d}  # run a copy under this name ("" = run $RINGMAILD itself)
SINK_ALIAS=${SINK_ALIAS-bench-sink}          # likewise for smtp-sink
# ringmail: inbound checks on (SPF, DMARC) with a loopback DNS server that
# answers (tests/dns_server.py): what users run. ringmail-nodns: the same
# with DNS at a closed port (the lookups fail at once): the SMTP and spool
# path alone.
SERVERS=${SERVERS:-"ringmail ringmail-nodns postfix sink"}  # subset/order to run
SESSIONS=${SESSIONS:-10}
MSG_BYTES=${MSG_BYTES:-10240}
MSGS=${MSGS:-20000}                          # multi_per_session, ringmail + sink
MSGS_CONN=${MSGS_CONN:-10000}                # one_per_session,   ringmail + sink
PF_MSGS=${PF_MSGS:-6000}                     # multi_per_session, postfix
PF_MSGS_CONN=${PF_MSGS_CONN:-4000}           # one_per_session,   postfix
MAX_SECS=${MAX_SECS:-20}                     # time budget per smtp-source run
SETTLE_MAX=${SETTLE_MAX:-15}                 # max wait for the server to go idle
QUIET_S=${QUIET_S:-15}                       # sync, then this long, before every run
PF_IN_FLOW_DELAY=${PF_IN_FLOW_DELAY:-1s}     # Postfix default; 0 = no arrival throttling
HOST=127.0.0.1
FROM=a@src.example
RCPT=rcpt@example.test
SCENARIOS=(multi_per_session one_per_session)

SMTP_SOURCE=${SMTP_SOURCE:-/usr/sbin/smtp-source}
SMTP_SINK=${SMTP_SINK:-/usr/sbin/smtp-sink}
PY=/usr/bin/python3
CLK_TCK=$(getconf CLK_TCK)

log()  { printf '# %s\n' "$*" >&2; }
warn() { printf '# WARNING: %s\n' "$*" >&2; }
die()  { printf '# ERROR: %s\n' "$*" >&2; exit 1; }

[[ $(id -u) == 0 ]] || die "run as root (private Postfix instance and smtp-sink -u need it)"
for t in "$SMTP_SOURCE" "$SMTP_SINK" /usr/sbin/postfix /usr/sbin/postconf "$PY" timeout; do
    command -v "$t" >/dev/null || die "missing tool: $t"
done

WORK=$(mktemp -d "${BENCH_TMPDIR:-${TMPDIR:-/tmp}}/ringmail-accept.XXXXXX") || die "mktemp failed"
chmod 755 "$WORK"   # the Postfix daemons run as user postfix and must reach their queue

# ---------------------------------------------------------------- cleanup
RM_PID=""; SINK_PID=""; PF_ETC=""; PF_STARTED=0; DNS_PID=""; DNS_FD=""
stop_ringmail() {
    [[ -n $RM_PID ]] || return 0
    if kill -0 "$RM_PID" 2>/dev/null; then
        kill -TERM "$RM_PID" 2>/dev/null
        local i
        for ((i = 0; i < 350; i++)); do kill -0 "$RM_PID" 2>/dev/null || break; sleep 0.1; done
        if kill -0 "$RM_PID" 2>/dev/null; then
            warn "ringmaild did not exit 35 s after SIGTERM; SIGKILL"
            kill -KILL "$RM_PID" 2>/dev/null
        fi
    fi
    wait "$RM_PID" 2>/dev/null
    RM_PID=""
}
stop_dns() {
    [[ -n $DNS_PID ]] || return 0
    exec {DNS_FD}>&-
    kill -TERM "$DNS_PID" 2>/dev/null
    wait "$DNS_PID" 2>/dev/null
    DNS_PID=""
}
stop_sink() {
    [[ -n $SINK_PID ]] || return 0
    kill -TERM "$SINK_PID" 2>/dev/null
    wait "$SINK_PID" 2>/dev/null
    SINK_PID=""
}
pf_master_pid() {
    local f=$WORK/postfix/queue/pid/master.pid p
    [[ -r $f ]] || return 1
    p=$(tr -dc '0-9' <"$f")
    [[ -n $p ]] && kill -0 "$p" 2>/dev/null && echo "$p"
}
stop_postfix() {
    [[ $PF_STARTED == 1 ]] || return 0
    local mpid kids p i
    mpid=$(pf_master_pid) || mpid=""
    kids=$( [[ -n $mpid ]] && children_of "$mpid" )
    /usr/sbin/postfix -c "$PF_ETC" stop >/dev/null 2>&1   # waits for master to exit
    if [[ -n $mpid ]]; then
        for ((i = 0; i < 100; i++)); do kill -0 "$mpid" 2>/dev/null || break; sleep 0.1; done
        if kill -0 "$mpid" 2>/dev/null; then
            warn "postfix stop did not finish; postfix abort"
            /usr/sbin/postfix -c "$PF_ETC" abort >/dev/null 2>&1
            sleep 1
            kill -KILL "$mpid" 2>/dev/null
        fi
    fi
    for p in $kids; do          # only the pids that were children of *our* master
        kill -0 "$p" 2>/dev/null && kill -KILL "$p" 2>/dev/null
    done
    PF_STARTED=0
}
cleanup() {
    local rc=$?
    trap - EXIT INT TERM HUP
    stop_ringmail
    stop_sink
    stop_dns
    stop_postfix
    if [[ -n ${KEEP_WORK:-} ]]; then log "keeping $WORK"; else rm -rf "$WORK"; fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

# ---------------------------------------------------------------- helpers
free_port() {
    "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
# wait_port PORT SECS [PID]: until a TCP connect succeeds (and PID is alive)
wait_port() {
    local port=$1 secs=$2 pid=${3:-} i
    for ((i = 0; i < secs * 10; i++)); do
        [[ -n $pid ]] && ! kill -0 "$pid" 2>/dev/null && return 1
        if (exec 3<>"/dev/tcp/$HOST/$port") 2>/dev/null; then return 0; fi
        sleep 0.1
    done
    return 1
}
# /proc/PID/stat fields after "(comm) ": [0]=state [1]=ppid ... [11]=utime
# [12]=stime [13]=cutime [14]=cstime (all in clock ticks)
stat_rest() {
    local s
    { s=$(<"/proc/$1/stat"); } 2>/dev/null || return 1
    echo "${s##*) }"
}
# own + reaped-children CPU ticks of one process
proc_ticks() {
    local r
    # shellcheck disable=SC2207
    r=($(stat_rest "$1")) || { echo 0; return; }
    echo $((r[11] + r[12] + r[13] + r[14]))
}
children_of() {
    local f r
    for f in /proc/[0-9]*/stat; do
        # shellcheck disable=SC2207
        r=($(stat_rest "${f:6:-5}" 2>/dev/null)) || continue
        [[ ${r[1]:-} == "$1" ]] && echo "${f:6:-5}"
    done
}
# Postfix: master's own + cutime/cstime (all reaped daemons) + live daemons.
pf_ticks() {
    local m t p
    m=$(pf_master_pid) || { echo 0; return; }
    t=$(proc_ticks "$m")
    for p in $(children_of "$m"); do t=$((t + $(proc_ticks "$p"))); done
    echo "$t"
}
server_ticks() {
    case $CUR in
        ringmail*) proc_ticks "$RM_PID" ;;
        sink) proc_ticks "$SINK_PID" ;;
        postfix) pf_ticks ;;
    esac
}
server_alive() {
    case $CUR in
        ringmail*) kill -0 "$RM_PID" 2>/dev/null ;;
        sink) kill -0 "$SINK_PID" 2>/dev/null ;;
        postfix) pf_master_pid >/dev/null ;;
    esac
}
exit_note() {  # exit_note NAME PID: reap a dead child and say how it ended
    local st
    wait "$2" 2>/dev/null; st=$?
    if ((st > 128)); then
        warn "$1 was killed by signal $((st - 128)) (SIG$(kill -l $((st - 128)))); log tail:"
    else
        warn "$1 exited with status $st; log tail:"
    fi
}
server_log_tail() {
    case $CUR in
        ringmail*)
            exit_note ringmaild "$RM_PID"
            tail -n 15 "$WORK/$CUR/ringmaild.log" >&2 ;;
        sink)
            exit_note smtp-sink "$SINK_PID"
            tail -n 5 "$WORK/sink.log" >&2 ;;
        postfix) tail -n 15 "$WORK/postfix/maillog" >&2 ;;
    esac
}
status_kb() { awk -v k="$2:" '$1 == k {print $2}' "/proc/$1/status" 2>/dev/null; }
# memory figure per server: VmHWM (peak RSS since start) for single processes,
# sum of Pss over the live processes of the instance for Postfix.
server_mem_kb() {
    case $CUR in
        ringmail*) status_kb "$RM_PID" VmHWM ;;
        sink) status_kb "$SINK_PID" VmHWM ;;
        postfix)
            local m p s=0 v
            m=$(pf_master_pid) || { echo -; return; }
            for p in $m $(children_of "$m"); do
                v=$(awk '$1 == "Pss:" {print $2}' "/proc/$p/smaps_rollup" 2>/dev/null)
                s=$((s + ${v:-0}))
            done
            echo "$s" ;;
    esac
}
pf_queue_busy() {
    [[ $CUR == postfix ]] || return 1
    local q=$WORK/postfix/queue
    [[ -n $(find "$q/incoming" "$q/active" "$q/maildrop" -type f -print -quit 2>/dev/null) ]]
}
# wait until the server has stopped burning CPU (post-accept work such as
# queue delivery is part of the cost) - at most SETTLE_MAX seconds.
settle() {
    local prev cur still=0 end=$((SECONDS + SETTLE_MAX))
    prev=$(server_ticks)
    while ((SECONDS < end)); do
        sleep 0.25
        cur=$(server_ticks)
        if ((cur - prev <= 1)) && ! pf_queue_busy; then
            ((++still >= 2)) && return 0
        else
            still=0
        fi
        prev=$cur
    done
    warn "$CUR did not go idle within ${SETTLE_MAX}s"
}

declare -A R_MPS R_CPU R_LINE
ORDER=()
run_scenario() {   # run_scenario PORT SCENARIO COUNT
    local port=$1 sc=$2 count=$3 t0 t1 t2 rc msgs secs mps cpu mem status c0 c1 done_s
    local out=$WORK/source.out err=$WORK/source.err
    local args=(-c -s "$SESSIONS" -m "$count" -l "$MSG_BYTES" -M src.example -f "$FROM" -t "$RCPT")
    [[ $sc == multi_per_session ]] && args+=(-d)
    settle
    c0=$(server_ticks)
    t0=$(date +%s%N)
    timeout --foreground -s INT "$MAX_SECS" "$SMTP_SOURCE" "${args[@]}" "$HOST:$port" >"$out" 2>"$err"
    rc=$?
    t1=$(date +%s%N)
    # Ctrl-C: timeout exits 130 (not by the signal), so bash would not run its INT trap
    ((rc == 130 || rc == 143)) && { warn "interrupted"; exit "$rc"; }
    local alive=1
    server_alive || alive=0
    ((alive)) && settle
    t2=$(date +%s%N)
    c1=$(server_ticks)
    mem=$(server_mem_kb); mem=${mem:--}
    server_alive || alive=0
    msgs=$(tr '\r' '\n' <"$out" | grep -E '^[0-9]+$' | tail -n 1)
    msgs=${msgs:-0}
    case $rc in
        0) status=ok ;;
        124) status=time_budget ;;
        *) status=error; warn "smtp-source rc=$rc against $CUR: $(tail -n 3 "$err" | tr '\n' ' ')" ;;
    esac
    if ((!alive)); then
        status=server_died; c1=$c0; mem=-
        warn "$CUR is no longer running"
        server_log_tail
    fi
    secs=$(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.3f", (b - a) / 1e9}')
    # until the server went idle again (all queued work done), less the 0.5 s
    # settle() needs to see it idle
    done_s=$(awk -v a="$t0" -v b="$t2" 'BEGIN {d = (b - a) / 1e9 - 0.5; printf "%.2f", (d > 0 ? d : 0)}')
    mps=$(awk -v m="$msgs" -v s="$secs" 'BEGIN {printf "%.1f", (s > 0 ? m / s : 0)}')
    cpu=$(awk -v d="$((c1 - c0))" -v hz="$CLK_TCK" -v m="$msgs" \
        'BEGIN {if (m > 0) printf "%.3f", d / hz / m * 1000; else print "-"}')
    if [[ $status != error && $msgs -gt 0 ]]; then
        R_MPS[$CUR:$sc]=$mps; R_CPU[$CUR:$sc]=$cpu
    fi
    R_LINE[$CUR:$sc]="$CUR $sc $msgs $secs $mps $done_s $cpu $mem $status"
    ORDER+=("$CUR:$sc")
    echo "RESULT server=$CUR scenario=$sc msgs=$msgs secs=$secs msg_per_s=$mps idle_after_s=$done_s cpu_s_per_1000=$cpu rss_kb=$mem status=$status"
}
counts_for() {  # counts_for SERVER SCENARIO
    if [[ $1 == postfix ]]; then
        [[ $2 == multi_per_session ]] && echo "$PF_MSGS" || echo "$PF_MSGS_CONN"
    else
        [[ $2 == multi_per_session ]] && echo "$MSGS" || echo "$MSGS_CONN"
    fi
}
# Every run starts on a quiet disk: the previous run's dirty pages written
# back and no deletions in flight (on this kind of virtual disk, writeback and
# the discards of deleted files slow the next run by up to 2x, whichever
# server it measures). Work directories are removed only at the very end.
quiet_disk() {
    sync
    sleep "$QUIET_S"
}

run_all_scenarios() {
    local port=$1 sc
    for sc in "${SCENARIOS[@]}"; do
        quiet_disk
        run_scenario "$port" "$sc" "$(counts_for "$CUR" "$sc")"
    done
}

# ---------------------------------------------------------------- (a) ringmaild
bench_ringmail() {  # bench_ringmail checks|nodns
    CUR=ringmail
    [[ $1 == nodns ]] && CUR=ringmail-nodns
    if [[ ! -x $RINGMAILD ]]; then
        warn "ringmaild not found at $RINGMAILD - skipped"
        return
    fi
    local d=$WORK/$CUR port cfg dns=127.0.0.1:9
    mkdir -p "$d/data" "$d/domains"
    if [[ $1 == checks ]]; then
        # SPF pass and a DMARC record for the sender; every other name (the
        # HELO name) answers NXDOMAIN with a SOA, as a real server does.
        cat >"$d/zone" <<EOF
. 300 IN SOA ns.bench.test. admin.bench.test. 1 7200 900 1209600 300
src.example. 300 IN TXT "v=spf1 ip4:127.0.0.0/8 -all"
_dmarc.src.example. 300 IN TXT "v=DMARC1; p=reject"
EOF
        # It serves until its standard input closes: a FIFO we hold open.
        mkfifo "$d/dns.in"
        "$PY" "$TOP/tests/dns_server.py" "$d/zone" --log "$d/questions" <"$d/dns.in" >"$d/dns.port" &
        DNS_PID=$!
        exec {DNS_FD}>"$d/dns.in"
        local dns_port="" i
        for ((i = 0; i < 100; i++)); do
            dns_port=$(head -n 1 "$d/dns.port" 2>/dev/null)
            [[ -n $dns_port ]] && break
            sleep 0.1
        done
        [[ -n $dns_port ]] || { warn "tests/dns_server.py did not start"; stop_dns; return; }
        dns=127.0.0.1:$dns_port
    fi
    port=$(free_port)
    cfg=$d/bench.toml
    cat >"$cfg" <<EOF
hostname = "ringmail-bench.example.test"
data_dir = "$d/data"
domains_dir = "$d/domains"
local_domains = ["example.test"]

[[listener]]
address = "$HOST:$port"
kind = "smtp"

# checks: SPF and DMARC asked of a loopback DNS server that answers;
# nodns: of a closed loopback port (they fail at once).
[dns]
servers = "$dns"
EOF
    [[ -z $RINGMAIL_TOML ]] || printf '%s\n' "$RINGMAIL_TOML" >>"$cfg"
    if ! "$RINGMAILD" --check-config --config "$cfg" >"$d/check.log" 2>&1; then
        warn "ringmaild --check-config rejected the config: $(head -n 3 "$d/check.log")"
        return
    fi
    # Run a private copy under a neutral name: on a shared box a broad
    # "pkill ringmaild" from another session must not stop the benchmark
    # (it did, mid-run). Same binary, same arguments.
    local exe=$RINGMAILD
    if [[ -n $RINGMAIL_ALIAS ]]; then
        exe=$d/$RINGMAIL_ALIAS
        cp "$RINGMAILD" "$exe" || { warn "cannot copy $RINGMAILD"; return; }
    fi
    # shellcheck disable=SC2086
    "$exe" --config "$cfg" --threads "$RINGMAIL_THREADS" $RINGMAILD_ARGS >"$d/ringmaild.log" 2>&1 &
    RM_PID=$!
    if ! wait_port "$port" 15 "$RM_PID"; then
        warn "ringmaild did not accept connections on $HOST:$port; log tail:"
        tail -n 20 "$d/ringmaild.log" >&2
        stop_ringmail
        return
    fi
    log "ringmaild pid $RM_PID on $HOST:$port ($RINGMAILD${RINGMAIL_ALIAS:+ run as $exe} --threads $RINGMAIL_THREADS $RINGMAILD_ARGS), DNS $dns"
    run_all_scenarios "$port"
    stop_ringmail
    if [[ -n $DNS_PID ]]; then
        stop_dns
        log "DNS questions during $CUR: $(sort "$d/questions" | uniq -c | tr -s ' ' | tr '\n' ';')"
    fi
}

# ---------------------------------------------------------------- (b) postfix
bench_postfix() {
    CUR=postfix
    local d=$WORK/postfix port
    PF_ETC=$d/etc
    mkdir -p "$d/etc" "$d/queue" "$d/data"
    port=$(free_port)
    # master.cf: stock one, smtpd on our loopback port, nothing chrooted
    awk -v svc="$HOST:$port" '$1 == "smtp" && $2 == "inet" {$1 = svc} {print}' \
        /etc/postfix/master.cf >"$d/etc/master.cf"
    cat >"$d/etc/main.cf" <<EOF
# throwaway benchmark instance (bench/accept.sh)
compatibility_level = 3.6
queue_directory = $d/queue
data_directory = $d/data
mail_owner = postfix
setgid_group = postdrop
myhostname = postfix-bench.example.test
mydomain = example.test
myorigin = \$myhostname
mydestination = example.test
inet_interfaces = $HOST
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
local_recipient_maps =
alias_maps =
alias_database =
local_transport = discard:
default_transport = discard:
relay_transport = discard:
smtpd_peername_lookup = no
smtp_dns_support_level = disabled
smtp_host_lookup = native
smtpd_tls_security_level = none
biff = no
append_dot_mydomain = no
in_flow_delay = $PF_IN_FLOW_DELAY
maillog_file_prefixes = $d
maillog_file = $d/maillog
EOF
    /usr/sbin/postconf -c "$d/etc" -F '*/*/chroot = n' || { warn "postconf -F failed"; return; }
    chown postfix: "$d/data"
    # 'check' creates the queue subdirectories with the right owners/modes
    if ! /usr/sbin/postfix -c "$d/etc" check >/dev/null 2>&1; then
        warn "postfix check failed; maillog:"; tail -n 20 "$d/maillog" >&2 2>/dev/null; return
    fi
    PF_STARTED=1
    if ! /usr/sbin/postfix -c "$d/etc" start >/dev/null 2>&1 || ! wait_port "$port" 15; then
        warn "private postfix did not start; maillog:"; tail -n 20 "$d/maillog" >&2 2>/dev/null
        stop_postfix; return
    fi
    log "postfix master pid $(pf_master_pid) on $HOST:$port (config $d/etc, in_flow_delay=$PF_IN_FLOW_DELAY)"
    run_all_scenarios "$port"
    if grep -qE 'fatal:|panic:' "$d/maillog"; then
        warn "postfix logged errors:"; grep -E 'fatal:|panic:' "$d/maillog" | tail -n 5 >&2
    fi
    stop_postfix
}

# ---------------------------------------------------------------- (c) smtp-sink
bench_sink() {
    CUR=sink
    local port
    port=$(free_port)
    local exe=$SMTP_SINK
    if [[ -n $SINK_ALIAS ]]; then   # same reason as RINGMAIL_ALIAS
        exe=$WORK/$SINK_ALIAS
        cp "$SMTP_SINK" "$exe" || { warn "cannot copy $SMTP_SINK"; return; }
    fi
    "$exe" -u postfix "$HOST:$port" 1000 >"$WORK/sink.log" 2>&1 &
    SINK_PID=$!
    if ! wait_port "$port" 10 "$SINK_PID"; then
        warn "smtp-sink did not start"; cat "$WORK/sink.log" >&2; stop_sink; return
    fi
    log "smtp-sink pid $SINK_PID on $HOST:$port${SINK_ALIAS:+ (copy run as $exe)}"
    run_all_scenarios "$port"
    stop_sink
}

# ---------------------------------------------------------------- main
log "accept benchmark: $SESSIONS sessions, ${MSG_BYTES}-byte payload, budget ${MAX_SECS}s/run, work dir $WORK"
log "host: $(nproc) cpus, load $(cut -d' ' -f1-3 /proc/loadavg), kernel $(uname -r)"
for s in $SERVERS; do
    case $s in
        ringmail) bench_ringmail checks ;;
        ringmail-nodns) bench_ringmail nodns ;;
        postfix) bench_postfix ;;
        sink) bench_sink ;;
        *) die "unknown server '$s' in SERVERS" ;;
    esac
done

echo
printf '%-14s %-18s %8s %8s %10s %8s %13s %10s %s\n' server scenario msgs secs msg/s idle_s cpu_s/1000msg mem_kb status
printf '%-14s %-18s %8s %8s %10s %8s %13s %10s %s\n' -------------- ------------------ -------- -------- ---------- -------- ------------- ---------- ------
for k in "${ORDER[@]}"; do
    # shellcheck disable=SC2086
    printf '%-14s %-18s %8s %8s %10s %8s %13s %10s %s\n' ${R_LINE[$k]}
done
echo "(idle_s: from the start until the server went idle again, queued deliveries done;
 mem_kb: ringmail/sink = VmHWM of the process; postfix = sum of Pss over the instance's live processes)"

ratio() {  # ratio A B -> A/B or n/a
    if [[ -n ${1:-} && -n ${2:-} && $1 != - && $2 != - ]]; then
        awk -v a="$1" -v b="$2" 'BEGIN {if (b > 0) printf "%.2f", a / b; else print "n/a"}'
    else
        echo n/a
    fi
}
echo
printf '%-18s %22s %22s %22s %22s\n' scenario "msg/s ringmail/postfix" "msg/s ringmail/sink" "cpu ringmail/postfix" "cpu ringmail/sink"
for sc in "${SCENARIOS[@]}"; do
    printf '%-18s %22s %22s %22s %22s\n' "$sc" \
        "$(ratio "${R_MPS[ringmail:$sc]:-}" "${R_MPS[postfix:$sc]:-}")" \
        "$(ratio "${R_MPS[ringmail:$sc]:-}" "${R_MPS[sink:$sc]:-}")" \
        "$(ratio "${R_CPU[ringmail:$sc]:-}" "${R_CPU[postfix:$sc]:-}")" \
        "$(ratio "${R_CPU[ringmail:$sc]:-}" "${R_CPU[sink:$sc]:-}")"
done
echo "(msg/s ratio > 1: ringmail faster; cpu ratio < 1: ringmail uses less server CPU per message;
 ringmail = inbound checks on with a DNS server that answers)"
echo
printf '%-18s %22s %22s\n' scenario "msg/s nodns/sink" "msg/s checks/nodns"
for sc in "${SCENARIOS[@]}"; do
    printf '%-18s %22s %22s\n' "$sc" \
        "$(ratio "${R_MPS[ringmail-nodns:$sc]:-}" "${R_MPS[sink:$sc]:-}")" \
        "$(ratio "${R_MPS[ringmail:$sc]:-}" "${R_MPS[ringmail-nodns:$sc]:-}")"
done
