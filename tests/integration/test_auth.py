"""SMTP AUTH (RFC 4954) against real clients: swaks and smtplib with PLAIN
and LOGIN over STARTTLS and implicit TLS, the users files (ringmail's, made
by `ringmail user-add`, and chasquid's as chasquid-util wrote it), failures
and their slow-down and cut-off, the sender policy, and the open-relay
matrix on port 25."""
import base64
import os
import shutil
import re
import smtplib
import socket
import subprocess
import time
from pathlib import Path

import pytest

from test_tls import certs, client_context, make_cert  # noqa: F401 (fixture)
from test_tools import RINGMAIL, tool

CHASQUID_USERS = Path(__file__).resolve().parent.parent / "data" / "chasquid-users"
PASSWORD = "correct horse battery staple"


def add_user(domains_dir, address, password=PASSWORD):
    r = subprocess.run([RINGMAIL, "user-add", address, "--password-stdin",
                        "--domains-dir", str(domains_dir)],
                       input=password + "\n", capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return r


def add_mailboxes(domains_dir, domain, *names):
    """Users that receive mail but may not log in ("name !" lines): a
    domain with a users file takes mail only for its users and aliases."""
    users = Path(domains_dir) / domain / "users"
    users.parent.mkdir(parents=True, exist_ok=True)
    lines = users.read_text().splitlines() if users.exists() else []
    lines += [f"{n} !" for n in names]
    users.write_text("\n".join(sorted(lines)) + "\n")


@pytest.fixture
def auth_server(start_ringmaild, certs, tmp_path):  # noqa: F811
    domains = tmp_path / "domains"
    add_user(domains, "alice@example.test")
    add_mailboxes(domains, "example.test", "bob", "carol", "dave", "frank", "lists")
    return start_ringmaild(tls_cert_dirs=[certs], domains_dir=domains,
                           auth={"failures_max": 3, "failure_delay_ms": 0})


def swaks(server, port, *args):
    r = subprocess.run(["swaks", "--server", f"127.0.0.1:{port}", *args],
                       capture_output=True, timeout=60)
    return r.returncode, r.stdout.decode("utf-8", "replace")


@pytest.mark.parametrize("mech", ["PLAIN", "LOGIN"])
def test_swaks_submission_relays_after_auth(auth_server, mech):
    rc, out = swaks(auth_server, auth_server.sub_port, "--tls", "--auth", mech,
                    "--auth-user", "Alice@Example.TEST", "--auth-password", PASSWORD,
                    "--from", "alice@example.test", "--to", "friend@elsewhere.example",
                    "--h-Subject", "relayed")
    assert rc == 0, out
    assert "235 2.7.0 Authentication successful" in out, out
    assert "250 2.0.0 Ok: queued as" in out, out
    # Outbound delivery comes later: the message waits in the spool.
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        listing = tool("spool-list", "--data-dir", str(auth_server.data_dir)).stdout
        if "friend@elsewhere.example" in listing:
            break
        time.sleep(0.2)
    assert "<alice@example.test> -> <friend@elsewhere.example>" in listing, listing
    log = auth_server.log_path.read_text()
    assert re.search(r"auth ok client=\S+ user=alice@example.test", log), log
    assert "auth=alice@example.test" in log


@pytest.mark.parametrize("mech", ["PLAIN", "LOGIN"])
def test_swaks_implicit_tls_auth(auth_server, mech):
    rc, out = swaks(auth_server, auth_server.smtps_port, "--tlsc", "--auth", mech,
                    "--auth-user", "alice@example.test", "--auth-password", PASSWORD,
                    "--from", "alice@example.test", "--to", "frank@example.test")
    assert rc == 0, out
    assert "235 2.7.0 Authentication successful" in out, out
    auth_server.wait_for_mail("example.test", "frank")


def test_overlong_and_repeated_auth(auth_server):
    with smtplib.SMTP("127.0.0.1", auth_server.sub_port, timeout=30) as s:
        s.starttls(context=client_context())
        s.ehlo("client.example")
        code, msg = s.docmd("AUTH PLAIN " + "A" * 5000)
        assert (code, msg) == (500, b"5.5.2 Line too long")
        s.login("alice@example.test", PASSWORD)
        assert s.docmd(plain("alice@example.test", PASSWORD)) == (503, b"5.5.1 Already authenticated")


def test_smtplib_implicit_tls_login_and_local_delivery(auth_server):
    with smtplib.SMTP_SSL("127.0.0.1", auth_server.smtps_port, timeout=30,
                          context=client_context()) as s:
        s.login("alice@example.test", PASSWORD)
        s.sendmail("alice@example.test", ["bob@example.test"], b"Subject: hi\r\n\r\nhello\r\n")
    data = auth_server.wait_for_mail("example.test", "bob")[0].read_bytes().decode()
    assert "with ESMTPSA (TLSv1.3:" in data, data


def test_auth_needs_tls(auth_server):
    c = socket.create_connection(("127.0.0.1", auth_server.port), timeout=10)
    f = c.makefile("rb")
    f.readline()
    c.sendall(b"EHLO client.example\r\n")
    lines = []
    while True:
        line = f.readline()
        lines.append(line)
        if line.startswith(b"250 "):
            break
    assert not any(b"AUTH" in x for x in lines), lines  # not offered in clear
    c.sendall(b"AUTH PLAIN AGFsaWNlQGV4YW1wbGUudGVzdABzZWNyZXQ=\r\n")
    assert f.readline().startswith(b"538 5.7.11")
    c.close()


def test_submission_requires_auth_and_the_own_sender(auth_server):
    with smtplib.SMTP("127.0.0.1", auth_server.sub_port, timeout=30) as s:
        s.starttls(context=client_context())
        s.ehlo("client.example")
        assert s.docmd("MAIL FROM:<alice@example.test>")[0] == 530
        s.login("alice@example.test", PASSWORD)
        code, msg = s.docmd("MAIL FROM:<bob@example.test>")
        assert (code, msg) == (550, b"5.7.1 Sender address not allowed for alice@example.test")
        assert s.docmd("MAIL FROM:<alice+lists@example.test>")[0] == 250


def plain(user, password):
    return "AUTH PLAIN " + base64.b64encode(f"\0{user}\0{password}".encode()).decode()


def test_wrong_passwords_then_cut_off(auth_server):
    with smtplib.SMTP("127.0.0.1", auth_server.sub_port, timeout=30) as s:
        s.starttls(context=client_context())
        s.ehlo("client.example")
        for _ in range(3):  # failures_max = 3
            assert s.docmd(plain("alice@example.test", "wrong")) == (
                535, b"5.7.8 Authentication credentials invalid")
        code, msg = s.docmd(plain("alice@example.test", "wrong again"))
        assert (code, msg) == (421, b"4.7.0 Too many failed authentications, closing connection")
        with pytest.raises(smtplib.SMTPServerDisconnected):
            s.docmd("NOOP")
    log = auth_server.log_path.read_text()
    assert re.search(r"auth failed client=\S+ user=alice@example.test \(", log), log
    assert "(3 from this address in 10 minutes)" in log
    assert re.search(r"auth refused client=\S+ user=alice@example.test: locked out", log), log
    assert ": locked out (3 failures from this address in 10 minutes)" in log


def _auth_login(s, user, password):
    code, _ = s.docmd("AUTH LOGIN")
    assert code == 334
    code, _ = s.docmd(base64.b64encode(user.encode()).decode())
    assert code == 334
    return s.docmd(base64.b64encode(password.encode()).decode())


@pytest.mark.parametrize("mech", ["PLAIN", "LOGIN"])
def test_locked_out_address_is_refused_even_with_the_right_password(auth_server, mech):
    """Regression (issue 19, defect 2): once an address had used up its
    failures, a wrong password got 421 but the right one still got 235, a
    fast password oracle; and each shard counted alone. Failures spread
    over connections (so over both shards) lock the address out; then
    every AUTH gets the same 421 whatever the password, without a hash."""
    def attempt(password):
        with smtplib.SMTP("127.0.0.1", auth_server.sub_port, timeout=30) as s:
            s.starttls(context=client_context())
            s.ehlo("client.example")
            if mech == "PLAIN":
                return s.docmd(plain("alice@example.test", password))
            return _auth_login(s, "alice@example.test", password)

    for _ in range(3):  # failures_max = 3, one connection each
        assert attempt("wrong") == (535, b"5.7.8 Authentication credentials invalid")
    locked = (421, b"4.7.0 Too many failed authentications, closing connection")
    for i in range(6):  # several connections: both shards see the lock-out
        assert attempt(PASSWORD if i % 2 == 0 else "wrong") == locked
    log = auth_server.log_path.read_text()
    assert "auth ok" not in log, log
    assert log.count("auth failed client=") == 3, log  # no password was checked after the lock-out
    assert log.count(": locked out (3 failures") == 6, log


def test_failed_auth_is_slowed_down(start_ringmaild, certs, tmp_path):  # noqa: F811
    domains = tmp_path / "domains"
    add_user(domains, "alice@example.test")
    server = start_ringmaild(tls_cert_dirs=[certs], domains_dir=domains,
                             auth={"failure_delay_ms": 1000}, threads=1)
    with smtplib.SMTP("127.0.0.1", server.sub_port, timeout=30) as s:
        s.starttls(context=client_context())
        s.ehlo("client.example")
        t0 = time.monotonic()
        with pytest.raises(smtplib.SMTPAuthenticationError):
            s.login("alice@example.test", "wrong")
        assert time.monotonic() - t0 >= 0.9
        s.login("alice@example.test", PASSWORD)  # the right one still works


def test_unknown_user_and_bad_base64(auth_server):
    with smtplib.SMTP("127.0.0.1", auth_server.sub_port, timeout=30) as s:
        s.starttls(context=client_context())
        s.ehlo("client.example")
        with pytest.raises(smtplib.SMTPAuthenticationError):
            s.login("nobody@example.test", PASSWORD)
        assert s.docmd("AUTH PLAIN !!notbase64")[0] == 501
        assert s.docmd("AUTH CRAM-MD5")[0] == 504
        assert s.docmd("AUTH LOGIN")[0] == 334
        assert s.docmd("*")[0] == 501
        assert s.docmd("NOOP")[0] == 250


def test_chasquid_users_file_works_as_is(start_ringmaild, certs, tmp_path):  # noqa: F811
    domains = tmp_path / "domains"
    (domains / "example.test").mkdir(parents=True)
    shutil.copy(CHASQUID_USERS, domains / "example.test" / "users")
    server = start_ringmaild(tls_cert_dirs=[certs], domains_dir=domains)
    with smtplib.SMTP_SSL("127.0.0.1", server.smtps_port, timeout=30,
                          context=client_context()) as s:
        s.login("alice@example.test", "secret")  # set by chasquid-util user-add
    with smtplib.SMTP_SSL("127.0.0.1", server.smtps_port, timeout=30,
                          context=client_context()) as s:
        s.login("Bob@example.test", 'p w"\\')


def test_user_added_while_running(auth_server):
    add_user(auth_server.domains_dir, "carol@example.test", "carol's password")
    time.sleep(1.1)  # the users file is looked at again at most once a second
    with smtplib.SMTP_SSL("127.0.0.1", auth_server.smtps_port, timeout=30,
                          context=client_context()) as s:
        s.login("carol@example.test", "carol's password")
    assert tool("user-remove", "carol@example.test", "--domains-dir",
                str(auth_server.domains_dir)).returncode == 0
    time.sleep(1.1)
    with smtplib.SMTP_SSL("127.0.0.1", auth_server.smtps_port, timeout=30,
                          context=client_context()) as s:
        with pytest.raises(smtplib.SMTPAuthenticationError):
            s.login("carol@example.test", "carol's password")


def rcpt_reply_without_auth(server, sender, rcpt):
    """The reply to RCPT TO:<rcpt> on port 25 after MAIL FROM:sender (an
    address in <>), on a connection of its own."""
    c = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    f = c.makefile("rb")
    f.readline()
    c.sendall(b"EHLO client.example\r\n")
    while not f.readline().startswith(b"250 "):
        pass
    c.sendall(f"MAIL FROM:{sender}\r\n".encode())
    assert f.readline().startswith(b"250")
    c.sendall(f"RCPT TO:<{rcpt}>\r\n".encode("utf-8"))
    reply = f.readline()
    c.close()
    return reply


@pytest.mark.parametrize("sender,rcpt", [
    ("a@src.example", "x@elsewhere.example"),
    ("alice@example.test", "x@elsewhere.example"),        # a local sender is not enough
    ("<>", "x@elsewhere.example"),
    ("a@src.example", "x%elsewhere.example@example.test"),   # percent hack
    ("a@src.example", '"x@elsewhere.example"@example.test'),  # quoted local part
    ("a@src.example", "x@elsewhere.example@example.test"),
    ("a@src.example", "x@[127.0.0.1]"),                   # address literal
    ("a@src.example", "x@example.test.elsewhere.example"),
    ("a@src.example", "x!elsewhere.example@example.test"),  # bang path
])
def test_no_open_relay_on_port_25(auth_server, sender, rcpt):
    reply = rcpt_reply_without_auth(auth_server, sender if sender == "<>" else f"<{sender}>", rcpt)
    assert not reply.startswith(b"2"), (rcpt, reply)


def test_source_route_is_delivered_locally_not_relayed(auth_server):
    """RFC 5321 4.1.1.3: a source route is ignored; the mail goes to the
    final address, here a local one, never to the route's hosts."""
    with smtplib.SMTP("127.0.0.1", auth_server.port, timeout=30) as s:
        s.ehlo("client.example")
        assert s.docmd("MAIL FROM:<a@src.example>")[0] == 250
        code, msg = s.docmd("RCPT TO:<@elsewhere.example:dave@example.test>")
        assert code == 250, msg
        assert s.data(b"Subject: routed\r\n\r\nhi\r\n")[0] == 250
    auth_server.wait_for_mail("example.test", "dave")
    assert "outbound" not in auth_server.log_path.read_text()


def test_user_tools(tmp_path):
    domains = tmp_path / "domains"
    add_user(domains, "Alice@Example.TEST")
    text = (domains / "example.test" / "users").read_text()
    assert "alice $scrypt$ln=14,r=8,p=1$" in text
    assert (domains / "example.test" / "users").stat().st_mode & 0o077 == 0
    r = subprocess.run([RINGMAIL, "authenticate", "alice@example.test", "--password-stdin",
                        "--domains-dir", str(domains)], input=PASSWORD + "\n",
                       capture_output=True, text=True, timeout=60)
    assert (r.returncode, r.stdout) == (0, "ok: alice@example.test\n")
    r = subprocess.run([RINGMAIL, "authenticate", "alice@example.test", "--password-stdin",
                        "--domains-dir", str(domains)], input="wrong\n",
                       capture_output=True, text=True, timeout=60)
    assert (r.returncode, r.stdout) == (1, "failed: alice@example.test: wrong password\n")
    assert tool("user-list", "--domains-dir", str(domains)).stdout == "alice@example.test\n"
    r = tool("check-users", "--domains-dir", str(domains))
    assert r.returncode == 0 and "1 user" in r.stdout, r.stdout
    (domains / "bad.test").mkdir()
    (domains / "bad.test" / "users").write_text("Bob nothing\n")
    r = tool("check-users", "--domains-dir", str(domains))
    assert r.returncode == 1
    assert "bad.test/users: line 1: 'Bob' is not a user name" in r.stderr, r.stderr
    r = tool("user-add", "not-an-address", "--domains-dir", str(domains))
    assert r.returncode == 1 and "is not user@domain" in r.stderr
    r = subprocess.run([RINGMAIL, "user-add", "x@example.test", "--domains-dir", str(domains)],
                       stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=30)
    assert r.returncode == 1 and "use --password-stdin" in r.stderr


# The open-relay battery (issue 19): 20 recipient forms that must never be
# relayed for a client without AUTH on port 25, each from 3 senders (null,
# outside, one of our own addresses): 60 forms. Local-looking forms whose
# mailbox does not exist are refused as unknown; none may get a 2xx.
RELAY_RCPTS = [
    "x@elsewhere.example",
    "x@ELSEWHERE.EXAMPLE",
    "x@elsewhere.example.",                   # trailing dot
    "x%elsewhere.example@example.test",       # percent hack
    "x%elsewhere.example",                    # percent hack, no domain
    '"x@elsewhere.example"@example.test',     # quoted local part
    "x@elsewhere.example@example.test",       # two @
    "x!elsewhere.example@example.test",       # bang path
    "elsewhere.example!x",                    # bang path, no domain
    "x@[127.0.0.1]",                          # address literals
    "x@[192.0.2.1]",
    "x@[IPv6:::1]",
    "x@example.test.elsewhere.example",       # our domain as a prefix
    "@example.test:x@elsewhere.example",      # source route ending outside
    "@elsewhere.example:x@elsewhere.example",
    "x@sub.example.test",                     # a subdomain is not ours
    "x@xn--bcher-kva.example",                # IDN, ACE form
    "x@b\u00fccher.example",                  # IDN, UTF-8 without SMTPUTF8
    '"x"@elsewhere.example',
    "x@localhost",
]
RELAY_SENDERS = ["<>", "<a@src.example>", "<alice@example.test>"]


@pytest.mark.parametrize("sender", RELAY_SENDERS)
def test_open_relay_battery(auth_server, sender):
    relayed = []
    for rcpt in RELAY_RCPTS:  # a connection each: refusals count as errors
        reply = rcpt_reply_without_auth(auth_server, sender, rcpt)
        if reply[:1] not in (b"4", b"5"):
            relayed.append((rcpt, reply))
    assert relayed == [], relayed
    assert "auth ok" not in auth_server.log_path.read_text()


def test_user_add_without_flags_writes_where_the_daemon_reads(start_ringmaild, certs, tmp_path):  # noqa: F811
    """Regression (issue 20): `ringmail user-add` with no flag wrote under
    /etc/ringmail/domains whatever the daemon read, and the login then
    failed with 535. The tools now take domains_dir from the daemon's
    configuration ($RINGMAIL_CONFIG here, as --config would)."""
    d = start_ringmaild(tls_cert_dirs=[certs], domains_dir=tmp_path / "their-domains")
    r = subprocess.run([RINGMAIL, "user-add", "zoe@example.test", "--password-stdin"],
                       input=PASSWORD + "\n", capture_output=True, text=True, timeout=60,
                       env={**os.environ, "RINGMAIL_CONFIG": str(d.config_path)})
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "their-domains" / "example.test" / "users").exists()
    deadline = time.time() + 10
    while True:  # the daemon reads a changed users file within a second
        with smtplib.SMTP(d.host, d.sub_port, timeout=10) as s:
            s.starttls(context=client_context())
            s.ehlo("tools.test.example")
            code, msg = s.docmd(plain("zoe@example.test", PASSWORD))
        if code == 235 or time.time() > deadline:
            break
        time.sleep(0.3)
    assert code == 235, msg


def test_tools_use_the_dev_configuration_in_a_checkout(tmp_path):
    """With no configuration file, a command run in a ringmail checkout
    works on the embedded dev configuration (./var, as `tools/dev run`),
    and says so; elsewhere it names the missing file."""
    checkout = tmp_path / "checkout"
    (checkout / "tools").mkdir(parents=True)
    (checkout / "meson.build").write_text("project('ringmail', 'cpp')\n")
    (checkout / "tools" / "dev").write_text("#!/bin/sh\n")
    (checkout / "tools" / "dev").chmod(0o755)
    env = {**os.environ, "RINGMAIL_CONFIG": str(tmp_path / "absent.toml")}
    r = subprocess.run([RINGMAIL, "user-add", "zoe@example.test", "--password-stdin"],
                       input=PASSWORD + "\n", capture_output=True, text=True, timeout=60,
                       cwd=checkout, env=env)
    assert r.returncode == 0, r.stderr
    assert "using the embedded dev configuration" in r.stderr, r.stderr
    assert "\nzoe $scrypt$" in (checkout / "var" / "domains" / "example.test" / "users").read_text()
    r = subprocess.run([RINGMAIL, "config-show"], capture_output=True, text=True, timeout=30,
                       cwd=checkout, env=env)
    assert r.returncode == 0, r.stderr
    assert '\ndomains_dir = "./var/domains"\n' in r.stdout, r.stdout
    # Not a checkout: one line naming the file that is missing.
    r = subprocess.run([RINGMAIL, "user-list"], capture_output=True, text=True, timeout=30,
                       cwd=tmp_path, env=env)
    assert r.returncode == 78 and r.stdout == ""
    assert r.stderr == (f"ringmail: no configuration: {tmp_path / 'absent.toml'} does not exist "
                        "(give --config FILE or set RINGMAIL_CONFIG, or --domains-dir DIR)\n")
    # --config may follow the command.
    cfg = tmp_path / "r.toml"
    cfg.write_text(f'hostname = "mx.example.test"\ndata_dir = "{tmp_path}/d"\n'
                   f'domains_dir = "{checkout}/var/domains"\nlocal_domains = ["example.test"]\n'
                   '[[listener]]\naddress = "127.0.0.1:2525"\n')
    r = subprocess.run([RINGMAIL, "user-list", "--config", str(cfg)], capture_output=True,
                       text=True, timeout=30, cwd=tmp_path, env=env)
    assert r.returncode == 0, r.stderr
    assert "zoe@example.test" in r.stdout


def test_auth_cache_skips_the_hash_and_follows_the_users_file(start_ringmaild, certs, tmp_path):  # noqa: F811
    """[auth] cache_ttl_s: a repeated login with the same password is taken
    without the scrypt hash (counted in /metrics, one shard so that both
    logins meet the same cache); a wrong password is never kept; a new
    password in the users file makes the old one fail within 2 s."""
    from test_http import scrape
    domains = tmp_path / "domains"
    add_user(domains, "alice@example.test")
    add_user(domains, "erin@example.test")  # the same password as alice
    srv = start_ringmaild(tls_cert_dirs=[certs], domains_dir=domains, threads=1, http=True,
                          auth={"failures_max": 100, "failure_delay_ms": 0})

    def login(user, password):  # one AUTH PLAIN (smtplib's login() tries LOGIN after it)
        with smtplib.SMTP_SSL("127.0.0.1", srv.smtps_port, timeout=30, context=client_context()) as s:
            s.ehlo()
            s.user, s.password = user, password
            s.auth("PLAIN", s.auth_plain)

    def counts():
        m = scrape(srv)
        return (sum(m["ringmail_auth_scrypt_checks_total"].values()),
                sum(m["ringmail_auth_cache_hits_total"].values()))

    login("alice@example.test", PASSWORD)
    assert counts() == (1, 0)
    login("alice@example.test", PASSWORD)
    login("alice@example.test", PASSWORD)
    assert counts() == (1, 2)
    for _ in range(2):
        with pytest.raises(smtplib.SMTPAuthenticationError):
            login("alice@example.test", "wrong")
    assert counts() == (3, 2)
    login("erin@example.test", PASSWORD)  # her own check
    assert counts() == (4, 2)
    add_user(domains, "alice@example.test", "a new password")
    time.sleep(2)
    with pytest.raises(smtplib.SMTPAuthenticationError):
        login("alice@example.test", PASSWORD)
    login("alice@example.test", "a new password")
