#!/usr/bin/python3
"""Instructions per accepted message on the inbound path, under callgrind.

ringmaild (one shard) runs under `valgrind --tool=callgrind` with the inbound
checks on and a loopback DNS server that answers (tests/dns_server.py with
SPF and DMARC records for the sender). smtp-source sends 10 KiB messages to
a local domain in one session. Two runs, SMALL and LARGE messages; the
per-message figure is the difference of the two totals divided by the
difference of the counts, so start-up, recovery and shutdown cancel out.
Timings under valgrind mean nothing; instruction counts repeat to well
under 1%.

The daemon runs on the epoll backend: under valgrind 3.19 an io_uring
shard never sees the completions that worker threads post (the Maildir
syncfs), so deliveries and SIGTERM hang. Everything above the I/O seam
(parser, checks, spool, delivery) is the same code on both backends.

    bench/callgrind_accept.py [--small 200] [--large 1200] [--ringmaild PATH]
                              [--keep FILE]

--keep copies the large run's callgrind output to FILE, for
`callgrind_annotate FILE` (where the instructions go).

Loopback only. Needs valgrind and postfix's smtp-source.
"""
import argparse
import os
import pathlib
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time

TOP = pathlib.Path(__file__).resolve().parent.parent
PY = "/usr/bin/python3"

ZONE = """
src.example.        300 IN TXT "v=spf1 ip4:127.0.0.0/8 -all"
_dmarc.src.example. 300 IN TXT "v=DMARC1; p=reject"
src.example.        300 IN A   127.0.0.1
"""


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, secs=60):
    end = time.monotonic() + secs
    while time.monotonic() < end:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return True
        except OSError:
            time.sleep(0.2)
    return False


def one_run(work, ringmaild, dns_port, count, keep=None):
    d = pathlib.Path(tempfile.mkdtemp(dir=work))
    port = free_port()
    (d / "cfg.toml").write_text(f"""hostname = "mx.bench.test"
data_dir = "{d}/data"
domains_dir = "{d}/domains"
local_domains = ["example.test"]
threads = 1
[[listener]]
address = "127.0.0.1:{port}"
kind = "smtp"
[dns]
servers = "127.0.0.1:{dns_port}"
""")
    out = d / "callgrind.out"
    log = open(d / "log", "wb")
    p = subprocess.Popen(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}",
                          ringmaild, "--config", str(d / "cfg.toml"), "--threads", "1",
                          "--backend", "epoll"],
                         stdout=log, stderr=subprocess.STDOUT)
    try:
        if not wait_port(port):
            sys.exit(f"ringmaild did not start: {(d / 'log').read_text()[-400:]}")
        r = subprocess.run(["/usr/sbin/smtp-source", "-c", "-d", "-s", "1", "-m", str(count),
                            "-l", "10240", "-M", "src.example", "-f", "a@src.example",
                            "-t", "rcpt@example.test", f"127.0.0.1:{port}"],
                           capture_output=True, timeout=1200)
        if r.returncode != 0:
            sys.exit(f"smtp-source failed: {r.stderr.decode()[-400:]}")
        # Let local delivery finish before the stop, so both runs did the same work per message.
        end = time.monotonic() + 300
        while time.monotonic() < end:
            if len(list((d / "data").rglob("new/*"))) >= count:
                break
            time.sleep(0.5)
    finally:
        p.terminate()
        p.wait(timeout=120)
    text = out.read_text(errors="replace")
    m = re.search(r"^summary:\s+(\d+)", text, re.M) or re.search(r"^totals:\s+(\d+)", text, re.M)
    if not m:
        sys.exit("no callgrind summary")
    delivered = len(list((d / "data").rglob("new/*")))
    if keep:
        shutil.copyfile(out, keep)
    return int(m.group(1)), delivered


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--small", type=int, default=200)
    ap.add_argument("--large", type=int, default=1200)
    ap.add_argument("--ringmaild", default=str(TOP / "build" / "engine" / "ringmaild"))
    ap.add_argument("--keep", help="copy the large run's callgrind output here")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as work:
        zone = pathlib.Path(work) / "zone"
        zone.write_text(ZONE)
        dns = subprocess.Popen([PY, str(TOP / "tests" / "dns_server.py"), str(zone)],
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        dns_port = int(dns.stdout.readline())
        try:
            small, ds = one_run(work, a.ringmaild, dns_port, a.small)
            large, dl = one_run(work, a.ringmaild, dns_port, a.large, a.keep)
        finally:
            dns.stdin.close()
            dns.wait(timeout=10)
    per = (large - small) / (a.large - a.small)
    print(f"small: {a.small} msgs, {small} Ir, {ds} delivered")
    print(f"large: {a.large} msgs, {large} Ir, {dl} delivered")
    print(f"instructions per accepted message: {per:.0f}")


if __name__ == "__main__":
    main()
