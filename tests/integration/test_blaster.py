"""smtp-blaster (bench/smtp_blaster.cc): its counts against Postfix's
smtp-sink's own counter and against ringmaild's Maildirs, STARTTLS,
implicit TLS and AUTH against ringmaild's submission ports, the domain mix
and numbered recipients, size files and body files as the sink received
them, the open-loop rate as arrivals counted over time, a server that
refuses every session, and one-line errors for bad arguments."""
import json
import os
import re
import socket
import subprocess
import tempfile
import threading
import time

from conftest import SINK_USER_OPTS, free_port
from test_auth import PASSWORD
from test_outbound import sink
from test_send_test import submission  # noqa: F401 (fixture)

BLASTER = os.environ.get(
    "RINGMAIL_BLASTER",
    os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "build", "smtp-blaster"))


def blast(*args, rc=0):
    r = subprocess.run([BLASTER, "--json", *args], capture_output=True, text=True, timeout=120)
    assert r.returncode == rc, r.stderr
    return json.loads(r.stdout)


class CountingSink:
    """smtp-sink -c: its running counter (sess=N quit=N mesg=N, written as
    each message ends) read as it comes, with the time of each change."""

    def __init__(self, *opts):
        self.port = free_port(socket.AF_INET, "127.0.0.1")
        self.p = subprocess.Popen(["/usr/sbin/smtp-sink", "-c", *SINK_USER_OPTS, *opts,
                                   f"127.0.0.1:{self.port}", "64"], stdout=subprocess.PIPE)
        self.arrivals = []  # (monotonic time, messages so far)
        self.t = threading.Thread(target=self._read, daemon=True)
        self.t.start()
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.05)
        self.p.kill()
        raise AssertionError("smtp-sink did not start")

    def _read(self):
        buf = b""
        while True:
            chunk = os.read(self.p.stdout.fileno(), 4096)
            if not chunk:
                return
            now = time.monotonic()
            buf += chunk
            for m in re.finditer(rb"mesg=(\d+)", buf):
                n = int(m.group(1))
                if not self.arrivals or self.arrivals[-1][1] != n:
                    self.arrivals.append((now, n))
            buf = buf[-64:]

    def messages(self):
        last = None
        for _ in range(40):  # the counter is written as sessions end
            n = self.arrivals[-1][1] if self.arrivals else 0
            if n == last:
                return n
            last = n
            time.sleep(0.05)
        return last

    def stop(self):
        self.p.kill()
        self.p.wait()
        self.t.join(5)


def sink_dump():
    """An smtp-sink that writes each message to a file; returns (proc, port, dir)."""
    d = tempfile.mkdtemp()
    os.chmod(d, 0o777)
    port = free_port(socket.AF_INET, "127.0.0.1")
    return sink("127.0.0.1", port, "-d", f"{d}/%M."), port, d


def dumped_messages(d, want):
    deadline = time.monotonic() + 20
    while len(os.listdir(d)) < want and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.2)
    out = []
    for name in sorted(os.listdir(d)):
        with open(os.path.join(d, name), "rb") as f:
            lines = f.read().split(b"\n")[8:]  # the sink's X-* and Received fields
        while lines and lines[-1] == b"":
            lines.pop()
        out.append(lines)
    return out


def test_counts_against_smtp_sink():
    s = CountingSink()
    try:
        out = blast("--target", f"127.0.0.1:{s.port}", "--connections", "8", "--messages", "3000",
                    "--per-connection", "50", "--size", "3000", "--recipients", "2")
        counted = s.messages()
        # Without pipelining too (one command, one reply): the same count.
        off = blast("--target", f"127.0.0.1:{s.port}", "--connections", "3", "--messages", "200",
                    "--per-connection", "40", "--pipelining", "off")
        counted_off = s.messages() - counted
    finally:
        s.stop()
    assert counted == 3000, counted  # the sink's own counter
    assert off["accepted"] == counted_off == 200, (off, counted_off)
    assert out["messages"] == 3000 and out["accepted"] == 3000, out
    assert out["temp_failed"] == out["perm_failed"] == out["connection_errors"] == 0, out
    assert out["codes"] == {"250": 6000}, out  # two recipients each
    assert 60 <= out["connections"] <= 60 + 8, out  # the last ones may find nothing left to send
    lat = out["latency_s"]
    assert 0 < lat["p50"] <= lat["p90"] <= lat["p99"] <= lat["p99.9"] <= lat["max"], lat


def test_counts_agree_with_the_maildirs(server):
    out = blast("--target", f"127.0.0.1:{server.port}", "--connections", "4", "--messages", "40",
                "--per-connection", "3", "--size", "1500", "--to", "u{n}@example.test",
                "--domain", "example.test:3,other.test:1", "--from", "b@src.example")
    assert out["accepted"] == 40, out
    deadline = time.monotonic() + 20
    while True:
        n = {d: len(list((server.data_dir / "mail" / d).glob("*/Maildir/new/*")))
             for d in ("example.test", "other.test")}
        if sum(n.values()) == 40 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert n == {"example.test": 30, "other.test": 10}, n
    assert (server.data_dir / "mail" / "example.test" / "u0" / "Maildir" / "new").exists()


def test_bad_arguments_get_one_line():
    for args, text in [((), "--target is required"),
                       (("--target", "127.0.0.1:1"), "give --messages N or --duration S"),
                       (("--target", "nohost", "--messages", "1"), "--target must be HOST:PORT"),
                       (("--target", "127.0.0.1:1", "--messages", "1", "--size-min", "9", "--size-max", "1"),
                        "--size-min is above --size-max"),
                       # 0 is no bound at all: refused.
                       (("--target", "127.0.0.1:1", "--messages", "0"), "--messages: must be a number above 0"),
                       (("--target", "127.0.0.1:1", "--duration", "0"), "--duration: must be a number above 0"),
                       (("--target", "127.0.0.1:1", "--duration", "-1"), "--duration: must be a number above 0")]:
        r = subprocess.run([BLASTER, *args], capture_output=True, text=True, timeout=30)
        assert r.returncode != 0 and text in r.stderr, (args, r.stderr)
        assert len(r.stderr.strip().splitlines()) <= 2, r.stderr


def test_open_loop_rate_paces_the_messages():
    """--rate: message n is not sent before n/rate seconds, checked by
    counting the sink's arrivals over time (an upper bound on arrivals at
    every moment, by construction; no speed is asserted), and latency counts
    from each message's due time."""
    s = CountingSink()
    try:
        t0 = time.monotonic()  # before the blaster's own start: a safe origin
        out = blast("--target", f"127.0.0.1:{s.port}", "--connections", "4", "--messages", "60",
                    "--rate", "40", "--size", "500")
        assert s.messages() == 60
    finally:
        s.stop()
    assert out["accepted"] == 60, out
    assert out["seconds"] >= 59 / 40, out  # the last one was due at 1.475 s
    assert len(s.arrivals) > 5, s.arrivals  # spread out, not one burst
    for when, n in s.arrivals:
        # message k (from 0) is due at k/40 s: by time t at most 40t+1 are due
        assert n <= 40 * (when - t0) + 1, (when - t0, n)


def maildir_count(server, user, want):
    new = server.data_dir / "mail" / "example.test" / user / "Maildir" / "new"
    deadline = time.monotonic() + 20
    while True:
        n = len(list(new.glob("*"))) if new.exists() else 0
        if n >= want or time.monotonic() > deadline:
            return n
        time.sleep(0.1)


def test_starttls_implicit_tls_and_auth_against_ringmaild(submission):
    auth = f"alice@example.test:{PASSWORD}"
    out = blast("--target", f"localhost:{submission.sub_port}", "--starttls", "--auth", auth,
                "--connections", "3", "--messages", "30", "--per-connection", "4",
                "--from", "alice@example.test", "--to", "bob@example.test", "--size", "2000")
    assert out["accepted"] == 30 and out["connection_errors"] == 0, out
    assert out["tls_sessions"] == out["connections"] >= 8, out  # 30 messages, 4 a connection
    assert out["tls"].startswith("TLSv1.3 "), out
    assert 0 < out["tls_handshake_s"]["p50"] <= out["tls_handshake_s"]["max"], out
    assert out["setup_s"]["p50"] >= out["tls_handshake_s"]["p50"], out
    out = blast("--target", f"127.0.0.1:{submission.smtps_port}", "--tls", "--sni", "localhost",
                "--auth", auth, "--connections", "2", "--messages", "10",
                "--from", "alice@example.test", "--to", "bob@example.test")
    assert out["accepted"] == 10 and out["tls_sessions"] == out["connections"], out
    assert maildir_count(submission, "bob", 40) == 40


def test_refused_sessions_are_counted_with_their_reason(submission):
    # A wrong password: every session fails at AUTH; the run gives up.
    r = subprocess.run([BLASTER, "--json", "--target", f"localhost:{submission.sub_port}", "--starttls",
                        "--auth", "alice@example.test:wrong", "--connections", "2", "--messages", "5",
                        "--max-errors", "4"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 1, r.stderr
    out = json.loads(r.stdout)
    assert out["accepted"] == 0 and out["connection_errors"] >= 4, out
    assert any("535" in k for k in out["errors"]), out["errors"]
    assert "gave up after" in r.stderr and "535" in r.stderr, r.stderr
    # STARTTLS asked of a server that has none (the sink): each session fails.
    s = CountingSink()
    try:
        r = subprocess.run([BLASTER, "--json", "--target", f"127.0.0.1:{s.port}", "--starttls",
                            "--messages", "5", "--max-errors", "3"], capture_output=True, text=True, timeout=60)
    finally:
        s.stop()
    assert r.returncode == 1
    assert any("TLS is required" in k for k in json.loads(r.stdout)["errors"]), r.stdout


def test_size_file_and_body_file_as_the_sink_received_them(tmp_path):
    sizes = tmp_path / "sizes"
    sizes.write_text("# bytes weight\n700 1\n2500 3\n")
    p, port, d = sink_dump()
    try:
        out = blast("--target", f"127.0.0.1:{port}", "--connections", "2", "--messages", "40",
                    "--size-file", str(sizes))
        got = dumped_messages(d, 40)
    finally:
        p.kill()
        p.wait()
    assert out["accepted"] == 40, out
    assert len(got) == 40
    seen = [sum(len(x) + 2 for x in lines) for lines in got]  # CRLF bytes on the wire
    assert set(seen) == {700, 2500}, sorted(set(seen))
    assert 15 <= seen.count(2500) <= 39, seen  # weights 1:3, fixed seed
    assert out["bytes"] == sum(seen), out

    body = tmp_path / "body.txt"
    body.write_bytes(b"Hello,\n.a line that starts with a dot\n\nbye\n")
    p, port, d = sink_dump()
    try:
        out = blast("--target", f"127.0.0.1:{port}", "--connections", "1", "--messages", "3",
                    "--body-file", str(body), "--to", "x{n}@example.test")
        got = dumped_messages(d, 3)
    finally:
        p.kill()
        p.wait()
    assert out["accepted"] == 3, out
    for lines in got:
        text = b"\n".join(lines)
        assert text.endswith(b"\n\nHello,\n.a line that starts with a dot\n\nbye"), text
        assert re.search(rb"^To: <x[0-2]@example.test>$", text, re.M), text


def test_numbered_senders_and_slot_named_users():
    """{n} in --from: a new sender per message; {c}: the connection's slot,
    the same for every message that slot sends."""
    p, port, d = sink_dump()
    try:
        out = blast("--target", f"127.0.0.1:{port}", "--connections", "2", "--messages", "8",
                    "--per-connection", "2", "--from", "a{n}@s{c}.example", "--to", "r{c}@x.test")
        got = dumped_messages(d, 8)
    finally:
        p.kill()
        p.wait()
    assert out["accepted"] == 8, out
    pairs = set()
    for lines in got:
        text = b"\n".join(lines)
        sender = re.search(rb"^From: <a(\d+)@s(\d+)\.example>$", text, re.M)
        rcpt = re.search(rb"^To: <r(\d+)@x\.test>$", text, re.M)
        assert sender and rcpt, text
        assert sender.group(2) == rcpt.group(1), text  # one slot, one name
        pairs.add((int(sender.group(1)), int(sender.group(2))))
    assert sorted(n for n, _ in pairs) == list(range(8)), pairs  # a new sender each
    assert {slot for _, slot in pairs} == {0, 1}, pairs


def test_more_bad_arguments_get_one_line(tmp_path):
    bad_sizes = tmp_path / "sizes"
    bad_sizes.write_text("100\nlots\n")
    empty = tmp_path / "empty"
    empty.write_text("")
    base = ["--target", "127.0.0.1:1", "--messages", "1"]
    for args, text in [(("--auth", "alice:pw"), "--auth needs --starttls or --tls"),
                       (("--auth", "nocolon", "--tls"), "--auth must be USER:PASS"),
                       (("--tls", "--starttls"), "excludes"),
                       (("--size-file", str(bad_sizes)), "sizes:2: want 'BYTES [WEIGHT]'"),
                       (("--size-file", str(tmp_path / "missing")), "missing: No such file"),
                       (("--body-file", str(empty)), "the file is empty"),
                       (("--pipelining", "maybe"), "--pipelining"),
                       (("--backend", "kqueue"), "--backend")]:
        r = subprocess.run([BLASTER, *base, *args], capture_output=True, text=True, timeout=30)
        assert r.returncode != 0 and text in r.stderr, (args, r.stderr)
        assert len(r.stderr.strip().splitlines()) <= 2, r.stderr
