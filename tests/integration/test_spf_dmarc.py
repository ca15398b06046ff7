"""SPF and DMARC on port 25 (docs/smtp-replies.md), with a local DNS server:
the results in Received-SPF and Authentication-Results, SPF fail and DMARC
p=reject refused at the end of DATA (or marked, by configuration),
quarantine marked, subdomain policies, missing records; and the user
story's forwarding chain: a message signed by its sender's domain and
forwarded by a catch-all leaves with an SRS sender, and the next receiver
(another ringmaild) finds SPF pass for it, the original DKIM signature
intact and DMARC pass."""
import re
import smtplib
import subprocess

import pytest

import socket

from conftest import free_port
from test_dkim import DNS_SERVER, dkimpy_sign, dns_zone, ok
from test_outbound import Peer
from test_tls import certs  # noqa: F401 (fixture)

ZONE = """\
spf-pass.test. 60 IN TXT "v=spf1 ip4:127.0.0.0/8 -all"
spf-fail.test. 60 IN TXT "v=spf1 ip4:192.0.2.1 -all"
spf-soft.test. 60 IN TXT "v=spf1 ~all"
reject.test. 60 IN TXT "v=spf1 ip4:192.0.2.1 -all"
_dmarc.reject.test. 60 IN TXT "v=DMARC1; p=reject"
parent.test. 60 IN TXT "v=spf1 -all"
_dmarc.parent.test. 60 IN TXT "v=DMARC1; p=none; sp=reject"
quar.test. 60 IN TXT "v=spf1 ip4:192.0.2.1 -all"
_dmarc.quar.test. 60 IN TXT "v=DMARC1; p=quarantine"
aligned.test. 60 IN TXT "v=spf1 ip4:127.0.0.1 -all"
_dmarc.aligned.test. 60 IN TXT "v=DMARC1; p=reject; aspf=s"
"""


def start_dns(tmp_path, zone):
    path = tmp_path / "zone"
    path.write_text(zone)
    p = subprocess.Popen(["/usr/bin/python3", str(DNS_SERVER), str(path)], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, text=True)
    return p, int(p.stdout.readline())


@pytest.fixture
def dns_port(tmp_path):
    p, port = start_dns(tmp_path, ZONE)
    yield port
    p.stdin.close()
    p.wait(timeout=10)


def send(server, sender, header_from, rcpt="someone@example.test"):
    """The delivered message's header (unfolded), or the SMTP error."""
    msg = f"From: {header_from}\r\nSubject: t\r\n\r\nbody\r\n".encode()
    with smtplib.SMTP("127.0.0.1", server.port, timeout=30) as s:
        s.helo("client.example")
        s.sendmail(sender, [rcpt], msg)
    data = server.wait_for_mail("example.test", rcpt.split("@")[0], settle=0)[-1].read_bytes()
    return data.decode().split("\n\n", 1)[0].replace("\n\t", " ")


def refused(server, sender, header_from):
    with pytest.raises(smtplib.SMTPDataError) as e:
        send(server, sender, header_from)
    return e.value.smtp_code, e.value.smtp_error.decode()


def test_spf_results_and_refusal(start_ringmaild, dns_port):
    mx = start_ringmaild(outbound={"dns_servers": f"127.0.0.1:{dns_port}"})
    h = send(mx, "a@spf-pass.test", "a@spf-pass.test", "r1@example.test")
    assert "Received-SPF: pass (" in h and "client-ip=127.0.0.1;" in h, h
    assert "spf=pass smtp.mailfrom=a@spf-pass.test" in h, h
    h = send(mx, "a@spf-soft.test", "a@spf-soft.test", "r2@example.test")
    assert "spf=softfail smtp.mailfrom=a@spf-soft.test" in h, h
    h = send(mx, "", "a@nodns.test", "r3@example.test")
    assert "spf=none smtp.helo=client.example" in h and "smtp.mailfrom" not in h, h
    # The HELO identity is checked too, and only recorded.
    with smtplib.SMTP("127.0.0.1", mx.port, timeout=30) as s:
        s.helo("spf-fail.test")
        s.sendmail("a@spf-pass.test", ["r4@example.test"], b"From: a@spf-pass.test\r\n\r\nx\r\n")
    h = mx.wait_for_mail("example.test", "r4", settle=0)[-1].read_bytes().decode().replace("\n\t", " ")
    assert "spf=pass smtp.mailfrom=a@spf-pass.test; spf=fail smtp.helo=spf-fail.test" in h, h
    code, text = refused(mx, "a@spf-fail.test", "a@spf-fail.test")
    assert code == 550 and text.startswith("5.7.23 SPF check failed for spf-fail.test"), text
    assert re.search(r"\S+: refused client=\S+ helo=\S+ from=<a@spf-fail.test>: \(end of data\): "
                     r"550 5.7.23 ", mx.log_path.read_text())


def test_spf_fail_marked_when_configured(start_ringmaild, dns_port):
    mx = start_ringmaild(outbound={"dns_servers": f"127.0.0.1:{dns_port}"},
                         inbound={"spf_fail": "mark", "dmarc_reject": "mark"})
    h = send(mx, "a@spf-fail.test", "a@spf-fail.test")
    assert "Received-SPF: fail" in h and "spf=fail smtp.mailfrom=a@spf-fail.test" in h, h
    h = send(mx, "a@spf-pass.test", "boss@reject.test", "r2@example.test")
    assert "dmarc=fail (p=reject dis=reject) header.from=reject.test" in h, h
    assert "X-Ringmail-Disposition: reject (DMARC policy of reject.test)" in h, h


def test_dmarc_policies(start_ringmaild, dns_port):
    mx = start_ringmaild(outbound={"dns_servers": f"127.0.0.1:{dns_port}"})
    # Unaligned (SPF passes for another domain, no DKIM): p=reject refuses.
    code, text = refused(mx, "a@spf-pass.test", "boss@reject.test")
    assert (code, text) == (550, "5.7.1 Message refused by the DMARC policy of reject.test"), text
    # sp=reject applies to a subdomain without its own record.
    code, text = refused(mx, "a@spf-pass.test", "x@sub.parent.test")
    assert code == 550 and "parent.test" in text, text
    # The parent itself has p=none: taken, marked fail.
    h = send(mx, "a@spf-pass.test", "x@parent.test", "r1@example.test")
    assert "dmarc=fail (p=none dis=none) header.from=parent.test" in h, h
    # Quarantine: taken and marked.
    h = send(mx, "a@spf-pass.test", "x@quar.test", "r2@example.test")
    assert "X-Ringmail-Disposition: quarantine (DMARC policy of quar.test)" in h, h
    # Aligned SPF (strict) passes.
    h = send(mx, "a@aligned.test", "b@aligned.test", "r3@example.test")
    assert "dmarc=pass (p=reject dis=none) header.from=aligned.test" in h, h
    # No record at all.
    h = send(mx, "a@spf-pass.test", "a@spf-pass.test", "r4@example.test")
    assert "dmarc=none header.from=spf-pass.test" in h, h
    assert re.search(r"dmarc ip=127\.0\.0\.1 header_from=reject\.test .*disposition=reject",
                     mx.log_path.read_text())


def test_forwarding_chain_passes_spf_dkim_and_dmarc(start_ringmaild, ringmaild_binary, tmp_path,
                                                    certs):  # noqa: F811
    # The original sender's domain signs with DKIM and publishes p=reject.
    keys = tmp_path / "signer-keys"
    ok("dkim-keygen", "signer.test", "--selector", "r1", "--domains-dir", str(keys))
    peer_port = free_port(socket.AF_INET, "127.0.0.1")
    zone = dns_zone(keys, "signer.test") + ZONE + (
        '_dmarc.signer.test. 60 IN TXT "v=DMARC1; p=reject"\n'
        # The sender's own server is 127.0.0.3; the forwarder sends from
        # 127.0.0.1, which only its own domain's SPF allows.
        'signer.test. 60 IN TXT "v=spf1 ip4:127.0.0.3 -all"\n'
        'example.test. 60 IN TXT "v=spf1 ip4:127.0.0.1 -all"\n'
        "peer.test. 60 IN MX 10 mx1.peer.test.\n"
        "mx1.peer.test. 60 IN A 127.0.0.2\n")
    dns, port = start_dns(tmp_path, zone)
    try:
        domains = tmp_path / "domains"
        (domains / "example.test").mkdir(parents=True)
        (domains / "example.test" / "aliases").write_text("*: inbox@peer.test\n")
        fwd = start_ringmaild(domains_dir=domains,
                              outbound={"dns_servers": f"127.0.0.1:{port}", "port": peer_port})
        peer = Peer(ringmaild_binary, tmp_path / "receiver", "mx1.peer.test",
                    [(f"127.0.0.2:{peer_port}", "smtp")], [certs], dns=f"127.0.0.1:{port}")
        try:
            msg = b"From: news@signer.test\r\nTo: me@example.test\r\nSubject: hi\r\n\r\nSigned body.\r\n"
            signed = dkimpy_sign(msg, keys / "signer.test", "r1") + msg
            with smtplib.SMTP("127.0.0.1", fwd.port, timeout=30, source_address=("127.0.0.3", 0)) as s:
                s.sendmail("news@signer.test", ["me@example.test"], signed)
            got = peer.wait_mail("inbox")[0].read_bytes().decode()
        finally:
            peer.stop()
    finally:
        dns.stdin.close()
        dns.wait(timeout=10)
    header = got.split("\n\n", 1)[0].replace("\n\t", " ")
    # The forwarder's results (SPF pass from the sender's own server) stay;
    # the receiver's are its own.
    assert "Authentication-Results: mx.test.example; dkim=pass" in header, header
    ar = [l for l in header.splitlines() if l.startswith("Authentication-Results: mx1.peer.test;")]
    assert len(ar) == 1, header
    assert re.search(r"spf=pass smtp\.mailfrom=SRS0=[^ ;]+=signer\.test=news@example\.test", ar[0]), ar
    assert "dkim=pass header.d=signer.test" in ar[0], ar
    assert "dmarc=pass (p=reject dis=none) header.from=signer.test" in ar[0], ar
