"""Outbound delivery end to end: a ringmaild relays to other domains whose MX
records come from a local DNS server (tests/dns_server.py), to receivers on
other loopback addresses: a second ringmaild (its Maildir shows what
arrived), or Postfix's smtp-sink injecting 4xx/5xx. Loopback only."""
import base64
import random
import re
import signal
import smtplib
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import SINK_USER_OPTS, free_port, needs_root
from test_auth import PASSWORD, add_user, plain
from postfix_instance import PostfixInstance
from test_tls import certs, client_context, make_cert  # noqa: F401 (fixture)

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
smarthost.peer.test. 60 IN A 127.0.0.6
"""


def serve_zone(tmp_path, text):
    """tests/dns_server.py answering `text` on a loopback port: yields the
    port, stops it after."""
    zone = tmp_path / "zone"
    zone.write_text(text)
    p = subprocess.Popen(["/usr/bin/python3", str(DNS_SERVER), str(zone)], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, text=True)
    port = int(p.stdout.readline())
    yield port
    p.stdin.close()
    p.wait(timeout=10)


@pytest.fixture
def dns(tmp_path):
    yield from serve_zone(tmp_path, ZONE)


@pytest.fixture
def port():
    return free_port(socket.AF_INET, "127.0.0.1")


def sink(ip, port, *opts):
    p = subprocess.Popen(["/usr/sbin/smtp-sink", *SINK_USER_OPTS, *opts, f"{ip}:{port}", "64"])
    for _ in range(100):
        try:
            socket.create_connection((ip, port), timeout=1).close()
            return p
        except OSError:
            time.sleep(0.05)
    p.kill()
    raise AssertionError("smtp-sink did not start")


def alice_relay(start_ringmaild, certs, tmp_path, **outbound):  # noqa: F811
    """A relay where alice@example.test submits (AUTH), with these [outbound] keys."""
    domains = tmp_path / "domains"
    add_user(domains, "alice@example.test")
    return start_ringmaild(tls_cert_dirs=[certs], domains_dir=domains, outbound=outbound)


@pytest.fixture
def relay(start_ringmaild, certs, tmp_path, dns, port):  # noqa: F811
    return alice_relay(start_ringmaild, certs, tmp_path, dns_servers=f"127.0.0.1:{dns}", port=port,
                       retry_first_s=2, retry_max_s=4, connect_timeout_s=3, command_timeout_s=10)


def submit(relay, rcpts, subject="outbound test", sender="alice@example.test"):
    with smtplib.SMTP("127.0.0.1", relay.sub_port, timeout=30) as s:
        s.starttls(context=client_context())
        s.ehlo("client.example")
        s.login("alice@example.test", PASSWORD)
        s.sendmail(sender, rcpts, f"Subject: {subject}\r\nFrom: {sender}\r\n\r\nhello\r\n".encode())


def wait_log(server, text, timeout=20):
    """Waits for `text` (a substring, or a compiled pattern) in the log."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        log = server.log_path.read_text()
        if (text.search(log) if isinstance(text, re.Pattern) else text in log):
            return log
        time.sleep(0.2)
    raise AssertionError(f"'{text}' not in the log:\n{server.log_tail()}")


def attempt(rcpt, relay, status, extra=""):
    """The log line of a delivery attempt (docs/logging.md): `relay` is the
    host name, `extra` a regex for the fields between it and the delay."""
    return re.compile(re.escape(f"to=<{rcpt}> relay={relay}[") + r"[^\]]*\]" + extra +
                      r" delay=\d+s attempt=\d+ status=" + status + r" \(")


class Peer:
    """Another ringmaild taking mail for peer.test (its Maildir shows what
    arrived); `listeners` are (address, kind) pairs."""

    def __init__(self, binary, d, hostname, listeners, cert_dirs, extra="", dns="127.0.0.1:9"):
        d.mkdir(parents=True, exist_ok=True)
        self.dir = d
        self.log = d / "log"
        cfg = d / "r.toml"
        lines = [f'hostname = "{hostname}"', f'data_dir = "{d}/data"', "threads = 1",
                 'local_domains = ["peer.test"]', f'domains_dir = "{d}/domains"', ""]
        for addr, kind in listeners:
            lines += ["[[listener]]", f'address = "{addr}"', f'kind = "{kind}"', ""]
        lines += ["[tls]", f"cert_dirs = {[str(c) for c in cert_dirs]!r}".replace("'", '"'), "",
                  "[outbound]", f'dns_servers = "{dns}"', "", extra]
        cfg.write_text("\n".join(lines) + "\n")
        self.cmd = [binary, "--config", str(cfg)]
        self.first = listeners[0][0].rsplit(":", 1)
        self.start()

    def start(self):
        self.p = subprocess.Popen(self.cmd, stdout=open(self.log, "ab"), stderr=subprocess.STDOUT)
        for _ in range(200):
            try:
                socket.create_connection((self.first[0], int(self.first[1])), timeout=1).close()
                return
            except OSError:
                time.sleep(0.05)
        raise AssertionError("peer ringmaild did not start:\n" + self.log.read_text())

    def stop(self):
        self.p.terminate()
        self.p.wait(timeout=40)

    def box(self, user):
        return self.dir / "data" / "mail" / "peer.test" / user / "Maildir" / "new"

    def wait_mail(self, user, n=1, timeout=20):
        box = self.box(user)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if box.exists() and len(list(box.iterdir())) >= n:
                break
            time.sleep(0.2)
        files = sorted(box.iterdir()) if box.exists() else []
        assert len(files) >= n, self.log.read_text()[-3000:]
        return files


@pytest.fixture
def peer(ringmaild_binary, certs, tmp_path, port):  # noqa: F811
    """Another ringmaild, on 127.0.0.2, taking mail for peer.test."""
    p = Peer(ringmaild_binary, tmp_path / "receiver", "mx1.peer.test",
             [(f"127.0.0.2:{port}", "smtp")], [certs])
    yield p
    p.stop()


@pytest.fixture
def receiver(peer):
    return peer.dir / "data" / "mail" / "peer.test"


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
    log = wait_log(relay, attempt("bob@peer.test", "mx1.peer.test", "delivered",
                                  r" tls=TLSv1\.3/\S+ cert=unverified"))
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
    relay = alice_relay(start_ringmaild, certs, tmp_path, dns_servers=f"127.0.0.1:{dns}", port=port,
                        retry_first_s=1, retry_max_s=1, expire_s=3, connect_timeout_s=1)
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


def test_sighup_applies_new_dns_servers(start_ringmaild, certs, tmp_path, dns, port):  # noqa: F811
    """Regression (issue 19, defect 8): SIGHUP logged the configuration as
    reloaded but kept asking the old DNS servers. The new ones are used
    from then on: mail deferred for DNS is delivered by the retry."""
    relay = alice_relay(start_ringmaild, certs, tmp_path, dns_servers="127.0.0.1:9", port=port,
                        retry_first_s=2, retry_max_s=2, connect_timeout_s=3)
    s = sink("127.0.0.2", port)
    try:
        submit(relay, ["newdns@peer.test"])
        wait_log(relay, "to=<newdns@peer.test>")
        log = wait_log(relay, "status=deferred")
        assert "status=delivered" not in log
        relay.outbound["dns_servers"] = f"127.0.0.1:{dns}"
        relay.write_config()
        relay.signal(signal.SIGHUP)
        wait_log(relay, f"dns: now asking 127.0.0.1:{dns}")
        wait_log(relay, attempt("newdns@peer.test", "mx1.peer.test", "delivered", ".*"), timeout=30)
    finally:
        s.kill()
        s.wait()


def port_below_ephemeral():
    """A port free for UDP and TCP below the kernel's ephemeral range, so
    that no client socket (c-ares' own among them) takes it while the test
    waits to start a server there."""
    low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    for p in random.sample(range(10000, min(low, 30000)), 200):
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u, \
                    socket.socket(socket.AF_INET, socket.SOCK_STREAM) as t:
                u.bind(("127.0.0.1", p))
                t.bind(("127.0.0.1", p))
                return p
        except OSError:
            continue
    raise AssertionError("no free port below the ephemeral range")


def test_a_dns_failure_is_retried_in_seconds(start_ringmaild, certs, tmp_path, port):  # noqa: F811
    """A DNS server that does not answer is not the destination's fault:
    the message is tried again in seconds (5, 10, 20...), not after
    retry_first_s (300 here), and the log says why."""
    dns_port = port_below_ephemeral()
    relay = alice_relay(start_ringmaild, certs, tmp_path, dns_servers=f"127.0.0.1:{dns_port}",
                        port=port, retry_first_s=300, retry_max_s=600, connect_timeout_s=3)
    s = sink("127.0.0.2", port)
    zone = tmp_path / "zone"
    zone.write_text(ZONE)
    dns = None
    try:
        submit(relay, ["soon@peer.test"])
        wait_log(relay, "DNS failed for now, not the destination: trying again in 5s")
        dns = subprocess.Popen(["/usr/bin/python3", str(DNS_SERVER), str(zone), str(dns_port)],
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert int(dns.stdout.readline()) == dns_port
        wait_log(relay, attempt("soon@peer.test", "mx1.peer.test", "delivered", ".*"), timeout=40)
    finally:
        s.kill()
        s.wait()
        if dns is not None:
            dns.stdin.close()
            dns.wait(timeout=10)


def test_temporary_failure_is_retried(relay, port):
    s = sink("127.0.0.5", port, "-r", "RCPT")  # 4xx to every RCPT
    try:
        submit(relay, ["later@soft.test"])
        wait_log(relay, re.compile(attempt("later@soft.test", "mx.soft.test", "deferred").pattern + "4"))
    finally:
        s.kill()
        s.wait()
    ok = sink("127.0.0.5", port)
    try:
        # retry_first_s = 2: the next attempt succeeds.
        wait_log(relay, attempt("later@soft.test", "mx.soft.test", "delivered"), timeout=30)
    finally:
        ok.kill()
        ok.wait()


def _spool_list(server):
    from test_tools import tool
    return tool("spool-list", "--data-dir", str(server.data_dir)).stdout


def test_smarthost_route_with_verified_tls_and_auth(start_ringmaild, certs, tmp_path, dns,  # noqa: F811
                                                     ringmaild_binary, port):
    """A route sends everything to a fixed next hop (a provider's relay: here
    another ringmaild's submission port) over STARTTLS with its certificate
    checked against the route's CA file, and AUTH; no MX lookup."""
    sh_certs = tmp_path / "sh-certs"
    make_cert(sh_certs / "smarthost.peer.test", "smarthost.peer.test", "fullchain.pem", "privkey.pem")
    sh = Peer(ringmaild_binary, tmp_path / "smarthost", "smarthost.peer.test",
              [(f"127.0.0.6:{port}", "submission")], [sh_certs],
              extra='[auth]\nsender_policy = "any"\n')
    try:
        add_user(sh.dir / "domains", "relay@peer.test", "relay password")
        domains = tmp_path / "domains"
        add_user(domains, "alice@example.test")
        route = {"domain": "*", "next_hop": f"smarthost.peer.test:{port}", "tls": "verify",
                 "ca_file": str(sh_certs / "smarthost.peer.test" / "fullchain.pem"),
                 "auth_user": "relay@peer.test", "auth_password": "relay password"}
        relay = start_ringmaild(tls_cert_dirs=[certs], domains_dir=domains,
                                outbound={"dns_servers": f"127.0.0.1:{dns}", "retry_first_s": 2,
                                          "retry_max_s": 2, "route": [route]})
        # bob@peer.test's MX (127.0.0.2) is not running: only the route can deliver.
        submit(relay, ["bob@peer.test"], subject="via smarthost")
        data = sh.wait_mail("bob")[0].read_bytes().decode()
        assert "Subject: via smarthost" in data
        assert "with ESMTPSA" in data, data  # STARTTLS and AUTH
        wait_log(relay, attempt("bob@peer.test", "smarthost.peer.test", "delivered",
                                r" tls=TLSv1\.3/\S+ cert=verified"))

        # A wrong password: the mail waits (4xx-like), it does not bounce.
        route["auth_password"] = "wrong"
        relay2 = start_ringmaild(tls_cert_dirs=[certs], domains_dir=domains,
                                 outbound={"dns_servers": f"127.0.0.1:{dns}", "route": [route]})
        submit(relay2, ["carol@peer.test"])
        log = wait_log(relay2, attempt("carol@peer.test", "smarthost.peer.test", "deferred", ".*"))
        assert "authentication as relay@peer.test failed: 535" in log, log
        # A CA that did not sign the relay's certificate: no delivery either.
        route.update(auth_password="relay password",
                     ca_file=str(certs / "mx.test.example" / "fullchain.pem"))
        relay3 = start_ringmaild(tls_cert_dirs=[certs], domains_dir=domains,
                                 outbound={"dns_servers": f"127.0.0.1:{dns}", "route": [route]})
        submit(relay3, ["dave@peer.test"])
        log = wait_log(relay3, "status=deferred")
        assert "TLS certificate of smarthost.peer.test could not be verified" in log, log
        assert not sh.box("dave").exists()
    finally:
        sh.stop()


def make_ca(directory, name):
    """A CA of its own (openssl): directory/ca.pem and ca.key."""
    directory.mkdir(parents=True, exist_ok=True)
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                    "-nodes", "-days", "30", "-keyout", str(directory / "ca.key"),
                    "-out", str(directory / "ca.pem"), "-subj", f"/CN={name}"],
                   check=True, capture_output=True)
    return directory / "ca.pem"


def make_leaf(directory, host, ca_dir):
    """A certificate for `host` signed by the CA in ca_dir: directory/fullchain.pem
    (the certificate, then the CA's) and privkey.pem."""
    directory.mkdir(parents=True, exist_ok=True)
    csr, leaf, ext = directory / "leaf.csr", directory / "leaf.pem", directory / "leaf.ext"
    subprocess.run(["openssl", "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                    "-nodes", "-keyout", str(directory / "privkey.pem"), "-out", str(csr),
                    "-subj", f"/CN={host}"], check=True, capture_output=True)
    ext.write_text(f"basicConstraints = CA:FALSE\nsubjectAltName = DNS:{host}\n")
    subprocess.run(["openssl", "x509", "-req", "-in", str(csr), "-CA", str(ca_dir / "ca.pem"),
                    "-CAkey", str(ca_dir / "ca.key"), "-CAcreateserial", "-days", "30",
                    "-extfile", str(ext), "-out", str(leaf)], check=True, capture_output=True)
    (directory / "fullchain.pem").write_text(leaf.read_text() + (ca_dir / "ca.pem").read_text())
    for f in (csr, leaf, ext):
        f.unlink()


def test_verify_route_refuses_untrusted_ca_twice(start_ringmaild, certs, tmp_path, dns,  # noqa: F811
                                                 ringmaild_binary, port):
    """The defect: a tls = "verify" route refused a certificate from a CA
    nobody configured, then trusted it on the retry (wolfSSL had added the
    CA that came in the server's chain to the context's trusted CAs). Every
    attempt must refuse it, and the mail must never arrive."""
    untrusted = tmp_path / "untrusted-ca"
    make_ca(untrusted, "Untrusted CA")
    sh_certs = tmp_path / "sh-certs"
    make_leaf(sh_certs / "smarthost.peer.test", "smarthost.peer.test", untrusted)
    other_ca = make_ca(tmp_path / "other-ca", "Other CA")
    sh = Peer(ringmaild_binary, tmp_path / "smarthost", "smarthost.peer.test",
              [(f"127.0.0.6:{port}", "smtp")], [sh_certs])
    try:
        route = {"domain": "*", "next_hop": f"smarthost.peer.test:{port}", "tls": "verify",
                 "ca_file": str(other_ca)}
        add_user(tmp_path / "domains", "alice@example.test")
        relay = start_ringmaild(tls_cert_dirs=[certs], domains_dir=tmp_path / "domains",
                                outbound={"dns_servers": f"127.0.0.1:{dns}", "retry_first_s": 2,
                                          "retry_max_s": 2, "route": [route]})
        submit(relay, ["bob@peer.test"], subject="must not arrive")
        refused = "the TLS certificate of smarthost.peer.test could not be verified"
        deadline = time.monotonic() + 40
        while time.monotonic() < deadline:
            log = relay.log_path.read_text()
            if log.count(refused) >= 3 or "status=delivered" in log:
                break
            time.sleep(0.2)
        log = relay.log_path.read_text()
        assert log.count(refused) >= 3, relay.log_tail()  # the first attempt and two retries
        assert "cert=verified" not in log and "status=delivered" not in log, log
        assert "untrusted issuer" in log, log  # which check failed
        assert not sh.box("bob").exists()
    finally:
        sh.stop()


@needs_root  # Postfix's master runs as root
def test_postfix_relayhost_delivers_through_ringmail(start_ringmaild, certs, dns, port, peer):  # noqa: F811
    """A real Postfix with relayhost = [ringmail]:port (ringmail trusts
    127.0.0.0/8) hands its mail over; ringmail delivers it by MX."""
    relay = start_ringmaild(relay_networks=["127.0.0.0/8"], tls_cert_dirs=[certs],
                            outbound={"dns_servers": f"127.0.0.1:{dns}", "port": port})
    pf = PostfixInstance(f"[127.0.0.1]:{relay.port}", tls="may").start()
    try:
        with smtplib.SMTP("127.0.0.1", pf.port, timeout=30) as s:
            s.sendmail("app@src.example", ["erin@peer.test", "frank@peer.test"],
                       b"Subject: postfix to ringmail\r\nFrom: app@src.example\r\n\r\nhi\r\n")
        for user in ("erin", "frank"):
            data = peer.wait_mail(user, timeout=40)[0].read_bytes().decode()
            assert "Subject: postfix to ringmail" in data
            # Received by ringmail from Postfix (over STARTTLS), then by the peer.
            assert "from postfix-relay.test" in data, data
            assert "by mx.test.example (ringmail) with ESMTPS" in data, data
    finally:
        pf.stop()
    assert "status=sent" in pf.log_text(), pf.log_text()


def test_receiver_down_across_a_restart(start_ringmaild, certs, tmp_path, dns, port,  # noqa: F811
                                        ringmaild_binary):
    """The destination is down; ringmail restarts with the message queued
    (its schedule recovered from the spool); the destination comes back and
    the message arrives exactly once."""
    relay = alice_relay(start_ringmaild, certs, tmp_path, dns_servers=f"127.0.0.1:{dns}", port=port,
                        retry_first_s=1, retry_max_s=2, connect_timeout_s=2)
    submit(relay, ["gina@peer.test"], subject="survives a restart")
    wait_log(relay, "status=deferred")
    relay.stop()
    assert "0 messages waiting" not in _spool_list(relay), _spool_list(relay)
    relay.start(keep_ports=True)
    p = Peer(ringmaild_binary, tmp_path / "late", "mx1.peer.test", [(f"127.0.0.2:{port}", "smtp")], [certs])
    try:
        files = p.wait_mail("gina", timeout=30)
        assert "Subject: survives a restart" in files[0].read_bytes().decode()
        wait_log(relay, attempt("gina@peer.test", "mx1.peer.test", "delivered",
                                r" tls=\S+ cert=unverified"))
        time.sleep(3)  # no second copy comes
        assert len(list(p.box("gina").iterdir())) == 1
    finally:
        p.stop()


def test_delay_warning_then_delivery(start_ringmaild, certs, tmp_path, dns, port,  # noqa: F811
                                     ringmaild_binary):
    """After delay_warning_s the sender is told (once) that the message is
    still being tried; it is delivered when the destination comes back."""
    relay = alice_relay(start_ringmaild, certs, tmp_path, dns_servers=f"127.0.0.1:{dns}", port=port,
                        retry_first_s=1, retry_max_s=1, connect_timeout_s=1, delay_warning_s=2)
    submit(relay, ["hank@peer.test"], subject="slow one")
    warning = relay.wait_for_mail("example.test", "alice", timeout=30)[0].read_bytes().decode()
    assert "Action: delayed" in warning, warning
    assert "Final-Recipient: rfc822; hank@peer.test" in warning
    p = Peer(ringmaild_binary, tmp_path / "late", "mx1.peer.test", [(f"127.0.0.2:{port}", "smtp")], [certs])
    try:
        p.wait_mail("hank", timeout=30)
    finally:
        p.stop()
    time.sleep(1)
    # One warning only, and no failure DSN.
    box = relay.data_dir / "mail" / "example.test" / "alice" / "Maildir" / "new"
    assert len(list(box.iterdir())) == 1


def test_no_dsn_for_the_null_sender(start_ringmaild, dns, port):
    """A bounce that cannot be delivered (MAIL FROM:<>) is dropped with a
    log line, never bounced again."""
    relay = start_ringmaild(relay_networks=["127.0.0.0/8"],
                            outbound={"dns_servers": f"127.0.0.1:{dns}", "port": port})
    s = sink("127.0.0.4", port, "-f", "RCPT")
    try:
        with smtplib.SMTP("127.0.0.1", relay.port, timeout=30) as c:
            c.sendmail("", ["nobody@reject.test"], b"Subject: a bounce\r\n\r\nundeliverable\r\n")
        log = wait_log(relay, "to=<nobody@reject.test>: no DSN: the sender is <>")
    finally:
        s.kill()
        s.wait()
    assert re.search(attempt("nobody@reject.test", "mx.reject.test", "bounced").pattern + "5", log), log
    assert ": bounce " not in log, log
    deadline = time.monotonic() + 10
    while "0 messages waiting" not in _spool_list(relay) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert "0 messages waiting" in _spool_list(relay)
    assert not list((relay.data_dir / "mail").glob("*/*/Maildir/new/*"))
