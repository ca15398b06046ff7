#!/usr/bin/python3
"""The admin API against a large queue (issue 22): ringmaild holding
--queued messages (100,000 by default) for 20 remote domains whose next
hop is a closed loopback port, with the inbound checks on and a loopback
DNS server (tests/dns_server.py) that answers.

Reports:
- the wall time of `ringmail queue summary` and of a full
  `ringmail queue list --json` (every page), and the loop turns longer
  than 10 ms while they ran, from /metrics' ringmail_loop_turn_seconds;
- the accept rate of inbound mail (port 25, SPF and DMARC checked, to a
  local mailbox) while an admin client pages through the queue in a loop,
  as a ratio to the rate without it: interleaved rounds, medians.

The queue is filled over ::1, the only relay network; the measured mail
comes over 127.0.0.1, so it gets the checks.

    bench/admin_queue.py [--queued 100000] [--accept 5000] [--rounds 3]
                         [--threads 0] [--ringmaild PATH] [--ringmail PATH]

Loopback only; every load is bounded and ends by itself.
"""
import argparse
import json
import pathlib
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import http.client

TOP = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(TOP / "tests"))
from ports import free_port  # noqa: E402  (tests/ports.py)

BLASTER = TOP / "build" / "smtp-blaster"
DOMAINS = [f"d{i}.test" for i in range(20)]


class UnixHTTP(http.client.HTTPConnection):
    def __init__(self, path):
        super().__init__("ringmaild", timeout=600)
        self.unix_path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(600)
        self.sock.connect(self.unix_path)


def api(sock, path):
    c = UnixHTTP(sock)
    c.request("GET", path)
    r = c.getresponse()
    body = r.read()
    c.close()
    if r.status != 200:
        sys.exit(f"{path}: {r.status} {body[:200]!r}")
    return body


def turns(http_port):
    """(turns over 10 ms, longest turn s) summed over the shards."""
    c = http.client.HTTPConnection("127.0.0.1", http_port, timeout=30)
    c.request("GET", "/metrics")
    text = c.getresponse().read().decode()
    c.close()
    over, longest = 0, 0.0
    for shard in set(re.findall(r'ringmail_loop_turn_seconds_count\{shard="(\d+)"\}', text)):
        total = int(re.search(rf'ringmail_loop_turn_seconds_count\{{shard="{shard}"\}} (\d+)', text)[1])
        le10 = int(re.search(rf'ringmail_loop_turn_seconds_bucket\{{shard="{shard}",le="0.01"\}} (\d+)',
                             text)[1])
        over += total - le10
        longest = max(longest, float(re.search(
            rf'ringmail_loop_turn_max_seconds\{{shard="{shard}"\}} (\S+)', text)[1]))
    return over, longest


def blast(target, total, sender, to, extra=()):
    r = subprocess.run([str(BLASTER), "--target", target, "--connections", "10", "--messages",
                        str(total), "--per-connection", "1000", "--from", sender, "--to", to,
                        "--helo", "helo.src.example", "--size", "1000", "--json", *extra],
                       capture_output=True, text=True, timeout=1200, check=True)
    out = json.loads(r.stdout.strip().splitlines()[-1])
    if out["accepted"] != total:
        sys.exit(f"smtp-blaster: {out['accepted']} of {total} accepted: {out['codes']}")
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--queued", type=int, default=100000)
    ap.add_argument("--accept", type=int, default=5000, help="messages per accept round")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--ringmaild", default=str(TOP / "build/engine/ringmaild"))
    ap.add_argument("--ringmail", default=str(TOP / "build/tools/ringmail"))
    a = ap.parse_args()
    work = pathlib.Path(tempfile.mkdtemp(prefix="ringmail-adminq-"))
    (work / "zone").write_text(
        'src.example. 300 IN TXT "v=spf1 ip4:127.0.0.0/8 -all"\n'
        '_dmarc.src.example. 300 IN TXT "v=DMARC1; p=reject"\n'
        'helo.src.example. 300 IN TXT "v=spf1 ip4:127.0.0.0/8 -all"\n')
    dns = subprocess.Popen(["/usr/bin/python3", str(TOP / "tests/dns_server.py"), str(work / "zone")],
                           stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    dns_port = int(dns.stdout.readline())
    port = free_port(socket.AF_INET, "127.0.0.1")
    http_port = free_port(socket.AF_INET, "127.0.0.1")
    closed = free_port(socket.AF_INET, "127.0.0.1")
    sock = str(work / "admin.sock")
    (work / "domains").mkdir()
    cfg = work / "ringmail.toml"
    cfg.write_text(f"""hostname = "mx.bench.example"
data_dir = "{work}/data"
domains_dir = "{work}/domains"
local_domains = ["example.test"]
threads = {a.threads}
relay_networks = ["::1/128"]
[[listener]]
address = "127.0.0.1:{port}"
kind = "smtp"
[[listener]]
address = "[::1]:{port}"
kind = "smtp"
[[listener]]
address = "127.0.0.1:{http_port}"
kind = "http"
[dns]
servers = "127.0.0.1:{dns_port}"
[outbound]
retry_first_s = 36000
retry_max_s = 36000
connect_timeout_s = 2
[[outbound.route]]
domain = "*"
next_hop = "[127.0.0.9]:{closed}"
[admin]
socket = "{sock}"
""")
    rm = subprocess.Popen([a.ringmaild, "--config", str(cfg)], stdout=subprocess.DEVNULL,
                          stderr=open(work / "log", "wb"))
    try:
        for _ in range(200):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.05)
        t = time.monotonic()
        mix = ",".join(f"{d}:1" for d in DOMAINS)
        blast(f"[::1]:{port}", a.queued, "app{c}@src.example", "user{n}@d0.test",
              ["--domain", mix])
        fill_s = time.monotonic() - t
        # Every first attempt refused, so all wait (ten hours).
        deadline = time.monotonic() + 600
        while True:
            s = json.loads(api(sock, "/api/queue"))
            if s["messages"] == a.queued and all(d["last_error"] and d["in_flight"] == 0
                                                 for d in s["domains"]):
                break
            if time.monotonic() > deadline:
                sys.exit(f"the queue did not settle: {s['messages']} messages")
            time.sleep(1)
        cli = pathlib.Path(a.ringmail).exists() and re.search(r"^\s+queue\b", subprocess.run(
            [a.ringmail, "--help"], capture_output=True, text=True).stdout, re.M) is not None

        def timed(what, argv, path):
            before = turns(http_port)
            t = time.monotonic()
            if cli:
                r = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=600)
                if r.returncode != 0:
                    sys.exit(f"{' '.join(argv)}: {r.stderr.decode()}")
                size = len(r.stdout)
            else:
                size = 0
                cursor = None
                while True:
                    body = api(sock, path + (f"&cursor={cursor}" if cursor else ""))
                    size += len(body)
                    j = json.loads(body)
                    cursor = j.get("next_cursor")
                    if cursor is None:
                        break
            secs = time.monotonic() - t
            after = turns(http_port)
            print(f"{what}: {secs:.2f} s, {size / 1e6:.1f} MB of output, "
                  f"{after[0] - before[0]} loop turns over 10 ms while it ran "
                  f"(longest turn since the start {after[1] * 1000:.1f} ms)")
            return secs

        print(f"{a.queued} messages queued in {fill_s:.1f} s over ::1, for {len(DOMAINS)} domains; "
              f"client: {'ringmail queue' if cli else 'the API from Python'}")
        timed("summary", [a.ringmail, "--config", str(cfg), "queue", "summary"], "/api/queue?")
        timed("full list", [a.ringmail, "--config", str(cfg), "queue", "list", "--json"],
              "/api/queue/messages?limit=1000")

        stop = threading.Event()
        pages = [0]

        def lister():
            while not stop.is_set():
                cursor = None
                while not stop.is_set():
                    q = "/api/queue/messages?limit=1000" + (f"&cursor={cursor}" if cursor else "")
                    # Only the cursor is read (the client's own CPU stays
                    # out of the measurement: the machine has two cores).
                    body = api(sock, q)
                    m = re.search(rb'"next_cursor":(null|"([^"]*)")', body[-200:])
                    cursor = m[2].decode() if m[2] else None
                    pages[0] += 1
                    if cursor is None:
                        break

        alone, listing = [], []
        for r in range(a.rounds):
            for busy in (False, True):
                th = None
                if busy:
                    stop.clear()
                    th = threading.Thread(target=lister)
                    th.start()
                    time.sleep(0.5)
                out = blast(f"127.0.0.1:{port}", a.accept, "a{n}@src.example", "bob@example.test")
                rate = a.accept / out["seconds"]
                (listing if busy else alone).append(rate)
                if th:
                    stop.set()
                    th.join()
                print(f"round {r + 1}: {'while listing' if busy else 'alone'}: {rate:.0f} msg/s")
        ma, ml = statistics.median(alone), statistics.median(listing)
        print(f"accept (inbound checks on, DNS answering): alone {ma:.0f} msg/s, while an admin "
              f"client pages through {a.queued} messages ({pages[0]} pages of 1,000 served): "
              f"{ml:.0f} msg/s = {ml / ma:.2f} of alone")
    finally:
        rm.terminate()
        rm.wait(timeout=60)
        dns.stdin.close()
        dns.wait(timeout=10)


if __name__ == "__main__":
    main()
