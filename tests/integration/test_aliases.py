"""Aliases end to end (docs/aliases.md): local aliases, several targets,
suffixes and drop characters, unknown addresses and loops at RCPT, the
catch-all that forwards a whole domain to an outside inbox (the user
story), an alias file changed while running. Outside addresses are
another ringmaild (peer.test) found through a local DNS server."""
import re
import smtplib
import time

import pytest

from test_auth import add_mailboxes
from test_outbound import dns, peer, port, wait_log  # noqa: F401 (fixtures)
from test_tls import certs  # noqa: F401 (fixture)

ALIASES = """\
# aliases of example.test
pepe: bob
team: alice, bob
first.last: alice
fwd: carol@peer.test
both: alice, dave@peer.test
loop1: loop2
loop2: loop1
""" + "".join(f"d{i}: d{i + 1}\n" for i in range(12))  # 12 levels: deeper than the limit of 10


def subjects(files):
    return sorted(re.search(rb"Subject: ([^\r\n]*)", f.read_bytes()).group(1).decode() for f in files)


def message(subject):
    return f"From: x@src.example\r\nTo: someone\r\nSubject: {subject}\r\n\r\nhello\r\n".encode()


@pytest.fixture
def mx(start_ringmaild, tmp_path, dns, port, peer):  # noqa: F811
    domains = tmp_path / "domains"
    add_mailboxes(domains, "example.test", "alice", "bob")
    out = tmp_path / "piped"
    out.mkdir()
    (domains / "example.test" / "aliases").write_text(
        ALIASES + f"tubo: | cat > {out}/$QUEUE_ID.eml\n"
        f"later: | test -e {out}/go || exit 75; cat > {out}/later.eml\n"
        "broken: | echo no such list >&2; exit 1\n")
    # A domain that exists only as a folder: every address to one inbox.
    (domains / "catch.test").mkdir()
    (domains / "catch.test" / "aliases").write_text("*: inbox@peer.test\n")
    server = start_ringmaild(domains_dir=domains, limits={"delivery_retry_s": 1},
                             outbound={"dns_servers": f"127.0.0.1:{dns}", "port": port})
    server.piped = out
    return server


def rcpt_reply(server, rcpt):
    with smtplib.SMTP("127.0.0.1", server.port, timeout=30) as s:
        s.ehlo("client.example")
        s.mail("x@src.example")
        return s.rcpt(rcpt)


def test_local_aliases_suffixes_and_drop_characters(mx):
    with smtplib.SMTP("127.0.0.1", mx.port, timeout=30) as s:
        s.sendmail("x@src.example", ["pepe@example.test"], message("plain"))
        s.sendmail("x@src.example", ["Team@example.test"], message("two"))
        s.sendmail("x@src.example", ["pepe+news@example.test"], message("suffix"))
        s.sendmail("x@src.example", ["firstlast@example.test"], message("dropped"))
        s.sendmail("x@src.example", ["f.i.r.s.t.l.a.s.t+x@example.test"], message("both"))
    bob = mx.wait_for_mail("example.test", "bob", count=3)
    alice = mx.wait_for_mail("example.test", "alice", count=3)
    assert subjects(bob) == ["plain", "suffix", "two"]
    assert subjects(alice) == ["both", "dropped", "two"]
    # No mailbox was made for an alias name.
    assert not (mx.data_dir / "mail" / "example.test" / "pepe").exists()
    assert "aliases id=" in mx.log_path.read_text()


def test_unknown_addresses_and_loops_are_refused_at_rcpt(mx):
    assert rcpt_reply(mx, "nobody@example.test") == (550, b"5.1.1 No such user")
    assert rcpt_reply(mx, "loop1@example.test")[0] == 451
    assert rcpt_reply(mx, "d0@example.test")[0] == 451
    assert "d0@example.test cannot be resolved: too deep" in mx.log_path.read_text()
    assert rcpt_reply(mx, "postmaster@example.test")[0] == 250  # always taken (RFC 5321 4.5.1)
    assert rcpt_reply(mx, "bob@example.test")[0] == 250
    assert "loop1@example.test cannot be resolved: a loop" in mx.log_path.read_text()


def test_catch_all_forwards_a_domain_and_aliases_reach_outside(mx, peer):  # noqa: F811
    with smtplib.SMTP("127.0.0.1", mx.port, timeout=30) as s:
        s.sendmail("x@src.example", ["anything@catch.test"], message("caught"))
        s.sendmail("x@src.example", ["fwd@example.test"], message("forwarded"))
        s.sendmail("x@src.example", ["both@example.test"], message("local and outside"))
    assert b"Subject: caught" in peer.wait_mail("inbox")[0].read_bytes()
    assert b"Subject: forwarded" in peer.wait_mail("carol")[0].read_bytes()
    assert b"Subject: local and outside" in peer.wait_mail("dave")[0].read_bytes()
    assert b"local and outside" in mx.wait_for_mail("example.test", "alice")[0].read_bytes()


def test_an_aliases_file_changed_while_running(mx):
    assert rcpt_reply(mx, "newalias@example.test")[0] == 550
    aliases = mx.domains_dir / "example.test" / "aliases"
    aliases.write_text(ALIASES + "newalias: bob\n")
    wait_log(mx, "domains: ", timeout=5)
    deadline = time.monotonic() + 15
    while rcpt_reply(mx, "newalias@example.test")[0] != 250:
        assert time.monotonic() < deadline, mx.log_tail()
        time.sleep(0.5)
    # A file that does not parse: mail for the domain waits (451), nothing bounces.
    aliases.write_text(ALIASES + "broken line\n")
    deadline = time.monotonic() + 15
    while rcpt_reply(mx, "bob@example.test")[0] != 451:
        assert time.monotonic() < deadline, mx.log_tail()
        time.sleep(0.5)
    assert "aliases: line 21: no ':'" in mx.log_path.read_text()


def test_pipe_aliases(mx):
    """The command gets the message on stdin; exit 75 is tried again, any
    other failure bounces to the sender."""
    with smtplib.SMTP("127.0.0.1", mx.port, timeout=30) as s:
        s.sendmail("x@src.example", ["tubo@example.test", "bob@example.test"], message("piped"))
        s.sendmail("x@src.example", ["later@example.test"], message("later"))
        s.sendmail("x@example.test", ["broken@example.test"], message("refused"))
    log = wait_log(mx, " to=<tubo@example.test> relay=pipe")
    piped = list(mx.piped.glob("*.eml"))
    assert len(piped) == 1 and b"Subject: piped" in piped[0].read_bytes(), log
    assert b"\r\n" not in piped[0].read_bytes()  # LF line endings, like a Maildir file
    assert b"Subject: piped" in mx.wait_for_mail("example.test", "bob")[0].read_bytes()
    wait_log(mx, " to=<later@example.test> relay=pipe status=deferred (exit 75")
    (mx.piped / "go").touch()
    deadline = time.monotonic() + 20
    while not (mx.piped / "later.eml").exists():
        assert time.monotonic() < deadline, mx.log_tail()
        time.sleep(0.2)
    wait_log(mx, " to=<broken@example.test> relay=pipe status=bounced (exit 1: no such list")
    wait_log(mx, " to=<x@example.test> queued")  # the DSN


def test_forwarding_rewrites_the_sender_with_srs_and_bounces_come_back(mx, peer):  # noqa: F811
    """Mail forwarded to an outside address leaves with an SRS0 sender at
    our domain (its From and body untouched); a bounce to that address is
    taken on port 25 and goes back to the original sender; a forged or
    altered one is refused."""
    body = b"From: orig@peer.test\r\nSubject: forward me\r\n\r\nsame body\r\n"
    with smtplib.SMTP("127.0.0.1", mx.port, timeout=30) as s:
        s.sendmail("orig@peer.test", ["fwd@example.test"], body)
    got = peer.wait_mail("carol")[0].read_bytes()
    srs = re.search(rb"Return-Path: <(SRS0=[^>]+)>", got).group(1).decode()
    assert re.fullmatch(r"SRS0=[A-Za-z0-9+/]{4}=[A-Z2-7]{2}=peer\.test=orig@example\.test", srs), srs
    assert b"From: orig@peer.test" in got and b"same body" in got
    assert (mx.data_dir / "srs.secret").stat().st_mode & 0o077 == 0
    # The receiver bounces: to the SRS address, from <>.
    with smtplib.SMTP("127.0.0.1", mx.port, timeout=30) as s:
        s.sendmail("", [srs], b"Subject: bounce\r\n\r\nundeliverable\r\n")
    assert b"Subject: bounce" in peer.wait_mail("orig")[0].read_bytes()
    assert f"srs id=" in mx.log_path.read_text()
    # Altered hash, or a made-up one: refused at RCPT.
    forged = srs.replace("=peer.test=orig", "=peer.test=someone")
    code, text = rcpt_reply(mx, forged)
    assert (code, text) == (550, b"5.1.1 Not a valid SRS address (bad SRS hash)"), text
    assert rcpt_reply(mx, "SRS0=abcd=AA=peer.test=orig@example.test")[0] == 550


def test_aliases_resolve_tool(mx):
    """`ringmail aliases-resolve` reads the daemon's configuration and files
    and answers what the daemon does."""
    from test_tools import tool
    cfg = str(mx.config_path)
    r = tool("aliases-resolve", "Team+x@example.test", "--config", cfg)
    assert r.returncode == 0 and r.stdout == "mailbox  alice@example.test\nmailbox  bob@example.test\n", r
    r = tool("aliases-resolve", "both@example.test", "--config", cfg)
    assert r.stdout == "mailbox  alice@example.test\nforward  dave@peer.test\n", r
    r = tool("aliases-resolve", "tubo@example.test", "--config", cfg)
    assert r.returncode == 0 and r.stdout.startswith("pipe     cat > "), r
    assert r.stdout.rstrip().endswith("(alias tubo@example.test)"), r
    r = tool("aliases-resolve", "anyone@catch.test", "--config", cfg)
    assert r.stdout == "forward  inbox@peer.test\n", r
    r = tool("aliases-resolve", "nobody@example.test", "--config", cfg)
    assert r.returncode == 1 and r.stderr == "ringmail: nobody@example.test: no such user (550 5.1.1)\n", r
    r = tool("aliases-resolve", "loop1@example.test", "--config", cfg)
    assert r.returncode == 1 and "the aliases loop" in r.stderr, r
    r = tool("aliases-resolve", "not-an-address", "--config", cfg)
    assert r.returncode == 64 and "not an address" in r.stderr, r

def test_aliases_reread_without_sighup_when_certificates_are_configured(start_ringmaild, tmp_path,
                                                                         certs):  # noqa: F811
    """Regression (issue 19, defect 7): the 2-second poll of users and
    aliases tested errno after the certificate check had overwritten it, so
    with certificates configured an edited aliases file was never read
    again without SIGHUP."""
    domains = tmp_path / "domains"
    add_mailboxes(domains, "example.test", "alice", "bob")
    (domains / "example.test" / "aliases").write_text("pepe: bob\n")
    server = start_ringmaild(domains_dir=domains, tls_cert_dirs=[certs])
    assert rcpt_reply(server, "newalias@example.test")[0] == 550
    (domains / "example.test" / "aliases").write_text("pepe: bob\nnewalias: bob\n")
    deadline = time.monotonic() + 6  # the poll runs every 2 s
    while rcpt_reply(server, "newalias@example.test")[0] != 250:
        assert time.monotonic() < deadline, server.log_tail()
        time.sleep(0.3)
