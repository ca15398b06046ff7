"""ringmail-sendmail (tools/sendmail.cc): the sendmail(1) interface, handing
mail to the local ringmaild by SMTP; a stopped daemon leaves the message in
~/dead.letter with exit status 75."""
import os
import subprocess
from pathlib import Path

import pytest

SENDMAIL = os.environ.get(
    "RINGMAIL_SENDMAIL",
    os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "build", "tools", "ringmail-sendmail"))


def sendmail(server_or_cfg, *args, text, home):
    """Runs it with `text` (bytes) on stdin; stderr comes back as str."""
    cfg = server_or_cfg if isinstance(server_or_cfg, Path) else server_or_cfg.config_path
    r = subprocess.run([SENDMAIL, "-C", str(cfg), *args], input=text, capture_output=True,
                       timeout=60, env={"HOME": str(home), "PATH": "/usr/bin:/bin"})
    r.stderr = r.stderr.decode()
    return r


@pytest.fixture
def local(start_ringmaild):
    # The loopback client is trusted (relay_networks), as for Postfix's sendmail.
    return start_ringmaild(relay_networks=["127.0.0.0/8", "::1/128"])


def test_recipients_from_headers_and_added_fields(local, tmp_path):
    r = sendmail(local, "-t", "-i", "-f", "app@example.test", "-F", "The App",
                 text=b"To: Bob <bob@example.test>\nCc: carol@example.test (Carol)\n"
                      b"Bcc: dave@example.test\nSubject: report\n\nline one\n.\n..two dots\nend\n",
                 home=tmp_path)
    assert r.returncode == 0, r.stderr
    for user in ("bob", "carol", "dave"):
        data = local.wait_for_mail("example.test", user)[0].read_bytes()
        assert b"Return-Path: <app@example.test>" in data, data
        assert b"Bcc:" not in data and b"dave@example.test" not in data.split(b"Delivered-To")[1][30:], data
        assert b'From: "The App" <app@example.test>' in data and b"\nDate: " in data, data
        assert b"\nMessage-ID: <" in data, data
        assert data.endswith(b"line one\n.\n..two dots\nend\n"), data  # -i: dots are text


def test_arguments_dot_line_and_crlf_input(local, tmp_path):
    r = sendmail(local, "erin@example.test",
                 text=b"From: me@example.test\r\nSubject: dot\r\n\r\nbefore\r\n.\r\nafter\r\n", home=tmp_path)
    assert r.returncode == 0, r.stderr
    data = local.wait_for_mail("example.test", "erin")[0].read_bytes()
    assert data.endswith(b"before\n") and b"after" not in data, data  # without -i "." ends it
    assert b"\r" not in data


def test_stopped_daemon_keeps_the_message(start_ringmaild, tmp_path):
    srv = start_ringmaild()
    srv.stop()  # nobody listens any more
    r = sendmail(srv, "-t", text=b"To: bob@example.test\nSubject: kept\n\nkeep me\n", home=tmp_path)
    err = r.stderr
    assert r.returncode == 75, r
    assert "does not answer" in err and "saved in" in err, err
    assert len(err.strip().splitlines()) == 1
    dead = (tmp_path / "dead.letter").read_text()
    assert dead.startswith("From ") and "Subject: kept" in dead and "keep me" in dead, dead


def test_refusals_and_bad_arguments(local, tmp_path):
    r = sendmail(local, "-X", text=b"x\n", home=tmp_path)
    assert r.returncode == 64 and r.stderr == "ringmail-sendmail: unknown option -X\n", r
    r = sendmail(local, "-bs", text=b"", home=tmp_path)
    assert r.returncode == 64 and "not supported" in r.stderr, r
    r = sendmail(local, "-t", text=b"Subject: nobody\n\nx\n", home=tmp_path)
    assert r.returncode == 64 and "no recipient in To, Cc or Bcc" in r.stderr, r
    r = sendmail(local, "a!b@example.test", text=b"Subject: x\n\nx\n", home=tmp_path)
    assert r.returncode == 67 and "5.1.1" in r.stderr and "saved in" in r.stderr, r
    # Ignored sendmail options (-oem, -odi) are accepted.
    r = sendmail(local, "-oem", "-odi", "frank@example.test", text=b"Subject: y\n\ny\n", home=tmp_path)
    assert r.returncode == 0, r.stderr


def test_an_empty_f_sends_with_the_null_sender(local, tmp_path):
    """Regression: -f "" (or -f "<>"), how vacation programs and bounce
    generators ask for the null sender, was replaced by the login name at
    the relay's domain."""
    for arg in ("", "<>"):
        r = sendmail(local, "-f", arg, "bob@example.test", text=b"Subject: auto\n\nreply\n",
                     home=tmp_path)
        assert r.returncode == 0, r.stderr
    files = local.wait_for_mail("example.test", "bob", 2)
    for f in files:
        data = f.read_bytes()
        assert b"Return-Path: <>" in data, data
        assert b"\nFrom: " in data or data.startswith(b"From: "), data
