"""DKIM signing end to end: keys made with `ringmail dkim-keygen`, mail
submitted by an authenticated user (or a relay_networks client) is signed
with RSA and Ed25519 before it is queued, and every signature verifies with
dkimpy (python3-dkim), `opendkim -t` and opendkim-testmsg against the
records `ringmail dkim-dns` prints. Edge cases: folded headers, trailing
whitespace, empty body, long lines, repeated headers, UTF-8 headers, a large
body; tampering is caught. Inbound: signatures made by dkimpy and by the
opendkim milter (in front of a Postfix that relays to ringmail) verify, and
tampered copies fail with the reason."""
import base64
import re
import shutil
import smtplib
import socket
import subprocess
import time
from pathlib import Path

import dkim
import pytest

from conftest import IS_ROOT, free_port
from postfix_instance import PostfixInstance
from test_auth import PASSWORD, add_mailboxes, add_user
from test_outbound import dns as _dns_fixture  # noqa: F401
from test_tls import certs, client_context  # noqa: F401,F811 (fixture)
from test_tools import tool as run_tool

DOMAIN = "example.test"
DNS_SERVER = Path(__file__).resolve().parent.parent / "dns_server.py"
TESTMSG = "/usr/sbin/opendkim-testmsg"


tool = run_tool


def ok(*args):
    r = run_tool(*args)
    assert r.returncode == 0, r.stderr
    return r


@pytest.fixture
def keyed(tmp_path):
    domains = tmp_path / "domains"
    add_user(domains, "alice@example.test")
    add_mailboxes(domains, DOMAIN, "bob", "carol", "dave", "erin", *[f"b{i}" for i in range(24)])
    ok("dkim-keygen", DOMAIN, "--selector", "rsa1", "--domains-dir", str(domains))
    ok("dkim-keygen", DOMAIN, "--selector", "ed1", "--algo", "ed25519", "--domains-dir", str(domains))
    return domains


def dns_zone(domains, domain=DOMAIN):
    """The TXT records of the domain's keys in zone file form (`ringmail dkim-dns`)."""
    return ok("dkim-dns", domain, "--domains-dir", str(domains)).stdout


def dns_records(domains, domain=DOMAIN):
    """name -> TXT text, from `ringmail dkim-dns` (strings joined)."""
    out = {}
    for line in dns_zone(domains, domain).splitlines():
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
def testmsg(tmp_path):
    """Factory: testmsg(zone text) -> run(message) giving opendkim-testmsg's
    verdict: "pass" or its complaint ("opendkim-testmsg: dkim_eom(): Bad
    signature"). The tool has no resolver option: libopendkim asks the name
    servers of /etc/resolv.conf. So it runs in a network and mount namespace
    of its own (made with unshare, entered with nsenter; root, as for
    Postfix) where tests/dns_server.py answers for the zone on 127.0.0.1
    port 53 and a resolv.conf naming it is bind-mounted over
    /etc/resolv.conf; nothing outside the namespace sees either.

    opendkim-testmsg checks header fields strictly (RFC 5322 3.6: exactly one
    Date and From, at most one To, Cc, Subject...): a message without Date
    gets "dkim_chunk(): Syntax error" whatever its signatures."""
    for binary in (TESTMSG, "unshare", "nsenter", "ip"):
        if shutil.which(binary) is None:
            pytest.skip(f"no {binary}")
    if not IS_ROOT:
        pytest.skip("needs root: opendkim-testmsg runs in a network namespace")
    servers = []

    def start(zone_text):
        zone, resolv = tmp_path / "testmsg-zone", tmp_path / "testmsg-resolv.conf"
        zone.write_text(zone_text)
        resolv.write_text("nameserver 127.0.0.1\n")
        p = subprocess.Popen(
            ["unshare", "--net", "--mount", "sh", "-ec",
             'ip link set lo up; mount --bind "$1" /etc/resolv.conf; exec /usr/bin/python3 "$2" "$3" 53',
             "sh", str(resolv), str(DNS_SERVER), str(zone)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        servers.append(p)
        assert p.stdout.readline().strip() == "53", "no DNS server in a namespace of its own"

        def run(msg):
            r = subprocess.run(["nsenter", "--target", str(p.pid), "--net", "--mount", TESTMSG],
                               input=re.sub(rb"\r?\n", b"\n", msg), capture_output=True, timeout=60)
            return "pass" if r.returncode == 0 and not r.stderr else r.stderr.decode().strip()
        return run

    yield start
    for p in servers:
        p.stdin.close()
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def one_signature_each(data):
    """(a= value, copy of `data` keeping that DKIM-Signature field only) for
    each signature: opendkim-testmsg judges a message as a whole (one good
    signature is enough), so each is given to it alone."""
    head, body = re.sub(rb"\r?\n", b"\n", data).split(b"\n\n", 1)
    fields = re.split(rb"\n(?=[^ \t])", head)
    sigs = [f for f in fields if f.lower().startswith(b"dkim-signature:")]
    for sig in sigs:
        algo = re.search(rb"(?:[:;])\s*a\s*=\s*([\w-]+)", sig).group(1).decode()
        yield algo, b"\n".join(f for f in fields if f is sig or f not in sigs) + b"\n\n" + body


def verdicts_by_testmsg(run, data):
    return sorted((algo, run(msg)) for algo, msg in one_signature_each(data))


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


# Each case has the one Date field RFC 5322 asks for (opendkim-testmsg
# refuses a message without it).
DATE = b"Date: Mon, 02 Mar 2026 10:00:00 +0000\r\n"
CASES = {k: DATE + v for k, v in {
    "plain": b"From: Alice <alice@example.test>\r\nTo: bob@example.test\r\nSubject: hi\r\n\r\nhello\r\n",
    "folded": (b"From: Alice\r\n <alice@example.test>\r\nTo: bob@example.test,\r\n\tcarol@example.test\r\n"
               b"Subject:   many    spaces\r\n   and a fold  \r\n\r\nbody  with \t spaces \t \r\n"),
    "empty_body": b"From: alice@example.test\r\nTo: bob@example.test\r\nSubject: empty\r\n\r\n",
    "trailing_blank_lines": b"From: alice@example.test\r\nSubject: blanks\r\n\r\ntext\r\n\r\n\r\n \r\n",
    "long_lines": b"From: alice@example.test\r\nSubject: long\r\n\r\n" + b"x" * 990 + b"\r\n" + b"y " * 400 + b"\r\n",
    "repeated": (b"From: alice@example.test\r\nTo: a@example.test\r\nTo: b@example.test\r\n"
                 b"Cc: c@example.test\r\nSubject: one\r\nReferences: <1@x>\r\nReferences: <2@x>\r\n\r\nr\r\n"),
    "dots": b"From: alice@example.test\r\nSubject: dots\r\n\r\n.leading dot\r\n..two\r\n.\r\n",
}.items()}
ALL_PASS = [("ed25519-sha256", "pass"), ("rsa-sha256", "pass")]
BAD = "opendkim-testmsg: dkim_eom(): Bad signature"


@pytest.mark.parametrize("case", sorted(CASES))
def test_signed_messages_verify_with_dkimpy_and_opendkim(signer, keyed, case, tmp_path, testmsg):
    submit(signer, CASES[case])
    data = signer.wait_for_mail(DOMAIN, "bob")[0].read_bytes()
    records = dns_records(keyed)
    assert sorted(verify_all(data, records)) == ["ed25519-sha256", "rsa-sha256"]
    assert sorted(opendkim_results(data, records, tmp_path / "od")) == [
        ("pass", "ed25519-sha256"), ("pass", "rsa-sha256")]
    run = testmsg(dns_zone(keyed))
    if case == "repeated":  # two To fields: opendkim-testmsg's strict checks refuse it
        syntax = "opendkim-testmsg: dkim_chunk(): Syntax error"
        assert verdicts_by_testmsg(run, data) == [("ed25519-sha256", syntax), ("rsa-sha256", syntax)]
    else:
        assert verdicts_by_testmsg(run, data) == ALL_PASS
    text = data.decode("utf-8", "replace")
    assert "c=relaxed/relaxed" in text and "h=from:from:" in text.replace("\n\t", "").replace(" ", "")
    assert "l=" not in re.sub(r"(?s)b=[^;]*$", "", text.split("\n\n")[0]).replace("\n", "")


def test_utf8_headers_and_a_large_body(signer, keyed, tmp_path, testmsg):
    raw = DATE + ("From: Zoë <alice@example.test>\r\nTo: bob@example.test\r\nSubject: héllo wörld\r\n\r\n"
                  ).encode() + (b"0123456789abcdef" * 4 + b"\r\n") * 340000  # over 20 MiB
    submit(signer, raw, mail_options=["SMTPUTF8", "BODY=8BITMIME"])
    data = signer.wait_for_mail(DOMAIN, "bob", timeout=60)[0].read_bytes()
    assert len(data) > 20 * 1024 * 1024
    records = dns_records(keyed)
    assert sorted(verify_all(data, records)) == ["ed25519-sha256", "rsa-sha256"]
    assert sorted(opendkim_results(data, records, tmp_path / "od")) == [
        ("pass", "ed25519-sha256"), ("pass", "rsa-sha256")]
    run = testmsg(dns_zone(keyed))
    assert verdicts_by_testmsg(run, data) == ALL_PASS


def test_tampering_is_caught(signer, keyed, tmp_path, testmsg):
    submit(signer, CASES["plain"])
    data = signer.wait_for_mail(DOMAIN, "bob")[0].read_bytes()
    records = dns_records(keyed)
    run = testmsg(dns_zone(keyed))
    assert verdicts_by_testmsg(run, data) == ALL_PASS
    for before, after in [(b"hello", b"hellO"), (b"Subject: hi", b"Subject: hI"),
                          (b"From: Alice", b"From: Eve"), (b"Date: Mon", b"Date: Tue")]:
        bad = re.sub(rb"\r?\n", b"\r\n", data.replace(before, after, 1))
        assert not verifies(bad, records, 0) and not verifies(bad, records, 1), before
        assert [r for r, _ in opendkim_results(bad, records, tmp_path / "od")] == ["fail", "fail"], before
        assert verdicts_by_testmsg(run, bad) == [("ed25519-sha256", BAD), ("rsa-sha256", BAD)], before
    # A second From added below the signed one breaks it (From is over-signed).
    good = re.sub(rb"\r?\n", b"\r\n", data)
    assert verifies(good, records, 0) and verifies(good, records, 1)
    bad = good.replace(b"\r\n\r\n", b"\r\nFrom: eve@evil.example\r\n\r\n", 1)
    assert not verifies(bad, records, 0) and not verifies(bad, records, 1)


def test_batched_signing_in_avx512_lanes(start_ringmaild, certs, keyed, tmp_path, testmsg):  # noqa: F811
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
            raw = DATE + b"From: alice@example.test\r\nSubject: batch %d\r\n\r\n" % i + body + b"\r\n"
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
    assert verdicts_by_testmsg(testmsg(dns_zone(keyed)), data) == ALL_PASS
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


@pytest.fixture
def verifier(start_ringmaild, tmp_path):
    """ringmaild whose resolver is a local DNS server holding the keys of
    signer.test (made with ringmail dkim-keygen, signed with by dkimpy)."""
    keys = tmp_path / "signer-keys"
    ok("dkim-keygen", "signer.test", "--selector", "r1", "--domains-dir", str(keys))
    ok("dkim-keygen", "signer.test", "--selector", "e1", "--algo", "ed25519", "--domains-dir", str(keys))
    zone = tmp_path / "zone"
    zone.write_text(dns_zone(keys, "signer.test"))
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


def auth_results(data):
    """The Authentication-Results fields of a delivered message, unfolded."""
    header = data.decode().split("\n\n", 1)[0].replace("\n\t", " ")
    return [l for l in header.splitlines() if l.startswith("Authentication-Results:")]


def receive(server, raw, user):
    with smtplib.SMTP("127.0.0.1", server.port, timeout=30) as s:
        s.sendmail("news@signer.test", [f"{user}@example.test"], raw)
    return auth_results(server.wait_for_mail(DOMAIN, user)[0].read_bytes())


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
    assert ": checks spf=" in verifier.log_path.read_text()


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
    assert len(ar) == 2 and ar[1] == "Authentication-Results: other.example; dkim=pass", ar
    assert re.fullmatch(r"Authentication-Results: mx\.test\.example; dkim=none; "
                        r"spf=none smtp\.mailfrom=news@signer\.test; spf=\w+ smtp\.helo=\S+; "
                        r"dmarc=none header\.from=signer\.test", ar[0]), ar


# --- Signatures made by the opendkim milter ------------------------------------

OPENDKIM = "/usr/sbin/opendkim"


class OpenDKIMSigner:
    """The opendkim milter signing mail from signer.test (Mode s) with one
    key, on a loopback inet socket, in the foreground (-f) as the current
    user, with its own configuration file in `work`."""

    def __init__(self, work, key, selector, algorithm, canon):
        work.mkdir(parents=True)
        shutil.copy(key, work / "key.pem")  # KeyFile: ringmail's names hold a ':'
        self.port = free_port(socket.AF_INET, "127.0.0.1")
        self.log = work / "opendkim.log"
        conf = work / "opendkim.conf"
        conf.write_text(f"""Mode s
Syslog no
Socket inet:{self.port}@127.0.0.1
Domain signer.test
Selector {selector}
KeyFile {work / "key.pem"}
SignatureAlgorithm {algorithm}
Canonicalization {canon}
# The key is under /tmp, which anyone may write to: opendkim refuses it otherwise.
RequireSafeKeys no
""")
        with open(self.log, "wb") as log:
            self.p = subprocess.Popen([OPENDKIM, "-f", "-x", str(conf)], stdin=subprocess.DEVNULL,
                                      stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 15
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                if self.p.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise AssertionError(f"opendkim did not start:\n{self.log.read_text()}")
                time.sleep(0.05)

    def stop(self):
        if self.p.poll() is None:
            self.p.terminate()
            try:
                self.p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()


@pytest.fixture
def opendkim_postfix(verifier, tmp_path):
    """Factory: opendkim_postfix(canon) -> a started Postfix instance whose
    smtpd passes each message through two opendkim milters signing for
    signer.test with the verifier's keys (r1 rsa-sha256, e1 ed25519-sha256),
    canonicalization `canon`, and which relays everything to the verifier's
    port 25 listener."""
    for binary in (OPENDKIM, "/usr/sbin/postfix"):
        if shutil.which(binary) is None:
            pytest.skip(f"no {binary}")
    if not IS_ROOT:
        pytest.skip("needs root: Postfix's master runs as root")
    running = []

    def start(canon):
        for selector, algorithm in (("r1", "rsa-sha256"), ("e1", "ed25519-sha256")):
            running.append(OpenDKIMSigner(tmp_path / f"opendkim-{selector}", verifier.keys / f"dkim:{selector}.pem",
                                          selector, algorithm, canon))
        milters = ", ".join(f"inet:127.0.0.1:{m.port}" for m in running)
        pf = PostfixInstance(f"[127.0.0.1]:{verifier.port}",
                             extra=f"smtpd_milters = {milters}\nmilter_default_action = tempfail\n")
        running.append(pf)
        return pf.start()

    yield start
    for x in reversed(running):
        x.stop()


def as_received(data):
    """A delivered message as it reached ringmail (CRLF): without the
    Return-Path, Delivered-To, Received and Authentication-Results fields
    ringmail added."""
    head, body = re.sub(rb"\r?\n", b"\n", data).split(b"\n\n", 1)
    ours = (b"return-path:", b"delivered-to:", b"authentication-results:")
    fields = [f for f in re.split(rb"\n(?=[^ \t])", head)
              if not f.lower().startswith(ours) and not (f.lower().startswith(b"received:") and b"(ringmail)" in f)]
    return re.sub(rb"\n", b"\r\n", b"\n".join(fields) + b"\n\n" + body)


OD_MSG = (DATE + b"From: News <news@signer.test>\r\nTo: bob@example.test\r\nSubject:  Signed   by\t OpenDKIM \r\n"
          b"Message-ID: <od1@signer.test>\r\n\r\nBody  text \t\r\n\r\nlast line\r\n\r\n\r\n")


@pytest.mark.parametrize("canon", ["relaxed/relaxed", "simple/simple"])
def test_opendkim_signatures_are_verified(verifier, opendkim_postfix, canon):
    """Mail signed by the opendkim milter (RSA and Ed25519) on its way
    through Postfix passes in ringmail; copies altered after signing fail,
    with the reason."""
    pf = opendkim_postfix(canon)
    with smtplib.SMTP("127.0.0.1", pf.port, timeout=30) as s:
        s.sendmail("news@signer.test", ["od@example.test"], OD_MSG)
    data = verifier.wait_for_mail(DOMAIN, "od", timeout=40)[0].read_bytes()
    signatures = dict(one_signature_each(data))
    assert sorted(signatures) == ["ed25519-sha256", "rsa-sha256"], data
    assert data.count(f"c={canon};".encode()) == 2, data
    records = dns_records(verifier.keys.parent, "signer.test")
    dkimpy = {a: verifies(re.sub(rb"\n", b"\r\n", m), records) for a, m in signatures.items()}
    ar = auth_results(data)
    assert len(ar) == 1, ar
    assert "dkim=pass header.d=signer.test header.s=r1 header.a=rsa-sha256" in ar[0], ar
    sent = as_received(data)
    if canon == "relaxed/relaxed":
        assert "dkim=pass header.d=signer.test header.s=e1 header.a=ed25519-sha256" in ar[0], ar
        assert dkimpy == {"rsa-sha256": True, "ed25519-sha256": True}
    else:
        # OpenDKIM 2.11.0~beta2's bug: the Ed25519 signature field it adds
        # has b= folded onto a line of its own, but it hashed the field with
        # "b=" still on the h= line (libopendkim's dkim_getsighdr_d() forces
        # that wrap, when the value will not fit, for RSA keys only). Simple
        # header canonicalization keeps folding, so such an Ed25519 signature
        # does not verify (dkimpy agrees); the field folded as it was hashed
        # does.
        assert "dkim=fail (signature does not verify) header.d=signer.test header.s=e1" in ar[0], ar
        assert dkimpy == {"rsa-sha256": True, "ed25519-sha256": False}
        sent = re.sub(rb"(a=ed25519-sha256;.*?;)\r\n\t(b=)", rb"\1 \2", sent, count=1, flags=re.S)
    # The message sent again as it arrived (the control), then altered.
    for user, before, after, reason in [
            ("od0", b"", b"", None),
            ("od1", b"Body  text", b"Body  test", "body hash mismatch"),
            ("od2", b"OpenDKIM \r\n", b"OpenDKIN \r\n", "signature does not verify")]:
        ar = receive(verifier, sent.replace(before, after, 1) if before else sent, user)
        assert len(ar) == 1, ar
        for selector, algorithm in (("r1", "rsa-sha256"), ("e1", "ed25519-sha256")):
            verdict = "dkim=pass" if reason is None else f"dkim=fail ({reason})"
            assert f"{verdict} header.d=signer.test header.s={selector} header.a={algorithm}" in ar[0], (user, ar)


def test_signatures_are_counted_in_metrics(start_ringmaild, certs, keyed):  # noqa: F811
    from test_http import scrape
    srv = start_ringmaild(tls_cert_dirs=[certs], domains_dir=keyed, http=True)
    for i in range(3):
        submit(srv, CASES["plain"])
    assert sum(scrape(srv)["ringmail_dkim_signed_messages_total"].values()) == 3


def test_bounces_are_signed_with_the_hostnames_domain_key(start_ringmaild, keyed):
    """Regression (issue 19, defect 11): our own DSNs went out unsigned, so
    receivers saw dkim=none and DMARC failed for them. A bounce (From
    MAILER-DAEMON@mx.test.example) is signed with the key of the
    hostname's nearest domain that has one (test.example here)."""
    ok("dkim-keygen", "test.example", "--selector", "host1", "--domains-dir", str(keyed))
    (keyed / DOMAIN / "aliases").write_text("broken: | echo no such list >&2; exit 1\n")
    srv = start_ringmaild(domains_dir=keyed)
    with smtplib.SMTP("127.0.0.1", srv.port, timeout=30) as s:
        s.sendmail("bob@example.test", ["broken@example.test"],
                   b"From: bob@example.test\r\nSubject: to a broken list\r\n\r\nhello\r\n")
    bounce = srv.wait_for_mail(DOMAIN, "bob", timeout=30)[0].read_bytes()
    assert b"From: Mail Delivery System <MAILER-DAEMON@mx.test.example>" in bounce
    assert re.search(rb"(?m)^DKIM-Signature:.*\bd=test\.example;", bounce), bounce[:1500]
    body = bounce[bounce.index(b"DKIM-Signature:"):]  # from the signature on (Return-Path/Delivered-To are ours)
    assert verify_all(body, dns_records(keyed, "test.example")) == ["rsa-sha256"]
