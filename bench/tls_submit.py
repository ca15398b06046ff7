#!/usr/bin/python3
"""Authenticated submission throughput: STARTTLS on the submission port,
AUTH PLAIN, 10 KiB messages; one message per connection and many per
connection; for each ringmaild binary given (the bundled and the system
wolfSSL builds), in one run. Prints messages/s and the server's CPU
milliseconds per message (which includes one scrypt check per connection).

    bench/tls_submit.py build/engine/ringmaild build-syswolfssl/engine/ringmaild

Loopback only; every run is bounded by --connections and --per-connection.
"""
import argparse
import os
import smtplib
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

TOP = Path(__file__).resolve().parent.parent
TOOL = TOP / "build" / "tools" / "ringmail"
PASSWORD = "bench password"
CLK_TCK = os.sysconf("SC_CLK_TCK")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ticks(pid):
    f = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(f[11]) + int(f[12])


def start(binary, work):
    work.mkdir(parents=True)
    certs = work / "certs" / "bench.example.test"
    certs.mkdir(parents=True)
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-nodes", "-days", "30",
                    "-keyout", str(certs / "privkey.pem"), "-out", str(certs / "fullchain.pem"),
                    "-subj", "/CN=bench.example.test"], check=True, capture_output=True)
    subprocess.run([str(TOOL), "user-add", "bench@example.test", "--password-stdin",
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
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return proc, port
        except OSError:
            time.sleep(0.1)
    proc.kill()
    sys.exit(f"{binary} did not start: {(work / 'log').read_text()[-500:]}")


def client(port, per_conn, conns, body, errors, lock):
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    for _ in range(conns):
        try:
            with smtplib.SMTP("127.0.0.1", port, timeout=60) as s:
                s.starttls(context=ctx)
                s.ehlo("bench.client")
                s.login("bench@example.test", PASSWORD)
                for _ in range(per_conn):
                    s.sendmail("bench@example.test", ["sink@elsewhere.example"], body)
        except Exception as e:  # counted and reported, the run goes on
            with lock:
                errors.append(repr(e))


def scenario(proc, port, sessions, conns_per_session, per_conn):
    body = b"Subject: bench\r\n\r\n" + (b"x" * 76 + b"\r\n") * 131  # about 10 KiB
    errors, lock = [], threading.Lock()
    c0 = ticks(proc.pid)
    t0 = time.monotonic()
    threads = [threading.Thread(target=client, args=(port, per_conn, conns_per_session, body,
                                                      errors, lock)) for _ in range(sessions)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    secs = time.monotonic() - t0
    c1 = ticks(proc.pid)
    msgs = sessions * conns_per_session * per_conn
    return msgs, secs, (c1 - c0) / CLK_TCK / msgs * 1000, errors


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("ringmaild", nargs="+")
    ap.add_argument("--sessions", type=int, default=4)
    ap.add_argument("--connections", type=int, default=25, help="per session, one message each")
    ap.add_argument("--per-connection", type=int, default=250, help="messages, one connection per session")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="ringmail-tls-submit.") as tmp:
        for i, binary in enumerate(a.ringmaild):
            proc, port = start(binary, Path(tmp) / f"s{i}")
            try:
                for name, conns, per in [("one_per_connection", a.connections, 1),
                                         ("many_per_connection", 1, a.per_connection)]:
                    msgs, secs, cpu, errors = scenario(proc, port, a.sessions, conns, per)
                    print(f"RESULT server={binary} scenario={name} msgs={msgs} secs={secs:.2f} "
                          f"msg_per_s={msgs / secs:.1f} server_cpu_ms_per_msg={cpu:.3f} "
                          f"errors={len(errors)}", flush=True)
                    for e in errors[:3]:
                        print(f"# error: {e}")
            finally:
                proc.terminate()
                proc.wait(timeout=40)


if __name__ == "__main__":
    main()
