#!/usr/bin/python3
"""Floods against ringmaild on loopback (docs/reliability.md): does it keep
answering, does its memory stay bounded, do clients past the limits get a
421 rather than a hang?

    bench/flood.py [--ringmaild build/engine/ringmaild] [--connections 20000]

Starts its own ringmaild (2 shards, default limits but command_timeout_s =
10, data_timeout_s = 10) and runs, one after the other:
  spread     N connections from 40 loopback addresses, held idle
  one-addr   N connections from one address
  slowloris  2,000 connections (40 addresses) sending a byte a second
  storm      N connect-and-close, as fast as they go
  pipelined  500,000 pipelined NOOP/RSET/MAIL lines over 50 connections
while a probe from another address connects twice a second and times its
220. Per phase it prints how many got 220, 421 or nothing (within 10 s),
the probe's worst wait and the daemon's peak RSS. Every load is bounded
and stops by itself; only loopback addresses are used.
"""
import argparse
import os
import resource
import selectors
import socket
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def rss_kb(pid):
    try:
        for line in open(f"/proc/{pid}/status"):
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


class Probe(threading.Thread):
    """Connects from 127.0.0.254 twice a second; keeps the worst 220 wait."""

    def __init__(self, port, pid):
        super().__init__(daemon=True)
        self.port, self.pid = port, pid
        self.worst = 0.0
        self.failures = 0
        self.peak_rss = 0
        self.stop = threading.Event()

    def run(self):
        while not self.stop.is_set():
            t0 = time.monotonic()
            try:
                s = socket.socket()
                s.settimeout(10)
                s.bind(("127.0.0.254", 0))
                s.connect(("127.0.0.1", self.port))
                line = s.recv(100)
                s.close()
                if not line.startswith(b"220"):
                    self.failures += 1
            except OSError:
                self.failures += 1
            self.worst = max(self.worst, time.monotonic() - t0)
            self.peak_rss = max(self.peak_rss, rss_kb(self.pid))
            self.stop.wait(0.5)


def open_many(port, n, sources, hold_s=2.0, trickle=False, duration_s=0):
    """Opens n connections round-robin from `sources`; returns counts of the
    first reply (220 / 421 / none within 10 s). With `trickle`, each greeted
    connection then sends one byte a second for duration_s and we count
    those the server cut (closed or 421)."""
    sel = selectors.DefaultSelector()
    socks = {}
    counts = {"220": 0, "421": 0, "other": 0, "none": 0, "connect_failed": 0}
    pending = 0
    for i in range(n):
        s = socket.socket()
        s.setblocking(False)
        try:
            s.bind((sources[i % len(sources)], 0))
            s.connect_ex(("127.0.0.1", port))
        except OSError:
            counts["connect_failed"] += 1
            s.close()
            continue
        socks[s] = b""
        sel.register(s, selectors.EVENT_READ)
        pending += 1
        if pending >= 500:  # keep the listen backlog in bounds
            pending -= drain(sel, socks, counts, 0.05)
    deadline = time.monotonic() + 10
    while pending > 0 and time.monotonic() < deadline:
        pending -= drain(sel, socks, counts, 0.2)
    counts["none"] += pending
    cut = 0
    if trickle:
        greeted = [s for s, v in socks.items() if v.startswith(b"220")]
        end = time.monotonic() + duration_s
        alive = set(greeted)
        while alive and time.monotonic() < end:
            for s in list(alive):
                try:
                    s.send(b"N")
                except OSError:
                    alive.discard(s)
                    cut += 1
            time.sleep(1)
            for s in list(alive):
                try:
                    data = s.recv(512, socket.MSG_DONTWAIT)
                    if data == b"" or b"421" in data:
                        alive.discard(s)
                        cut += 1
                except BlockingIOError:
                    pass
                except OSError:
                    alive.discard(s)
                    cut += 1
        counts["cut_by_deadline"] = cut
        counts["still_open"] = len(alive)
    else:
        time.sleep(hold_s)
    for s in socks:
        s.close()
    sel.close()
    return counts


def drain(sel, socks, counts, timeout):
    done = 0
    for key, _ in sel.select(timeout):
        s = key.fileobj
        try:
            data = s.recv(512)
        except OSError:
            data = b""
        if data.endswith(b"\r\n") or data == b"":
            sel.unregister(s)
            code = data[:3].decode("ascii", "replace")
            counts[code if code in ("220", "421") else "other"] += 1
            done += 1
            if code == "220":
                socks[s] = data  # held
            else:
                del socks[s]  # answered and closed by the server: let go
                s.close()
    return done


def storm(port, n):
    refused = 0
    for i in range(n):
        s = socket.socket()
        s.bind((f"127.0.2.{1 + i % 200}", 0))
        try:
            s.connect(("127.0.0.1", port))
        except OSError:
            refused += 1
        s.close()
    return {"connect_close": n, "connect_failed": refused}


def pipelined(port, total, conns=50):
    per = total // conns
    cmds = [b"NOOP\r\n", b"RSET\r\n", b"MAIL FROM:<a@src.example>\r\n"]
    replies = 0
    closed_early = 0
    for c in range(conns):
        s = socket.create_connection(("127.0.0.1", port), timeout=10,
                                     source_address=(f"127.0.3.{1 + c}", 0))
        s.recv(512)
        payload = b"".join(cmds[i % 3] for i in range(per))
        try:
            s.sendall(payload)
        except OSError:
            closed_early += 1
        s.shutdown(socket.SHUT_WR)
        data = b""
        try:
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
        except OSError:
            pass
        replies += data.count(b"\r\n")
        s.close()
    return {"commands_sent": per * conns, "replies": replies, "sessions_cut_before_all_sent": closed_early}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ringmaild", default=os.path.join(HERE, "..", "build", "engine", "ringmaild"))
    ap.add_argument("--connections", type=int, default=20000)
    a = ap.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    work = tempfile.mkdtemp(prefix="ringmail-flood-")
    port = free_port()
    cfg = os.path.join(work, "r.toml")
    with open(cfg, "w") as f:
        f.write(f'hostname = "mx.flood.test"\ndata_dir = "{work}/data"\nlocal_domains = ["example.test"]\n'
                f'threads = 2\n[[listener]]\naddress = "127.0.0.1:{port}"\nkind = "smtp"\n'
                '[outbound]\ndns_servers = "127.0.0.1:9"\n'
                '[limits]\ncommand_timeout_s = 10\ndata_timeout_s = 10\n')
    log = open(os.path.join(work, "log"), "wb")
    proc = subprocess.Popen([a.ringmaild, "--config", cfg], stdout=log, stderr=subprocess.STDOUT)
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            time.sleep(0.05)
    base = rss_kb(proc.pid)
    print(f"ringmaild pid {proc.pid}, RSS at start {base} KiB, work dir {work}")
    n = a.connections
    spread = [f"127.0.1.{i}" for i in range(1, 41)]
    phases = [
        ("spread", lambda: open_many(port, n, spread)),
        ("one-addr", lambda: open_many(port, n, ["127.0.0.1"])),
        ("slowloris", lambda: open_many(port, 2000, spread, trickle=True, duration_s=25)),
        ("storm", lambda: storm(port, n)),
        ("pipelined", lambda: pipelined(port, 500000)),
    ]
    ok = True
    for name, run in phases:
        probe = Probe(port, proc.pid)
        probe.start()
        t0 = time.monotonic()
        res = run()
        took = time.monotonic() - t0
        probe.stop.set()
        probe.join()
        res.update(probe_worst_s=round(probe.worst, 3), probe_failures=probe.failures,
                   peak_rss_kib=probe.peak_rss, secs=round(took, 1))
        print(f"{name}: " + " ".join(f"{k}={v}" for k, v in res.items()), flush=True)
        ok &= probe.failures == 0 and res.get("none", 0) == 0
    proc.terminate()
    rc = proc.wait(timeout=60)
    print(f"ringmaild exit {rc}; {'every client got an answer and the probe always did' if ok else 'PROBLEMS above'}")
    return 0 if ok and rc == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
