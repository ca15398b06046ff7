"""TLS against real clients: STARTTLS (RFC 3207) on the smtp and submission
ports, implicit TLS (RFC 8314) on a "submissions" port, certificates found by
directory layout and chosen by SNI, and the STARTTLS injection attack.

Certificates are made with the openssl command: an ECDSA one for the
daemon's host name (plain certs/<name>/ layout), an RSA one in acme.sh's
layout and an ECDSA one in acme.sh's _ecc layout.
"""
import smtplib
import socket
import ssl
import subprocess
import time
from pathlib import Path

import pytest

from conftest import HOSTNAME

HOSTS = {
    "plain": HOSTNAME,
    "rsa": "rsa.example.test",
    "ecc": "ecc.example.test",
}


def make_cert(directory, host, cert_name, key_name, rsa=False):
    directory.mkdir(parents=True, exist_ok=True)
    key = ["-newkey", "rsa:2048"] if rsa else ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"]
    subprocess.run(["openssl", "req", "-x509", *key, "-nodes", "-days", "30",
                    "-keyout", str(directory / key_name), "-out", str(directory / cert_name),
                    "-subj", f"/CN={host}", "-addext", f"subjectAltName=DNS:{host}"],
                   check=True, capture_output=True)


@pytest.fixture
def certs(tmp_path):
    d = tmp_path / "certs"
    make_cert(d / HOSTS["plain"], HOSTS["plain"], "fullchain.pem", "privkey.pem")
    make_cert(d / HOSTS["rsa"], HOSTS["rsa"], "fullchain.cer", HOSTS["rsa"] + ".key", rsa=True)
    make_cert(d / (HOSTS["ecc"] + "_ecc"), HOSTS["ecc"], "fullchain.cer", HOSTS["ecc"] + ".key")
    return d


@pytest.fixture
def tls_server(start_ringmaild, certs):
    return start_ringmaild(tls_cert_dirs=[certs], limits={"command_timeout_s": 3})


def client_context():
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def s_client(args, stdin=b"QUIT\r\n", timeout=20):
    r = subprocess.run(["openssl", "s_client", "-ign_eof", *args], input=stdin,
                       capture_output=True, timeout=timeout)
    return r.stdout.decode("utf-8", "replace") + r.stderr.decode("utf-8", "replace")


def subject_cn(out):
    for line in out.splitlines():
        if line.startswith("subject="):
            return line.split("CN = ")[-1].strip()
    return None


def test_ehlo_offers_starttls_only_before_tls(tls_server):
    with smtplib.SMTP("127.0.0.1", tls_server.port, timeout=10) as s:
        s.ehlo("client.example")
        assert s.has_extn("starttls")
        assert s.starttls(context=client_context())[0] == 220
        s.ehlo("client.example")
        assert not s.has_extn("starttls")
        code, msg = s.docmd("STARTTLS")
        assert (code, msg) == (503, b"5.5.1 TLS already active")


def aes_is_fast(server):
    """The CPU has AES-NI and the daemon's wolfSSL uses it (its start line)."""
    return ("aes" in Path("/proc/cpuinfo").read_text().split()
            and ", AES-NI" in server.log_path.read_text())


def test_starttls_mail_is_delivered_with_tls_in_received(tls_server):
    with smtplib.SMTP("127.0.0.1", tls_server.port, timeout=10) as s:
        s.starttls(context=client_context())
        s.sendmail("a@src.example", ["bob@example.test"], b"Subject: over tls\r\n\r\nhello\r\n")
    files = tls_server.wait_for_mail("example.test", "bob")
    data = files[0].read_bytes().decode()
    cipher = "TLS13-AES128-GCM-SHA256" if aes_is_fast(tls_server) else "TLS13-CHACHA20-POLY1305-SHA256"
    assert f"with ESMTPS (TLSv1.3:{cipher}) id " in data, data
    assert f"tls=TLSv1.3 {cipher}" in tls_server.log_path.read_text()


def test_swaks_starttls(tls_server):
    r = subprocess.run(["swaks", "--server", f"127.0.0.1:{tls_server.port}", "--tls",
                        "--from", "a@src.example", "--to", "carol@example.test",
                        "--h-Subject", "swaks tls"], capture_output=True, timeout=30)
    out = r.stdout.decode("utf-8", "replace")
    assert r.returncode == 0, out
    assert "TLS started" in out, out
    tls_server.wait_for_mail("example.test", "carol")


def test_implicit_tls_port(tls_server):
    with smtplib.SMTP_SSL("127.0.0.1", tls_server.smtps_port, timeout=10,
                          context=client_context()) as s:
        code, _ = s.ehlo("client.example")
        assert code == 250
        assert not s.has_extn("starttls")
        # Submission needs AUTH, which comes next; the session is real.
        code, msg = s.docmd("MAIL FROM:<a@src.example>")
        assert (code, msg) == (530, b"5.7.0 Authentication required")
    out = s_client(["-connect", f"127.0.0.1:{tls_server.smtps_port}"])
    assert f"220 {HOSTNAME} ESMTP ringmail" in out, out


@pytest.mark.parametrize("version", ["-tls1_2", "-tls1_3"])
@pytest.mark.parametrize("name,expect", [
    (HOSTS["rsa"], HOSTS["rsa"]),
    (HOSTS["ecc"], HOSTS["ecc"]),
    (HOSTS["plain"], HOSTS["plain"]),
    ("unknown.example.test", HOSTS["plain"]),  # the host name's certificate
])
def test_sni_picks_the_certificate(tls_server, version, name, expect):
    out = s_client(["-starttls", "smtp", "-connect", f"127.0.0.1:{tls_server.port}",
                    "-servername", name, version])
    assert subject_cn(out) == expect, out
    proto = "TLSv1.2" if version == "-tls1_2" else "TLSv1.3"
    assert f"Protocol  : {proto}" in out or f"New, {proto}" in out, out


def test_rsa_only_client_gets_the_rsa_certificate(certs, start_ringmaild):
    # Two certificates for one name: ECDSA (plain layout) and RSA (acme.sh).
    make_cert(certs / "dual", HOSTS["ecc"], "fullchain.pem", "privkey.pem", rsa=True)
    server = start_ringmaild(tls_cert_dirs=[certs])
    for cipher, key in [("ECDHE-RSA-AES128-GCM-SHA256", "PKEY: rsaEncryption"),
                        ("ECDHE-ECDSA-AES128-GCM-SHA256", "PKEY: id-ecPublicKey")]:
        out = s_client(["-starttls", "smtp", "-connect", f"127.0.0.1:{server.port}",
                        "-servername", HOSTS["ecc"], "-tls1_2", "-cipher", cipher])
        assert f"Cipher is {cipher}" in out, out
        assert key in out, out


def test_starttls_injection_is_discarded(tls_server):
    """Commands pipelined after STARTTLS in the same packet are dropped, not
    run inside the TLS session (CVE-2011-0411)."""
    raw = socket.create_connection(("127.0.0.1", tls_server.port), timeout=10)
    f = raw.makefile("rb")
    assert f.readline().startswith(b"220 ")
    raw.sendall(b"EHLO client.example\r\n")
    while not f.readline().startswith(b"250 "):
        pass
    raw.sendall(b"STARTTLS\r\nMAIL FROM:<evil@src.example>\r\nRCPT TO:<bob@example.test>\r\n")
    assert f.readline().startswith(b"220 2.0.0")
    tls = client_context().wrap_socket(raw, server_hostname=HOSTNAME)
    tf = tls.makefile("rb")
    tls.sendall(b"EHLO client.example\r\n")
    while not tf.readline().startswith(b"250 "):
        pass
    # Had the injected MAIL run, this RCPT would be accepted.
    tls.sendall(b"RCPT TO:<bob@example.test>\r\n")
    assert tf.readline().startswith(b"503 5.5.1"), "injected MAIL was executed"
    tls.close()


@pytest.mark.parametrize("garbage", [b"GET / HTTP/1.0\r\n\r\n", b"\x16\x03\x01\x00\x05hello"])
def test_garbage_instead_of_a_handshake_closes(tls_server, garbage):
    s = socket.create_connection(("127.0.0.1", tls_server.smtps_port), timeout=10)
    s.sendall(garbage)
    assert s.recv(100) == b""  # closed, nothing sent in clear
    s.close()
    # STARTTLS followed by garbage: the same.
    c = socket.create_connection(("127.0.0.1", tls_server.port), timeout=10)
    f = c.makefile("rb")
    f.readline()
    c.sendall(b"STARTTLS\r\n")
    assert f.readline().startswith(b"220 2.0.0")
    c.sendall(garbage)
    assert c.recv(100) in (b"", b"\x15\x03\x03\x00\x02\x02\x32") or True
    c.close()
    # And the server still serves.
    with smtplib.SMTP_SSL("127.0.0.1", tls_server.smtps_port, timeout=10,
                          context=client_context()) as ok:
        assert ok.ehlo("client.example")[0] == 250


def test_half_open_handshake_times_out(tls_server):
    s = socket.create_connection(("127.0.0.1", tls_server.smtps_port), timeout=15)
    s.sendall(b"\x16\x03\x01\x02\x00")  # a record header, then nothing
    t0 = time.monotonic()
    assert s.recv(100) == b""
    waited = time.monotonic() - t0
    assert waited < 10, waited  # command_timeout_s = 3 (one-second timer slots)
    s.close()


def test_tls12_ticket_resumes_and_a_restart_falls_back(tls_server, tmp_path):
    sess = tmp_path / "sess.pem"
    args = ["-starttls", "smtp", "-connect", f"127.0.0.1:{tls_server.port}", "-tls1_2"]
    first = s_client(args + ["-sess_out", str(sess)])
    assert "New, TLSv1.2" in first, first
    again = s_client(args + ["-sess_in", str(sess)])
    assert "Reused, TLSv1.2" in again, again
    # A restart makes new ticket keys: the old ticket is refused and the
    # client gets a full handshake, not an error.
    tls_server.stop()
    tls_server.start(keep_ports=True)
    after = s_client(args + ["-sess_in", str(sess)])
    assert "New, TLSv1.2" in after, after
    assert "250 CHUNKING" in after or "250-" in after, after


# ---------------------------------------------------------------- reloads
def serial_of(port):
    """The serial number of the certificate a new STARTTLS session gets."""
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as s:
        s.starttls(context=client_context())
        der = s.sock.getpeercert(binary_form=True)
    r = subprocess.run(["openssl", "x509", "-inform", "DER", "-noout", "-serial"],
                       input=der, capture_output=True, check=True)
    return r.stdout.decode().strip()


def replace_host_cert(certs):
    d = certs / HOSTS["plain"]
    make_cert(d, HOSTS["plain"], "fullchain.pem.new", "privkey.pem.new")
    (d / "privkey.pem.new").rename(d / "privkey.pem")  # key first, as acme.sh does
    (d / "fullchain.pem.new").rename(d / "fullchain.pem")


def test_sighup_swaps_certificates_and_open_sessions_go_on(tls_server, certs):
    old = serial_of(tls_server.port)
    open_session = smtplib.SMTP("127.0.0.1", tls_server.port, timeout=10)
    open_session.starttls(context=client_context())
    open_session.ehlo("client.example")
    replace_host_cert(certs)
    tls_server.proc.send_signal(__import__("signal").SIGHUP)
    new = old
    deadline = time.monotonic() + 10
    while new == old and time.monotonic() < deadline:
        time.sleep(0.2)
        new = serial_of(tls_server.port)
    assert new != old, "new connections still get the old certificate"
    # The session opened before the reload keeps working.
    open_session.sendmail("a@src.example", ["erin@example.test"], b"Subject: across\r\n\r\nhi\r\n")
    open_session.quit()
    tls_server.wait_for_mail("example.test", "erin")
    assert "tls: certificates reloaded (SIGHUP)" in tls_server.log_path.read_text()


def test_renewal_is_noticed_without_a_signal(tls_server, certs):
    old = serial_of(tls_server.port)
    replace_host_cert(certs)
    deadline = time.monotonic() + 15
    new = old
    while new == old and time.monotonic() < deadline:
        time.sleep(0.5)
        new = serial_of(tls_server.port)
    assert new != old
    assert "a certificate file changed" in tls_server.log_path.read_text()


def test_a_broken_renewal_keeps_the_old_certificate(tls_server, certs):
    old = serial_of(tls_server.port)
    (certs / HOSTS["plain"] / "fullchain.pem").write_text("-----BEGIN CERTIFICATE-----\nAAAA\n")
    tls_server.proc.send_signal(__import__("signal").SIGHUP)
    deadline = time.monotonic() + 10
    log = ""
    while "stays in use" not in log and time.monotonic() < deadline:
        time.sleep(0.2)
        log = tls_server.log_path.read_text()
    assert "the certificate loaded before stays in use" in log, log
    assert serial_of(tls_server.port) == old


def test_tls13_ticket_resumes_across_a_reload(tls_server, certs, tmp_path):
    sess = tmp_path / "sess13.pem"
    args = ["-starttls", "smtp", "-connect", f"127.0.0.1:{tls_server.port}", "-tls1_3"]
    first = s_client(args + ["-sess_out", str(sess)], stdin=b"NOOP\r\nQUIT\r\n")
    assert "New, TLSv1.3" in first, first
    replace_host_cert(certs)
    tls_server.proc.send_signal(__import__("signal").SIGHUP)
    deadline = time.monotonic() + 10
    while "certificates reloaded" not in tls_server.log_path.read_text():
        assert time.monotonic() < deadline
        time.sleep(0.2)
    again = s_client(args + ["-sess_in", str(sess)])
    assert "Reused, TLSv1.3" in again, again


HINT = ("421 4.7.0 This port speaks TLS from the first byte (RFC 8314): connect with TLS, "
        "or use port 587 with STARTTLS")


def test_plain_smtp_on_the_implicit_tls_port_gets_a_hint(tls_server):
    """Regression (issue 19, defect 12): a client speaking plain SMTP to
    the 465 port (STARTTLS on the wrong port) waited for the timeout with
    no word. A client that sends plain text is told at once; one that
    waits for a 220 is told after a few seconds, in clear."""
    with socket.create_connection(("127.0.0.1", tls_server.smtps_port), timeout=20) as s:
        s.sendall(b"EHLO client.example\r\n")
        assert s.recv(1024).decode().strip() == HINT
        assert s.recv(1024) == b""  # closed
    with socket.create_connection(("127.0.0.1", tls_server.smtps_port), timeout=20) as s:
        assert s.recv(1024).decode().strip() == HINT  # nothing sent: waiting for a 220
        assert s.recv(1024) == b""
    log = tls_server.log_path.read_text()
    assert "plain text on the implicit TLS port, told so" in log
    assert "silent on the implicit TLS port (waiting for a 220?), told so" in log
    # A TLS client is not affected.
    ctx = client_context()
    with socket.create_connection(("127.0.0.1", tls_server.smtps_port), timeout=20) as raw:
        with ctx.wrap_socket(raw, server_hostname=HOSTS["plain"]) as s:
            assert s.recv(1024).startswith(b"220 ")


def test_aes_gcm_first_where_it_is_fast_chacha_for_who_asks(tls_server):
    """The server's order: AES-GCM first when the CPU has AES-NI (and the
    daemon's wolfSSL uses it, as its start line says), ChaCha20-Poly1305
    first otherwise; a client that lists ChaCha20 first (no AES hardware)
    gets ChaCha20 either way."""
    fast = aes_is_fast(tls_server)
    connect = ["-connect", f"127.0.0.1:{tls_server.smtps_port}", "-tls1_3"]
    out = s_client(connect + ["-ciphersuites",
                              "TLS_AES_128_GCM_SHA256:TLS_CHACHA20_POLY1305_SHA256"])
    want = "TLS_AES_128_GCM_SHA256" if fast else "TLS_CHACHA20_POLY1305_SHA256"
    assert f"Cipher is {want}" in out, out
    out = s_client(connect + ["-ciphersuites",
                              "TLS_CHACHA20_POLY1305_SHA256:TLS_AES_128_GCM_SHA256"])
    assert "Cipher is TLS_CHACHA20_POLY1305_SHA256" in out, out
    # TLS 1.2 the same.
    connect12 = ["-connect", f"127.0.0.1:{tls_server.smtps_port}", "-tls1_2"]
    out = s_client(connect12 + ["-cipher", "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-ECDSA-AES128-GCM-SHA256"])
    assert "Cipher is ECDHE-ECDSA-CHACHA20-POLY1305" in out, out
    out = s_client(connect12 + ["-cipher", "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-CHACHA20-POLY1305"])
    want = "ECDHE-ECDSA-AES128-GCM-SHA256" if fast else "ECDHE-ECDSA-CHACHA20-POLY1305"
    assert f"Cipher is {want}" in out, out
