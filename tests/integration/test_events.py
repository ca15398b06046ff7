"""The event log (issue 25, docs/events.md): one JSON line per event in
<data_dir>/events/ev-*.jsonl. For each recipient the events and their
order: delivered, deferred then delivered, bounced, expired, bounced by
the administrator, delivered locally; metadata from injection in each of
its recipient's events; `[events] enabled = false` writes none."""
import json
import re
import socket
import subprocess
import time

from conftest import free_port
from test_inject import INJECT_TOKEN, injector, post, request  # noqa: F401
from test_outbound import attempt, certs, dns, port, relay, sink, submit, wait_log  # noqa: F401
from test_outbound import alice_relay
from test_queue import all_messages, api, send, summary, wait_for
from test_queue import relay as queue_relay


def events(server):
    """Every event of the server's log, oldest segment first."""
    out = []
    d = server.data_dir / "events"
    if not d.is_dir():
        return out
    for f in sorted(d.glob("ev-*.jsonl")):
        for line in f.read_text().splitlines():
            out.append(json.loads(line))
    return out


def of(server, rcpt):
    return [e for e in events(server) if e["recipient"] == rcpt]


def wait_events(server, rcpt, last_type, timeout=40):
    """The recipient's events once the last one is `last_type`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ev = of(server, rcpt)
        if ev and ev[-1]["type"] == last_type:
            return ev
        time.sleep(0.1)
    raise AssertionError(f"no {last_type} event for {rcpt}: {of(server, rcpt)}")


def wait_event(server, rcpt, etype, timeout=40):
    """The recipient's last event of type `etype`, once there is one (in
    whichever shard's segment: they sort by the segment's start, not by
    the event's time)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = [e for e in of(server, rcpt) if e["type"] == etype]
        if found:
            return found[-1]
        time.sleep(0.1)
    raise AssertionError(f"no {etype} event for {rcpt}: {of(server, rcpt)}")


def check_common(ev, sender, qid=None):
    ids = [e["id"] for e in ev]
    assert len(set(ids)) == len(ids), ids
    for e in ev:
        assert e["sender"] == sender, e
        assert isinstance(e["timestamp"], int) and e["timestamp"] >= e["received"], e
        if qid:
            assert e["queue_id"] == qid, e


def test_delivery(relay, port):
    s = sink("127.0.0.2", port)
    try:
        submit(relay, ["x@peer.test"])
        ev = wait_events(relay, "x@peer.test", "Delivery")
    finally:
        s.kill()
        s.wait()
    assert [e["type"] for e in ev] == ["Reception", "Delivery"], ev
    check_common(ev, "alice@example.test", ev[0]["queue_id"])
    rec, dlv = ev
    assert rec["protocol"] == "ESMTPSA" and rec["client"] == "127.0.0.1", rec
    assert rec["auth_user"] == "alice@example.test" and rec["size"] > 0, rec
    assert dlv["response"]["code"] == 250, dlv
    assert dlv["peer"] == {"name": "mx1.peer.test", "address": "127.0.0.2"}, dlv
    assert dlv["attempt"] == 1 and dlv["delay_s"] >= 0, dlv


def test_deferred_then_delivered(relay, port):
    s = sink("127.0.0.5", port, "-r", "RCPT", "-b",
             "452 4.2.2 The email account that you tried to reach is over quota")
    try:
        submit(relay, ["later@soft.test"])
        wait_events(relay, "later@soft.test", "TransientFailure")
    finally:
        s.kill()
        s.wait()
    ok = sink("127.0.0.5", port)
    try:
        ev = wait_events(relay, "later@soft.test", "Delivery")
    finally:
        ok.kill()
        ok.wait()
    types = [e["type"] for e in ev]
    assert types[0] == "Reception" and types[-1] == "Delivery", types
    assert set(types[1:-1]) == {"TransientFailure"}, types
    tf = ev[1]
    assert tf["response"] == {"code": 452, "enhanced_code": "4.2.2", "text":
                              "The email account that you tried to reach is over quota"}, tf
    assert tf["attempt"] == 1 and tf["bounce_classification"] == "QuotaIssues", tf
    assert "bounce_classification" not in ev[-1], ev[-1]
    assert ev[-1]["attempt"] == len(types) - 1, ev
    check_common(ev, "alice@example.test", ev[0]["queue_id"])


def test_hard_bounce_and_the_dsn(relay, port):
    s = sink("127.0.0.4", port, "-f", "RCPT", "-B",
             "550 5.1.1 The email account that you tried to reach does not exist")
    try:
        submit(relay, ["nobody@reject.test"])
        ev = wait_events(relay, "nobody@reject.test", "Bounce")
        relay.wait_for_mail("example.test", "alice", timeout=30)
    finally:
        s.kill()
        s.wait()
    assert [e["type"] for e in ev] == ["Reception", "Bounce"], ev
    assert ev[1]["response"]["code"] == 550, ev[1]
    assert ev[1]["bounce_classification"] == "InvalidRecipient", ev[1]
    # The DSN to alice: received from <> and delivered to her Maildir.
    dsn = wait_events(relay, "alice@example.test", "Delivery")
    assert [e["type"] for e in dsn] == ["Reception", "Delivery"], dsn
    assert dsn[0]["sender"] == "" and dsn[0]["protocol"] == "DSN", dsn
    assert dsn[1]["peer"]["name"] == "maildir", dsn


def test_expiration(start_ringmaild, certs, tmp_path, dns, port):  # noqa: F811
    relay = alice_relay(start_ringmaild, certs, tmp_path, dns_servers=f"127.0.0.1:{dns}", port=port,
                        retry_first_s=1, retry_max_s=1, expire_s=3, connect_timeout_s=1)
    submit(relay, ["gone@soft.test"])  # nothing listens on mx.soft.test
    ev = wait_events(relay, "gone@soft.test", "Expiration")
    types = [e["type"] for e in ev]
    assert types[0] == "Reception" and "TransientFailure" in types, types
    assert ev[-1]["delay_s"] >= 3, ev[-1]
    assert ev[-1]["bounce_classification"] == "MessageExpired", ev[-1]


def test_admin_bounce(start_ringmaild, tmp_path):
    srv, sock = queue_relay(start_ringmaild, tmp_path, free_port(socket.AF_INET, "127.0.0.1"))
    send(srv, "alice@example.test", ["x@far.test"])
    wait_for(lambda: summary(sock)["recipients"] == 1, "1 recipient queued")
    ids = [m["id"] for m in all_messages(sock)]
    st, j = api(sock, "POST", "/api/queue/bounce", {"ids": ids})
    assert st == 200, j
    ev = wait_events(srv, "x@far.test", "AdminBounce")
    types = [e["type"] for e in ev]
    assert types[0] == "Reception" and types[-1] == "AdminBounce", types
    assert "administrator" in ev[-1]["response"]["text"], ev[-1]


def test_injection_metadata_is_in_every_event(start_ringmaild, tmp_path):
    port = free_port(socket.AF_INET, "127.0.0.1")
    s = sink("127.0.0.1", port)
    try:
        srv = injector(start_ringmaild, tmp_path, port)
        meta = {"campaign": "welcome", "user_id": 42}
        st, _, j = post(srv, request([{"email": "u@far.test", "substitutions": {"name": "U"},
                                       "metadata": meta}]))
        assert st == 200 and j["success_count"] == 1, j
        ev = wait_events(srv, "u@far.test", "Delivery")
    finally:
        s.kill()
        s.wait()
    assert [e["type"] for e in ev] == ["Reception", "Delivery"], ev
    assert ev[0]["protocol"] == "HTTP" and ev[0]["queue_id"] == j["ids"][0], ev[0]
    for e in ev:
        assert e["metadata"] == meta, e


def test_local_delivery_and_a_bad_mailbox(start_ringmaild):
    from test_metrics import scrape, value, wait_until
    srv = start_ringmaild(http=True)
    send(srv, "x@src.example", ["bob@example.test"])
    ev = wait_events(srv, "bob@example.test", "Delivery")
    assert [e["type"] for e in ev] == ["Reception", "Delivery"], ev
    assert ev[0]["protocol"] == "ESMTP" and ev[1]["peer"]["name"] == "maildir", ev
    wait_until(lambda: value(scrape("127.0.0.1", srv.http_port),
                             "ringmail_events_written_total") == len(events(srv)),
               "ringmail_events_written_total to count the log's lines")
    assert value(scrape("127.0.0.1", srv.http_port), "ringmail_events_failed_total") == 0


def test_disabled_writes_no_events(start_ringmaild):
    srv = start_ringmaild(extra_toml="[events]\nenabled = false\n")
    send(srv, "x@src.example", ["bob@example.test"])
    wait_log(srv, re.compile(r"delivered rcpts=1 maildir"))
    assert not (srv.data_dir / "events").exists()


def test_events_tail(start_ringmaild):
    """`ringmail events tail`: the last events as lines, by type, as JSON,
    and --follow printing the ones that come after it started."""
    from test_tools import RINGMAIL, tool
    srv = start_ringmaild()
    cfg = ["--config", str(srv.config_path)]
    send(srv, "x@src.example", ["bob@example.test"], subject="one")
    wait_events(srv, "bob@example.test", "Delivery")
    r = tool("events", "tail", *cfg)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert len(lines) == 2, r.stdout
    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ Reception \w+ <x@src.example> -> "
                    r"<bob@example.test>$", lines[0]), lines
    assert " Delivery " in lines[1] and "(maildir)" in lines[1], lines
    r = tool("events", "tail", "--type", "Delivery", "--json", *cfg)
    got = [json.loads(x) for x in r.stdout.splitlines()]
    assert [e["type"] for e in got] == ["Delivery"], r.stdout
    r = tool("events", "tail", "--type", "Nonsense", *cfg)
    assert r.returncode == 64 and "unknown type 'Nonsense'" in r.stderr, r.stderr
    r = tool("events", "tail", "-n", "1", *cfg)
    assert len(r.stdout.splitlines()) == 1 and " Delivery " in r.stdout, r.stdout
    follow = subprocess.Popen([RINGMAIL, "events", "tail", "-n", "0", "--follow", "--type",
                               "Reception", *cfg], stdout=subprocess.PIPE, text=True)
    try:
        time.sleep(0.5)
        send(srv, "y@src.example", ["bob@example.test"], subject="two")
        line = follow.stdout.readline()
    finally:
        follow.kill()
        follow.wait()
    assert " Reception " in line and "<y@src.example>" in line, line


def test_metadata_from_named_headers_of_smtp_mail(start_ringmaild):
    """[events] metadata_headers: the named fields of mail received by SMTP
    are its metadata, in every event and log line of its recipients."""
    p = free_port(socket.AF_INET, "127.0.0.2")
    s = sink("127.0.0.2", p)
    try:
        srv = start_ringmaild(
            relay_networks=["127.0.0.0/8"],
            outbound={"connect_timeout_s": 2, "retry_first_s": 3600, "retry_max_s": 3600,
                      "route": [{"domain": "far.test", "next_hop": f"[127.0.0.2]:{p}"}]},
            extra_toml='[events]\nmetadata_headers = ["X-Campaign", "x-customer", "X-None"]\n')
        import smtplib
        with smtplib.SMTP("127.0.0.1", srv.port, timeout=30) as c:
            c.sendmail("app@src.example", ["ann@far.test"],
                       "Subject: hi\r\nX-Campaign: winter\r\n\t2026 \u00e9t\u00e9\r\n"
                       "X-Customer: 42\r\nX-Campaign: second\r\n\r\nhello\r\n".encode())
            c.sendmail("app@src.example", ["ben@far.test"], b"Subject: none\r\n\r\nhello\r\n")
        ev = wait_events(srv, "ann@far.test", "Delivery")
        meta = {"X-Campaign": "winter 2026 \u00e9t\u00e9", "x-customer": "42"}
        assert [e["metadata"] for e in ev] == [meta, meta], ev
        wait_log(srv, 'to=<ann@far.test> meta={"X-Campaign":"winter 2026 \\u00e9t\\u00e9",'
                      '"x-customer":"42"}')
        assert all("metadata" not in e for e in wait_events(srv, "ben@far.test", "Delivery"))
    finally:
        s.kill()
        s.wait()
