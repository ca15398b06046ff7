"""ringmail send-test: the user story's last step, against ringmaild's
submission ports (STARTTLS on 587's stand-in, TLS at once on 465's), with
the failures a user meets explained: wrong password, a certificate for
another name or from an unknown CA (which check failed), nothing
listening."""
import re
import socket
import subprocess

import pytest

from conftest import free_port
from test_auth import PASSWORD, add_mailboxes, add_user
from test_tls import make_cert
from test_tools import RINGMAIL


def send_test(*args, password=PASSWORD):
    r = subprocess.run([RINGMAIL, "send-test", "--password-stdin", *args], input=password + "\n",
                       capture_output=True, text=True, timeout=60)
    return r


@pytest.fixture
def submission(start_ringmaild, tmp_path):
    certs = tmp_path / "certs"
    make_cert(certs / "localhost", "localhost", "fullchain.pem", "privkey.pem")
    domains = tmp_path / "domains"
    add_user(domains, "alice@example.test")
    add_mailboxes(domains, "example.test", "bob")
    srv = start_ringmaild(tls_cert_dirs=[certs], domains_dir=domains, hostname="localhost")
    srv.ca = certs / "localhost" / "fullchain.pem"
    return srv


def test_sends_over_starttls_and_implicit_tls(submission):
    r = send_test("--to", "bob@example.test", "--user", "alice@example.test",
                  "--server", f"localhost:{submission.sub_port}", "--ca-file", str(submission.ca))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "== TLS: TLSv1.3" in r.stdout and "certificate valid for localhost" in r.stdout, r.stdout
    assert "C: AUTH PLAIN ****" in r.stdout and PASSWORD not in r.stdout, r.stdout
    assert "== sent: 250 2.0.0 Ok: queued as " in r.stdout, r.stdout
    assert b"Subject: ringmail send-test" in submission.wait_for_mail("example.test", "bob")[0].read_bytes()
    r = send_test("--to", "bob@example.test", "--user", "alice@example.test",
                  "--server", f"localhost:{submission.smtps_port}", "--tls", "--ca-file", str(submission.ca))
    assert r.returncode == 0 and "== sent: 250" in r.stdout, r.stdout + r.stderr


def test_failures_in_plain_words(submission):
    base = ["--to", "bob@example.test", "--user", "alice@example.test"]
    r = send_test(*base, "--server", f"localhost:{submission.sub_port}", "--ca-file", str(submission.ca),
                  password="wrong")
    assert r.returncode == 1 and "the user name or password is wrong" in r.stderr, r.stderr
    # 127.0.0.1 is not the name on the certificate: stop before AUTH, saying
    # which check failed.
    r = send_test(*base, "--server", f"127.0.0.1:{submission.sub_port}", "--ca-file", str(submission.ca))
    assert r.returncode == 1 and "not valid for 127.0.0.1 (name mismatch" in r.stderr, r.stderr
    assert "AUTH" not in r.stdout, r.stdout
    # The system's CAs did not sign it.
    r = send_test(*base, "--server", f"localhost:{submission.sub_port}")
    assert r.returncode == 1 and "not valid for localhost (untrusted issuer" in r.stderr, r.stderr
    assert "AUTH" not in r.stdout, r.stdout
    # --insecure: said so, then sent over a connection that checks nothing.
    r = send_test(*base, "--server", f"127.0.0.1:{submission.sub_port}", "--ca-file", str(submission.ca),
                  "--insecure")
    assert r.returncode == 0 and "name mismatch" in r.stderr, r.stdout + r.stderr
    assert "certificate NOT checked (--insecure)" in r.stdout and "== sent: 250" in r.stdout, r.stdout
    closed = free_port(socket.AF_INET, "127.0.0.1")
    r = send_test(*base, "--server", f"127.0.0.1:{closed}")
    assert r.returncode == 1 and "nothing listens there" in r.stderr, r.stderr


def test_tls_name_and_message_id(submission):
    """Regression (issue 19, defect 12): send-test could not check the
    certificate against a name other than --server's host (a server
    reached by address), and sent no Message-ID."""
    r = send_test("--to", "bob@example.test", "--user", "alice@example.test",
                  "--server", f"127.0.0.1:{submission.sub_port}", "--ca-file", str(submission.ca),
                  "--tls-name", "localhost")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "certificate valid for localhost" in r.stdout, r.stdout
    data = submission.wait_for_mail("example.test", "bob")[0].read_bytes()
    assert re.search(rb"(?m)^Message-ID: <send-test\.\d+\.[0-9a-f]{16}@example\.test>\r?$", data), data[:800]
    r = send_test("--to", "bob@example.test", "--user", "alice@example.test",
                  "--server", f"localhost:{submission.sub_port}", "--ca-file", str(submission.ca),
                  "--tls-name", "mail.elsewhere.test")
    assert r.returncode == 1 and "not valid for mail.elsewhere.test (name mismatch" in r.stderr, r.stderr
