"""The operator's `ringmail` command against a real spool."""
import os
import smtplib
import re
import subprocess
import time
from pathlib import Path

import pytest

RINGMAIL = os.environ.get(
    "RINGMAIL_TOOL",
    os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "build", "tools", "ringmail"))


def tool(*args):
    return subprocess.run([RINGMAIL, *args], capture_output=True, text=True, timeout=30)


@pytest.fixture
def stuck_server(start_ringmaild):
    """A daemon whose local delivery fails (the domain's mail directory is a
    file), so accepted mail stays in the spool."""
    if not os.path.exists(RINGMAIL):
        pytest.skip(f"{RINGMAIL} not built")
    d = start_ringmaild(start=False)
    (d.data_dir / "mail").mkdir(parents=True)
    (d.data_dir / "mail" / "example.test").write_text("not a directory\n")
    d.start()
    return d


def send(d, rcpt, subject):
    with smtplib.SMTP(d.host, d.port, timeout=10) as s:
        s.ehlo("tools.test.example")
        code, resp = s.docmd("MAIL FROM:<alice@src.example>")
        assert code == 250, resp
        code, resp = s.docmd(f"RCPT TO:<{rcpt}>")
        assert code == 250, resp
        code, resp = s.data(f"Subject: {subject}\r\n\r\nbody of {subject}\r\n".encode())
        assert code == 250, resp
        return resp.decode().rsplit(" ", 1)[1]


def test_spool_list_and_show(stuck_server):
    d = stuck_server
    ids = [send(d, "bob@example.test", "first"), send(d, "carol@example.test", "second")]
    # Delivery fails and is deferred; both stay in the spool.
    deadline = time.time() + 10
    while time.time() < deadline and "deferred" not in d.log_tail(50):
        time.sleep(0.1)
    r = tool("spool-list", "--data-dir", str(d.data_dir))
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[-1].startswith("2 messages waiting for delivery in "), r.stdout
    for qid, rcpt in zip(ids, ["bob@example.test", "carol@example.test"]):
        [line] = [l for l in lines if l.startswith(qid)]
        assert line.endswith(f"<alice@src.example> -> <{rcpt}>"), line
    r = tool("spool-show", ids[1], "--data-dir", str(d.data_dir))
    assert r.returncode == 0, r.stderr
    assert f"id: {ids[1]}\n" in r.stdout
    assert "state: waiting\n" in r.stdout
    assert "rcpt: <carol@example.test>\n" in r.stdout
    assert "Subject: second\n\nbody of second\n" in r.stdout  # text mode folds CRLF
    assert r.stdout.count("Received: from tools.test.example") == 1


def test_spool_show_unknown_id(stuck_server):
    r = tool("spool-show", "NOSUCHID", "--data-dir", str(stuck_server.data_dir))
    assert r.returncode == 1
    note, err = r.stderr.strip().splitlines()
    assert note.startswith("ringmail: reading a live spool: ringmaild (pid "), note
    assert err == f"ringmail: no message NOSUCHID in {stuck_server.data_dir}/spool"


def test_spool_list_empty_dir(tmp_path):
    if not os.path.exists(RINGMAIL):
        pytest.skip(f"{RINGMAIL} not built")
    r = tool("spool-list", "--data-dir", str(tmp_path))
    assert r.returncode == 0
    assert r.stdout == "0 messages waiting for delivery in 0 segments\n"


def test_damaged_record_is_moved_aside_and_the_rest_delivered(stuck_server):
    """End to end: a byte flipped on disk in one spooled message. At the next
    start that region goes to spool/corrupt/ with a log line, and the other
    messages are delivered; nothing disappears silently."""
    d = stuck_server
    ids = [send(d, f"user{i}@example.test", f"msg{i}") for i in range(3)]
    rc, problem = d.stop()
    assert rc == 0, problem
    segments = sorted((d.data_dir / "spool" / "queue").glob("seg-*"))
    target = None
    for seg in segments:
        data = seg.read_bytes()
        at = data.find(b"Subject: msg1\r\n")
        if at >= 0:
            target = seg
            seg.write_bytes(data[:at] + b"X" + data[at + 1:])
    assert target is not None, [s.name for s in segments]
    # Let delivery work this time.
    (d.data_dir / "mail" / "example.test").unlink()
    d.start()
    d.wait_for_mail("example.test", "user0")
    d.wait_for_mail("example.test", "user2")
    time.sleep(0.5)
    assert d.mail_files("example.test", "user1") == []
    log = d.log_tail(200)
    assert f"damaged region in {target.name}" in log, log
    kept = list((d.data_dir / "spool" / "corrupt").iterdir())
    assert len(kept) == 1, kept
    assert ids[1].encode() in kept[0].read_bytes()
    assert "1 damaged regions moved to corrupt/" in log


def test_second_daemon_on_the_same_data_dir_is_refused(stuck_server, start_ringmaild):
    """Regression (issue 19, defect 1): a second ringmaild on a data_dir in
    use ran spool recovery, removed the first daemon's segments and lost
    mail it had answered 250 for. It must refuse to start and touch
    nothing; the spool tools say they read a live spool."""
    d = stuck_server
    ids = [send(d, "bob@example.test", f"kept {i}") for i in range(4)]
    segments = sorted(p.name for p in (d.data_dir / "spool" / "queue").iterdir())
    second = start_ringmaild(start=False, data_dir=d.data_dir)
    second.port, second.port6, second.sub_port = d.port + 0, d.port6, d.sub_port
    second.write_config()
    r = subprocess.run(second.command(), capture_output=True, text=True, timeout=30)
    assert r.returncode == 1, r.stdout + r.stderr
    out = r.stdout + r.stderr
    assert f"cannot start: another ringmaild (pid {d.proc.pid}) uses {d.data_dir}" in out, out
    assert "spool recovered" not in out and "empty segments removed" not in out, out
    # No segment of the first daemon's is gone. Spares are left out: the
    # first daemon fills one after its first message and then renames it
    # into its current segment, which may happen while this test looks.
    after = {p.name for p in (d.data_dir / "spool" / "queue").iterdir()}
    kept = {n for n in segments if n.startswith("seg-")}
    assert kept and kept <= after, (segments, sorted(after))
    listing = tool("spool-list", "--data-dir", str(d.data_dir))
    assert f"reading a live spool: ringmaild (pid {d.proc.pid}) is running on {d.data_dir}" in listing.stderr
    for qid in ids:
        assert qid in listing.stdout, listing.stdout
    # Every message survives the first daemon's restart.
    d.stop()
    d.start()
    listing = tool("spool-list", "--data-dir", str(d.data_dir)).stdout
    for qid in ids:
        assert qid in listing, listing


def test_disk_full_answers_452_and_loses_nothing(start_ringmaild, tmp_path):
    """The spool on a 4 MiB tmpfs (docs/reliability.md): messages are
    taken until the disk is full, then answered 452 4.3.1; every message
    answered 250 is still in the spool after a restart."""
    if not os.path.exists(RINGMAIL):
        pytest.skip(f"{RINGMAIL} not built")
    mnt = tmp_path / "small"
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mnt)], capture_output=True)
    if r.returncode != 0:
        pytest.skip("cannot mount a tmpfs here: " + r.stderr.decode())
    try:
        d = start_ringmaild(start=False, data_dir=mnt / "data", threads=1,
                            limits={"message_bytes_max": 200000, "spool_segment_bytes": 262144})
        (mnt / "data" / "mail").mkdir(parents=True)
        (mnt / "data" / "mail" / "example.test").write_text("not a directory\n")  # deliveries wait
        d.start()
        acked, refused = [], None
        body = ("x" * 998 + "\r\n") * 60
        for i in range(200):
            with smtplib.SMTP(d.host, d.port, timeout=30) as s:
                s.ehlo("full.test.example")
                s.docmd("MAIL FROM:<alice@src.example>")
                s.docmd("RCPT TO:<bob@example.test>")
                code, resp = s.data(f"Subject: fill {i}\r\n\r\n{body}".encode())
                if code == 250:
                    acked.append(resp.decode().rsplit(" ", 1)[1])
                    continue
                refused = (code, resp)
                break
        assert refused is not None, "a 4 MiB disk took 12 MB of mail"
        assert refused == (452, b"4.3.1 Insufficient system storage"), refused
        assert len(acked) > 10, acked
        print(f"disk full after {len(acked)} messages of 60 KB: {refused}")
        d.stop()
        d.start()
        listing = tool("spool-list", "--data-dir", str(d.data_dir)).stdout
        missing = [q for q in acked if q not in listing]
        assert missing == [], (missing, listing[-500:])
        d.stop()
    finally:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def test_token_new_and_token_hash(tmp_path):
    """token-new prints a token once and the [[api.token]] table with its
    SHA-256 only; the daemon's parser takes the table (config-show shows
    it back); token-hash gives the same hash from the argument or from
    standard input; bad scopes get one line and exit 2."""
    r = tool("token-new", "billing-app", "--scope", "inject", "--scope", "admin",
             "--sender-domain", "example.test")
    assert r.returncode == 0, r.stderr
    token = r.stdout.split("\n")[0].removeprefix("token: ")
    assert token.startswith("rmt_") and len(token) == 47, r.stdout
    table = r.stdout[r.stdout.index("[[api.token]]"):]
    assert token not in table
    h = tool("token-hash", token)
    assert h.returncode == 0 and f'sha256 = "{h.stdout.strip()}"' in table, (h, table)
    piped = subprocess.run([RINGMAIL, "token-hash"], input=token + "\n", capture_output=True,
                           text=True, timeout=30)
    assert piped.stdout == h.stdout
    empty = subprocess.run([RINGMAIL, "token-hash"], input="\n", capture_output=True, text=True,
                           timeout=30)
    assert empty.returncode == 64 and empty.stderr == "ringmail: token-hash: the token is empty\n"
    cfg = tmp_path / "ringmail.toml"
    cfg.write_text(f'hostname = "mx.example.test"\ndata_dir = "{tmp_path}/data"\n'
                   f'domains_dir = "{tmp_path}/domains"\nlocal_domains = ["example.test"]\n'
                   '[[listener]]\naddress = "127.0.0.1:2525"\n' + table)
    shown = tool("--config", str(cfg), "config-show")
    assert shown.returncode == 0, shown.stderr
    assert 'name = "billing-app"' in shown.stdout and h.stdout.strip() in shown.stdout
    assert 'scopes = ["admin", "inject"]' in shown.stdout
    bad = tool("token-new", "x", "--scope", "root")
    assert bad.returncode == 64 and bad.stdout == ""
    assert bad.stderr == 'ringmail: token-new: api.token.scopes: "root" is not a scope (admin, inject)\n'
    bad = tool("token-new", "x", "--sender-domain", "a.test")
    assert bad.returncode == 64 and "only for a token with the inject scope" in bad.stderr


def test_every_binary_has_version_and_usage_exit(ringmaild_binary):
    """--version names the binary, the project version, wolfSSL and
    liburing; a bad command line exits 64 (EX_USAGE), not CLI11's 105-109."""
    from test_blaster import BLASTER
    from test_sendmail import SENDMAIL
    for name, path in [("ringmaild", ringmaild_binary), ("ringmail", RINGMAIL),
                       ("ringmail-sendmail", SENDMAIL), ("smtp-blaster", BLASTER)]:
        r = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=30)
        assert r.returncode == 0, (name, r.stderr)
        assert re.match(rf"{name} \d+\.\d+\.\d+( \(git [^)]+\))?, wolfSSL \d[\d.]*, liburing \d[\d.]*\n$",
                        r.stdout), (name, r.stdout)
        bad = subprocess.run([path, "--no-such-option"], capture_output=True, text=True,
                             timeout=30, stdin=subprocess.DEVNULL)
        assert bad.returncode == 64, (name, bad.returncode, bad.stderr)
        assert bad.stderr.strip(), name
    h = subprocess.run([SENDMAIL, "--help"], capture_output=True, text=True, timeout=30)
    assert h.returncode == 0 and "-bp" in h.stdout and "Exit status" in h.stdout
