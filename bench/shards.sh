#!/bin/bash
# bench/shards.sh - how many shards: ringmaild with 1 and with 2 (or
# $SHARDS) shards against smtp-sink, in interleaved rounds of accept.sh
# (inbound checks on, DNS from a loopback tests/dns_server.py), medians.
#
#   bench/shards.sh [ROUNDS]            # default 3
#   PIN=1 bench/shards.sh               # smtp-source on CPU 1 only
#   SHARDS="1 2 4" bench/shards.sh
#
# With PIN=1 the load generator runs on the last CPU (taskset), so it
# competes less with a one-shard server (which the kernel is free to run
# on the others). Prints per round the accept.sh RESULT lines, then for
# each shard count and scenario the median msg/s, its ratio to the
# sink's median, the CPU seconds per 1,000 messages and the RSS.
# Loopback only; bounded by accept.sh's message counts.
set -euo pipefail
TOP=$(cd "$(dirname "$0")/.." && pwd)
ROUNDS=${1:-3}
SHARDS=${SHARDS:-"1 2"}
export QUIET_S=${QUIET_S:-5}
OUT=$(mktemp -d "${TMPDIR:-/tmp}/ringmail-shards.XXXXXX")
trap 'rm -rf "$OUT"' EXIT

if [[ ${PIN:-0} == 1 ]]; then
    last=$(($(nproc) - 1))
    printf '#!/bin/sh\nexec taskset -c %s /usr/sbin/smtp-source "$@"\n' "$last" >"$OUT/smtp-source"
    chmod +x "$OUT/smtp-source"
    export SMTP_SOURCE=$OUT/smtp-source
fi

for ((r = 0; r < ROUNDS; r++)); do
    for t in $SHARDS; do
        RINGMAIL_THREADS=$t SERVERS=ringmail "$TOP/bench/accept.sh" 2>/dev/null |
            grep '^RESULT' | sed "s/server=ringmail/server=ringmail-t$t/" | tee -a "$OUT/results"
    done
    SERVERS=sink "$TOP/bench/accept.sh" 2>/dev/null | grep '^RESULT' | tee -a "$OUT/results"
done

/usr/bin/python3 - "$OUT/results" <<'PYEOF'
import re
import statistics
import sys

rows = {}
for line in open(sys.argv[1]):
    f = dict(re.findall(r"(\w+)=(\S+)", line))
    if f.get("status") != "ok":
        continue
    rows.setdefault((f["server"], f["scenario"]), []).append(f)


def med(vals, key):
    xs = [float(v[key]) for v in vals if v.get(key) not in (None, "", "-")]
    return statistics.median(xs) if xs else float("nan")


for (server, scen), vals in sorted(rows.items()):
    sink = rows.get(("sink", scen))
    rate = med(vals, "msg_per_s")
    ratio = rate / med(sink, "msg_per_s") if sink else float("nan")
    print(f"MEDIAN server={server} scenario={scen} rounds={len(vals)} msg_per_s={rate:.0f} "
          f"of_sink={ratio:.2f} cpu_s_per_1000={med(vals, 'cpu_s_per_1000'):.3f} "
          f"rss_kb={med(vals, 'rss_kb'):.0f}")
PYEOF
