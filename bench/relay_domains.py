#!/usr/bin/python3
"""Relaying to many destination domains: what MX delivery costs against the
same load sent through one fixed next hop, and how often DNS is asked.

smtp-blaster hands --messages 10 KiB messages (one recipient each, spread
evenly over --domains domains d0.test, d1.test, ...) to ringmaild, which
relays for 127.0.0.0/8 and delivers to Postfix's smtp-sink on 127.0.0.2.
Two runs, in this order, each until every message is delivered:

  mx     each domain has its own MX (mx.dN.test, A 127.0.0.2, TTL 300)
         in a loopback tests/dns_server.py that logs every question;
  route  the same load with [[outbound.route]] domain = "*" to the sink
         (no MX or address lookups).

Prints messages/s end to end for both, their ratio, the server's CPU per
message, the most MX and A/AAAA questions asked for any one name, and how
many deliveries were deferred.

    bench/relay_domains.py [--messages 6000] [--domains 200] [--connections 10] [--threads 1]

Loopback only; each run is bounded by the message count and a time limit.
"""
import argparse
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

TOP = Path(__file__).resolve().parent.parent
RINGMAILD = os.environ.get("RINGMAILD", str(TOP / "build" / "engine" / "ringmaild"))
BLASTER = os.environ.get("RINGMAIL_BLASTER", str(TOP / "build" / "smtp-blaster"))
CLK_TCK = os.sysconf("SC_CLK_TCK")
SINK_IP = "127.0.0.2"
sys.path.insert(0, str(TOP / "tests"))
from ports import free_port  # noqa: E402  (tests/ports.py)
from relay import wait_port  # noqa: E402  (bench/relay.py)


def ticks(pid):
    f = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(f[11]) + int(f[12])


def run(work, name, a, domains, sink_port, dns_port):
    d = work / name
    (d / "domains").mkdir(parents=True)
    port = free_port(socket.AF_INET, "127.0.0.1")
    route = (f'[[outbound.route]]\ndomain = "*"\nnext_hop = "{SINK_IP}:{sink_port}"\n'
             if name == "route" else "")
    (d / "cfg.toml").write_text(f"""hostname = "relay.bench.test"
data_dir = "{d}/data"
domains_dir = "{d}/domains"
local_domains = ["bench.test"]
threads = {a.threads}
relay_networks = ["127.0.0.0/8"]
[[listener]]
address = "127.0.0.1:{port}"
kind = "smtp"
[dns]
servers = "127.0.0.1:{dns_port}"
[outbound]
port = {sink_port}
starttls = false
{route}""")
    log = d / "log"
    p = subprocess.Popen([RINGMAILD, "--config", str(d / "cfg.toml")], stdout=open(log, "wb"),
                         stderr=subprocess.STDOUT)
    try:
        if not wait_port("127.0.0.1", port):
            sys.exit(f"ringmaild did not start: {log.read_text()[-400:]}")
        c0 = ticks(p.pid)
        t0 = time.monotonic()
        mix = ",".join(f"{x}:1" for x in domains)
        r = subprocess.run([BLASTER, "--target", f"127.0.0.1:{port}", "--connections", str(a.connections),
                            "--messages", str(a.messages), "--per-connection", "100", "--size", "10240",
                            "--from", "app@src.example", "--to", "user{n}@x.test", "--domain", mix],
                           capture_output=True, text=True, timeout=600)
        if r.returncode != 0:
            sys.exit(f"smtp-blaster: {r.stderr[-400:]}")
        deadline = time.monotonic() + a.limit_s
        done = 0
        while time.monotonic() < deadline:
            done = log.read_text(errors="replace").count(" status=delivered (250")
            if done >= a.messages:
                break
            time.sleep(0.1)
        secs = time.monotonic() - t0
        cpu = (ticks(p.pid) - c0) / CLK_TCK
    finally:
        p.terminate()
        p.wait(timeout=60)
    text = log.read_text(errors="replace")
    deferred = len(re.findall(r" status=deferred \(", text))
    return {"done": done, "secs": secs, "rate": done / secs, "cpu_ms": 1000 * cpu / max(done, 1),
            "deferred": deferred}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--messages", type=int, default=6000)
    ap.add_argument("--domains", type=int, default=200)
    ap.add_argument("--connections", type=int, default=10)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--limit-s", type=int, default=300, help="per run, for the deliveries")
    a = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="ringmail-domains-"))
    work.chmod(0o755)
    domains = [f"d{i}.test" for i in range(a.domains)]
    zone = [f"{x}. 300 IN MX 10 mx.{x}.\nmx.{x}. 300 IN A {SINK_IP}" for x in domains]
    (work / "zone").write_text(
        ". 300 IN SOA ns.bench.test. admin.bench.test. 1 7200 900 1209600 300\n" + "\n".join(zone) + "\n")
    qlog = work / "questions"
    dns = subprocess.Popen(["/usr/bin/python3", str(TOP / "tests/dns_server.py"), str(work / "zone"),
                            "--log", str(qlog)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    dns_port = int(dns.stdout.readline())
    sink_port = free_port(socket.AF_INET, SINK_IP)
    user = ["-u", "postfix"] if os.geteuid() == 0 else []
    sink = subprocess.Popen(["/usr/sbin/smtp-sink", *user, f"{SINK_IP}:{sink_port}", "256"])
    try:
        if not wait_port(SINK_IP, sink_port):
            sys.exit("smtp-sink did not start")
        mx = run(work, "mx", a, domains, sink_port, dns_port)
        asked = Counter(qlog.read_text().splitlines())
        qlog.write_text("")
        route = run(work, "route", a, domains, sink_port, dns_port)
    finally:
        sink.terminate()
        sink.wait(timeout=30)
        dns.stdin.close()
        dns.wait(timeout=10)
    per_type = Counter()
    most = Counter()
    for q, n in asked.items():
        t = q.split()[0]
        per_type[t] += n
        most[t] = max(most[t], n)
    print(f"{a.messages} messages, {a.domains} domains, {a.connections} connections, {a.threads} shard(s)")
    for name, r in (("mx", mx), ("route", route)):
        print(f"{name:6} delivered={r['done']} secs={r['secs']:.2f} msg_per_s={r['rate']:.1f} "
              f"cpu_ms_per_msg={r['cpu_ms']:.3f} deferred={r['deferred']}")
    print(f"mx/route rate: {mx['rate'] / route['rate']:.2f}")
    print("DNS questions in the mx run: " + ", ".join(f"{t} {per_type[t]} (at most {most[t]} for one name)"
                                                     for t in sorted(per_type)))


if __name__ == "__main__":
    main()
