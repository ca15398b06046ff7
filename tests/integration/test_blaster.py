"""smtp-blaster (bench/smtp_blaster.cc): its counts against Postfix's
smtp-sink and against ringmaild's Maildirs, the domain mix and numbered
recipients, and one-line errors for bad arguments. The TLS, AUTH and
open-loop rate options are still to come (issue 7)."""
import json
import os
import socket
import subprocess
import time

from conftest import free_port
from test_outbound import sink

BLASTER = os.environ.get(
    "RINGMAIL_BLASTER",
    os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "build", "smtp-blaster"))


def blast(*args):
    r = subprocess.run([BLASTER, "--json", *args], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def test_counts_against_smtp_sink():
    port = free_port(socket.AF_INET, "127.0.0.1")
    p = sink("127.0.0.1", port)
    try:
        out = blast("--target", f"127.0.0.1:{port}", "--connections", "8", "--messages", "3000",
                    "--per-connection", "50", "--size", "3000", "--recipients", "2")
    finally:
        p.kill()
        p.wait()
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
                        "--size-min is above --size-max")]:
        r = subprocess.run([BLASTER, *args], capture_output=True, text=True, timeout=30)
        assert r.returncode != 0 and text in r.stderr, (args, r.stderr)
        assert len(r.stderr.strip().splitlines()) <= 2, r.stderr


def test_open_loop_rate_paces_the_messages():
    """--rate: message n is not sent before n/rate seconds (a lower bound
    by construction, not a speed measurement), and latency counts from
    each message's due time."""
    port = free_port(socket.AF_INET, "127.0.0.1")
    p = sink("127.0.0.1", port)
    try:
        out = blast("--target", f"127.0.0.1:{port}", "--connections", "4", "--messages", "60",
                    "--rate", "40", "--size", "500")
    finally:
        p.kill()
        p.wait()
    assert out["accepted"] == 60, out
    assert out["seconds"] >= 59 / 40, out  # the last one was due at 1.475 s
