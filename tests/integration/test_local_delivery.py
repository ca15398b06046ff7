"""Local delivery per domain (docs/aliases.md, domain.toml): to Dovecot over
LMTP on a UNIX socket (a real Dovecot, its own configuration in the test's
directory, no TCP listener), and to an MDA command (Debian's maildrop)."""
import shutil
import smtplib
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from conftest import IS_ROOT
from test_auth import add_mailboxes
from test_outbound import wait_log

DOVECOT = "/usr/sbin/dovecot"
MAILDROP = "/usr/bin/maildrop"


@pytest.fixture
def dovecot():
    if not Path(DOVECOT).exists():
        pytest.skip("dovecot (dovecot-core, dovecot-lmtpd) not installed")
    if not IS_ROOT:
        pytest.skip("needs root: Dovecot delivers as user mail")
    # Dovecot delivers as user mail: its folders must be reachable by it
    # (pytest's own temporary directories are 0700).
    d = Path(tempfile.mkdtemp(prefix="ringmail-dovecot-"))
    d.chmod(0o755)
    for sub in ("run", "state", "mail"):
        (d / sub).mkdir(parents=True)
    shutil.chown(d / "mail", "mail", "mail")
    conf = d / "dovecot.conf"
    conf.write_text(f"""\
base_dir = {d}/run
state_dir = {d}/state
log_path = {d}/dovecot.log
protocols = lmtp
listen = 127.0.0.1
ssl = no
first_valid_uid = 8
mail_location = maildir:{d}/mail/%d/%n
userdb {{
  driver = static
  args = uid=mail gid=mail home={d}/mail/%d/%n allow_all_users=yes
}}
passdb {{
  driver = static
  args = nopassword=y
}}
service lmtp {{
  unix_listener lmtp {{
    mode = 0666
  }}
}}
""")
    p = subprocess.Popen([DOVECOT, "-F", "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    sock = d / "run" / "lmtp"
    deadline = time.monotonic() + 15
    while not sock.exists():
        assert p.poll() is None and time.monotonic() < deadline, (d / "dovecot.log").read_text()
        time.sleep(0.1)
    yield d
    p.terminate()
    p.wait(timeout=15)
    shutil.rmtree(d, ignore_errors=True)


def mails(box):
    return sorted(box.glob("*")) if box.exists() else []


def wait_files(box, n=1, timeout=20):
    deadline = time.monotonic() + timeout
    while len(mails(box)) < n:
        assert time.monotonic() < deadline, f"nothing in {box}"
        time.sleep(0.2)
    return mails(box)


def test_lmtp_to_dovecot_and_an_mda(start_ringmaild, tmp_path, dovecot):
    if not Path(MAILDROP).exists():
        pytest.skip("maildrop not installed")
    domains = tmp_path / "domains"
    add_mailboxes(domains, "lmtp.test", "bob")
    (domains / "lmtp.test" / "domain.toml").write_text(
        f'delivery = "lmtp"\nlmtp_socket = "{dovecot}/run/lmtp"\n')
    (domains / "lmtp.test" / "aliases").write_text("team: bob, carol@mda.test\n")
    boxes = tmp_path / "boxes"
    (boxes / "carol" / "new").mkdir(parents=True)
    for sub in ("tmp", "cur"):
        (boxes / "carol" / sub).mkdir()
    filt = tmp_path / "mailfilter"
    filt.write_text(f'to "{boxes}/$USER"\n')
    filt.chmod(0o600)
    add_mailboxes(domains, "mda.test", "carol")
    (domains / "mda.test" / "domain.toml").write_text(f'delivery = "mda"\nmda = "{MAILDROP} {filt}"\n')
    mx = start_ringmaild(domains_dir=domains)
    with smtplib.SMTP("127.0.0.1", mx.port, timeout=30) as s:
        s.sendmail("x@src.example", ["team@lmtp.test"],
                   b"From: x@src.example\r\nSubject: to both\r\n\r\n.leading dot\r\nbody\r\n")
    got = wait_files(dovecot / "mail" / "lmtp.test" / "bob" / "new")[0].read_bytes()
    assert b"Subject: to both" in got and b"\n.leading dot\n" in got, got  # dot-stuffing undone by Dovecot
    assert b"Return-Path: <x@src.example>" in got and b"Received: from" in got, got
    got = wait_files(boxes / "carol" / "new")[0].read_bytes()
    assert b"Subject: to both" in got and b"Delivered-To: carol@mda.test" in got, got
    log = wait_log(mx, "to=<carol@mda.test> relay=mda")
    assert "to=<bob@lmtp.test> relay=lmtp" in log
    # No Maildir under data_dir for either domain.
    assert not (mx.data_dir / "mail" / "lmtp.test").exists()


def test_lmtp_refusals_and_a_missing_socket(start_ringmaild, tmp_path, dovecot):
    """Dovecot's 5xx bounces; no socket is a temporary failure, retried."""
    domains = tmp_path / "domains"
    add_mailboxes(domains, "lmtp.test", "bob")
    (domains / "lmtp.test" / "domain.toml").write_text(
        f'delivery = "lmtp"\nlmtp_socket = "{tmp_path}/later/lmtp"\n')
    mx = start_ringmaild(domains_dir=domains, limits={"delivery_retry_s": 1})
    with smtplib.SMTP("127.0.0.1", mx.port, timeout=30) as s:
        s.sendmail("x@src.example", ["bob@lmtp.test"], b"Subject: later\r\n\r\nhi\r\n")
    wait_log(mx, "to=<bob@lmtp.test> relay=lmtp status=deferred (LMTP " + str(tmp_path))
    (tmp_path / "later").symlink_to(dovecot / "run")
    wait_files(dovecot / "mail" / "lmtp.test" / "bob" / "new")
