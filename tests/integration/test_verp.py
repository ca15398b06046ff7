"""VERP return paths (issue 25, [events] verp, docs/events.md "VERP"):
each outbound recipient goes in its own transaction with the envelope
sender bounce+<queue id>-<hash>@<verp domain>; a bounce that comes back
to it, a real DSN from Postfix or a few lines of text, becomes an OOB
event for the recipient it names, and a hard one suppresses it; a
forged address names nobody."""
import re
import smtplib

from conftest import needs_root
from test_events import of, wait_event
from test_inject import DumpSink
from test_outbound import wait_log
from test_suppression import bouncing_postfix
from test_tools import tool

VERP = '[events]\nverp = true\n'
VERP_RE = r"bounce\+([0-9A-Z]{13})-([0-9a-z]{8})@example\.test"


def check(srv, address):
    return tool("--config", str(srv.config_path), "suppress", "check", address).returncode == 0


@needs_root
def test_each_recipient_its_own_return_path_and_postfix_bounces_come_back(start_ringmaild,
                                                                          tmp_path):
    srv, pf = bouncing_postfix(start_ringmaild, tmp_path, VERP)
    try:
        wait_log(srv, "verp: return paths bounce+ID-HASH@example.test")
        rcpts = ["nosuch1@far.test", "nosuch2@far.test"]
        with smtplib.SMTP("127.0.0.1", srv.port, timeout=30) as s:
            s.sendmail("news@src.example", rcpts,
                       b"Subject: to nobody\r\nFrom: news@src.example\r\n\r\nhello\r\n")
        qid = wait_event(srv, rcpts[0], "Delivery")["queue_id"]
        for r in rcpts:
            oob = wait_event(srv, r, "OOB", timeout=60)
            assert oob["queue_id"] == qid and oob["sender"] == "news@src.example", oob
            assert oob["response"]["enhanced_code"] == "5.1.1", oob
            assert oob["bounce_classification"] == "InvalidRecipient", oob
            wait_log(srv, f"to=<{r}> suppressed after a bounce (InvalidRecipient)")
            assert check(srv, r)
        # Two transactions, each with its own return path.
        senders = set(re.findall(r"from=<(bounce\+[^>]*)>", pf.log_text()))
        assert len([x for x in senders if re.fullmatch(VERP_RE, x)]) == 2, senders
        assert all(re.fullmatch(VERP_RE, x).group(1) == qid for x in senders), senders
    except AssertionError:
        print("--- postfix log ---\n" + pf.log_text())
        raise
    finally:
        pf.stop()


def test_a_plain_text_bounce_and_a_forged_address(start_ringmaild, tmp_path):
    sink = DumpSink()
    try:
        srv = start_ringmaild(
            relay_networks=["127.0.0.0/8"],
            outbound={"connect_timeout_s": 2, "retry_first_s": 3600, "retry_max_s": 3600,
                      "route": [{"domain": "far.test", "next_hop": f"[127.0.0.1]:{sink.port}"}]},
            extra_toml=f'[admin]\nsocket = "{tmp_path / "admin.sock"}"\n' + VERP)
        with smtplib.SMTP("127.0.0.1", srv.port, timeout=30) as s:
            s.sendmail("news@src.example", ["carol@far.test"],
                       b"Subject: hi\r\nFrom: news@src.example\r\n\r\nhello\r\n")
        sink.wait(1)
        dump = sink.files()[0].read_text(errors="replace")
        verp = re.search(r"X-Mail-Args: <(" + VERP_RE + ")>", dump)
        assert verp, dump
        address = verp.group(1)
        qid = wait_event(srv, "carol@far.test", "Delivery")["queue_id"]
        assert verp.group(2) == qid
        forged = address[:-14] + ("a" if address[-14] != "a" else "b") + address[-13:]
        with smtplib.SMTP("127.0.0.1", srv.port, timeout=30) as s:
            s.sendmail("", [forged], b"Subject: failure\r\n\r\n550 5.1.1 no such user\r\n")
            # Not a DSN: the reply is found in the text.
            s.sendmail("", [address],
                       b"Subject: Undeliverable: hi\r\nFrom: MAILER-DAEMON@far.test\r\n\r\n"
                       b"Your message could not be delivered.\r\n\r\n"
                       b"  carol@far.test: host mx.far.test said:\r\n"
                       b"    550 5.1.1 The email account that you tried to reach does not "
                       b"exist.\r\n")
        wait_log(srv, f"to a VERP address for {qid}, but no recipient of it has that hash")
        oob = wait_event(srv, "carol@far.test", "OOB")
        assert oob["queue_id"] == qid and oob["sender"] == "news@src.example", oob
        assert oob["response"] == {"code": 550, "enhanced_code": "5.1.1",
                                   "text": "The email account that you tried to reach does "
                                           "not exist."}, oob
        assert oob["bounce_classification"] == "InvalidRecipient", oob
        wait_log(srv, "to=<carol@far.test> suppressed after a bounce (InvalidRecipient)")
        assert len([e for e in of(srv, "carol@far.test") if e["type"] == "OOB"]) == 1
    finally:
        sink.stop()
