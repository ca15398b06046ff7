"""The suppression list (issue 25, docs/suppression.md): entries added by
hand (`ringmail suppress`, /api/suppression) and by hard bounces; a
suppressed recipient refused at RCPT from a relaying client (550 5.1.1)
and reported in failed_recipients at injection, each with a Suppressed
event; removal lets it through; the list survives a restart."""
import json
import smtplib
import socket
import time
from pathlib import Path

import pytest
from conftest import free_port, needs_root
from test_events import events, wait_event, wait_events
from test_inject import injector, post, request
from test_outbound import sink, wait_log
from test_queue import api
from test_queue import relay as queue_relay
from test_tools import RINGMAIL, tool  # noqa: F401


def cli(srv, *args):
    return tool("--config", str(srv.config_path), "suppress", *args)


def rcpt(srv, sender, rcpt_to):
    """The reply to RCPT TO from a relay_networks client."""
    with smtplib.SMTP("127.0.0.1", srv.port, timeout=30) as s:
        s.ehlo("client.example")
        s.mail(sender)
        return s.rcpt(rcpt_to)


@pytest.fixture
def srv(start_ringmaild, tmp_path):
    srv, _ = queue_relay(start_ringmaild, tmp_path, free_port(socket.AF_INET, "127.0.0.1"))
    return srv


def test_added_by_hand_refused_at_rcpt_then_removed(srv):
    r = cli(srv, "add", "Bob@Far.test", "--reason", "asked us to stop")
    assert r.returncode == 0 and r.stdout == "bob@far.test (every sender): suppressed\n", r
    r = cli(srv, "add", "bob@far.test")
    assert r.stdout == "bob@far.test (every sender): already suppressed\n", r
    code, text = rcpt(srv, "alice@src.example", "bob@far.test")
    assert code == 550 and text.startswith(b"5.1.1 <bob@far.test>: recipient is on the "
                                           b"suppression list"), (code, text)
    assert rcpt(srv, "alice@src.example", "carol@far.test")[0] == 250
    ev = wait_events(srv, "bob@far.test", "Suppressed")
    assert ev[-1]["sender"] == "alice@src.example", ev
    assert ev[-1]["response"]["enhanced_code"] == "5.1.1", ev
    r = cli(srv, "check", "bob@far.test")
    assert r.returncode == 0 and r.stdout == "bob@far.test: suppressed\n", r
    r = cli(srv, "list")
    assert r.returncode == 0, r
    (line,) = r.stdout.splitlines()
    assert line.startswith("* bob@far.test ") and line.endswith(" asked us to stop"), line
    r = cli(srv, "remove", "bob@far.test")
    assert r.stdout == "bob@far.test (every sender): no longer suppressed\n", r
    assert rcpt(srv, "alice@src.example", "bob@far.test")[0] == 250
    r = cli(srv, "check", "bob@far.test")
    assert r.returncode == 1 and r.stdout == "bob@far.test: not suppressed\n", r
    assert cli(srv, "list").stdout == ""


def test_scope_of_one_sender_domain(srv):
    r = cli(srv, "add", "dan@far.test", "--scope", "news.example")
    assert r.stdout == "dan@far.test (news.example): suppressed\n", r
    assert rcpt(srv, "x@news.example", "dan@far.test")[0] == 550
    assert rcpt(srv, "x@shop.example", "dan@far.test")[0] == 250
    assert cli(srv, "check", "dan@far.test").returncode == 1
    assert cli(srv, "check", "dan@far.test", "--sender-domain", "News.Example").returncode == 0
    r = cli(srv, "list", "--json")
    (entry,) = [json.loads(x) for x in r.stdout.splitlines()]
    assert entry["scope"] == "news.example" and entry["address"] == "dan@far.test", entry


def test_api_refusals(srv, tmp_path):
    sock = tmp_path / "admin.sock"
    assert api(sock, "POST", "/api/suppression/add", {"address": "not an address"}) == (
        400, {"error": "address: \"not an address\" is not a mail address"})
    assert api(sock, "POST", "/api/suppression/add", {"address": "a@b.test", "scope": "x y"}) == (
        400, {"error": "scope: \"*\" (every sender) or a sender domain is needed"})
    assert api(sock, "POST", "/api/suppression/remove", {"address": "a@b.test", "reason": "x"}) == (
        400, {"error": "unknown field \"reason\" (address, scope)"})
    assert api(sock, "GET", "/api/suppression/add")[0] == 405
    st, j = api(sock, "GET", "/api/suppression/check?address=a%40b.test")
    assert st == 200 and j == {"address": "a@b.test", "suppressed": False}, j
    r = cli(srv, "add", "nobody")
    assert r.returncode == 1 and r.stderr == (
        "ringmail: address: \"nobody\" is not a mail address\n"), r


def test_refused_at_injection(start_ringmaild, tmp_path):
    port = free_port(socket.AF_INET, "127.0.0.1")
    s = sink("127.0.0.1", port)
    try:
        srv = injector(start_ringmaild, tmp_path, port)
        assert cli(srv, "add", "gone@far.test").returncode == 0
        st, _, j = post(srv, request([{"email": "gone@far.test", "substitutions": {"name": "G"}},
                                      {"email": "here@far.test", "substitutions": {"name": "H"}}]))
        assert st == 200, j
        assert j["success_count"] == 1 and j["fail_count"] == 1, j
        assert j["failed_recipients"] == [{"email": "gone@far.test", "reason":
                                           "550 5.1.1 recipient is on the suppression list"}], j
        assert j["ids"][0] is None and j["ids"][1], j
        ev = wait_events(srv, "gone@far.test", "Suppressed")
        assert [e["type"] for e in ev] == ["Suppressed"], ev
        wait_events(srv, "here@far.test", "Delivery")
    finally:
        s.kill()
        s.wait()


def test_hard_bounce_suppresses_and_survives_a_restart(start_ringmaild, tmp_path):
    port = free_port(socket.AF_INET, "127.0.0.1")
    srv, _ = queue_relay(start_ringmaild, tmp_path, port, retry_first_s=1)
    s = sink("127.0.0.7", port, "-f", "RCPT", "-B",
             "550 5.1.1 The email account that you tried to reach does not exist")
    try:
        with smtplib.SMTP("127.0.0.1", srv.port, timeout=30) as c:
            c.sendmail("alice@src.example", ["nobody@far.test"],
                       b"Subject: x\r\nFrom: alice@src.example\r\n\r\nhi\r\n")
        wait_log(srv, "to=<nobody@far.test> suppressed after a bounce (InvalidRecipient)")
    finally:
        s.kill()
        s.wait()
    ev = wait_events(srv, "nobody@far.test", "Bounce")
    assert ev[-1]["bounce_classification"] == "InvalidRecipient", ev
    assert rcpt(srv, "alice@src.example", "nobody@far.test")[0] == 550
    srv.stop()
    srv.start()
    assert rcpt(srv, "alice@src.example", "nobody@far.test")[0] == 550
    assert cli(srv, "check", "nobody@far.test").returncode == 0
    (line,) = cli(srv, "list").stdout.splitlines()
    assert "bounce InvalidRecipient: " in line, line
    assert "suppression list: 1 entries" in srv.log_path.read_text()


CORPUS = Path(__file__).resolve().parent.parent / "fuzz" / "corpus" / "oob"


def test_reports_to_a_report_address(start_ringmaild, tmp_path):
    """A bounce that comes back later (Postfix's DSN format) and a
    complaint (RFC 5965's example), mailed to a report address: an OOB
    and a Feedback event, the bounced recipient suppressed for every
    sender, the complained-of one for the sender's domain."""
    sock = tmp_path / "admin.sock"
    srv = start_ringmaild(relay_networks=["127.0.0.0/8"], http=True,
                          extra_toml=f'[admin]\nsocket = "{sock}"\n'
                                     '[events]\nreport_addresses = ["Bob@example.test"]\n')
    with smtplib.SMTP("127.0.0.1", srv.port, timeout=30) as s:
        for sender, name in (("", "postfix_dsn.eml"), ("abusedesk@example.com", "rfc5965_arf.eml")):
            crlf = (CORPUS / name).read_bytes().replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
            s.sendmail(sender, ["bob@example.test"], crlf)
    oob = wait_events(srv, "nobody@example.net", "OOB")[-1]
    assert oob["queue_id"] == "1K20C7FRQ3S00" and oob["reporting_mta"] == "mx.example.net", oob
    assert oob["response"]["enhanced_code"] == "5.1.1", oob
    assert oob["bounce_classification"] == "InvalidRecipient", oob
    fb = wait_events(srv, "user@example.com", "Feedback")[-1]
    assert fb["sender"] == "somespammer@example.net", fb
    assert fb["feedback_report"] == {"feedback_type": "abuse", "user_agent": "SomeGenerator/1.0",
                                     "source_ip": "192.0.2.1"}, fb
    wait_log(srv, "to=<nobody@example.net> suppressed after a bounce (InvalidRecipient)")
    assert cli(srv, "check", "nobody@example.net").returncode == 0
    assert rcpt(srv, "x@elsewhere.example", "nobody@example.net")[0] == 550
    for _ in range(50):
        if cli(srv, "check", "user@example.com", "--sender-domain", "example.net").returncode == 0:
            break
        time.sleep(0.1)
    assert rcpt(srv, "x@example.net", "user@example.com")[0] == 550
    assert rcpt(srv, "x@other.example", "user@example.com")[0] == 250
    from test_metrics import scrape, value
    assert value(scrape("127.0.0.1", srv.http_port), "ringmail_suppressed_recipients_total") == 2
    # Not a report: logged, nothing else.
    with smtplib.SMTP("127.0.0.1", srv.port, timeout=30) as s:
        s.sendmail("x@src.example", ["bob@example.test"], b"Subject: hi\r\n\r\nhello\r\n")
    wait_log(srv, "to a report address, but not a report: not a multipart/report")


def bouncing_postfix(start_ringmaild, tmp_path, extra_toml):
    """A ringmaild (relay for 127.0.0.0/8, an admin socket, `extra_toml`)
    whose mail to far.test goes to a private Postfix that takes any
    far.test recipient, finds no such user and bounces the message back
    to ringmaild: (srv, pf), pf running; the caller stops pf."""
    from postfix_instance import PostfixInstance
    # Postfix's port first (ringmail routes far.test to it), then its
    # relayhost (ringmail's port, for the bounce) once ringmail listens.
    pf = PostfixInstance("[127.0.0.1]:1", hostname="mx.far.test",
                         extra="mydestination = far.test\nlocal_recipient_maps =\n"
                               "alias_maps =\nalias_database =\n")
    srv = start_ringmaild(
        relay_networks=["127.0.0.0/8"],
        outbound={"connect_timeout_s": 2, "retry_first_s": 3600, "retry_max_s": 3600,
                  "route": [{"domain": "far.test", "next_hop": f"[127.0.0.1]:{pf.port}"}]},
        extra_toml=f'[admin]\nsocket = "{tmp_path / "admin.sock"}"\n' + extra_toml)
    main_cf = pf.etc / "main.cf"
    main_cf.write_text(main_cf.read_text().replace("relayhost = [127.0.0.1]:1\n",
                                                   f"relayhost = [127.0.0.1]:{srv.port}\n"))
    return srv, pf.start()


@needs_root
def test_a_postfix_bounce_of_an_unknown_user_comes_back_as_oob(start_ringmaild, tmp_path):
    """A real DSN made by Postfix: ringmail relays to Postfix, which takes
    the message for far.test, finds no such user and bounces it to the
    envelope sender, a report address at ringmail: an OOB event for the
    original recipient with the original queue id, classified, and the
    recipient suppressed."""
    srv, pf = bouncing_postfix(start_ringmaild, tmp_path,
                               '[events]\nreport_addresses = ["bounces@example.test"]\n')
    try:
        with smtplib.SMTP("127.0.0.1", srv.port, timeout=30) as s:
            s.sendmail("bounces@example.test", ["nosuchuser@far.test"],
                       b"Subject: to nobody\r\nFrom: news@example.test\r\n\r\nhello\r\n")
        qid = wait_event(srv, "nosuchuser@far.test", "Delivery")["queue_id"]
        oob = wait_event(srv, "nosuchuser@far.test", "OOB", timeout=60)
        assert oob["queue_id"] == qid, (oob, qid)
        assert oob["sender"] == "bounces@example.test", oob
        assert oob["reporting_mta"] == "mx.far.test", oob
        # Postfix's diagnostic is not an SMTP reply ("X-Postfix; unknown
        # user"): the enhanced code comes from the DSN's Status.
        assert oob["response"] == {"code": 0, "enhanced_code": "5.1.1",
                                   "text": 'unknown user: "nosuchuser"'}, oob
        assert oob["bounce_classification"] == "InvalidRecipient", oob
        wait_log(srv, "to=<nosuchuser@far.test> suppressed after a bounce (InvalidRecipient)")
        assert cli(srv, "check", "nosuchuser@far.test").returncode == 0
        assert rcpt(srv, "x@elsewhere.example", "nosuchuser@far.test")[0] == 550
    except AssertionError:
        print("--- postfix log ---\n" + pf.log_text())
        raise
    finally:
        pf.stop()
