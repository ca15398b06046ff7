#!/usr/bin/python3
"""End-to-end relay rate: smtp-source hands N messages (10 KiB) to the relay
on 127.0.0.1, the relay delivers them to Postfix's smtp-sink on 127.0.0.2
(no storage), for ringmaild and for a private Postfix instance, in one run.
The figure is messages per second from the first connection until the
relay's queue is empty; time in queue percentiles are from ringmaild's log.

ringmaild finds the sink by MX (a local DNS server, tests/dns_server.py) and
relays for 127.0.0.0/8 (relay_networks); Postfix uses relayhost =
[127.0.0.2]:port and mynetworks = 127.0.0.0/8. Both fsync what they queue.
Loopback only; every run is bounded by the message count and a time limit.

    bench/relay.py [--messages 10000] [--sessions 10 50] [--threads 1] [--dkim] [--events]
                   [--webhook]

With --dkim ringmail runs twice per session count: as above, and signing
every message (the relay_networks client's From domain src.example has an
RSA-2048 and an Ed25519 key: two signatures per message).

With --events ringmail runs four times per session count, alternating
the event log off and on (`[events] enabled`; two events a message,
Reception and Delivery), and the ratio of the mean rates on/off is
printed; Postfix is not run then. With --events --webhook it runs six
times, off, on, on with one [[events.webhook]], twice each: the webhook
is a small local HTTP server (Python, started here, HTTP/1.1 keep-alive)
that counts the events and answers 200 at once; the ratios on/off and
webhook/off are printed, and how many events the receiver got.
"""
import argparse
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

TOP = Path(__file__).resolve().parent.parent
RINGMAILD = os.environ.get("RINGMAILD", str(TOP / "build" / "engine" / "ringmaild"))
DNS_SERVER = TOP / "tests" / "dns_server.py"
SINK_IP = "127.0.0.2"
CLK_TCK = os.sysconf("SC_CLK_TCK")
sys.path.insert(0, str(TOP / "tests" / "integration"))
from postfix_instance import PostfixInstance  # noqa: E402


def free_port(ip="127.0.0.1"):
    with socket.socket() as s:
        s.bind((ip, 0))
        return s.getsockname()[1]


def wait_port(ip, port, secs=15):
    deadline = time.monotonic() + secs
    while time.monotonic() < deadline:
        try:
            socket.create_connection((ip, port), timeout=1).close()
            return True
        except OSError:
            time.sleep(0.05)
    return False


def ticks(pids):
    total = 0
    for pid in pids:
        try:
            f = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += sum(int(x) for x in f[11:15])
        except OSError:
            pass
    return total


def children(pid):
    out = []
    for p in Path("/proc").iterdir():
        if p.name.isdigit():
            try:
                if Path(p, "stat").read_text().rsplit(")", 1)[1].split()[1] == str(pid):
                    out.append(int(p.name))
            except OSError:
                pass
    return out


def smtp_source(port, sessions, count, rcpt):
    return subprocess.run(["/usr/sbin/smtp-source", "-c", "-s", str(sessions), "-m", str(count),
                           "-l", "10240", "-M", "src.example", "-f", "a@src.example", "-t", rcpt,
                           f"127.0.0.1:{port}"], capture_output=True, timeout=600)


# The webhook receiver of --webhook: answers every POST 200 and keeps the
# number of events it got in the file named by argv[2].
RECEIVER = r"""
import json, sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
n = 0
class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *a): pass
    def do_POST(self):
        global n
        body = self.rfile.read(int(self.headers["Content-Length"]))
        n += body.count(b'{"id":')
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()
        with open(sys.argv[2], "w") as f:
            f.write(str(n))
ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
"""


def run_ringmail(work, sink_port, dns_port, sessions, count, threads, dkim=False, events=True,
                 run=0, webhook_port=None):
    d = work / (f"ringmail-{sessions}{'-dkim' if dkim else ''}-{'ev' if events else 'noev'}"
                f"{'-hook' if webhook_port else ''}-{run}")
    d.mkdir()
    port = free_port()
    if dkim:
        for sel, algo in (("r1", "rsa2048"), ("e1", "ed25519")):
            subprocess.run([str(TOP / "build" / "tools" / "ringmail"), "dkim-keygen", "src.example",
                            "--selector", sel, "--algo", algo, "--domains-dir", str(d / "domains")],
                           check=True, capture_output=True)
    (d / "cfg.toml").write_text(f"""hostname = "relay.bench.test"
data_dir = "{d}/data"
domains_dir = "{d}/domains"
local_domains = ["bench.test"]
threads = {threads}
relay_networks = ["127.0.0.0/8"]
[[listener]]
address = "127.0.0.1:{port}"
kind = "smtp"
[outbound]
dns_servers = "127.0.0.1:{dns_port}"
port = {sink_port}
starttls = false
[events]
enabled = {'true' if events else 'false'}
""" + (f"""[[events.webhook]]
name = "bench"
url = "http://127.0.0.1:{webhook_port}/"
secret = "bench"
""" if webhook_port else ""))
    log = open(d / "log", "wb")
    p = subprocess.Popen([RINGMAILD, "--config", str(d / "cfg.toml")], stdout=log,
                         stderr=subprocess.STDOUT)
    try:
        if not wait_port("127.0.0.1", port):
            sys.exit(f"ringmaild did not start: {(d / 'log').read_text()[-400:]}")
        c0 = ticks([p.pid])
        t0 = time.monotonic()
        smtp_source(port, sessions, count, "sink@sink.test")
        accepted = time.monotonic() - t0
        deadline = time.monotonic() + 300
        done = 0
        with open(d / "log", "rb") as f:  # read as it grows: the poll itself costs little CPU
            tail = b""
            while time.monotonic() < deadline:
                chunk = tail + f.read()
                cut = chunk.rfind(b"\n") + 1
                done += chunk[:cut].count(b" status=delivered (250")
                tail = chunk[cut:]
                if done >= count:
                    break
                time.sleep(0.05)
        total = time.monotonic() - t0
        cpu = (ticks([p.pid]) - c0) / CLK_TCK
    finally:
        p.terminate()
        p.wait(timeout=60)
    return accepted, total, done, cpu, in_queue_times(d / "log")


def in_queue_times(log):
    """Seconds from 'X: queued' to its outbound delivery, per message."""
    stamp = re.compile(r"^(\S+Z) shard \d+: (?:(\S+): queued client|(\S+): to=<.* status=delivered \(250)")
    start, times = {}, []
    for line in log.read_text().splitlines():
        m = stamp.match(line)
        if not m:
            continue
        t = datetime.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S.%fZ").timestamp()
        if m.group(2):
            start[m.group(2)] = t
        elif m.group(3) in start:
            times.append(t - start.pop(m.group(3)))
    return sorted(times)


def run_postfix(work, sink_port, sessions, count):
    pf = PostfixInstance(f"[{SINK_IP}]:{sink_port}", hostname="postfix-relay.bench.test")
    try:
        pf.start()
        master_pid = pf.master_pid()
        c0 = ticks([master_pid] + children(master_pid))
        t0 = time.monotonic()
        smtp_source(pf.port, sessions, count, "sink@sink.test")
        accepted = time.monotonic() - t0
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline and not pf.queue_empty():
            time.sleep(0.2)
        total = time.monotonic() - t0
        cpu = (ticks([master_pid] + children(master_pid)) - c0) / CLK_TCK
    finally:
        pf.stop()
    return accepted, total, cpu


def pct(v, p):
    return v[min(len(v) - 1, int(len(v) * p / 100))] if v else float("nan")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--messages", type=int, default=10000)
    ap.add_argument("--postfix-messages", type=int, default=3000)
    ap.add_argument("--sessions", type=int, nargs="+", default=[10, 50])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--dkim", action="store_true", help="also a run with DKIM signing")
    ap.add_argument("--events", action="store_true",
                    help="event log off and on, alternating, and their ratio (no Postfix)")
    ap.add_argument("--webhook", action="store_true",
                    help="with --events: also runs with one webhook to a local receiver")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="ringmail-relay.") as tmp:
        work = Path(tmp)
        os.chmod(work, 0o755)
        zone = work / "zone"
        zone.write_text(f"sink.test. 60 IN MX 10 mx.sink.test.\nmx.sink.test. 60 IN A {SINK_IP}\n")
        dns = subprocess.Popen(["/usr/bin/python3", str(DNS_SERVER), str(zone)], stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, text=True)
        dns_port = int(dns.stdout.readline())
        sink_port = free_port(SINK_IP)
        sink = subprocess.Popen(["/usr/sbin/smtp-sink", "-u", "postfix", "-c",
                                 f"{SINK_IP}:{sink_port}", "1024"], stdout=subprocess.DEVNULL)
        wait_port(SINK_IP, sink_port)
        try:
            for s in a.sessions if a.events else []:
                modes = ["off", "on", "webhook"] if a.webhook else ["off", "on"]
                rates = {m: [] for m in modes}
                for run, mode in enumerate(modes * 2):
                    hook_port = free_port() if mode == "webhook" else None
                    receiver = counted = None
                    if hook_port:
                        counted = work / f"hook-{s}-{run}"
                        receiver = subprocess.Popen(["/usr/bin/python3", "-c", RECEIVER,
                                                     str(hook_port), str(counted)])
                        wait_port("127.0.0.1", hook_port)
                    try:
                        acc, total, done, cpu, tq = run_ringmail(
                            work, sink_port, dns_port, s, a.messages, a.threads,
                            events=mode != "off", run=run, webhook_port=hook_port)
                    finally:
                        if receiver:
                            receiver.terminate()
                            receiver.wait()
                    rates[mode].append(done / total)
                    got = f" webhook_events={counted.read_text() if counted.exists() else 0}" \
                        if counted else ""
                    print(f"RESULT server=ringmail events={mode} sessions={s} "
                          f"msgs={a.messages} delivered={done} accept_s={acc:.2f} "
                          f"end_to_end_s={total:.2f} msg_per_s={done / total:.0f} "
                          f"cpu_ms_per_msg={cpu / max(done, 1) * 1000:.3f}{got}", flush=True)
                mean = {m: sum(v) / len(v) for m, v in rates.items()}
                for m in modes[1:]:
                    print(f"RATIO sessions={s} events {m}/off = {mean[m] / mean['off']:.3f} "
                          f"({mean[m]:.0f} / {mean['off']:.0f} msg/s, mean of 2 each)", flush=True)
            for s in a.sessions if not a.events else []:
                for dkim in ([False, True] if a.dkim else [False]):
                    acc, total, done, cpu, tq = run_ringmail(work, sink_port, dns_port, s, a.messages,
                                                             a.threads, dkim)
                    print(f"RESULT server=ringmail{'+dkim' if dkim else ''} sessions={s} "
                          f"msgs={a.messages} delivered={done} "
                          f"accept_s={acc:.2f} end_to_end_s={total:.2f} msg_per_s={done / total:.0f} "
                          f"cpu_ms_per_msg={cpu / max(done, 1) * 1000:.3f} "
                          f"in_queue_p50={pct(tq, 50):.3f} p90={pct(tq, 90):.3f} p99={pct(tq, 99):.3f} "
                          f"max={tq[-1] if tq else float('nan'):.3f}", flush=True)
                acc, total, cpu = run_postfix(work, sink_port, s, a.postfix_messages)
                print(f"RESULT server=postfix sessions={s} msgs={a.postfix_messages} "
                      f"accept_s={acc:.2f} end_to_end_s={total:.2f} "
                      f"msg_per_s={a.postfix_messages / total:.0f} "
                      f"cpu_ms_per_msg={cpu / a.postfix_messages * 1000:.3f}", flush=True)
        finally:
            sink.terminate()
            sink.wait()
            dns.stdin.close()
            dns.wait(timeout=10)


if __name__ == "__main__":
    main()
