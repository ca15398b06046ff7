#!/usr/bin/python3
"""Crash test of ringmaild: acknowledged mail survives kill -9.

    /usr/bin/python3 tests/crash/crash_test.py [--ringmaild PATH] [--cycles N]
                                             [--backend B] [--clients K] [--seed S]

Starts ringmaild on a temporary data directory, runs client threads that send
messages over SMTP (DATA or BDAT, 1-3 local recipients, a unique id in the
Subject and a body ending in a SHA-256 checksum line) and records which got
"250 2.0.0 Ok: queued as <ID>". At random moments (0.2-1.5 s) the daemon is
killed with SIGKILL and restarted on the same data directory. After N cycles
the clients stop, the daemon gets time to deliver, is stopped with SIGTERM
(exit 0 required), and the Maildirs are checked:

  - every acknowledged message is delivered to each of its recipients exactly
    once (a missing copy = lost);
  - no (message, recipient) is delivered more than once (duplicates), whether
    acknowledged or not;
  - every delivered file is intact: known id, a recipient of that message,
    checksum matches (else corrupt).

With --relay some recipients are in another domain (peer.test): the daemon
relays them (it trusts 127.0.0.0/8) by MX, from a local DNS server, to a
second ringmaild on 127.0.0.2 that is never killed, and whose Maildirs are
checked the same way. A remote copy delivered twice is counted and reported
as a duplicate inside a kill window (the peer said 250, the daemon died
before its record of that was on disk); the run fails if there are more
than ten per kill (one per open connection).

Prints one summary line and exits 0 only when nothing is lost, duplicated or
corrupt and the daemon behaved (restarts, exit status).
"""

import argparse
import hashlib
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HOSTNAME = "crash.test.example"
DOMAINS = ["example.test", "other.test"]
MAILBOXES = ["c0@example.test", "c1@example.test", "c2@other.test", "c3@other.test"]
REMOTE = ["r0@peer.test", "r1@peer.test"]
PEER_IP = "127.0.0.2"
TOP = Path(__file__).resolve().parent.parent.parent
SENDER = "crash@src.example"
QUEUED = re.compile(rb"^250 2\.0\.0 Ok: queued as (\S+)$")


sys.path.insert(0, str(TOP / "tests"))
from ports import free_port  # noqa: E402  (tests/ports.py)


class Daemon:
    def __init__(self, binary, workdir, backend, threads, hostname=HOSTNAME, ip="127.0.0.1",
                 domains=("example.test", "other.test"), extra=""):
        self.binary, self.backend, self.threads = binary, backend, threads
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.data_dir = self.workdir / "data"
        self.ip = ip
        self.port = free_port(socket.AF_INET, ip)
        self.sub_port = free_port(socket.AF_INET, ip)
        self.config = self.workdir / "ringmaild.toml"
        self.log_path = self.workdir / "ringmaild.log"
        doms = ", ".join(f'"{x}"' for x in domains)
        self.config.write_text(
            f'hostname = "{hostname}"\n'
            f'data_dir = "{self.data_dir}"\n'
            f'local_domains = [{doms}]\n'
            f'relay_networks = ["127.0.0.0/8"]\n\n'
            f'[[listener]]\naddress = "{ip}:{self.port}"\nkind = "smtp"\n\n'
            f'[[listener]]\naddress = "{ip}:{self.sub_port}"\nkind = "submission"\n\n'
            f'[limits]\ncommand_timeout_s = 30\ndata_timeout_s = 30\nshutdown_grace_s = 5\n'
            f'spool_segment_bytes = 1048576\n'  # rotations under kill -9
            f'{extra}')
        self.proc = None
        self.starts = 0

    def start(self, timeout=10):
        deadline = time.monotonic() + timeout
        while True:
            with open(self.log_path, "ab") as log:
                log.write(f"==== start #{self.starts}\n".encode())
                log.flush()
                self.proc = subprocess.Popen(
                    [self.binary, "--config", str(self.config), "--backend", self.backend,
                     "--threads", str(self.threads)],
                    stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
            self.starts += 1
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    break
                try:
                    with socket.create_connection((self.ip, self.port), timeout=1):
                        return time.monotonic()
                except OSError:
                    time.sleep(0.02)
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
                raise RuntimeError(f"ringmaild not accepting within {timeout} s of start")
            if time.monotonic() >= deadline:
                raise RuntimeError(f"ringmaild keeps exiting at start (status {self.proc.returncode})")
            time.sleep(0.2)  # exited during start-up (e.g. port still busy): try again

    def kill9(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def terminate(self, timeout=20):
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            return None

    def log_tail(self, n=40):
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""


def make_message(rnd, mid):
    lines = []
    for _ in range(rnd.randint(1, 120)):
        n = rnd.randint(0, 200)
        line = "".join(rnd.choice("abcdefghijklmnopqrstuvwxyz0123456789 .,-") for _ in range(n))
        if rnd.random() < 0.1:
            line = "." + line  # exercise dot-stuffing
        lines.append(line.rstrip(" "))
    body = "".join(l + "\n" for l in lines).encode()
    digest = hashlib.sha256(body).hexdigest()
    text = (f"From: <{SENDER}>\nSubject: crash-id {mid}\nMessage-ID: <{mid}@crash.test>\n\n").encode()
    text += body + f"Checksum: {digest}\n".encode()
    return text.replace(b"\n", b"\r\n")


class Conn:
    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.buf = b""

    def reply(self):
        lines = []
        while True:
            while b"\r\n" not in self.buf:
                d = self.sock.recv(65536)
                if not d:
                    raise ConnectionError("EOF")
                self.buf += d
            line, self.buf = self.buf.split(b"\r\n", 1)
            lines.append(line)
            if len(line) < 4 or line[3:4] == b" ":
                return lines

    def cmd(self, data):
        self.sock.sendall(data)
        return self.reply()

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


class State:
    def __init__(self):
        self.lock = threading.Lock()
        self.attempted = {}   # mid -> set of recipients (DATA end / BDAT LAST was sent)
        self.acked = {}       # mid -> (recipients, queue id)
        self.errors = []      # protocol-level surprises (wrong replies)
        self.stop = threading.Event()


def client(idx, port, state, seed, mailboxes):
    rnd = random.Random(seed * 1000 + idx)
    seq = 0
    while not state.stop.is_set():
        try:
            c = Conn(port)
        except OSError:
            time.sleep(0.05)
            continue
        try:
            g = c.reply()
            if not g[0].startswith(b"220 "):
                raise ConnectionError(f"greeting {g}")
            r = c.cmd(b"EHLO crashclient.test.example\r\n")
            if r[0][:3] != b"250":
                raise ConnectionError(f"EHLO {r}")
            for _ in range(rnd.randint(1, 8)):
                if state.stop.is_set():
                    break
                seq += 1
                mid = f"s{seed}c{idx}m{seq}"
                rcpts = rnd.sample(mailboxes, rnd.randint(1, 3))
                msg = make_message(rnd, mid)
                r = c.cmd(f"MAIL FROM:<{SENDER}>\r\n".encode())
                if r != [b"250 2.1.0 Ok"]:
                    state.errors.append(f"{mid}: MAIL -> {r}")
                    break
                ok = True
                for rc in rcpts:
                    r = c.cmd(f"RCPT TO:<{rc}>\r\n".encode())
                    if r != [b"250 2.1.5 Ok"]:
                        state.errors.append(f"{mid}: RCPT {rc} -> {r}")
                        ok = False
                        break
                if not ok:
                    break
                use_bdat = rnd.random() < 0.3
                if use_bdat:
                    with state.lock:
                        state.attempted[mid] = set(rcpts)
                    r = c.cmd(b"BDAT %d LAST\r\n" % len(msg) + msg)
                else:
                    r = c.cmd(b"DATA\r\n")
                    if r != [b"354 End data with <CR><LF>.<CR><LF>"]:
                        state.errors.append(f"{mid}: DATA -> {r}")
                        break
                    stuffed = b"".join((b"." + l if l.startswith(b".") else l) + b"\r\n"
                                       for l in msg.split(b"\r\n")[:-1])
                    with state.lock:
                        state.attempted[mid] = set(rcpts)
                    r = c.cmd(stuffed + b".\r\n")
                m = QUEUED.match(r[0]) if len(r) == 1 else None
                if not m:
                    state.errors.append(f"{mid}: end of data -> {r}")
                    break
                with state.lock:
                    state.acked[mid] = (set(rcpts), m.group(1).decode())
        except (OSError, ConnectionError):
            pass  # killed daemon: reconnect
        finally:
            c.close()


def scan(data_dirs, state):
    """-> (copies: {(mid, rcpt): [paths]}, corrupt: [(path, why)])"""
    copies, corrupt = {}, []
    files = []
    for data_dir in data_dirs:
        root = Path(data_dir) / "mail"
        files += list(root.glob("*/*/Maildir/new/*")) + list(root.glob("*/*/Maildir/cur/*"))
    for p in files:
        domain, user = p.parts[-5], p.parts[-4]
        rcpt = f"{user}@{domain}"
        try:
            data = p.read_bytes()
        except OSError as e:
            corrupt.append((p, f"unreadable: {e}"))
            continue
        # Relayed copies leave with the sender rewritten by SRS (docs/aliases.md).
        local, domain = SENDER.split("@")
        srs = rb"Return-Path: <SRS0=[A-Za-z0-9+/]{4}=[A-Z2-7]{2}=" + re.escape(f"{domain}={local}@".encode())
        if not (data.startswith(f"Return-Path: <{SENDER}>\n".encode()) or re.match(srs, data)):
            corrupt.append((p, f"does not start with Return-Path: {data[:80]!r}"))
            continue
        m = re.search(rb"\nSubject: crash-id (\S+)\n", data)
        if not m:
            corrupt.append((p, "no Subject id"))
            continue
        mid = m.group(1).decode()
        end_h = data.find(b"\n\n", m.end() - 1)
        body = data[end_h + 2:] if end_h >= 0 else b""
        cm = re.search(rb"(?:^|\n)Checksum: ([0-9a-f]{64})\n\Z", body)
        if not cm:
            corrupt.append((p, f"{mid}: no checksum line at the end (len {len(body)})"))
            continue
        content = body[:cm.start() + (1 if body[cm.start():cm.start() + 1] == b"\n" else 0)]
        if hashlib.sha256(content).hexdigest() != cm.group(1).decode():
            corrupt.append((p, f"{mid}: checksum mismatch"))
            continue
        if b"\r" in data:
            corrupt.append((p, f"{mid}: CR in delivered file"))
            continue
        if mid not in state.attempted:
            corrupt.append((p, f"{mid}: never sent"))
            continue
        if rcpt not in state.attempted[mid]:
            corrupt.append((p, f"{mid}: delivered to {rcpt}, not a recipient"))
            continue
        copies.setdefault((mid, rcpt), []).append(p)
    return copies, corrupt


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--ringmaild", default=os.environ.get("RINGMAILD",
                                                          os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "build", "engine", "ringmaild")))
    ap.add_argument("--cycles", type=int, default=20)
    ap.add_argument("--backend", default=os.environ.get("RINGMAIL_BACKEND", "auto"))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory")
    ap.add_argument("--drain-timeout", type=float, default=30)
    ap.add_argument("--relay", action="store_true",
                    help="also recipients in another domain, relayed to a second ringmaild")
    args = ap.parse_args()

    if not os.access(args.ringmaild, os.X_OK):
        print(f"crash test: ringmaild not found at {args.ringmaild}", file=sys.stderr)
        return 2
    seed = args.seed if args.seed is not None else random.randrange(1 << 30)
    rnd = random.Random(seed)
    workdir = tempfile.mkdtemp(prefix="ringmail-crash-")
    peer = dns = None
    mailboxes = list(MAILBOXES)
    data_dirs = []
    extra = ""
    if args.relay:
        peer = Daemon(args.ringmaild, Path(workdir) / "peer", args.backend, 1,
                      hostname="mx.peer.test", ip=PEER_IP, domains=("peer.test",))
        zone = Path(workdir) / "zone"
        zone.write_text(f"peer.test. 60 IN MX 10 mx.peer.test.\nmx.peer.test. 60 IN A {PEER_IP}\n")
        dns = subprocess.Popen(["/usr/bin/python3", str(TOP / "tests" / "dns_server.py"), str(zone)],
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        dns_port = int(dns.stdout.readline())
        extra = (f'\n[dns]\nservers = "127.0.0.1:{dns_port}"\n[outbound]\nport = {peer.port}\n'
                 f'retry_first_s = 1\nretry_max_s = 2\nconnect_timeout_s = 5\n')
        mailboxes += REMOTE
        data_dirs.append(peer.data_dir)
    d = Daemon(args.ringmaild, workdir, args.backend, args.threads, extra=extra)
    data_dirs.insert(0, d.data_dir)
    state = State()
    problems = []
    t_start = time.monotonic()
    print(f"crash test: seed {seed}, backend {args.backend}, dir {workdir}"
          f"{', relaying to a peer' if args.relay else ''}", flush=True)
    try:
        if peer is not None:
            peer.start()
        try:
            d.start()
        except (RuntimeError, OSError) as e:
            print(f"crash test: ringmaild did not start: {e}\n{d.log_tail()}")
            return 1
        threads = [threading.Thread(target=client, args=(i, d.port, state, seed, mailboxes), daemon=True)
                   for i in range(args.clients)]
        for t in threads:
            t.start()
        for cycle in range(args.cycles):
            time.sleep(rnd.uniform(0.2, 1.5))
            d.kill9()
            try:
                d.start()
            except (RuntimeError, OSError) as e:
                problems.append(f"restart after kill -9 #{cycle + 1} failed: {e}")
                break
        time.sleep(0.3)
        state.stop.set()
        for t in threads:
            t.join(15)
            if t.is_alive():
                problems.append("a client thread hung")
        # let the daemon deliver everything acknowledged
        deadline = time.monotonic() + args.drain_timeout
        if d.proc is not None and d.proc.poll() is None:
            while time.monotonic() < deadline:
                copies, _ = scan(data_dirs, state)
                missing = [(mid, r) for mid, (rs, _) in state.acked.items() for r in rs
                           if (mid, r) not in copies]
                if not missing:
                    break
                time.sleep(0.2)
            time.sleep(1.0)
            rc = d.terminate()
            if rc != 0:
                problems.append(f"exit status {rc} after SIGTERM (None = hung > 20 s)")
        else:
            problems.append("ringmaild not running at the end")
        if peer is not None and peer.terminate() != 0:
            problems.append("the peer did not stop cleanly")
    finally:
        for x in (d, peer):
            if x is not None and x.proc is not None and x.proc.poll() is None:
                x.proc.kill()
                x.proc.wait()
        if dns is not None:
            dns.stdin.close()
            dns.wait(timeout=10)

    copies, corrupt = scan(data_dirs, state)
    acked_pairs = [(mid, r) for mid, (rs, _) in state.acked.items() for r in rs]
    lost = [(mid, r) for (mid, r) in acked_pairs if (mid, r) not in copies]
    lost_msgs = {mid for mid, _ in lost}
    delivered_acked = sum(1 for mid in state.acked if mid not in lost_msgs)
    dups = {k: v for k, v in copies.items() if len(v) > 1}
    # Remote copies delivered twice: the peer said 250 and the daemon was
    # killed before its record of that was durable (reported, bounded).
    remote_dups = {k: v for k, v in dups.items() if k[1] in REMOTE}
    dups = {k: v for k, v in dups.items() if k[1] not in REMOTE}
    n_dup = sum(len(v) - 1 for v in dups.values())
    n_remote_dup = sum(len(v) - 1 for v in remote_dups.values())
    if n_remote_dup > 10 * args.cycles:  # at most one per open connection (10) per kill
        problems.append(f"{n_remote_dup} remote duplicates for {args.cycles} kills")
    remote_acked = sum(1 for mid, (rs, _) in state.acked.items() for r in rs if r in REMOTE)
    unacked_delivered = len({mid for (mid, _) in copies if mid not in state.acked})
    corrupt_dir = d.data_dir / "spool" / "corrupt"
    n_spool_corrupt = len(list(corrupt_dir.iterdir())) if corrupt_dir.is_dir() else 0

    for mid, r in lost[:20]:
        print(f"LOST: {mid} to {r} (queued as {state.acked[mid][1]})")
    for (mid, r), paths in list(dups.items())[:20]:
        print(f"DUPLICATE: {mid} to {r}: {[p.name for p in paths]}")
    for p, why in corrupt[:20]:
        print(f"CORRUPT: {p}: {why}")
    for e in state.errors[:20]:
        print(f"UNEXPECTED REPLY: {e}")
    for pr in problems:
        print(f"PROBLEM: {pr}")
    if problems or lost or corrupt:
        print(f"--- ringmaild log tail ({d.log_path}) ---\n{d.log_tail()}")
    print(f"info: {d.starts} starts, {len(state.attempted)} messages sent, "
          f"{unacked_delivered} unacknowledged delivered, {n_spool_corrupt} in spool/corrupt, "
          f"{time.monotonic() - t_start:.1f} s")
    if args.relay:
        print(f"relay: {remote_acked} acknowledged remote recipients, "
              f"{n_remote_dup} delivered twice inside a kill window")
    print(f"crash test: {args.cycles} cycles, {len(state.acked)} acknowledged, "
          f"{delivered_acked} delivered, {len(lost_msgs)} lost, {n_dup} duplicates, "
          f"{len(corrupt)} corrupt", flush=True)
    failed = bool(problems or lost or dups or corrupt or state.errors or not state.acked)
    if not state.acked:
        print("PROBLEM: no message was acknowledged at all")
    if failed or args.keep:
        print(f"data kept in {workdir}")
    else:
        shutil.rmtree(workdir, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
