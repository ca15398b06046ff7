"""SMTP dialogs against ringmaild: every client-drivable row of
docs/smtp-replies.md, Maildir delivery, swaks and smtplib sessions.

Each test gets a fresh daemon (fixture `server`, limits in conftest.DEFAULT_LIMITS:
message_bytes_max=100000, rcpt_count_max=5, errors_max=5,
received_headers_max=50); tests needing other limits start their own.
"""

import os
import re
import signal
import smtplib
import socket
import subprocess
import time

import pytest

from mailcheck import (CRLF, LITERAL_V4, LITERAL_V6, check_delivery, crlf,
                       dot_stuff, parse_delivery, to_lf)

HELO_NAME = "client.test.example"
SENDER = "alice@src.example"
R_354 = "354 End data with <CR><LF>.<CR><LF>"
QUEUED = r"250 2\.0\.0 Ok: queued as (\S+)"
BARE = "554 5.6.0 Bare CR or LF line ending not allowed"

SIMPLE = crlf("From: alice@src.example\nTo: bob@example.test\nSubject: hello\n\nHello Bob.\n")


def ehlo_lines(host, size=100000):
    return [f"250-{host}", "250-PIPELINING", f"250-SIZE {size}", "250-8BITMIME",
            "250-SMTPUTF8", "250-ENHANCEDSTATUSCODES", "250 CHUNKING"]


def session(server, v6=False, port=None, name=HELO_NAME):
    c = server.connect(port=port, v6=v6)
    c.greeting(server.hostname)
    r = c.cmd("EHLO " + name)
    if port == server.sub_port:  # the doc does not fix the submission EHLO list
        assert r.code == 250 and r.lines[0] in (f"250-{server.hostname}", f"250 {server.hostname}"), (
            "EHLO reply %r\n%s" % (r.lines, c.transcript()))
        return c
    assert r.lines == ehlo_lines(server.hostname, server.limits["message_bytes_max"]), (
        "EHLO reply %r\n%s" % (r.lines, c.transcript()))
    return c


def send_data(c, message):
    """DATA phase of an open transaction; returns the queue id."""
    c.expect("DATA", R_354)
    c.send(dot_stuff(message))
    return c.check_re(c.read_reply(), QUEUED, "end of DATA").group(1)


def transaction(c, sender, rcpts, message, mail_params=""):
    c.expect(f"MAIL FROM:<{sender}>{mail_params}", "250 2.1.0 Ok")
    for r in rcpts:
        c.expect(f"RCPT TO:<{r}>", "250 2.1.5 Ok")
    return send_data(c, message)


def split(addr):
    user, domain = addr.rsplit("@", 1)
    return domain, user


def wait_one(server, rcpt, count=1, **kw):
    domain, user = split(rcpt)
    return server.wait_for_mail(domain, user.lower(), count=count, **kw)


def assert_only_delivered(server, expected_paths, what):
    """After the marker mails arrived: nothing but `expected_paths` is delivered."""
    time.sleep(0.5)
    got = sorted(str(p.relative_to(server.data_dir)) for p in server.all_mail_files())
    want = sorted(str(p.relative_to(server.data_dir)) for p in expected_paths)
    assert got == want, f"{what}: delivered files {got}, expected only {want}"


def send_marker(server, rcpt="marker@example.test"):
    c = session(server)
    qid = transaction(c, "marker@src.example", [rcpt], crlf("Subject: marker\n\nmarker\n"))
    c.expect("QUIT", "221 2.0.0 Bye")
    return wait_one(server, rcpt)


# ====================================================================
# greeting, EHLO, HELO and the simple verbs
# ====================================================================

def test_greeting(server):
    c = server.connect()
    c.check(c.read_reply(), f"220 {server.hostname} ESMTP ringmail", "greeting")


def test_ehlo_keywords(server):
    c = server.connect(read_greeting=True)
    r = c.cmd("EHLO " + HELO_NAME)
    assert r.lines == ehlo_lines(server.hostname, 100000), (
        f"EHLO reply {r.lines}, expected {ehlo_lines(server.hostname)}\n{c.transcript()}")


def test_ehlo_size_follows_message_bytes_max(start_ringmaild):
    server = start_ringmaild(limits={"message_bytes_max": 54321})
    c = server.connect(read_greeting=True)
    r = c.cmd("EHLO " + HELO_NAME)
    assert r.lines == ehlo_lines(server.hostname, 54321), f"{r.lines}\n{c.transcript()}"


def test_helo(server):
    c = server.connect(read_greeting=True)
    c.expect("HELO " + HELO_NAME, f"250 {server.hostname}")
    qid = transaction(c, SENDER, ["helo@example.test"], SIMPLE)
    [f] = wait_one(server, "helo@example.test")
    m, body = parse_delivery(f.read_bytes(), str(f))
    assert m.group("helo") == HELO_NAME.encode() and m.group("id") == qid.encode()
    assert body == to_lf(SIMPLE)


@pytest.mark.parametrize("line", ["EHLO", "HELO", "EHLO ", "HELO  "])
def test_ehlo_helo_without_name(server, line):
    c = server.connect(read_greeting=True)
    c.expect(line, f"501 5.5.4 Syntax: {line.split()[0]} hostname")
    # not greeted: MAIL must still be refused
    c.expect(f"MAIL FROM:<{SENDER}>", "503 5.5.1 Send HELO/EHLO first")


@pytest.mark.parametrize("line", [b"EHLO foo\x01bar", b"HELO foo\x1bbar", b"EHLO \x07bell"],
                         ids=["ehlo-ctrl-a", "helo-esc", "ehlo-bel"])
def test_ehlo_helo_control_characters(server, line):
    c = server.connect(read_greeting=True)
    c.check(c.cmd(line), f"501 5.5.4 Syntax: {line[:4].decode()} hostname")
    c.expect(f"MAIL FROM:<{SENDER}>", "503 5.5.1 Send HELO/EHLO first")


@pytest.mark.parametrize("reset", ["EHLO again.test.example", "HELO again.test.example", "RSET"])
def test_transaction_reset(server, reset):
    c = session(server)
    c.expect(f"MAIL FROM:<{SENDER}>", "250 2.1.0 Ok")
    c.expect("RCPT TO:<reset@example.test>", "250 2.1.5 Ok")
    r = c.cmd(reset)
    if reset.startswith("EHLO"):
        assert r.lines == ehlo_lines(server.hostname), f"{r.lines}\n{c.transcript()}"
    elif reset.startswith("HELO"):
        c.check(r, f"250 {server.hostname}")
    else:
        c.check(r, "250 2.0.0 Ok")
    # the transaction is gone: no sender any more ...
    c.expect("RCPT TO:<reset@example.test>", "503 5.5.1 Need MAIL first")
    # ... and a new MAIL is not "Sender already given"
    qid = transaction(c, SENDER, ["reset2@example.test"], SIMPLE)
    wait_one(server, "reset2@example.test")
    assert server.mail_files("example.test", "reset") == []


def test_noop(server):
    c = session(server)
    c.expect("NOOP", "250 2.0.0 Ok")
    c.expect("NOOP with an argument", "250 2.0.0 Ok")


def test_rset_outside_transaction(server):
    c = server.connect(read_greeting=True)
    c.expect("RSET", "250 2.0.0 Ok")
    c.cmd("EHLO " + HELO_NAME)
    c.expect("RSET", "250 2.0.0 Ok")


def test_help(server):
    c = session(server)
    c.expect("HELP", "214 2.0.0 See RFC 5321")


def test_vrfy(server):
    c = session(server)
    c.expect("VRFY bob@example.test",
             "252 2.0.0 Cannot VRFY user, but will accept message and attempt delivery")


def test_expn(server):
    c = session(server)
    c.expect("EXPN staff", "502 5.5.1 EXPN not supported")


def test_quit(server):
    c = session(server)
    c.expect("QUIT", "221 2.0.0 Bye")
    c.expect_closed()


def test_quit_before_ehlo(server):
    c = server.connect(read_greeting=True)
    c.expect("QUIT", "221 2.0.0 Bye")
    c.expect_closed()


@pytest.mark.parametrize("line", ["AUTH PLAIN AGFsaWNlAHNlY3JldA==", "AUTH LOGIN"])
def test_auth_not_implemented(server, line):
    c = session(server)
    c.expect(line, "502 5.5.1 Command not implemented")
    c.expect("NOOP", "250 2.0.0 Ok")


def test_starttls_without_certificate(server):
    c = session(server)
    c.expect("STARTTLS", "454 4.7.0 TLS not available")
    c.expect("NOOP", "250 2.0.0 Ok")


def test_unknown_verb(server):
    c = session(server)
    c.expect("XYZZY plugh", "500 5.5.2 Command not recognized")
    c.expect("NOOP", "250 2.0.0 Ok")


def test_commands_case_insensitive(server):
    c = server.connect(read_greeting=True)
    r = c.cmd("ehlo " + HELO_NAME)
    assert r.lines == ehlo_lines(server.hostname), r.lines
    c.expect(f"mail from:<{SENDER}>", "250 2.1.0 Ok")
    c.expect("Rcpt To:<case@example.test>", "250 2.1.5 Ok")
    c.expect("data", R_354)
    c.send(dot_stuff(SIMPLE))
    c.check_re(c.read_reply(), QUEUED)
    wait_one(server, "case@example.test")


def test_command_line_too_long(server):
    c = session(server)
    # 2044 octets + CRLF = 2046: under the limit however it is counted
    c.expect("NOOP " + "x" * 2039, "250 2.0.0 Ok")
    # far over 2048
    c.expect("NOOP " + "x" * 3000, "500 5.5.2 Line too long")
    c.expect("NOOP", "250 2.0.0 Ok")
    qid = transaction(c, SENDER, ["long@example.test"], SIMPLE)
    wait_one(server, "long@example.test")


# ====================================================================
# happy path and Maildir content
# ====================================================================

DOTTY = crlf(
    "From: Alice <alice@src.example>\n"
    "To: bob@example.test\n"
    "Subject: dots and 8-bit: caf\u00e9\n"
    "Message-ID: <dots.1@src.example>\n"
    "\n"
    ".leading dot\n"
    "..two leading dots\n"
    ".\n"
    "..\n"
    " .space then dot\n"
    "trailing spaces   \n"
    "\n"
    "tab\there\n"
    "\u00fcnic\u00f6de line\n"
    ".\n"
    "last line\n")


def test_data_happy_path_maildir_content(server):
    t0 = time.time()
    c = session(server)
    qid = transaction(c, SENDER, ["Bob@example.test"], DOTTY, " BODY=8BITMIME")
    c.expect("QUIT", "221 2.0.0 Bye")
    [f] = wait_one(server, "bob@example.test")
    md = server.maildir("example.test", "bob")
    for sub in ("tmp", "new", "cur"):
        assert (md / sub).is_dir(), f"{md / sub} missing"
    check_delivery(f, sender=SENDER, rcpt="Bob@example.test", helo=HELO_NAME,
                   hostname=server.hostname, literal=LITERAL_V4, qid=qid,
                   message=DOTTY, t0=t0, t1=time.time())


def test_data_unstuffs_single_leading_dot(server):
    # ".foo" sent without stuffing is unstuffed by the receiver to "foo"
    c = session(server)
    c.expect(f"MAIL FROM:<{SENDER}>", "250 2.1.0 Ok")
    c.expect("RCPT TO:<unstuff@example.test>", "250 2.1.5 Ok")
    c.expect("DATA", R_354)
    c.send(b"Subject: u\r\n\r\n.foo\r\n..bar\r\n.\r\n")
    qid = c.check_re(c.read_reply(), QUEUED).group(1)
    [f] = wait_one(server, "unstuff@example.test")
    check_delivery(f, sender=SENDER, rcpt="unstuff@example.test", helo=HELO_NAME,
                   hostname=server.hostname, qid=qid, message=b"Subject: u\r\n\r\nfoo\r\n.bar\r\n")


def test_null_sender(server):
    c = session(server)
    c.expect("MAIL FROM:<>", "250 2.1.0 Ok")
    c.expect("RCPT TO:<bounce@example.test>", "250 2.1.5 Ok")
    qid = send_data(c, SIMPLE)
    [f] = wait_one(server, "bounce@example.test")
    check_delivery(f, sender="", rcpt="bounce@example.test", helo=HELO_NAME,
                   hostname=server.hostname, qid=qid, message=SIMPLE)


def test_two_recipients_two_domains(server):
    t0 = time.time()
    c = session(server)
    rcpts = ["carol@example.test", "dave@other.test"]
    qid = transaction(c, SENDER, rcpts, SIMPLE)
    files = []
    for r in rcpts:
        [f] = wait_one(server, r)
        _, _, fm = check_delivery(f, sender=SENDER, rcpt=r, helo=HELO_NAME,
                                  hostname=server.hostname, qid=qid, message=SIMPLE,
                                  t0=t0, t1=time.time(), nrcpt=2)
        files.append(fm.group(2))
    assert files[0] != files[1], f"both recipients got recipient index {files[0]}"


def test_several_transactions_in_one_session(server):
    c = session(server)
    ids = []
    for i in range(3):
        msg = crlf(f"Subject: number {i}\n\nbody {i}\n")
        ids.append(transaction(c, SENDER, ["multi@example.test"], msg))
    assert len(set(ids)) == 3, f"queue ids not unique: {ids}"
    files = wait_one(server, "multi@example.test", count=3)
    by_id = {}
    for f in files:
        m, body = parse_delivery(f.read_bytes(), str(f))
        by_id[m.group("id").decode()] = body
    assert sorted(by_id) == sorted(ids)
    for i, q in enumerate(ids):
        assert by_id[q] == to_lf(crlf(f"Subject: number {i}\n\nbody {i}\n"))


def test_other_local_domain(server):
    c = session(server)
    qid = transaction(c, SENDER, ["erin@other.test"], SIMPLE)
    [f] = wait_one(server, "erin@other.test")
    check_delivery(f, sender=SENDER, rcpt="erin@other.test", helo=HELO_NAME,
                   hostname=server.hostname, qid=qid, message=SIMPLE)


def test_local_part_lowercased_and_allowed_characters(server):
    rcpt = "First.Last+tag_x-y=z@example.test"
    c = session(server)
    qid = transaction(c, SENDER, [rcpt], SIMPLE)
    [f] = server.wait_for_mail("example.test", "first.last+tag_x-y=z")
    check_delivery(f, sender=SENDER, rcpt=rcpt, helo=HELO_NAME,
                   hostname=server.hostname, qid=qid, message=SIMPLE)


def test_domain_case_insensitive(server):
    c = session(server)
    c.expect(f"MAIL FROM:<{SENDER}>", "250 2.1.0 Ok")
    c.expect("RCPT TO:<frank@EXAMPLE.Test>", "250 2.1.5 Ok")


def test_postmaster_without_domain(server):
    c = session(server)
    c.expect(f"MAIL FROM:<{SENDER}>", "250 2.1.0 Ok")
    c.expect("RCPT TO:<postmaster>", "250 2.1.5 Ok")
    qid = send_data(c, SIMPLE)
    # first local domain is example.test
    [f] = server.wait_for_mail("example.test", "postmaster")
    m, body = parse_delivery(f.read_bytes(), str(f))
    assert m.group("id") == qid.encode()
    assert body == to_lf(SIMPLE)
    assert server.mail_files("other.test", "postmaster") == []


def test_smtputf8_sender(server):
    sender = "j\u00f6s\u00e9@src.example"
    c = session(server)
    c.expect(f"MAIL FROM:<{sender}> SMTPUTF8", "250 2.1.0 Ok")
    c.expect("RCPT TO:<utf8@example.test>", "250 2.1.5 Ok")
    msg = crlf("Subject: \u00fcber\n\nGr\u00fc\u00dfe\n")
    qid = send_data(c, msg)
    [f] = wait_one(server, "utf8@example.test")
    check_delivery(f, sender=sender, rcpt="utf8@example.test", helo=HELO_NAME,
                   hostname=server.hostname, qid=qid, message=msg)


def test_supported_mail_parameters(server):
    c = session(server)
    c.expect(f"MAIL FROM:<{SENDER}> SIZE=500 BODY=8BITMIME", "250 2.1.0 Ok")
    c.expect("RSET", "250 2.0.0 Ok")
    c.expect(f"MAIL FROM:<{SENDER}> BODY=7BIT", "250 2.1.0 Ok")
    c.expect("RSET", "250 2.0.0 Ok")
    c.expect(f"MAIL FROM:<{SENDER}> size=100000", "250 2.1.0 Ok")


def test_ipv6_session(server):
    t0 = time.time()
    c = session(server, v6=True)
    qid = transaction(c, SENDER, ["six@example.test"], SIMPLE)
    c.expect("QUIT", "221 2.0.0 Bye")
    [f] = wait_one(server, "six@example.test")
    m, _, _ = check_delivery(f, sender=SENDER, rcpt="six@example.test", helo=HELO_NAME,
                             hostname=server.hostname, literal=LITERAL_V6, qid=qid,
                             message=SIMPLE, t0=t0, t1=time.time())
    assert b"IPv6:" in m.group("lit")


# ====================================================================
# ordering errors (503, 554 5.5.1)
# ====================================================================

@pytest.mark.parametrize("line", [f"MAIL FROM:<{SENDER}>", "RCPT TO:<x@example.test>", "DATA"])
def test_before_helo(server, line):
    c = server.connect(read_greeting=True)
    c.expect(line, "503 5.5.1 Send HELO/EHLO first")
    c.expect("NOOP", "250 2.0.0 Ok")


def test_second_mail(server):
    c = session(server)
    c.expect(f"MAIL FROM:<{SENDER}>", "250 2.1.0 Ok")
    c.expect("MAIL FROM:<other@src.example>", "503 5.5.1 Sender already given")
    # the first transaction is intact
    c.expect("RCPT TO:<second@example.test>", "250 2.1.5 Ok")
    qid = send_data(c, SIMPLE)
    [f] = wait_one(server, "second@example.test")
    check_delivery(f, sender=SENDER, rcpt="second@example.test", helo=HELO_NAME,
                   hostname=server.hostname, qid=qid, message=SIMPLE)


@pytest.mark.parametrize("line", ["RCPT TO:<x@example.test>", "DATA"])
def test_need_mail_first(server, line):
    c = session(server)
    c.expect(line, "503 5.5.1 Need MAIL first")
    c.expect("NOOP", "250 2.0.0 Ok")


@pytest.mark.parametrize("rcpt", [None, "x@elsewhere.example"], ids=["no-rcpt", "rcpt-refused"])
def test_data_without_valid_recipient(server, rcpt):
    c = session(server)
    c.expect(f"MAIL FROM:<{SENDER}>", "250 2.1.0 Ok")
    if rcpt:
        c.expect(f"RCPT TO:<{rcpt}>", "554 5.7.1 Relay access denied")
    c.expect("DATA", "554 5.5.1 No valid recipients")
    c.expect("NOOP", "250 2.0.0 Ok")


def test_bdat_without_valid_recipient_consumes_chunk(server):
    c = session(server)
    c.expect(f"MAIL FROM:<{SENDER}>", "250 2.1.0 Ok")
    c.expect("RCPT TO:<x@elsewhere.example>", "554 5.7.1 Relay access denied")
    # the 13 octets are data (framing is by length), not a command
    c.send(b"BDAT 13 LAST\r\nQUIT\r\nQUIT\r\nQ")
    c.check(c.read_reply(), "554 5.5.1 No valid recipients", "BDAT without recipients")
    c.expect("NOOP", "250 2.0.0 Ok")


# ====================================================================
# syntax errors (501, 553, 555)
# ====================================================================

@pytest.mark.parametrize("line", ["MAIL", "MAIL FROM", "MAIL TO:<alice@src.example>",
                                  "MAIL FROM:alice@src.example"])
def test_mail_syntax(server, line):
    c = session(server)
    c.expect(line, "501 5.5.4 Syntax: MAIL FROM:<address>")
    c.expect(f"MAIL FROM:<{SENDER}>", "250 2.1.0 Ok")


@pytest.mark.parametrize("line", ["RCPT", "RCPT TO", "RCPT FROM:<x@example.test>",
                                  "RCPT TO:x@example.test"])
def test_rcpt_syntax(server, line):
    c = session(server)
    c.expect(f"MAIL FROM:<{SENDER}>", "250 2.1.0 Ok")
    c.expect(line, "501 5.5.4 Syntax: RCPT TO:<address>")
    c.expect("RCPT TO:<ok@example.test>", "250 2.1.5 Ok")


@pytest.mark.parametrize("addr", ["foo@", "@", "a@@src.example", "a@src..example",
                                  "a@b@src.example"])
def test_bad_sender_address(server, addr):
    c = session(server)
    c.expect(f"MAIL FROM:<{addr}>", "501 5.1.7 Bad sender address syntax")
    c.expect(f"MAIL FROM:<{SENDER}>", "250 2.1.0 Ok")


@pytest.mark.parametrize("addr", ["foo@", "@", "a@@example.test", "a@example..test",
                                  "a@b@example.test", ".abc@example.test", "a..b@example.test"])
def test_bad_recipient_address(server, addr):
    c = session(server)
    c.expect(f"MAIL FROM:<{SENDER}>", "250 2.1.0 Ok")
    c.expect(f"RCPT TO:<{addr}>", "501 5.1.3 Bad recipient address syntax")
    c.expect("RCPT TO:<ok@example.test>", "250 2.1.5 Ok")


def test_non_ascii_sender_without_smtputf8(server):
    c = session(server)
    c.expect("MAIL FROM:<j\u00f6s\u00e9@src.example>", "553 5.6.7 Non-ASCII address requires SMTPUTF8")
    c.expect(f"MAIL FROM:<{SENDER}>", "250 2.1.0 Ok")


def test_non_ascii_recipient_without_smtputf8(server):
    c = session(server)
    c.expect(f"MAIL FROM:<{SENDER}>", "250 2.1.0 Ok")
    c.expect("RCPT TO:<j\u00f6s\u00e9@example.test>", "553 5.6.7 Non-ASCII address requires SMTPUTF8")


def test_non_ascii_local_part_with_smtputf8_is_no_mailbox(server):
    # allowed mailbox characters are a-z 0-9 . _ + - = only
    c = session(server)
    c.expect(f"MAIL FROM:<{SENDER}> SMTPUTF8", "250 2.1.0 Ok")
    c.expect("RCPT TO:<j\u00f6s\u00e9@example.test>", "550 5.1.1 No such user")


@pytest.mark.parametrize("line", [f"MAIL FROM:<{SENDER}> FOO=BAR", f"MAIL FROM:<{SENDER}> AUTH=<>",
                                  f"MAIL FROM:<{SENDER}> RET=HDRS", f"MAIL FROM:<{SENDER}> ENVID=x1"])
def test_unknown_mail_parameter(server, line):
    c = session(server)
    c.expect(line, "555 5.5.4 Unsupported parameter")
    c.expect(f"MAIL FROM:<{SENDER}>", "250 2.1.0 Ok")


def test_unknown_rcpt_parameter(server):
    c = session(server)
    c.expect(f"MAIL FROM:<{SENDER}>", "250 2.1.0 Ok")
    c.expect("RCPT TO:<x@example.test> NOTIFY=NEVER", "555 5.5.4 Unsupported parameter")
    c.expect("RCPT TO:<x@example.test>", "250 2.1.5 Ok")


# ====================================================================
# recipients: relay, mailbox names, count
# ====================================================================

@pytest.mark.parametrize("rcpt", ["x@elsewhere.example", "x@sub.example.test",
                                  "x@example.test.evil.example", "x@notexample.test"])
def test_relay_denied(server, rcpt):
    c = session(server)
    c.expect(f"MAIL FROM:<{SENDER}>", "250 2.1.0 Ok")
    c.expect(f"RCPT TO:<{rcpt}>", "554 5.7.1 Relay access denied")
    c.expect("RCPT TO:<ok@example.test>", "250 2.1.5 Ok")


@pytest.mark.parametrize("local", ["a!b", "a/b", "a#b", "a~b", "a*b", '".abc"', '"a/b"',
                                   '"a b"', '"../etc"'])
def test_bad_local_part(server, local):
    # valid syntax (atext or quoted-string) but not a mailbox name
    c = session(server)
    c.expect(f"MAIL FROM:<{SENDER}>", "250 2.1.0 Ok")
    c.expect(f"RCPT TO:<{local}@example.test>", "550 5.1.1 No such user")
    c.expect("RCPT TO:<ok@example.test>", "250 2.1.5 Ok")


def test_too_many_recipients(server):
    c = session(server)
    c.expect(f"MAIL FROM:<{SENDER}>", "250 2.1.0 Ok")
    rcpts = [f"r{i}@example.test" for i in range(5)]
    for r in rcpts:
        c.expect(f"RCPT TO:<{r}>", "250 2.1.5 Ok")
    c.expect("RCPT TO:<r5@example.test>", "452 4.5.3 Too many recipients")
    c.expect("RCPT TO:<r6@other.test>", "452 4.5.3 Too many recipients")
    qid = send_data(c, SIMPLE)
    for r in rcpts:
        [f] = wait_one(server, r)
        check_delivery(f, sender=SENDER, rcpt=r, helo=HELO_NAME,
                       hostname=server.hostname, qid=qid, message=SIMPLE, nrcpt=5)
    assert server.mail_files("example.test", "r5") == []
    assert server.mail_files("other.test", "r6") == []
    # the limit is per transaction
    transaction(c, SENDER, rcpts, SIMPLE)


def test_submission_requires_auth(server):
    c = session(server, port=server.sub_port)
    c.expect(f"MAIL FROM:<{SENDER}>", "530 5.7.0 Authentication required")
    c.expect("RCPT TO:<x@example.test>", "503 5.5.1 Need MAIL first")


# ====================================================================
# sizes
# ====================================================================

def test_size_parameter_over_limit(server):
    c = session(server)
    c.expect(f"MAIL FROM:<{SENDER}> SIZE=100001", "552 5.3.4 Message size exceeds fixed limit")
    c.expect(f"MAIL FROM:<{SENDER}> SIZE=99999999999999999999",
             "552 5.3.4 Message size exceeds fixed limit")
    # usable: a transaction with SIZE at the limit goes through
    qid = transaction(c, SENDER, ["size@example.test"], SIMPLE, " SIZE=100000")
    [f] = wait_one(server, "size@example.test")
    check_delivery(f, sender=SENDER, rcpt="size@example.test", helo=HELO_NAME,
                   hostname=server.hostname, qid=qid, message=SIMPLE)


def big_message(n):
    line = b"0123456789" * 7 + b"\r\n"  # 72 octets
    body = line * (n // len(line) + 1)
    return b"Subject: big\r\n\r\n" + body


def test_data_over_limit(server):
    c = session(server)
    c.expect(f"MAIL FROM:<{SENDER}>", "250 2.1.0 Ok")
    c.expect("RCPT TO:<big@example.test>", "250 2.1.5 Ok")
    c.expect("DATA", R_354)
    c.send(dot_stuff(big_message(150000)))
    c.check(c.read_reply(), "552 5.3.4 Message size exceeds fixed limit", "end of oversized DATA")
    # session usable: the next transaction succeeds
    msg = big_message(50000)
    qid = transaction(c, SENDER, ["after@example.test"], msg)
    c.expect("QUIT", "221 2.0.0 Bye")
    [f] = wait_one(server, "after@example.test")
    check_delivery(f, sender=SENDER, rcpt="after@example.test", helo=HELO_NAME,
                   hostname=server.hostname, qid=qid, message=msg)
    assert server.mail_files("example.test", "big") == []


def test_bdat_over_limit(server):
    c = session(server)
    c.expect(f"MAIL FROM:<{SENDER}>", "250 2.1.0 Ok")
    c.expect("RCPT TO:<bigb@example.test>", "250 2.1.5 Ok")
    data = big_message(150000)
    c.send(b"BDAT %d LAST\r\n" % len(data) + data)
    c.check(c.read_reply(), "552 5.3.4 Message size exceeds fixed limit", "oversized BDAT LAST")
    c.expect("RSET", "250 2.0.0 Ok")
    qid = transaction(c, SENDER, ["afterb@example.test"], SIMPLE)
    wait_one(server, "afterb@example.test")
    assert server.mail_files("example.test", "bigb") == []


# ====================================================================
# DATA content checks
# ====================================================================

def refused_content_keeps_session(server, ok, ok_rcpt, bad, bad_rcpt, reply, after_rcpt):
    """`ok` is delivered; `bad` gets `reply` at the end of DATA, is not
    delivered, and the session goes on to deliver one more message."""
    c = session(server)
    qid = transaction(c, SENDER, [ok_rcpt], ok)
    c.expect(f"MAIL FROM:<{SENDER}>", "250 2.1.0 Ok")
    c.expect(f"RCPT TO:<{bad_rcpt}>", "250 2.1.5 Ok")
    c.expect("DATA", R_354)
    c.send(dot_stuff(bad))
    c.check(c.read_reply(), reply, "end of DATA")
    transaction(c, SENDER, [after_rcpt], SIMPLE)
    [f] = wait_one(server, ok_rcpt)
    check_delivery(f, sender=SENDER, rcpt=ok_rcpt, helo=HELO_NAME,
                   hostname=server.hostname, qid=qid, message=ok)
    wait_one(server, after_rcpt)
    local, domain = bad_rcpt.split("@")
    assert server.mail_files(domain, local) == []


def test_data_line_length_limit(server):
    refused_content_keeps_session(
        server,
        ok=b"Subject: long lines\r\n\r\n" + b"a" * 998 + b"\r\nend\r\n",   # 1000 octets with CRLF
        ok_rcpt="okline@example.test",
        bad=b"Subject: long lines\r\n\r\n" + b"b" * 999 + b"\r\nend\r\n",  # 1001 octets
        bad_rcpt="longline@example.test",
        reply="554 5.6.0 Message line longer than 1000 octets",
        after_rcpt="afterlong@example.test")


def received_chain(n):
    return b"".join(b"Received: from hop%d.example by relay%d.example; "
                    b"Mon, 23 Nov 2026 10:00:00 +0000\r\n" % (i, i) for i in range(n))


def test_received_headers_limit(server):
    refused_content_keeps_session(
        server,
        ok=received_chain(50) + b"Subject: fifty hops\r\n\r\nbody\r\n",
        ok_rcpt="fifty@example.test",
        bad=received_chain(51) + b"Subject: fifty-one hops\r\n\r\nbody\r\n",
        bad_rcpt="loop@example.test",
        reply="554 5.4.6 Too many Received headers: mail loop",
        after_rcpt="afterloop@example.test")


SMUGGLE_TAIL = (b"MAIL FROM:<evil@attacker.example>\r\n"
                b"RCPT TO:<smuggled@example.test>\r\n"
                b"DATA\r\n"
                b"Subject: smuggled\r\n\r\nsmuggled body\r\n.\r\n")

SMUGGLING = {
    "lf-dot-lf": b"Subject: s\r\n\r\nhello\n.\n" + SMUGGLE_TAIL,
    "cr-dot-cr": b"Subject: s\r\n\r\nhello\r.\r" + SMUGGLE_TAIL,
    "lf-dot-crlf": b"Subject: s\r\n\r\nhello\n.\r\n" + SMUGGLE_TAIL,
    "crlf-dot-lf": b"Subject: s\r\n\r\nhello\r\n.\n" + SMUGGLE_TAIL,
    "crlf-dot-cr": b"Subject: s\r\n\r\nhello\r\n.\r" + SMUGGLE_TAIL,
    "cr-dot-crlf": b"Subject: s\r\n\r\nhello\r.\r\n" + SMUGGLE_TAIL,
    "bare-lf-mid-line": b"Subject: s\r\n\r\nhello\nworld\r\n.\r\n",
    "bare-cr-mid-line": b"Subject: s\r\n\r\nhello\rworld\r\n.\r\n",
    "bare-lf-in-header": b"Subject: s\nX-Injected: yes\r\n\r\nbody\r\n.\r\n",
    "bare-lf-ending": b"Subject: s\n\nbody\n.\r\n",
}


@pytest.mark.parametrize("name", list(SMUGGLING))
def test_bare_cr_lf_in_data(server, name):
    c = session(server)
    c.expect(f"MAIL FROM:<{SENDER}>", "250 2.1.0 Ok")
    c.expect("RCPT TO:<victim@example.test>", "250 2.1.5 Ok")
    c.expect("DATA", R_354)
    c.send(SMUGGLING[name])
    c.check(c.read_reply(), BARE, "DATA with bare CR/LF")
    c.expect_closed()
    [marker] = send_marker(server)
    assert_only_delivered(server, [marker], f"after {name}")


# ====================================================================
# BDAT (CHUNKING)
# ====================================================================

def bdat_transaction(c, rcpts, chunks, last_empty=False):
    c.expect(f"MAIL FROM:<{SENDER}>", "250 2.1.0 Ok")
    for r in rcpts:
        c.expect(f"RCPT TO:<{r}>", "250 2.1.5 Ok")
    for i, ch in enumerate(chunks):
        last = (i == len(chunks) - 1) and not last_empty
        c.send(b"BDAT %d%s\r\n" % (len(ch), b" LAST" if last else b"") + ch)
        r = c.read_reply()
        if not last:
            c.check(r, f"250 2.0.0 {len(ch)} octets received", f"BDAT chunk {i}")
        else:
            return c.check_re(r, QUEUED, "BDAT LAST").group(1)
    c.send(b"BDAT 0 LAST\r\n")
    return c.check_re(c.read_reply(), QUEUED, "BDAT 0 LAST").group(1)


BMSG = crlf("From: alice@src.example\nSubject: chunked\n\n"
            ".leading dot stays\n.\n..two stay\nline\n")


def test_bdat_single_chunk(server):
    c = session(server)
    qid = bdat_transaction(c, ["chunk1@example.test"], [BMSG])
    [f] = wait_one(server, "chunk1@example.test")
    # BDAT data is not dot-stuffed: delivered byte for byte (LF endings)
    check_delivery(f, sender=SENDER, rcpt="chunk1@example.test", helo=HELO_NAME,
                   hostname=server.hostname, qid=qid, message=BMSG)


def test_bdat_multiple_chunks(server):
    c = session(server)
    chunks = [BMSG[:10], BMSG[10:11], BMSG[11:40], BMSG[40:]]
    qid = bdat_transaction(c, ["chunk2@example.test"], chunks)
    [f] = wait_one(server, "chunk2@example.test")
    check_delivery(f, sender=SENDER, rcpt="chunk2@example.test", helo=HELO_NAME,
                   hostname=server.hostname, qid=qid, message=BMSG)


def test_bdat_crlf_split_across_chunks(server):
    c = session(server)
    i = BMSG.index(b"\r\n") + 1   # chunk 1 ends with CR, chunk 2 starts with LF
    qid = bdat_transaction(c, ["chunk3@example.test"], [BMSG[:i], BMSG[i:]])
    [f] = wait_one(server, "chunk3@example.test")
    check_delivery(f, sender=SENDER, rcpt="chunk3@example.test", helo=HELO_NAME,
                   hostname=server.hostname, qid=qid, message=BMSG)


def test_bdat_zero_last(server):
    c = session(server)
    qid = bdat_transaction(c, ["chunk4@example.test"], [BMSG[:25], BMSG[25:]], last_empty=True)
    [f] = wait_one(server, "chunk4@example.test")
    check_delivery(f, sender=SENDER, rcpt="chunk4@example.test", helo=HELO_NAME,
                   hostname=server.hostname, qid=qid, message=BMSG)


def test_bdat_then_data_transactions(server):
    c = session(server)
    q1 = bdat_transaction(c, ["mix@example.test"], [BMSG])
    q2 = transaction(c, SENDER, ["mix@example.test"], SIMPLE)
    assert q1 != q2
    wait_one(server, "mix@example.test", count=2)


def test_bdat_last_without_final_crlf_is_accepted(server):
    """Regression (issue 19, defect 9): BDAT LAST content that does not
    end in CRLF got "554 5.6.0 Bare CR or LF line ending not allowed",
    though it holds neither; it is taken and stored ending in CRLF."""
    c = session(server)
    content = b"Subject: no final crlf\r\n\r\nlast line"
    qid = bdat_transaction(c, ["nocrlf@example.test"], [content[:20], content[20:]])
    [f] = wait_one(server, "nocrlf@example.test")
    check_delivery(f, sender=SENDER, rcpt="nocrlf@example.test", helo=HELO_NAME,
                   hostname=server.hostname, qid=qid, message=content + b"\r\n")


@pytest.mark.parametrize("content", [b"Subject: b\r\n\r\nbad\nline\r\n",
                                     b"Subject: b\r\n\r\nbad\rline\r\n",
                                     b"Subject: b\r\n\r\nhello\n.\nMAIL FROM:<e@x.example>\r\n"],
                         ids=["bare-lf", "bare-cr", "lf-dot-lf"])
def test_bdat_bare_cr_lf(server, content):
    c = session(server)
    c.expect(f"MAIL FROM:<{SENDER}>", "250 2.1.0 Ok")
    c.expect("RCPT TO:<bdatbare@example.test>", "250 2.1.5 Ok")
    c.send(b"BDAT %d LAST\r\n" % len(content) + content)
    c.check(c.read_reply(), BARE, "BDAT LAST with bare CR/LF")
    # framing is by length: the session stays usable
    c.expect("RSET", "250 2.0.0 Ok")
    qid = transaction(c, SENDER, ["afterbare@example.test"], SIMPLE)
    [f] = wait_one(server, "afterbare@example.test")
    assert_only_delivered(server, [f], "after BDAT with bare CR/LF")


# ====================================================================
# PIPELINING
# ====================================================================

def test_pipelining_data(server):
    c = session(server)
    c.send(f"MAIL FROM:<{SENDER}>\r\n"
           "RCPT TO:<pipe1@example.test>\r\n"
           "RCPT TO:<x@elsewhere.example>\r\n"
           "RCPT TO:<pipe2@other.test>\r\n"
           "DATA\r\n")
    for exp in ["250 2.1.0 Ok", "250 2.1.5 Ok", "554 5.7.1 Relay access denied",
                "250 2.1.5 Ok", R_354]:
        c.check(c.read_reply(), exp, "pipelined group")
    bmsg = crlf("Subject: second\n\nsecond\n")
    c.send(dot_stuff(DOTTY)
           + f"MAIL FROM:<{SENDER}>\r\nRCPT TO:<pipe3@example.test>\r\n".encode()
           + b"BDAT %d LAST\r\n" % len(bmsg) + bmsg
           + b"NOOP\r\nQUIT\r\n")
    q1 = c.check_re(c.read_reply(), QUEUED, "end of DATA").group(1)
    c.check(c.read_reply(), "250 2.1.0 Ok")
    c.check(c.read_reply(), "250 2.1.5 Ok")
    q2 = c.check_re(c.read_reply(), QUEUED, "BDAT LAST").group(1)
    c.check(c.read_reply(), "250 2.0.0 Ok")
    c.check(c.read_reply(), "221 2.0.0 Bye")
    c.expect_closed()
    for r in ["pipe1@example.test", "pipe2@other.test"]:
        [f] = wait_one(server, r)
        check_delivery(f, sender=SENDER, rcpt=r, helo=HELO_NAME,
                       hostname=server.hostname, qid=q1, message=DOTTY, nrcpt=2)
    [f] = wait_one(server, "pipe3@example.test")
    check_delivery(f, sender=SENDER, rcpt="pipe3@example.test", helo=HELO_NAME,
                   hostname=server.hostname, qid=q2, message=bmsg)
    assert server.mail_files("elsewhere.example", "x") == []


def test_pipelining_whole_transaction_one_write(server):
    c = server.connect()
    c.greeting(server.hostname)
    assert c.cmd("EHLO " + HELO_NAME).lines == ehlo_lines(server.hostname)
    msgs = [crlf(f"Subject: batch {i}\n\nbody {i}\n.dot {i}\n") for i in range(3)]
    blob = b""
    for i, m in enumerate(msgs):
        blob += (f"MAIL FROM:<{SENDER}>\r\nRCPT TO:<batch{i}@example.test>\r\n"
                 f"RCPT TO:<batchall@example.test>\r\n").encode()
        blob += b"BDAT %d LAST\r\n" % len(m) + m
    blob += b"QUIT\r\n"
    c.send(blob)
    ids = []
    for i in range(3):
        c.check(c.read_reply(), "250 2.1.0 Ok", f"MAIL {i}")
        c.check(c.read_reply(), "250 2.1.5 Ok", f"RCPT {i}")
        c.check(c.read_reply(), "250 2.1.5 Ok", f"RCPT {i}")
        ids.append(c.check_re(c.read_reply(), QUEUED, f"BDAT {i}").group(1))
    c.check(c.read_reply(), "221 2.0.0 Bye")
    c.expect_closed()
    assert len(set(ids)) == 3
    for i, m in enumerate(msgs):
        [f] = wait_one(server, f"batch{i}@example.test")
        check_delivery(f, sender=SENDER, rcpt=f"batch{i}@example.test", helo=HELO_NAME,
                       hostname=server.hostname, qid=ids[i], message=m, nrcpt=2)
    assert len(wait_one(server, "batchall@example.test", count=3)) == 3


def test_pipelining_rejected_data(server):
    c = session(server)
    c.send(f"MAIL FROM:<{SENDER}>\r\nRCPT TO:<x@elsewhere.example>\r\nDATA\r\nNOOP\r\n")
    c.check(c.read_reply(), "250 2.1.0 Ok")
    c.check(c.read_reply(), "554 5.7.1 Relay access denied")
    c.check(c.read_reply(), "554 5.5.1 No valid recipients")
    c.check(c.read_reply(), "250 2.0.0 Ok")


# ====================================================================
# connection-closing conditions
# ====================================================================

@pytest.mark.parametrize("request_line", [b"GET / HTTP/1.1", b"POST /submit HTTP/1.1"])
def test_http_request(server, request_line):
    c = server.connect(read_greeting=True)
    c.send(request_line + b"\r\nHost: 127.0.0.1\r\nUser-Agent: test\r\n\r\n")
    c.check(c.read_reply(), "500 5.5.1 This is an SMTP server, not HTTP", "HTTP request line")
    c.expect_closed()


def test_http_request_after_ehlo(server):
    c = session(server)
    c.send(b"GET / HTTP/1.0\r\n\r\n")
    c.check(c.read_reply(), "500 5.5.1 This is an SMTP server, not HTTP")
    c.expect_closed()


def test_too_many_errors(server):
    # errors_max = 5: five errors are answered normally, the sixth ends the session
    c = session(server)
    for i in range(5):
        c.expect(f"XYZZY {i}", "500 5.5.2 Command not recognized")
    r = c.cmd("XYZZY 5")
    if r.lines == ["500 5.5.2 Command not recognized"]:
        r = c.read_reply()
    c.check(r, "421 4.7.0 Too many errors, closing connection", "sixth error")
    c.expect_closed()


def test_errors_count_mixed_kinds(server):
    c = session(server)
    c.expect("RCPT TO:<x@example.test>", "503 5.5.1 Need MAIL first")
    c.expect("MAIL FROM:<foo@>", "501 5.1.7 Bad sender address syntax")
    c.expect("XYZZY", "500 5.5.2 Command not recognized")
    c.expect("DATA", "503 5.5.1 Need MAIL first")
    c.expect("MAIL FROM:<x@src.example> BOGUS=1", "555 5.5.4 Unsupported parameter")
    r = c.cmd("XYZZY")
    if r.lines == ["500 5.5.2 Command not recognized"]:
        r = c.read_reply()
    c.check(r, "421 4.7.0 Too many errors, closing connection", "sixth error")
    c.expect_closed()


def test_command_timeout(start_ringmaild):
    server = start_ringmaild(limits={"command_timeout_s": 2, "data_timeout_s": 60})
    c = session(server)
    # activity keeps the session alive: the timeout is per command
    for _ in range(3):
        time.sleep(1.0)
        c.expect("NOOP", "250 2.0.0 Ok")
    t = time.monotonic()
    r = c.read_reply(timeout=15)
    waited = time.monotonic() - t
    c.check(r, f"421 4.4.2 {server.hostname} Timeout, closing connection", "idle session")
    assert 1.5 <= waited <= 8, f"timeout reply after {waited:.1f} s, command_timeout_s = 2"
    c.expect_closed()


def test_command_timeout_before_ehlo(start_ringmaild):
    server = start_ringmaild(limits={"command_timeout_s": 2})
    c = server.connect(read_greeting=True)
    t = time.monotonic()
    r = c.read_reply(timeout=15)
    waited = time.monotonic() - t
    c.check(r, f"421 4.4.2 {server.hostname} Timeout, closing connection")
    assert 1.5 <= waited <= 8, f"timeout reply after {waited:.1f} s, command_timeout_s = 2"
    c.expect_closed()


def test_data_timeout(start_ringmaild):
    server = start_ringmaild(limits={"command_timeout_s": 60, "data_timeout_s": 2})
    c = session(server)
    c.expect(f"MAIL FROM:<{SENDER}>", "250 2.1.0 Ok")
    c.expect("RCPT TO:<slow@example.test>", "250 2.1.5 Ok")
    c.expect("DATA", R_354)
    c.send(b"Subject: slow\r\n\r\npartial line")
    t = time.monotonic()
    r = c.read_reply(timeout=15)
    waited = time.monotonic() - t
    c.check(r, f"421 4.4.2 {server.hostname} Timeout, closing connection", "stalled DATA")
    assert 1.5 <= waited <= 8, f"timeout reply after {waited:.1f} s, data_timeout_s = 2"
    c.expect_closed()
    [marker] = send_marker(server)
    assert_only_delivered(server, [marker], "after DATA timeout")


def test_bdat_data_timeout(start_ringmaild):
    server = start_ringmaild(limits={"command_timeout_s": 60, "data_timeout_s": 2})
    c = session(server)
    c.expect(f"MAIL FROM:<{SENDER}>", "250 2.1.0 Ok")
    c.expect("RCPT TO:<slowb@example.test>", "250 2.1.5 Ok")
    c.send(b"BDAT 100 LAST\r\nSubject: slow\r\n\r\nonly part")
    t = time.monotonic()
    r = c.read_reply(timeout=15)
    waited = time.monotonic() - t
    c.check(r, f"421 4.4.2 {server.hostname} Timeout, closing connection", "stalled BDAT")
    assert 1.5 <= waited <= 8, f"timeout reply after {waited:.1f} s, data_timeout_s = 2"
    c.expect_closed()


def test_too_many_connections(start_ringmaild):
    # connections_max is per shard; 2 shards -> at most 2 sessions served
    server = start_ringmaild(limits={"connections_max": 1})
    time.sleep(0.5)  # let the start-up probe connections be closed
    conns, greeted, refused = [], 0, 0
    for i in range(10):
        c = server.connect()
        r = c.read_reply()
        if r.lines == [f"220 {server.hostname} ESMTP ringmail"]:
            greeted += 1
        else:
            c.check(r, "421 4.7.0 Too many connections", f"connection {i}")
            c.expect_closed()
            refused += 1
        conns.append(c)
    assert 1 <= greeted <= 2, f"{greeted} of 10 connections greeted with connections_max=1 x 2 shards"
    assert refused == 10 - greeted
    for c in conns:
        c.close()
    # capacity comes back when sessions close
    deadline = time.monotonic() + 5
    while True:
        c = server.connect()
        r = c.read_reply()
        if r.code == 220:
            break
        c.close()
        assert time.monotonic() < deadline, "no connection accepted after the others closed"
        time.sleep(0.2)


def test_sigterm_idle_sessions(server):
    c1 = server.connect(read_greeting=True)
    c2 = session(server)
    c6 = session(server, v6=True)
    time.sleep(0.2)
    server.signal(signal.SIGTERM)
    for c in (c1, c2, c6):
        c.check(c.read_reply(timeout=10), "421 4.3.2 Service shutting down", "SIGTERM while idle")
        c.expect_closed()
    rc = server.wait_exit(20)
    assert rc == 0, f"exit status {rc} after SIGTERM (None = still running after 20 s)"


def test_sigterm_grace_over_during_data_gets_421(start_ringmaild):
    """Regression (issue 19, defect 12): when shutdown_grace_s ran out, a
    client in DATA was disconnected without a reply. It gets 421 (so it
    knows to send again) and nothing of the message is taken."""
    server = start_ringmaild(limits={"shutdown_grace_s": 1})
    c = session(server)
    c.expect(f"MAIL FROM:<{SENDER}>", "250 2.1.0 Ok")
    c.expect("RCPT TO:<cutoff@example.test>", "250 2.1.5 Ok")
    c.expect("DATA", R_354)
    c.send(b"Subject: cut off\r\n\r\nthe first line only\r\n")
    server.signal(signal.SIGTERM)
    c.check(c.read_reply(timeout=15), "421 4.3.2 Service shutting down, closing connection",
            "grace over in DATA")
    c.expect_closed()
    rc = server.wait_exit(20)
    assert rc == 0, f"exit status {rc} after SIGTERM"
    server.stop()
    assert "shutdown grace over during DATA; 421" in server.log_path.read_text()
    assert not list(server.data_dir.glob("mail/example.test/cutoff/Maildir/new/*"))


def test_sigterm_lets_open_transaction_finish(server):
    c = session(server)
    c.expect(f"MAIL FROM:<{SENDER}>", "250 2.1.0 Ok")
    c.expect("RCPT TO:<grace@example.test>", "250 2.1.5 Ok")
    c.expect("DATA", R_354)
    payload = dot_stuff(DOTTY)
    c.send(payload[:40])
    server.signal(signal.SIGTERM)
    time.sleep(0.7)
    assert server.alive(), "ringmaild exited on SIGTERM without letting the open DATA finish"
    c.send(payload[40:])
    qid = c.check_re(c.read_reply(), QUEUED, "DATA finished after SIGTERM").group(1)
    r = c.cmd("QUIT")
    assert r.lines in (["221 2.0.0 Bye"], ["421 4.3.2 Service shutting down"]), (
        f"after the transaction: {r.lines}\n{c.transcript()}")
    c.expect_closed()
    rc = server.wait_exit(20)
    assert rc == 0, f"exit status {rc} after SIGTERM (None = still running after 20 s)"
    server.stop()
    # the acknowledged message is durable: delivered before the exit or after a restart
    server.start()
    [f] = wait_one(server, "grace@example.test")
    check_delivery(f, sender=SENDER, rcpt="grace@example.test", helo=HELO_NAME,
                   hostname=server.hostname, qid=qid, message=DOTTY)


# ====================================================================
# smtplib
# ====================================================================

def test_smtplib_sendmail(server):
    s = smtplib.SMTP(server.host, server.port, local_hostname="smtplib.test.example", timeout=10)
    try:
        code, msg = s.ehlo()
        assert code == 250 and msg.decode().splitlines()[0] == server.hostname
        feats = s.esmtp_features
        for k in ("pipelining", "size", "8bitmime", "smtputf8", "enhancedstatuscodes", "chunking"):
            assert k in feats, f"EHLO keyword {k} missing: {feats}"
        assert feats["size"] == "100000"
        msg = crlf("From: a@src.example\nSubject: smtplib\n\n.dot\nbody\n")
        refused = s.sendmail("a@src.example", ["one@example.test", "two@other.test",
                                               "no@elsewhere.example"], msg)
        assert refused == {"no@elsewhere.example": (554, b"5.7.1 Relay access denied")}, refused
        assert s.noop() == (250, b"2.0.0 Ok")
        assert s.quit() == (221, b"2.0.0 Bye")
    finally:
        s.close()
    for r in ("one@example.test", "two@other.test"):
        [f] = wait_one(server, r)
        check_delivery(f, sender="a@src.example", rcpt=r, helo="smtplib.test.example",
                       hostname=server.hostname, message=msg, nrcpt=2)


def test_smtplib_size_refused_then_usable(server):
    s = smtplib.SMTP(server.host, server.port, local_hostname="smtplib.test.example", timeout=10)
    try:
        big = big_message(150000)
        with pytest.raises(smtplib.SMTPSenderRefused) as ei:
            s.sendmail("a@src.example", ["big@example.test"], big)  # sends SIZE=
        assert ei.value.smtp_code == 552
        assert ei.value.smtp_error == b"5.3.4 Message size exceeds fixed limit"
        assert s.sendmail("a@src.example", ["small@example.test"], SIMPLE) == {}
        s.quit()
    finally:
        s.close()
    wait_one(server, "small@example.test")
    assert server.mail_files("example.test", "big") == []


def test_smtplib_all_refused(server):
    s = smtplib.SMTP(server.host, server.port, timeout=10)
    try:
        with pytest.raises(smtplib.SMTPRecipientsRefused) as ei:
            s.sendmail("a@src.example", ["x@elsewhere.example", "a!b@example.test"], SIMPLE)
        assert ei.value.recipients == {
            "x@elsewhere.example": (554, b"5.7.1 Relay access denied"),
            "a!b@example.test": (550, b"5.1.1 No such user")}
        s.quit()
    finally:
        s.close()


def test_smtplib_ipv6_smtputf8(server):
    s = smtplib.SMTP(server.host6, server.port6, local_hostname="six.test.example", timeout=10)
    sender = "\u00e9t\u00e9@src.example"
    msg = "Subject: \u00e9t\u00e9\r\n\r\nbonjour \u00e0 tous\r\n".encode()
    try:
        s.ehlo()
        assert s.sendmail(sender, ["sixutf@example.test"], msg,
                          mail_options=["SMTPUTF8", "BODY=8BITMIME"]) == {}
        s.quit()
    finally:
        s.close()
    [f] = wait_one(server, "sixutf@example.test")
    check_delivery(f, sender=sender, rcpt="sixutf@example.test", helo="six.test.example",
                   hostname=server.hostname, literal=LITERAL_V6, message=msg)


def test_smtplib_submission(server):
    s = smtplib.SMTP(server.host, server.sub_port, timeout=10)
    try:
        with pytest.raises(smtplib.SMTPSenderRefused) as ei:
            s.sendmail("a@src.example", ["x@example.test"], SIMPLE)
        assert (ei.value.smtp_code, ei.value.smtp_error) == (530, b"5.7.0 Authentication required")
    finally:
        s.close()


# ====================================================================
# swaks
# ====================================================================

def run_swaks(args):
    p = subprocess.run(["/usr/bin/swaks"] + args, stdin=subprocess.DEVNULL,
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60)
    out = p.stdout.decode("utf-8", "replace")
    assert p.returncode == 0, f"swaks exit status {p.returncode}\n{out}"
    return out


def test_swaks_pipeline(server):
    out = run_swaks(["--server", "127.0.0.1", "--port", str(server.port),
                     "--to", "x@example.test", "--from", "a@b.example", "--pipeline",
                     "--helo", "swaks.test.example"])
    assert "PIPELINING" in out
    assert re.search(r"250 2\.0\.0 Ok: queued as \S+", out), out
    [f] = wait_one(server, "x@example.test")
    m, body = parse_delivery(f.read_bytes(), str(f))
    assert m.group("rp") == b"a@b.example" and m.group("helo") == b"swaks.test.example"
    assert b"\nX-Mailer: swaks" in body and b"This is a test mailing" in body


def test_swaks_body_file(server, tmp_path):
    bodyfile = tmp_path / "body.txt"
    text = ("first line\n.dot line\n..two dots\n.\nlast line\n" + "x" * 900 + "\n")
    bodyfile.write_text(text)
    run_swaks(["--server", "127.0.0.1", "--port", str(server.port),
               "--to", "y@example.test", "--from", "a@b.example", "--pipeline",
               "--helo", "swaks.test.example", "--body", "@" + str(bodyfile)])
    [f] = wait_one(server, "y@example.test")
    check_delivery(f, sender="a@b.example", rcpt="y@example.test", helo="swaks.test.example",
                   hostname=server.hostname)
    _, body = parse_delivery(f.read_bytes(), str(f))
    assert b"\n\n" + text.encode() in body, f"body file content not delivered intact: {body!r}"


def test_swaks_ipv6(server):
    probe = subprocess.run(["/usr/bin/swaks", "-6", "--server", "::1", "--port", "1",
                            "--to", "p@example.test", "--quit-after", "CONNECT"],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=30)
    if b"IPv6 not available" in probe.stdout:
        pytest.skip("swaks here has no IPv6 (needs IO::Socket::INET6, Debian libio-socket-inet6-perl)")
    run_swaks(["--server", "::1", "--port", str(server.port6), "-6",
               "--to", "z@other.test", "--from", "a@b.example", "--pipeline",
               "--helo", "swaks6.test.example"])
    [f] = wait_one(server, "z@other.test")
    check_delivery(f, sender="a@b.example", rcpt="z@other.test", helo="swaks6.test.example",
                   hostname=server.hostname, literal=LITERAL_V6)


def test_swaks_relay_denied(server):
    p = subprocess.run(["/usr/bin/swaks", "--server", "127.0.0.1", "--port", str(server.port),
                        "--to", "x@elsewhere.example", "--from", "a@b.example"],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60)
    out = p.stdout.decode("utf-8", "replace")
    assert p.returncode != 0, out
    assert "554 5.7.1 Relay access denied" in out, out


def test_greeting_delay_refuses_clients_that_talk_first(start_ringmaild):
    """[inbound] greeting_delay_s: a client that sends before the 220 gets
    554 and is disconnected; one that waits is served."""
    srv = start_ringmaild(inbound={"greeting_delay_s": 1})
    with socket.create_connection(("127.0.0.1", srv.port), timeout=10) as s:
        s.sendall(b"EHLO spam.example\r\n")
        data = b""
        while True:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
    assert data.startswith(b"554 5.7.1 ") and b"Talking before the greeting" in data, data
    assert "talked before the greeting" in srv.log_path.read_text()
    with smtplib.SMTP("127.0.0.1", srv.port, timeout=30) as s:  # waits for the 220
        assert s.ehlo("client.example")[0] == 250
