"""Outbound delivery end to end: a ringmaild relays to other domains whose MX
records come from a local DNS server (tests/dns_server.py), to receivers on
other loopback addresses: a second ringmaild (its Maildir shows what
arrived), or Postfix's smtp-sink injecting 4xx/5xx. Loopback only."""
import base64
import smtplib
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import free_port
from test_auth import PASSWORD, add_user, plain
from test_tls import certs, client_context  # noqa: F401 (fixture)

DNS_SERVER = Path(__file__).resolve().parent.parent / "dns_server.py"
ZONE = """
peer.test. 60 IN MX 10 mx1.peer.test.
peer.test. 60 IN MX 20 mx2.peer.test.
mx1.peer.test. 60 IN A 127.0.0.2
mx2.peer.test. 60 IN A 127.0.0.3
reject.test. 60 IN MX 10 mx.reject.test.
mx.reject.test. 60 IN A 127.0.0.4
soft.test. 60 IN MX 10 mx.soft.test.
mx.soft.test. 60 IN A 127.0.0.5
nullmx.test. 60 IN MX 0 .
"""


@pytest.fixture
def dns(tmp_path):
    zone = tmp_path / "zone"
    zone.write_text(ZONE)
    p = subprocess.Popen(["/usr/bin/python3", str(DNS_SERVER), str(zone)], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, text=True)
    port = int(p.stdout.readline())
    yield port
    p.stdin.close()
    p.wait(timeout=10)


@pytest.fixture
def port():
    return free_port(socket.AF_INET, "127.0.0.1")


def sink(ip, port, *opts):
    p = subprocess.Popen(["/usr/sbin/smtp-sink", "-u", "postfix", *opts, f"{ip}:{port}", "64"])
    for _ in range(100):
        try:
            socket.create_connection((ip, port), timeout=1).close()
            return p
        except OSError:
            time.sleep(0.05)
    p.kill()
    raise AssertionError("smtp-sink did not start")


@pytest.fixture
def relay(start_ringmaild, certs, tmp_path, dns, port):  # noqa: F811
    domains = tmp_path / "domains"
    add_user(domains, "alice@example.test")
    return start_ringmaild(tls_cert_dirs=[certs], domains_dir=domains,
                           outbound={"dns_servers": f"127.0.0.1:{dns}", "port": port,
                                     "retry_first_s": 2, "retry_max_s": 4,
                                     "connect_timeout_s": 3, "command_timeout_s": 10})


def submit(relay, rcpts, subject="outbound test", sender="alice@example.test"):
    with smtplib.SMTP("127.0.0.1", relay.sub_port, timeout=30) as s:
        s.starttls(context=client_context())
        s.ehlo("client.example")
        s.login("alice@example.test", PASSWORD)
        s.sendmail(sender, rcpts, f"Subject: {subject}\r\nFrom: {sender}\r\n\r\nhello\r\n".encode())


def wait_log(server, text, timeout=20):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        log = server.log_path.read_text()
        if text in log:
            return log
        time.sleep(0.2)
    raise AssertionError(f"'{text}' not in the log:\n{server.log_tail()}")


@pytest.fixture
def receiver(ringmaild_binary, certs, tmp_path, port):  # noqa: F811
    """Another ringmaild, on 127.0.0.2, taking mail for peer.test."""
    d = tmp_path / "receiver"
    d.mkdir()
    cfg = d / "r.toml"
    cfg.write_text("\n".join([
        'hostname = "mx1.peer.test"', f'data_dir = "{d}/data"', "threads = 1",
        'local_domains = ["peer.test"]', f'domains_dir = "{d}/domains"', "",
        "[[listener]]", f'address = "127.0.0.2:{port}"', 'kind = "smtp"', "",
        "[tls]", f'cert_dirs = ["{certs}"]', "",
        "[outbound]", 'dns_servers = "127.0.0.1:9"', ""]))
    log = open(d / "log", "wb")
    p = subprocess.Popen([ringmaild_binary, "--config", str(cfg)], stdout=log,
                         stderr=subprocess.STDOUT)
    for _ in range(200):
        try:
            socket.create_connection(("127.0.0.2", port), timeout=1).close()
            break
        except OSError:
            time.sleep(0.05)
    yield d / "data" / "mail" / "peer.test"
    p.terminate()
    p.wait(timeout=40)


def test_relays_to_the_best_mx_over_starttls(relay, receiver):
    submit(relay, ["bob@peer.test"])
    box = receiver / "bob" / "Maildir" / "new"
    deadline = time.monotonic() + 20
    while not (box.exists() and any(box.iterdir())) and time.monotonic() < deadline:
        time.sleep(0.2)
    files = list(box.iterdir()) if box.exists() else []
    assert len(files) == 1, relay.log_tail()
    data = files[0].read_bytes().decode()
    assert "Subject: outbound test" in data
    assert "with ESMTPS" in data, data  # our client used STARTTLS
    log = wait_log(relay, "delivered: 250")
    assert "to=<bob@peer.test> via mx1.peer.test tls=unverified" in log, log
    # Finished: nothing waits in the relay's queue.
    deadline = time.monotonic() + 10
    while "0 messages waiting" not in _spool_list(relay) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert "0 messages waiting" in _spool_list(relay)


def test_trusted_network_relays_without_auth(start_ringmaild, dns, port, receiver):
    """An MTA on a relay_networks address (Postfix with relayhost = us) hands
    over mail for any domain on port 25 without AUTH."""
    relay = start_ringmaild(relay_networks=["127.0.0.0/8"],
                            outbound={"dns_servers": f"127.0.0.1:{dns}", "port": port})
    with smtplib.SMTP("127.0.0.1", relay.port, timeout=30) as s:
        s.sendmail("app@src.example", ["carol@peer.test"], b"Subject: via relayhost\r\n\r\nhi\r\n")
    box = receiver / "carol" / "Maildir" / "new"
    deadline = time.monotonic() + 20
    while not (box.exists() and any(box.iterdir())) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert box.exists() and len(list(box.iterdir())) == 1, relay.log_tail()
    # Over IPv6 (::1 is not in the list) the same is refused.
    with smtplib.SMTP("::1", relay.port6, timeout=30) as s:
        s.ehlo("client.example")
        s.docmd("MAIL FROM:<app@src.example>")
        assert s.docmd("RCPT TO:<carol@peer.test>")[0] == 554


def test_permanent_failure_bounces_to_the_sender(relay, port):
    s = sink("127.0.0.4", port, "-f", "RCPT")
    try:
        submit(relay, ["nobody@reject.test"])
        bounce = relay.wait_for_mail("example.test", "alice", timeout=30)[0].read_bytes().decode()
    finally:
        s.kill()
        s.wait()
    assert "From: Mail Delivery System <MAILER-DAEMON@" in bounce
    assert "Content-Type: multipart/report; report-type=delivery-status" in bounce
    assert "Final-Recipient: rfc822; nobody@reject.test" in bounce
    assert "Action: failed" in bounce
    assert "Remote-MTA: dns; mx.reject.test" in bounce
    assert "Subject: outbound test" in bounce  # the original header
    assert "Return-Path: <>" in bounce  # the DSN's own envelope sender is null


def test_expiry_bounces(start_ringmaild, certs, tmp_path, dns, port):  # noqa: F811
    """A destination that never answers: retried, and after expire_s the
    sender gets a DSN saying so."""
    domains = tmp_path / "domains"
    add_user(domains, "alice@example.test")
    relay = start_ringmaild(tls_cert_dirs=[certs], domains_dir=domains,
                            outbound={"dns_servers": f"127.0.0.1:{dns}", "port": port,
                                      "retry_first_s": 1, "retry_max_s": 1, "expire_s": 3,
                                      "connect_timeout_s": 1})
    submit(relay, ["gone@soft.test"])  # nothing listens on mx.soft.test here
    bounce = relay.wait_for_mail("example.test", "alice", timeout=30)[0].read_bytes().decode()
    assert "Final-Recipient: rfc822; gone@soft.test" in bounce
    assert "the message expired" in bounce
    log = relay.log_path.read_text()
    assert log.count("to=<gone@soft.test>") >= 2, log  # it was tried more than once


def test_null_mx_bounces_at_once(relay):
    submit(relay, ["x@nullmx.test"])
    bounce = relay.wait_for_mail("example.test", "alice", timeout=20)[0].read_bytes().decode()
    assert "null MX" in bounce
    assert "Status: 5.0.0" in bounce or "Status: 5." in bounce


def test_temporary_failure_is_retried(relay, port):
    s = sink("127.0.0.5", port, "-r", "RCPT")  # 4xx to every RCPT
    try:
        submit(relay, ["later@soft.test"])
        wait_log(relay, "to=<later@soft.test> via mx.soft.test: deferred: 4")
    finally:
        s.kill()
        s.wait()
    ok = sink("127.0.0.5", port)
    try:
        # retry_first_s = 2: the next attempt succeeds.
        wait_log(relay, "to=<later@soft.test> via mx.soft.test: delivered: 250", timeout=30)
    finally:
        ok.kill()
        ok.wait()


def _spool_list(server):
    from test_tools import tool
    return tool("spool-list", "--data-dir", str(server.data_dir)).stdout
