#!/usr/bin/python3
"""How a slow DNS server shows in the accept path: ringmaild with the
inbound checks on, DNS from tests/dns_server.py answering every question
after --delay-ms (50 by default), and a different sender domain on every
message (its own SPF and DMARC records), so nothing comes from the cache.

Reports the time per message of one session (the target: one round trip
plus 10%: SPF and DMARC discovery run side by side), and the messages per
second of 20 sessions against one (the target: at least 15x: sessions
overlap their lookups). The DNS server counts the questions it got.

    bench/dns_latency.py [--messages 60] [--sessions 20] [--delay-ms 50]
                         [--ringmaild PATH] [--threads 1] [--client blaster|python]

The client is build/smtp-blaster (--from 'a@m{n}.example': message n's own
domain), or Python's smtplib on threads, which tops out near 400 msg/s
here and so hid the many-session rate.

Loopback only; the load is bounded (sessions x messages) and ends by itself.
"""
import argparse
import json
import pathlib
import smtplib
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter

TOP = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(TOP / "tests"))
from ports import free_port  # noqa: E402  (tests/ports.py)

import socket  # noqa: E402


def zone(domains):
    lines = ["helo.example. 300 IN TXT \"v=spf1 ip4:127.0.0.0/8 -all\""]
    for d in domains:
        lines.append(f'{d}. 300 IN TXT "v=spf1 ip4:127.0.0.0/8 -all"')
        lines.append(f'_dmarc.{d}. 300 IN TXT "v=DMARC1; p=none"')
    return "\n".join(lines) + "\n"


def session(port, domains, times):
    with smtplib.SMTP("127.0.0.1", port, timeout=60) as s:
        s.helo("helo.example")
        for d in domains:
            t = time.monotonic()
            s.sendmail(f"a@{d}", ["bob@example.test"], f"From: a@{d}\r\nSubject: x\r\n\r\nbody\r\n")
            times.append(time.monotonic() - t)


BLASTER = TOP / "build" / "smtp-blaster"


def blaster(port, sessions, messages, prefix):
    """smtp-blaster: `sessions` connections, `messages` each, message n
    from a@<prefix><n>.example. Returns (seconds, median transaction s)."""
    total = sessions * messages
    r = subprocess.run([str(BLASTER), "--target", f"127.0.0.1:{port}", "--connections",
                        str(sessions), "--messages", str(total), "--per-connection", str(messages),
                        "--from", f"a@{prefix}{{n}}.example", "--to", "bob@example.test", "--helo",
                        "helo.example", "--size", "300", "--json"],
                       capture_output=True, text=True, timeout=600, check=True)
    out = json.loads(r.stdout.strip().splitlines()[-1])
    if out["accepted"] != total:
        sys.exit(f"smtp-blaster: {out['accepted']} of {total} accepted: {out['codes']}")
    return out["seconds"], out["latency_s"]["p50"]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--messages", type=int, default=60, help="per session")
    ap.add_argument("--sessions", type=int, default=20)
    ap.add_argument("--delay-ms", type=int, default=50)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--ringmaild", default=str(TOP / "build/engine/ringmaild"))
    ap.add_argument("--client", choices=["blaster", "python"], default="blaster")
    a = ap.parse_args()
    work = pathlib.Path(tempfile.mkdtemp(prefix="ringmail-dnslat-"))
    n = a.messages
    if a.client == "blaster":  # message n of a run: a@m<n>.example, then a@x<n>.example
        one = [f"m{i}.example" for i in range(n)]
        many = [[f"x{k * n + i}.example" for i in range(n)] for k in range(a.sessions)]
    else:
        one = [f"s0m{i}.example" for i in range(n)]
        many = [[f"s{k + 1}m{i}.example" for i in range(n)] for k in range(a.sessions)]
    (work / "zone").write_text(zone(one + [d for s in many for d in s]))
    log = work / "questions"
    dns = subprocess.Popen(["/usr/bin/python3", str(TOP / "tests/dns_server.py"), str(work / "zone"),
                            "--log", str(log), "--delay-ms", str(a.delay_ms)],
                           stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    dns_port = int(dns.stdout.readline())
    port = free_port(socket.AF_INET, "127.0.0.1")
    (work / "domains").mkdir()
    (work / "ringmail.toml").write_text(f"""hostname = "mx.bench.example"
data_dir = "{work}/data"
domains_dir = "{work}/domains"
local_domains = ["example.test"]
threads = {a.threads}
[[listener]]
address = "127.0.0.1:{port}"
kind = "smtp"
[dns]
servers = "127.0.0.1:{dns_port}"
""")
    rm = subprocess.Popen([a.ringmaild, "--config", str(work / "ringmail.toml")],
                          stdout=subprocess.DEVNULL, stderr=open(work / "log", "wb"))
    try:
        for _ in range(200):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.05)
        if a.client == "blaster":
            # Time per message: the session's time over its messages (the
            # blaster's own latency starts a message's clock when its MAIL is
            # pipelined behind the previous message's data, before that one's
            # reply).
            secs, _ = blaster(port, 1, n, "m")
            single_rate = n / secs
            per_msg = secs / n
            secs, _ = blaster(port, a.sessions, n, "x")
            multi_rate = a.sessions * n / secs
        else:
            times = []
            t = time.monotonic()
            session(port, one, times)
            single_rate = n / (time.monotonic() - t)
            times.sort()
            per_msg = times[len(times) // 2]
            all_times = []
            threads = [threading.Thread(target=session, args=(port, doms, all_times))
                       for doms in many]
            t = time.monotonic()
            for th in threads:
                th.start()
            for th in threads:
                th.join()
            multi_rate = a.sessions * n / (time.monotonic() - t)
    finally:
        rm.terminate()
        rm.wait(timeout=30)
        dns.stdin.close()
        dns.wait(timeout=10)
    asked = Counter(line.split()[0] for line in log.read_text().splitlines())
    print(f"DNS delay {a.delay_ms} ms, {a.threads} shard(s), a new sender domain per message, "
          f"client {a.client}")
    how = "median" if a.client == "python" else "mean"
    print(f"one session: {how} {per_msg * 1000:.1f} ms per message "
          f"({per_msg * 1000 / a.delay_ms:.2f} round trips), {single_rate:.1f} msg/s")
    print(f"{a.sessions} sessions: {multi_rate:.1f} msg/s = {multi_rate / single_rate:.1f}x one session")
    print(f"questions at the DNS server: {dict(asked)} for {n * (1 + a.sessions)} messages")


if __name__ == "__main__":
    main()
