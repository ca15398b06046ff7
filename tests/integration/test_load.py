"""Load with Postfix's smtp-source: every accepted message arrives exactly
once and intact.

smtp-source's message (Debian postfix 3.7) after DATA is

    From: <sender>
    To: <recipient>
    Date: <date>
    Message-Id: <pid.session.msg@helo>
    <empty line>
    <payload of -l octets>

where the payload is 80-octet lines "<d>" + 77 "X" + CRLF (d = line number
mod 10, starting at 1) and a last line of only "X" without CRLF, the CRLF of
the end-of-data sequence ending it. `expected_payload` rebuilds it;
`test_smtp_source_payload_model` checks that model against smtp-source
itself (through a tiny local sink), so a different smtp-source version shows
up as that test failing, not as a false daemon failure.
"""

import math
import re
import shutil
import socket
import subprocess
import threading
import time

import pytest

from mailcheck import LITERAL_V4, LITERAL_V6, parse_delivery

SMTP_SOURCE = shutil.which("smtp-source") or "/usr/sbin/smtp-source"
HELO = "load.test.example"


def expected_payload(length):
    """Message payload (after the header block) as delivered: LF endings."""
    nlines = math.ceil(length / 80)
    lines = [str((i + 1) % 10) + "X" * 77 for i in range(nlines - 1)]
    lines.append("X" * (length - 80 * (nlines - 1)))
    return ("\n".join(lines) + "\n").encode()


HEADER_RE = re.compile(
    rb"From: <(?P<from>[^>\n]*)>\n"
    rb"To: <(?P<to>[^>\n]*)>\n"
    rb"Date: [^\n]+\n"
    rb"Message-Id: <(?P<mid>[^>\n]+)>\n"
    rb"\n")


def run_source(args, timeout=90):
    p = subprocess.run([SMTP_SOURCE] + args, stdin=subprocess.DEVNULL,
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=timeout)
    out = p.stdout.decode("utf-8", "replace")
    assert p.returncode == 0, f"smtp-source {' '.join(args)}: exit {p.returncode}\n{out[-3000:]}"
    return out


def check_files(server, files, *, sender, rcpt, to_header, length, literal):
    """Every file: delivery block, smtp-source headers, exact payload.
    Returns the set of (queue id, Message-Id)."""
    payload = expected_payload(length)
    qids, mids = [], []
    for f in files:
        data = f.read_bytes()
        m, msg = parse_delivery(data, str(f))
        assert m.group("rp") == sender.encode(), f"{f}: Return-Path {m.group('rp')!r}"
        assert m.group("helo") == HELO.encode(), f"{f}: HELO {m.group('helo')!r}"
        assert re.fullmatch(literal.encode(), m.group("lit")), f"{f}: literal {m.group('lit')!r}"
        assert m.group("by") == server.hostname.encode()
        h = HEADER_RE.match(msg)
        assert h, f"{f}: smtp-source header block not found: {msg[:300]!r}"
        assert h.group("to") == to_header.encode(), f"{f}: To: {h.group('to')!r}, expected {to_header}"
        assert m.group("dt").strip(b"<>").lower() == rcpt.encode(), f"{f}: Delivered-To {m.group('dt')!r}"
        body = msg[h.end():]
        assert body == payload, (
            f"{f}: payload corrupt ({len(body)} octets, expected {len(payload)}); "
            f"first difference at {next((i for i, (a, b) in enumerate(zip(body, payload)) if a != b), min(len(body), len(payload)))}")
        assert re.fullmatch(r"\d+\.%s_\d+\.%s" % (re.escape(m.group("id").decode()),
                                                   re.escape(server.hostname)), f.name), f.name
        qids.append(m.group("id"))
        mids.append(h.group("mid"))
    return qids, mids


def test_smtp_source_payload_model():
    """The payload model above matches what this smtp-source sends."""
    lsock = socket.socket()
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(1)
    port = lsock.getsockname()[1]
    got = {}

    def sink():
        c, _ = lsock.accept()
        f = c.makefile("rwb")
        f.write(b"220 sink ESMTP\r\n"); f.flush()
        data, indata = b"", False
        while True:
            line = f.readline()
            if not line:
                break
            if indata:
                if line == b".\r\n":
                    indata = False
                    got["msg"] = data
                    f.write(b"250 ok\r\n"); f.flush()
                else:
                    data += line
                continue
            if line.upper().startswith(b"DATA"):
                indata = True
                f.write(b"354 go\r\n")
            elif line.upper().startswith(b"QUIT"):
                f.write(b"221 bye\r\n"); f.flush()
                break
            else:
                f.write(b"250 ok\r\n")
            f.flush()
        c.close()

    t = threading.Thread(target=sink, daemon=True)
    t.start()
    try:
        run_source(["-m", "1", "-l", "10240", "-M", HELO, "-f", "from@src.example",
                    "-t", "rcpt@example.test", f"127.0.0.1:{port}"], timeout=20)
        t.join(10)
    finally:
        lsock.close()
    msg = got["msg"].replace(b"\r\n", b"\n")
    h = HEADER_RE.match(msg)
    assert h, msg[:300]
    assert msg[h.end():] == expected_payload(10240)


def test_smtp_source_parallel(server):
    n, length = 2000, 10240
    t = time.monotonic()
    out = run_source(["-s", "10", "-m", str(n), "-l", str(length), "-M", HELO,
                      "-f", "from@src.example", "-t", "rcpt@example.test",
                      f"127.0.0.1:{server.port}"])
    sent_s = time.monotonic() - t
    files = server.wait_for_mail("example.test", "rcpt", count=n, timeout=60, settle=0.5)
    qids, mids = check_files(server, files, sender="from@src.example",
                             rcpt="rcpt@example.test", to_header="rcpt@example.test", length=length,
                             literal=LITERAL_V4)
    assert len(set(qids)) == n, f"{n - len(set(qids))} duplicate queue ids"
    assert len(set(mids)) == n, f"{n - len(set(mids))} duplicate Message-Ids (duplicated deliveries)"
    print(f"smtp-source: {n} messages sent in {sent_s:.1f} s")


def test_smtp_source_reused_connections_multi_rcpt_ipv6(server):
    # -d: several transactions per session, -r 3: three recipients each
    # (smtp-source sends m@, 2m@ and 3m@example.test; the To: header is m@)
    n, length = 300, 3000
    run_source(["-6", "-d", "-s", "5", "-m", str(n), "-r", "3", "-l", str(length), "-M", HELO,
                "-f", "from@src.example", "-t", "m@example.test", f"[::1]:{server.port6}"])
    all_mids = []
    for user in ("m", "2m", "3m"):
        files = server.wait_for_mail("example.test", user, count=n, timeout=30, settle=0.5)
        qids, mids = check_files(server, files, sender="from@src.example",
                                 rcpt=f"{user}@example.test", to_header="m@example.test",
                                 length=length,
                                 literal=LITERAL_V6)
        assert len(set(qids)) == n and len(set(mids)) == n
        all_mids.append(sorted(mids))
    # the same n messages reached each of the three recipients
    assert all_mids[0] == all_mids[1] == all_mids[2]
