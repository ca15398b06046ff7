#!/usr/bin/python3
"""Queued messages per second: the HTTP injection API against SMTP, the
same 10 KiB messages, both durable (a 250 and a 200 each mean fsynced), in
one run, with DKIM signing on and off.

- HTTP: smtp-blaster --http, 100 recipients a request (each one message),
  8 keep-alive connections, closed loop.
- SMTP: smtp-blaster on port 25 from a relay_networks client (trusted, so
  signed like submitted mail, no TLS or AUTH cost on either side), 10
  connections, 1 recipient a message, 1,000 messages a connection.

ringmaild runs as users run it: the default [inbound] checks, its DNS a
loopback server that answers (tests/dns_server.py), the example.test
domain with a DKIM key made by `ringmail dkim-keygen`: RSA-2048 (the
recipe's key), then Ed25519, then none ("off"). The recipients'
domain is suspended through the admin socket before each run (`ringmail
queue suspend`), so the queue only grows and no delivery runs during
either measurement. A fresh daemon (threads = 0: its choice for this
machine) for each run.

Reported per run: messages queued a second, the server's CPU seconds per
1,000 messages (utime + stime of ringmaild from /proc), and p50/p99 of
the blaster's latency (per SMTP transaction, per HTTP request of 100
messages). Then HTTP / SMTP ratios.

    bench/inject.py [--seconds 20] [--size 10240] [--dkim rsa2048,ed25519,off] [--json]
"""
import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TOP = Path(__file__).resolve().parent.parent
BUILD = Path(os.environ.get("RINGMAIL_BUILD", TOP / "build"))
RINGMAILD = os.environ.get("RINGMAILD", str(BUILD / "engine" / "ringmaild"))
BLASTER = os.environ.get("RINGMAIL_BLASTER", str(BUILD / "smtp-blaster"))
RINGMAIL = str(BUILD / "tools" / "ringmail")
DNS_SERVER = TOP / "tests" / "dns_server.py"
CLK_TCK = os.sysconf("SC_CLK_TCK")
TOKEN = "hello"  # its SHA-256 below
TOKEN_SHA = "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, secs=15):
    deadline = time.monotonic() + secs
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return True
        except OSError:
            time.sleep(0.05)
    return False


def cpu_s(pid):
    f = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / CLK_TCK


def run(work, name, dkim, dns_port, mode, a):
    d = work / name
    d.mkdir()
    if dkim != "off":
        subprocess.run([RINGMAIL, "dkim-keygen", "example.test", "--selector", "s1",
                        "--algo", dkim,
                        "--domains-dir", str(d / "domains")], check=True, capture_output=True)
    smtp, http = free_port(), free_port()
    (d / "cfg.toml").write_text(f"""hostname = "mx.bench.test"
data_dir = "{d}/data"
domains_dir = "{d}/domains"
local_domains = ["example.test"]
relay_networks = ["127.0.0.0/8"]
[[listener]]
address = "127.0.0.1:{smtp}"
kind = "smtp"
[[listener]]
address = "127.0.0.1:{http}"
kind = "http"
[dns]
servers = "127.0.0.1:{dns_port}"
[admin]
socket = "{d}/admin.sock"
[[api.token]]
name = "bench"
sha256 = "{TOKEN_SHA}"
scopes = ["inject"]
sender_domains = ["example.test"]
""")
    log = open(d / "log", "wb")
    p = subprocess.Popen([RINGMAILD, "--config", str(d / "cfg.toml")], stdout=log,
                         stderr=subprocess.STDOUT)
    try:
        if not wait_port(smtp) or not wait_port(http):
            sys.exit(f"ringmaild did not start: {(d / 'log').read_text()[-400:]}")
        subprocess.run([RINGMAIL, "--config", str(d / "cfg.toml"), "queue", "suspend", "far.test",
                        "--for", "3600", "--reason", "bench"], check=True, capture_output=True)
        common = ["--json", "--duration", str(a.seconds), "--size", str(a.size),
                  "--from", "news@example.test", "--to", "user{n}@far.test"]
        if mode == "http":
            cmd = [BLASTER, "--http", f"http://127.0.0.1:{http}/api/inject/v1", "--token", TOKEN,
                   "--recipients-per-request", str(a.recipients), "--connections",
                   str(a.http_connections), *common]
        else:
            cmd = [BLASTER, "--target", f"127.0.0.1:{smtp}", "--connections",
                   str(a.smtp_connections), "--per-connection", "1000", *common]
        c0 = cpu_s(p.pid)
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=a.seconds + 120)
        cpu = cpu_s(p.pid) - c0
        if r.returncode != 0:
            sys.exit(f"{' '.join(cmd)}: {r.stderr}")
        out = json.loads(r.stdout)
    finally:
        p.terminate()
        p.wait(timeout=60)
    if mode == "http":
        msgs, rate = out["recipients_accepted"], out["recipients_per_s"]
    else:
        msgs, rate = out["accepted"], out["messages_per_s"]
    lat = out["latency_s"]
    return {"mode": mode, "dkim": dkim, "messages": msgs, "per_s": rate,
            "cpu_s_per_1000": 1000 * cpu / max(msgs, 1), "p50_ms": 1000 * lat["p50"],
            "p99_ms": 1000 * lat["p99"], "codes": out.get("codes", out.get("statuses", {}))}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=int, default=20)
    ap.add_argument("--size", type=int, default=10240)
    ap.add_argument("--recipients", type=int, default=100)
    ap.add_argument("--http-connections", type=int, default=8)
    ap.add_argument("--smtp-connections", type=int, default=10)
    ap.add_argument("--dkim", default="rsa2048,ed25519,off",
                    help="the runs' signing keys, in order: rsa2048, ed25519, off")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    results = []
    with tempfile.TemporaryDirectory(prefix="ringmail-inject.") as tmp:
        work = Path(tmp)
        zone = work / "zone"
        zone.write_text("example.test. 60 IN MX 10 mx.bench.test.\n"
                        "example.test. 60 IN TXT \"v=spf1 ip4:127.0.0.0/8 -all\"\n"
                        "_dmarc.example.test. 60 IN TXT \"v=DMARC1; p=reject\"\n"
                        "mx.bench.test. 60 IN A 127.0.0.1\n")
        dns = subprocess.Popen(["/usr/bin/python3", str(DNS_SERVER), str(zone)],
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        dns_port = int(dns.stdout.readline())
        try:
            for dkim in a.dkim.split(","):
                for mode in ("smtp", "http"):
                    results.append(run(work, f"{mode}-{dkim}", dkim,
                                       dns_port, mode, a))
        finally:
            dns.stdin.close()
            dns.wait(timeout=10)
    if a.json:
        print(json.dumps(results, indent=1))
        return
    print(f"{'run':<18}{'msgs':>9}{'msg/s':>10}{'CPU s/1000':>12}{'p50 ms':>9}{'p99 ms':>9}")
    for r in results:
        name = f"{r['mode']} dkim {r['dkim']}"
        print(f"{name:<18}{r['messages']:>9}{r['per_s']:>10.0f}{r['cpu_s_per_1000']:>12.3f}"
              f"{r['p50_ms']:>9.1f}{r['p99_ms']:>9.1f}")
    for dkim in a.dkim.split(","):
        s, h = [r for r in results if r["dkim"] == dkim]
        print(f"dkim {dkim:<8}: HTTP/SMTP rate {h['per_s'] / s['per_s']:.2f}x, "
              f"CPU per message {h['cpu_s_per_1000'] / s['cpu_s_per_1000']:.2f}x")


if __name__ == "__main__":
    main()
