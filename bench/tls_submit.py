#!/usr/bin/python3
"""Authenticated submission throughput: STARTTLS on the submission port,
AUTH PLAIN, 10 KiB messages to a local mailbox; for each ringmaild binary
given and, with --chasquid, Debian's chasquid, in one run (rounds
interleaved, medians printed). Prints messages/s and the server's CPU
milliseconds per message (which includes one AUTH per connection).

    bench/tls_submit.py build/engine/ringmaild [--chasquid] [--rounds 3]
                        [--client python|blaster]

Scenarios, with --sessions client threads, each logging in as its own user
(bench0@example.test, bench1@...):

  first_login          one connection per thread: every AUTH is the user's
                       first (a full scrypt check on both servers)
  one_per_connection   --connections per thread, one message each: the same
                       users again (ringmail's AUTH cache answers; chasquid
                       runs scrypt every time)
  many_per_connection  one connection per thread, --per-connection messages

Loopback only; every run is bounded by the counts above.
"""
import argparse
import json
import os
import shutil
import smtplib
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

TOP = Path(__file__).resolve().parent.parent
TOOL = TOP / "build" / "tools" / "ringmail"
BLASTER = TOP / "build" / "smtp-blaster"
PASSWORD = "bench password"
CLK_TCK = os.sysconf("SC_CLK_TCK")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ticks(pid):
    f = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(f[11]) + int(f[12])


def users(n):
    return [f"bench{i}@example.test" for i in range(n)]


def make_cert(certs):
    certs.mkdir(parents=True)
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-nodes", "-days", "30",
                    "-keyout", str(certs / "privkey.pem"), "-out", str(certs / "fullchain.pem"),
                    "-subj", "/CN=bench.example.test"], check=True, capture_output=True)


def wait_port(proc, port, work):
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if proc.poll() is not None:
                break
            time.sleep(0.1)
    proc.kill()
    sys.exit(f"server did not start: {(work / 'log').read_text()[-800:]}")


def start_ringmail(binary, work, n_users):
    work.mkdir(parents=True)
    make_cert(work / "certs" / "bench.example.test")
    for u in users(n_users):
        subprocess.run([str(TOOL), "user-add", u, "--password-stdin",
                        "--domains-dir", str(work / "domains")], input=PASSWORD + "\n",
                       text=True, check=True, capture_output=True)
    port = free_port()
    (work / "cfg.toml").write_text(f"""hostname = "bench.example.test"
data_dir = "{work}/data"
local_domains = ["example.test"]
domains_dir = "{work}/domains"
threads = 1
[[listener]]
address = "127.0.0.1:{free_port()}"
kind = "smtp"
[[listener]]
address = "127.0.0.1:{port}"
kind = "submission"
[tls]
cert_dirs = ["{work}/certs"]
[dns]
servers = "127.0.0.1:9"
""")
    log = open(work / "log", "wb")
    proc = subprocess.Popen([binary, "--config", str(work / "cfg.toml")], stdout=log,
                            stderr=subprocess.STDOUT)
    wait_port(proc, port, work)
    return proc, port


def start_chasquid(work, n_users):
    """Debian's chasquid with its own configuration directory: the same
    certificate kind, the same users and password (chasquid-util stores
    them with scrypt, as ringmail does), local delivery to an MDA that reads
    the message and throws it away (chasquid's CPU figure does not include
    it; ringmail's includes its Maildir delivery)."""
    work.mkdir(parents=True)
    conf = work / "conf"
    make_cert(conf / "certs" / "bench.example.test")
    (conf / "domains" / "example.test").mkdir(parents=True)
    mda = work / "mda"
    mda.write_text("#!/bin/sh\nexec cat >/dev/null\n")
    mda.chmod(0o755)
    port = free_port()
    (conf / "chasquid.conf").write_text(f"""hostname: "bench.example.test"
smtp_address: "127.0.0.1:{free_port()}"
submission_address: "127.0.0.1:{port}"
mail_delivery_agent_bin: "{mda}"
mail_delivery_agent_args: "%to%"
data_dir: "{work}/data"
mail_log_path: "{work}/mail.log"
""")
    for u in users(n_users):
        subprocess.run(["chasquid-util", f"-C={conf}", "user-add", u,
                        f"--password={PASSWORD}"], check=True, capture_output=True)
    log = open(work / "log", "wb")
    proc = subprocess.Popen(["chasquid", "-config_dir", str(conf), "-alsologtostderr"], stdout=log,
                            stderr=subprocess.STDOUT)
    wait_port(proc, port, work)
    return proc, port


def client(port, user, per_conn, conns, body, errors, lock):
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    for _ in range(conns):
        try:
            with smtplib.SMTP("127.0.0.1", port, timeout=60) as s:
                s.starttls(context=ctx)
                s.ehlo("bench.client")
                s.login(user, PASSWORD)
                for _ in range(per_conn):
                    s.sendmail(user, [user], body)
        except Exception as e:  # counted and reported, the run goes on
            with lock:
                errors.append(repr(e))


def run_threads(port, sessions, conns_per_session, per_conn):
    """The Python client: one smtplib thread per session."""
    body = b"Subject: bench\r\n\r\n" + (b"x" * 76 + b"\r\n") * 131  # about 10 KiB
    errors, lock = [], threading.Lock()
    threads = [threading.Thread(target=client, args=(port, u, per_conn, conns_per_session, body,
                                                      errors, lock))
               for u in users(sessions)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return errors


def run_blaster(port, sessions, conns_per_session, per_conn):
    """smtp-blaster: --sessions connection slots, slot k logging in as
    bench<k> and sending from and to that address. Without PIPELINING, as
    smtplib: chasquid 1.11 drops a command pipelined behind the end of
    the data (the blaster's QUIT or next MAIL), and the session hangs."""
    msgs = sessions * conns_per_session * per_conn
    r = subprocess.run([str(BLASTER), "--target", f"127.0.0.1:{port}", "--connections",
                        str(sessions), "--messages", str(msgs), "--per-connection", str(per_conn),
                        "--size", "10240", "--starttls", "--auth",
                        f"bench{{c}}@example.test:{PASSWORD}", "--from", "bench{c}@example.test",
                        "--to", "bench{c}@example.test", "--helo", "bench.client", "--pipelining", "off",
                        "--json"],
                       capture_output=True, text=True, timeout=600)
    if r.returncode != 0 and not r.stdout.strip():
        return [f"smtp-blaster failed: {r.stderr.strip()[-300:]}"]
    out = json.loads(r.stdout.strip().splitlines()[-1])
    lost = msgs - out["accepted"]
    return [f"not accepted: {lost} ({out['codes']} {out['errors']})"] if lost else []


def scenario(proc, port, sessions, conns_per_session, per_conn, use_blaster):
    c0 = ticks(proc.pid)
    t0 = time.monotonic()
    run = run_blaster if use_blaster else run_threads
    errors = run(port, sessions, conns_per_session, per_conn)
    secs = time.monotonic() - t0
    c1 = ticks(proc.pid)
    msgs = sessions * conns_per_session * per_conn
    return msgs, secs, (c1 - c0) / CLK_TCK / msgs * 1000, errors


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("ringmaild", nargs="*")
    ap.add_argument("--chasquid", action="store_true", help="also run Debian's chasquid")
    ap.add_argument("--rounds", type=int, default=1, help="interleaved rounds; medians printed")
    ap.add_argument("--sessions", type=int, default=20, help="client threads, one user each")
    ap.add_argument("--connections", type=int, default=10, help="per session, one message each")
    ap.add_argument("--per-connection", type=int, default=100,
                    help="messages, one connection per session (0: skip)")
    ap.add_argument("--client", choices=["python", "blaster"], default="python",
                    help="smtplib threads, or build/smtp-blaster (C++, one loop; the Python "
                         "client tops out near 250 msg/s with a TLS handshake per message)")
    a = ap.parse_args()
    servers = [(b, lambda w, b=b: start_ringmail(b, w, a.sessions)) for b in a.ringmaild]
    if a.chasquid:
        if shutil.which("chasquid") is None:
            sys.exit("chasquid is not installed (apt-get install chasquid)")
        servers.append(("chasquid", lambda w: start_chasquid(w, a.sessions)))
    if not servers:
        sys.exit("nothing to run: give ringmaild binaries and/or --chasquid")
    plan = [("first_login", 1, 1), ("one_per_connection", a.connections, 1)]
    if a.per_connection > 0:
        plan.append(("many_per_connection", 1, a.per_connection))
    results = {}  # (server, scenario) -> [(msg_per_s, cpu_ms)]
    with tempfile.TemporaryDirectory(prefix="ringmail-tls-submit.") as tmp:
        for r in range(a.rounds):
            for i, (name, start) in enumerate(servers):
                proc, port = start(Path(tmp) / f"r{r}s{i}")
                try:
                    for scen, conns, per in plan:
                        msgs, secs, cpu, errors = scenario(proc, port, a.sessions, conns, per,
                                                           a.client == "blaster")
                        results.setdefault((name, scen), []).append((msgs / secs, cpu))
                        print(f"# round={r} server={name} scenario={scen} msgs={msgs} "
                              f"secs={secs:.2f} msg_per_s={msgs / secs:.1f} "
                              f"server_cpu_ms_per_msg={cpu:.2f} errors={len(errors)}", flush=True)
                        for e in errors[:3]:
                            print(f"# error: {e}")
                finally:
                    proc.terminate()
                    proc.wait(timeout=40)
    for (name, scen), vals in results.items():
        rate = statistics.median(v[0] for v in vals)
        cpu = statistics.median(v[1] for v in vals)
        print(f"RESULT server={name} scenario={scen} rounds={len(vals)} msg_per_s={rate:.1f} "
              f"server_cpu_ms_per_msg={cpu:.2f}")
    if a.chasquid:
        for b in a.ringmaild:
            for scen, _, _ in plan:
                rm, ch = results.get((b, scen)), results.get(("chasquid", scen))
                if rm and ch:
                    ratio = statistics.median(v[0] for v in rm) / statistics.median(v[0] for v in ch)
                    print(f"RATIO server={b} scenario={scen} ringmail/chasquid={ratio:.2f}")


if __name__ == "__main__":
    main()
