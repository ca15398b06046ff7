"""DKIM signing end to end: keys made with `ringmail dkim-keygen`, mail
submitted by an authenticated user (or a relay_networks client) is signed
with RSA and Ed25519 before it is queued, and every signature verifies with
dkimpy (python3-dkim) against the records `ringmail dkim-dns` prints.
Edge cases: folded headers, trailing whitespace, empty body, long lines,
repeated headers, UTF-8 headers, a large body; tampering is caught."""
import base64
import re
import shutil
import smtplib
import subprocess
from pathlib import Path

import dkim
import pytest

from test_auth import PASSWORD, add_user
from test_outbound import dns as _dns_fixture  # noqa: F401
from test_tls import certs, client_context  # noqa: F401,F811 (fixture)
from test_tools import tool as run_tool

DOMAIN = "example.test"


tool = run_tool


def ok(*args):
    r = run_tool(*args)
    assert r.returncode == 0, r.stderr
    return r


@pytest.fixture
def keyed(tmp_path):
    domains = tmp_path / "domains"
    add_user(domains, "alice@example.test")
    ok("dkim-keygen", DOMAIN, "--selector", "rsa1", "--domains-dir", str(domains))
    ok("dkim-keygen", DOMAIN, "--selector", "ed1", "--algo", "ed25519", "--domains-dir", str(domains))
    return domains


def dns_records(domains):
    """name -> TXT text, from `ringmail dkim-dns` (strings joined)."""
    out = {}
    for line in ok("dkim-dns", DOMAIN, "--domains-dir", str(domains)).stdout.splitlines():
        name = line.split()[0].rstrip(".")
        out[name] = "".join(re.findall(r'"([^"]*)"', line))
    return out


def verifies(msg, records, idx=0):
    """dkimpy's verdict on signature `idx` of `msg` (CRLF); a mismatch it
    raises about is a failure too."""
    try:
        return dkim.DKIM(msg).verify(idx=idx, dnsfunc=lambda name, timeout=5: records.get(
            name.decode().rstrip("."), "").encode())
    except dkim.DKIMException:
        return False


def verify_all(data, records):
    """Each DKIM-Signature of `data` (bytes, LF or CRLF) verifies; returns
    the algorithms seen."""
    msg = re.sub(rb"\r?\n", b"\r\n", data)

    def dnsfunc(name, timeout=5):
        return records.get(name.decode().rstrip("."), "").encode()

    d = dkim.DKIM(msg)
    n = len(re.findall(rb"(?im)^DKIM-Signature:", msg))
    algos = []
    for i in range(n):
        assert d.verify(idx=i, dnsfunc=dnsfunc), f"signature {i} does not verify:\n{msg[:3000]!r}"
        algos.append(d.signature_fields[b"a"].decode())
    return algos


def opendkim_results(data, records, work):
    """OpenDKIM's verdicts (`opendkim -t`, its test mode) on every signature
    of `data`: a list of (result, algorithm). Keys come from `records`
    through its TestDNSData hook (a file of name/TXT pairs)."""
    if shutil.which("opendkim") is None:
        pytest.skip("no opendkim")
    work.mkdir(exist_ok=True)
    (work / "dns").write_text("".join(f"{n} {t}\n" for n, t in records.items()))
    (work / "opendkim.conf").write_text(f"Mode v\nSyslog no\nTestDNSData file:{work / 'dns'}\n")
    (work / "msg").write_bytes(re.sub(rb"\r?\n", b"\n", data))
    r = subprocess.run(["opendkim", "-x", str(work / "opendkim.conf"), "-t", str(work / "msg"), "-vvv"],
                       capture_output=True, text=True, timeout=60)
    return re.findall(r"dkim=(\w+)[^;]*header\.a=([\w-]+)", r.stdout + r.stderr)


@pytest.fixture
def signer(start_ringmaild, certs, keyed):  # noqa: F811
    return start_ringmaild(tls_cert_dirs=[certs], domains_dir=keyed,
                           limits={"message_bytes_max": 30 * 1024 * 1024},
                           relay_networks=["127.0.0.2/32"])


def submit(server, raw, rcpt="bob@example.test", sender="alice@example.test", **kw):
    with smtplib.SMTP("127.0.0.1", server.sub_port, timeout=60) as s:
        s.starttls(context=client_context())
        s.ehlo("client.example")
        s.login("alice@example.test", PASSWORD)
        s.sendmail(sender, [rcpt], raw, **kw)


CASES = {
    "plain": b"From: Alice <alice@example.test>\r\nTo: bob@example.test\r\nSubject: hi\r\n\r\nhello\r\n",
    "folded": (b"From: Alice\r\n <alice@example.test>\r\nTo: bob@example.test,\r\n\tcarol@example.test\r\n"
               b"Subject:   many    spaces\r\n   and a fold  \r\n\r\nbody  with \t spaces \t \r\n"),
    "empty_body": b"From: alice@example.test\r\nTo: bob@example.test\r\nSubject: empty\r\n\r\n",
    "trailing_blank_lines": b"From: alice@example.test\r\nSubject: blanks\r\n\r\ntext\r\n\r\n\r\n \r\n",
    "long_lines": b"From: alice@example.test\r\nSubject: long\r\n\r\n" + b"x" * 990 + b"\r\n" + b"y " * 400 + b"\r\n",
    "repeated": (b"From: alice@example.test\r\nTo: a@example.test\r\nTo: b@example.test\r\n"
                 b"Cc: c@example.test\r\nSubject: one\r\nReferences: <1@x>\r\nReferences: <2@x>\r\n\r\nr\r\n"),
    "dots": b"From: alice@example.test\r\nSubject: dots\r\n\r\n.leading dot\r\n..two\r\n.\r\n",
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_signed_messages_verify_with_dkimpy_and_opendkim(signer, keyed, case, tmp_path):
    submit(signer, CASES[case])
    data = signer.wait_for_mail(DOMAIN, "bob")[0].read_bytes()
    records = dns_records(keyed)
    assert sorted(verify_all(data, records)) == ["ed25519-sha256", "rsa-sha256"]
    assert sorted(opendkim_results(data, records, tmp_path / "od")) == [
        ("pass", "ed25519-sha256"), ("pass", "rsa-sha256")]
    text = data.decode("utf-8", "replace")
    assert "c=relaxed/relaxed" in text and "h=from:from:" in text.replace("\n\t", "").replace(" ", "")
    assert "l=" not in re.sub(r"(?s)b=[^;]*$", "", text.split("\n\n")[0]).replace("\n", "")


def test_utf8_headers_and_a_large_body(signer, keyed, tmp_path):
    raw = ("From: Zoë <alice@example.test>\r\nTo: bob@example.test\r\nSubject: héllo wörld\r\n\r\n"
           ).encode() + (b"0123456789abcdef" * 4 + b"\r\n") * 340000  # over 20 MiB
    submit(signer, raw, mail_options=["SMTPUTF8", "BODY=8BITMIME"])
    data = signer.wait_for_mail(DOMAIN, "bob", timeout=60)[0].read_bytes()
    assert len(data) > 20 * 1024 * 1024
    records = dns_records(keyed)
    assert sorted(verify_all(data, records)) == ["ed25519-sha256", "rsa-sha256"]
    assert sorted(opendkim_results(data, records, tmp_path / "od")) == [
        ("pass", "ed25519-sha256"), ("pass", "rsa-sha256")]


def test_tampering_is_caught(signer, keyed, tmp_path):
    submit(signer, CASES["plain"])
    data = signer.wait_for_mail(DOMAIN, "bob")[0].read_bytes()
    records = dns_records(keyed)
    for before, after in [(b"hello", b"hellO"), (b"Subject: hi", b"Subject: hI"),
                          (b"From: Alice", b"From: Eve")]:
        bad = re.sub(rb"\r?\n", b"\r\n", data.replace(before, after, 1))
        assert not verifies(bad, records, 0) and not verifies(bad, records, 1), before
        assert [r for r, _ in opendkim_results(bad, records, tmp_path / "od")] == ["fail", "fail"], before
    # A second From added below the signed one breaks it (From is over-signed).
    good = re.sub(rb"\r?\n", b"\r\n", data)
    assert verifies(good, records, 0) and verifies(good, records, 1)
    bad = good.replace(b"\r\n\r\n", b"\r\nFrom: eve@evil.example\r\n\r\n", 1)
    assert not verifies(bad, records, 0) and not verifies(bad, records, 1)


def test_batched_signing_in_avx512_lanes(start_ringmaild, certs, keyed, tmp_path):  # noqa: F811
    """Many submissions at once with the 16-lane batches forced on: every
    message is signed right (both verifiers agree)."""
    import threading
    server = start_ringmaild(tls_cert_dirs=[certs], domains_dir=keyed, threads=1,
                             relay_networks=["127.0.0.2/32"], dkim={"sha256_backend": "avx512x16"})
    log = server.log_path.read_text()
    if "16-lane AVX-512 batches on" not in log:
        pytest.skip("no AVX-512 here: " + [l for l in log.splitlines() if "body hashing" in l][0])
    errors = []
    go = threading.Barrier(24)

    def one(i):
        # An application on a relay_networks address: no AUTH, so the 24
        # messages reach the signing step together.
        try:
            body = "\r\n".join(f"line {i}  {k} \t" for k in range(i * 37 % 500)).encode()
            raw = b"From: alice@example.test\r\nSubject: batch %d\r\n\r\n" % i + body + b"\r\n"
            with smtplib.SMTP("127.0.0.1", server.port, timeout=60, source_address=("127.0.0.2", 0)) as s:
                s.ehlo("app.example")
                s.mail("alice@example.test")
                s.rcpt(f"b{i}@example.test")
                go.wait(30)
                s.data(raw)
        except Exception as e:  # noqa: BLE001
            errors.append(repr(e))

    threads = [threading.Thread(target=one, args=(i,)) for i in range(24)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors
    records = dns_records(keyed)
    for i in range(24):
        data = server.wait_for_mail(DOMAIN, f"b{i}", settle=0)[0].read_bytes()
        assert sorted(verify_all(data, records)) == ["ed25519-sha256", "rsa-sha256"], i
    assert sorted(opendkim_results(data, records, tmp_path / "od")) == [
        ("pass", "ed25519-sha256"), ("pass", "rsa-sha256")]
    # Whether the 24 met in one loop turn depends on timing, so that is not
    # asserted here; engine/dkim_test.cc checks the batch path itself.


def test_only_authenticated_or_trusted_mail_is_signed(signer, keyed):
    # Port 25 from an untrusted address: not signed (it is not ours).
    with smtplib.SMTP("127.0.0.1", signer.port, timeout=30) as s:
        s.sendmail("alice@example.test", ["carol@example.test"], CASES["plain"])
    data = signer.wait_for_mail(DOMAIN, "carol")[0].read_bytes()
    assert b"DKIM-Signature:" not in data
    # From a relay_networks address (an application here): signed.
    with smtplib.SMTP("127.0.0.1", signer.port, timeout=30, source_address=("127.0.0.2", 0)) as s:
        s.sendmail("app@example.test", ["dave@example.test"], CASES["plain"])
    data = signer.wait_for_mail(DOMAIN, "dave")[0].read_bytes()
    assert sorted(verify_all(data, dns_records(keyed))) == ["ed25519-sha256", "rsa-sha256"]
    # A From domain without keys and an envelope sender without keys: unsigned.
    with smtplib.SMTP("127.0.0.1", signer.port, timeout=30, source_address=("127.0.0.2", 0)) as s:
        s.sendmail("app@other.test", ["erin@example.test"],
                   b"From: someone@elsewhere.example\r\nSubject: x\r\n\r\nx\r\n")
    data = signer.wait_for_mail(DOMAIN, "erin")[0].read_bytes()
    assert b"DKIM-Signature:" not in data
    log = signer.log_path.read_text()
    assert "dkim: example.test selector rsa1 (rsa 2048)" in log
    assert "dkim: example.test selector ed1 (ed25519)" in log


def test_keygen_and_dns_commands(tmp_path):
    d = tmp_path / "domains"
    r = ok("dkim-keygen", "Example.ORG", "--domains-dir", str(d))
    assert "._domainkey.example.org. 3600 IN TXT \"v=DKIM1; k=rsa; p=MII" in r.stdout
    assert "mode 0600" in r.stderr
    key = list((d / "example.org").glob("dkim:*.pem"))
    assert len(key) == 1 and oct(key[0].stat().st_mode & 0o777) == "0o600"
    # RSA-2048 records are longer than 255 bytes: several strings.
    assert r.stdout.count('" "') >= 1
    sel = key[0].name[5:-4]
    again = tool("dkim-keygen", "example.org", "--selector", sel, "--domains-dir", str(d))
    assert again.returncode == 1 and "exists already" in again.stderr
    bad = tool("dkim-keygen", "example.org", "--algo", "dsa", "--domains-dir", str(d))
    assert bad.returncode == 1 and "--algo must be" in bad.stderr
    none = tool("dkim-dns", "nokeys.example", "--domains-dir", str(d))
    assert none.returncode == 1 and "no DKIM key for nokeys.example" in none.stderr


# --- Verification of incoming mail -------------------------------------------

DNS_SERVER = Path(__file__).resolve().parent.parent / "dns_server.py"


@pytest.fixture
def verifier(start_ringmaild, tmp_path):
    """ringmaild whose resolver is a local DNS server holding the keys of
    signer.test (made with ringmail dkim-keygen, signed with by dkimpy)."""
    keys = tmp_path / "signer-keys"
    ok("dkim-keygen", "signer.test", "--selector", "r1", "--domains-dir", str(keys))
    ok("dkim-keygen", "signer.test", "--selector", "e1", "--algo", "ed25519", "--domains-dir", str(keys))
    zone = tmp_path / "zone"
    zone.write_text(ok("dkim-dns", "signer.test", "--domains-dir", str(keys)).stdout)
    p = subprocess.Popen(["/usr/bin/python3", str(DNS_SERVER), str(zone)], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, text=True)
    port = int(p.stdout.readline())
    server = start_ringmaild(outbound={"dns_servers": f"127.0.0.1:{port}"})
    server.keys = keys / "signer.test"
    yield server
    p.stdin.close()
    p.wait(timeout=10)


def dkimpy_sign(msg, keydir, selector, algo=b"rsa-sha256", canon=(b"relaxed", b"relaxed")):
    pem = (keydir / f"dkim:{selector}.pem").read_bytes()
    if algo == b"ed25519-sha256":
        der = base64.b64decode(b"".join(l for l in pem.splitlines() if not l.startswith(b"-----")))
        pem = base64.b64encode(der[-32:])  # dkimpy takes the raw 32-byte seed
    return dkim.sign(msg, selector.encode(), b"signer.test", pem, canonicalize=canon,
                     signature_algorithm=algo, include_headers=[b"from", b"to", b"subject"])


def receive(server, raw, user):
    with smtplib.SMTP("127.0.0.1", server.port, timeout=30) as s:
        s.sendmail("news@signer.test", [f"{user}@example.test"], raw)
    data = server.wait_for_mail(DOMAIN, user)[0].read_bytes().decode()
    header = data.split("\n\n", 1)[0].replace("\n\t", " ")
    return [l for l in header.splitlines() if l.startswith("Authentication-Results:")]


MSG = b"From: News <news@signer.test>\r\nTo: bob@example.test\r\nSubject: hello\r\n\r\nSigned body.\r\n"


def test_incoming_signatures_are_verified(verifier):
    once = dkimpy_sign(MSG, verifier.keys, "e1", b"ed25519-sha256") + MSG
    both = dkimpy_sign(once, verifier.keys, "r1") + once
    ar = receive(verifier, both, "v1")
    assert len(ar) == 1, ar
    assert ar[0].startswith("Authentication-Results: mx.test.example;")
    assert "dkim=pass header.d=signer.test header.s=r1 header.a=rsa-sha256" in ar[0], ar
    assert "dkim=pass header.d=signer.test header.s=e1 header.a=ed25519-sha256" in ar[0], ar
    # simple/simple canonicalization.
    ar = receive(verifier, dkimpy_sign(MSG, verifier.keys, "r1", canon=(b"simple", b"simple")) + MSG, "v2")
    assert "dkim=pass header.d=signer.test" in ar[0], ar
    assert "dkim id=" in verifier.log_path.read_text()


def test_incoming_failures_have_reasons(verifier):
    signed = dkimpy_sign(MSG, verifier.keys, "r1") + MSG
    ar = receive(verifier, signed.replace(b"Signed body.", b"Changed body."), "f1")
    assert "dkim=fail (body hash mismatch) header.d=signer.test" in ar[0], ar
    ar = receive(verifier, signed.replace(b"Subject: hello", b"Subject: HELLO"), "f2")
    assert "dkim=fail (signature does not verify)" in ar[0], ar
    ar = receive(verifier, signed.replace(b"s=r1", b"s=zz"), "f3")
    assert "dkim=permerror (no key at zz._domainkey.signer.test)" in ar[0], ar
    ar = receive(verifier, b"DKIM-Signature: v=1; a=rsa-sha1; d=x.test\r\n" + MSG, "f4")
    assert "dkim=permerror (unsupported algorithm rsa-sha1)" in ar[0], ar
    # Unsigned: none; a forged result in our name is dropped, others stay.
    ar = receive(verifier, b"Authentication-Results: mx.test.example; dkim=pass\r\n"
                           b"Authentication-Results: other.example; dkim=pass\r\n" + MSG, "f5")
    assert ar == ["Authentication-Results: mx.test.example; dkim=none",
                  "Authentication-Results: other.example; dkim=pass"], ar
