"""Queue control through the admin API (issue 22, docs/admin-api.md): a
real ringmaild relaying to smtp-sink receivers on loopback addresses
(outbound routes to [127.0.0.x]:port, so no DNS is needed), with the
destination closed at first. Summary and listing against 10,000 queued
messages, suspend/resume, flush, hold across kill -9, delete, bounce (the
DSN parsed by Python's email package) and the refusals (a user outside the socket's group:
test_admin.py)."""
import email
import http.client
import json
import os
import smtplib
import socket
import subprocess
import tempfile
import time
from email import policy

import pytest
from conftest import free_port
from test_admin import TOKENS, UnixHTTPConnection
from test_blaster import BLASTER
from test_http import scrape
from test_outbound import sink
from test_sendmail import SENDMAIL
from test_tools import tool

FAR, NEAR = "127.0.0.7", "127.0.0.8"


def api(sock, method, path, body=None):
    conn = UnixHTTPConnection(str(sock))
    conn.timeout = 60
    data = None if body is None else json.dumps(body)
    conn.request(method, path, body=data,
                 headers={"Content-Type": "application/json"} if data else {})
    r = conn.getresponse()
    text = r.read().decode()
    conn.close()
    return r.status, json.loads(text)


def relay(start_ringmaild, tmp_path, port, retry_first_s=3600, **kw):
    """Port-25 relay for 127.0.0.0/8 clients; far.test and near.test go to
    [127.0.0.7]:port and [127.0.0.8]:port."""
    sock = tmp_path / "admin.sock"
    routes = [{"domain": "far.test", "next_hop": f"[{FAR}]:{port}"},
              {"domain": "near.test", "next_hop": f"[{NEAR}]:{port}"}]
    srv = start_ringmaild(relay_networks=["127.0.0.0/8"],
                          outbound={"retry_first_s": retry_first_s, "retry_max_s": retry_first_s,
                                    "connect_timeout_s": 2, "route": routes},
                          extra_toml=f'[admin]\nsocket = "{sock}"\n' + TOKENS, **kw)
    return srv, sock


def send(srv, sender, rcpts, subject="queued"):
    with smtplib.SMTP("127.0.0.1", srv.port, timeout=30) as s:
        s.sendmail(sender, rcpts,
                   f"Subject: {subject}\r\nFrom: {sender}\r\n\r\nhello\r\n".encode())


def wait_for(fn, what, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = fn()
        if v:
            return v
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def summary(sock):
    st, j = api(sock, "GET", "/api/queue")
    assert st == 200, j
    return j


def domain_row(s, d):
    return next((x for x in s["domains"] if x["domain"] == d), None)


def all_messages(sock, query="", limit=1000):
    out, cursor = [], None
    while True:
        q = f"limit={limit}" + (f"&cursor={cursor}" if cursor else "") + (f"&{query}" if query else "")
        st, j = api(sock, "GET", "/api/queue/messages?" + q)
        assert st == 200, j
        out += j["messages"]
        cursor = j["next_cursor"]
        if cursor is None:
            return out


def dump_sink(ip, port, tmp_path, name):
    # Somewhere smtp-sink's unprivileged user can write.
    d = tempfile.mkdtemp(prefix=name)
    os.chmod(d, 0o777)
    return sink(ip, port, "-d", f"{d}/%M."), d


def count(d):
    return len(os.listdir(d))


def test_ten_thousand_messages_summary_paging_suspend_flush(start_ringmaild, tmp_path):
    port = free_port(socket.AF_INET, "127.0.0.1")
    srv, sock = relay(start_ringmaild, tmp_path, port)
    r = subprocess.run([BLASTER, "--json", "--target", f"127.0.0.1:{srv.port}", "--messages", "10000",
                        "--connections", "10", "--per-connection", "1000", "--size", "600",
                        "--from", "app{c}@src.test", "--to", "user{n}@far.test",
                        "--domain", "far.test:9,near.test:1"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["accepted"] == 10000, r.stdout
    # Every first attempt is refused (nothing listens yet): then they wait an hour.
    s = wait_for(lambda: (lambda s: s if s["messages"] == 10000 and all(
        x["last_error"] for x in s["domains"]) else None)(summary(sock)), "10,000 deferred", 120)
    assert s["recipients"] == 10000
    assert domain_row(s, "far.test")["recipients"] == 9000
    assert domain_row(s, "near.test")["recipients"] == 1000
    assert domain_row(s, "far.test")["ages"][0] == 9000  # all younger than 5 minutes
    assert domain_row(s, "far.test")["suspended"] is None
    assert s["bytes"] >= 10000 * 600
    # Paging returns each message exactly once, in id order.
    msgs = all_messages(sock, limit=700)
    ids = [m["id"] for m in msgs]
    assert len(ids) == 10000 and len(set(ids)) == 10000 and ids == sorted(ids)
    assert {m["recipients"][0]["state"] for m in msgs} == {"waiting"}
    near = all_messages(sock, "domain=near.test")
    assert len(near) == 1000
    app3 = sum(1 for m in msgs if m["sender"] == "app3@src.test")
    assert app3 > 0 and len(all_messages(sock, "sender=app3@SRC.TEST")) == app3
    # far.test is suspended; both receivers come up; a flush delivers near.test only.
    st, j = api(sock, "POST", "/api/destinations/far.test/suspend",
                {"duration_s": 3600, "reason": "their abuse desk asked"})
    assert st == 200 and j["until_unix"] > time.time() + 3500, j
    s = summary(sock)
    assert s["suspended"][0]["domain"] == "far.test"
    assert domain_row(s, "far.test")["suspended"]["reason"] == "their abuse desk asked"
    far_sink, far_dir = dump_sink(FAR, port, tmp_path, "far")
    near_sink, near_dir = dump_sink(NEAR, port, tmp_path, "near")
    try:
        st, j = api(sock, "POST", "/api/queue/flush", {"all": True})
        assert st == 200 and j["messages"] == 10000, j
        wait_for(lambda: count(near_dir) == 1000, "near.test's 1,000", 120)
        wait_for(lambda: summary(sock)["messages"] == 9000, "the queue at 9,000")
        time.sleep(2)
        assert count(far_dir) == 0  # suspended: not one connection
        # Resume: far.test's waiting mail goes at once, each message once.
        st, j = api(sock, "POST", "/api/destinations/far.test/resume")
        assert st == 200 and j["resumed"] is True, j
        wait_for(lambda: summary(sock)["messages"] == 0, "an empty queue", 180)
        time.sleep(1)
        assert count(far_dir) == 9000
        assert count(near_dir) == 1000
    finally:
        far_sink.kill()
        near_sink.kill()
    with open(srv.log_path) as f:
        log = f.read()
    assert "destination far.test suspended for 3600s: their abuse desk asked" in log


def test_suspension_survives_a_restart(start_ringmaild, tmp_path):
    port = free_port(socket.AF_INET, "127.0.0.1")
    srv, sock = relay(start_ringmaild, tmp_path, port)
    st, j = api(sock, "POST", "/api/destinations/Far.Test/suspend", {"duration_s": 600})
    assert st == 200 and j["domain"] == "far.test", j
    srv.kill9()
    srv.start()
    s = summary(sock)
    assert [x["domain"] for x in s["suspended"]] == ["far.test"]
    st, j = api(sock, "POST", "/api/destinations/far.test/resume")
    assert j == {"domain": "far.test", "resumed": True}
    st, j = api(sock, "POST", "/api/destinations/far.test/resume")
    assert j == {"domain": "far.test", "resumed": False}


def test_hold_survives_kill9_and_release_delivers(start_ringmaild, tmp_path):
    port = free_port(socket.AF_INET, "127.0.0.1")
    srv, sock = relay(start_ringmaild, tmp_path, port, retry_first_s=2)
    for i in range(5):
        send(srv, "held@src.test", [f"h{i}@far.test"])
    send(srv, "other@src.test", ["o@far.test"])
    wait_for(lambda: summary(sock)["messages"] == 6, "6 queued")
    st, j = api(sock, "POST", "/api/queue/hold", {"sender": "held@src.test"})
    assert st == 200 and j == {"messages": 5}, j
    srv.kill9()  # the hold lines were fsynced before the answer
    listing = cli(srv, "spool-list").stdout
    assert listing.count("HELD") == 5 and "o@far.test" in listing, listing
    far_sink, far_dir = dump_sink(FAR, port, tmp_path, "far")
    try:
        srv.start()
        wait_for(lambda: count(far_dir) == 1, "the message not held")
        held = all_messages(sock, "state=held")
        assert len(held) == 5 and all(m["held"] for m in held)
        assert {m["recipients"][0]["state"] for m in held} == {"held"}
        st, j = api(sock, "POST", "/api/queue/flush", {"all": True})
        time.sleep(3)
        assert count(far_dir) == 1  # held mail is not flushed
        st, j = api(sock, "POST", "/api/queue/release", {"ids": [held[0]["id"], "0NOSUCHID0000"]})
        assert st == 200 and j == {"messages": 1, "unknown": ["0NOSUCHID0000"]}, j
        wait_for(lambda: count(far_dir) == 2, "the released message")
        st, j = api(sock, "POST", "/api/queue/release", {"all": True})
        assert j == {"messages": 4}, j
        wait_for(lambda: count(far_dir) == 6, "every message")
        wait_for(lambda: summary(sock)["messages"] == 0, "an empty queue")
    finally:
        far_sink.kill()


def test_delete_by_domain_takes_only_that_domains_recipients(start_ringmaild, tmp_path):
    port = free_port(socket.AF_INET, "127.0.0.1")
    srv, sock = relay(start_ringmaild, tmp_path, port, http=True)
    send(srv, "app@src.test", ["a@far.test", "b@near.test"])
    send(srv, "app@src.test", ["c@near.test"])
    send(srv, "app@src.test", ["d@far.test"])
    wait_for(lambda: summary(sock)["recipients"] == 4, "4 recipients queued")
    st, j = api(sock, "POST", "/api/queue/delete", {"domain": "near.test"})
    assert st == 200 and j == {"messages": 2, "recipients": 2}, j
    s = summary(sock)
    assert s["messages"] == 2 and s["recipients"] == 2
    assert domain_row(s, "near.test") is None
    both = [m for m in all_messages(sock) if len(m["recipients"]) == 2][0]
    assert {r["address"]: r["state"] for r in both["recipients"]} == {
        "a@far.test": "waiting", "b@near.test": "deleted"}
    finished = scrape(srv)["ringmail_outbound_recipients_total"]
    assert {r: sum(v for k, v in finished.items() if k.endswith("result=" + r))
            for r in ("delivered", "bounced", "deleted")} == {
        "delivered": 0, "bounced": 0, "deleted": 2}
    srv.kill9()
    srv.start()  # the deletions were durable
    s = summary(sock)
    assert s["recipients"] == 2 and domain_row(s, "near.test") is None, s
    st, j = api(sock, "POST", "/api/queue/delete", {"all": True})
    assert j == {"messages": 2, "recipients": 2}
    assert summary(sock)["messages"] == 0


def test_bounce_sends_each_sender_a_dsn(start_ringmaild, tmp_path):
    port = free_port(socket.AF_INET, "127.0.0.1")
    srv, sock = relay(start_ringmaild, tmp_path, port)
    send(srv, "alice@example.test", ["x@far.test"], subject="for x")
    send(srv, "bob@example.test", ["y@far.test", "z@near.test"], subject="for y and z")
    wait_for(lambda: summary(sock)["recipients"] == 3, "3 recipients queued")
    ids = [m["id"] for m in all_messages(sock)]
    st, j = api(sock, "POST", "/api/queue/bounce", {"ids": ids})
    assert st == 200 and j == {"messages": 2, "recipients": 3}, j
    for user in ("alice", "bob"):
        files = srv.wait_for_mail("example.test", user, 1)
        assert len(files) == 1
        msg = email.message_from_bytes(files[0].read_bytes(), policy=policy.default)
        assert msg.get_content_type() == "multipart/report"
        assert msg.get_param("report-type") == "delivery-status"
        status = [p for p in msg.walk() if p.get_content_type() == "message/delivery-status"][0]
        text = status.as_string()
        assert "Action: failed" in text and "administrator" in text
    wait_for(lambda: summary(sock)["messages"] == 0, "an empty queue")
    assert "bounced by the administrator" in srv.log_path.read_text()


def test_show_and_bad_requests(start_ringmaild, tmp_path):
    port = free_port(socket.AF_INET, "127.0.0.1")
    srv, sock = relay(start_ringmaild, tmp_path, port, http=True)
    send(srv, "app@src.test", ["a@far.test"], subject="show me")
    wait_for(lambda: summary(sock)["messages"] == 1, "1 queued")
    mid = all_messages(sock)[0]["id"]
    st, j = api(sock, "GET", f"/api/queue/messages/{mid}")
    assert st == 200 and j["id"] == mid and "Subject: show me" in j["headers"], j
    assert "content" not in j and j["sender"] == "app@src.test"
    st, j = api(sock, "GET", f"/api/queue/messages/{mid}?body=1")
    assert j["content"].endswith("hello\r\n")
    assert api(sock, "GET", "/api/queue/messages/0NOSUCHID0000") == (
        404, {"error": "no message 0NOSUCHID0000 in the queue"})
    st, j = api(sock, "POST", "/api/queue/hold", {"ids": ["0NOSUCHID0000"]})
    assert st == 404 and "0NOSUCHID0000" in j["error"]
    assert api(sock, "POST", "/api/queue/hold", {"idz": []}) == (
        400, {"error": "unknown field \"idz\" (ids, domain, sender, all)"})
    st, j = api(sock, "POST", "/api/queue/delete", {"domain": 5})
    assert st == 400 and j["error"].startswith("domain:"), j
    st, j = api(sock, "POST", "/api/queue/delete", None)
    assert st == 400 and "JSON body" in j["error"]
    st, j = api(sock, "POST", "/api/destinations/far.test/suspend", {"duration_s": "1h"})
    assert st == 400 and j["error"].startswith("duration_s:"), j
    st, j = api(sock, "GET", "/api/queue/messages?limit=0")
    assert st == 400 and j["error"].startswith("limit:"), j
    st, j = api(sock, "GET", "/api/queue/messages?state=lost")
    assert st == 400 and j["error"].startswith("state:"), j
    assert api(sock, "GET", "/api/queue/hold")[0] == 405
    # Over TCP a wrong token gets 401, and nothing changes.
    conn = http.client.HTTPConnection("127.0.0.1", srv.http_port, timeout=10)
    conn.request("POST", "/api/queue/delete", body=json.dumps({"all": True}),
                 headers={"Authorization": "Bearer nope"})
    r = conn.getresponse()
    assert r.status == 401, r.read()
    conn.close()
    assert summary(sock)["messages"] == 1


def test_suspensions_over_tcp_are_kept_by_one_shard(start_ringmaild, tmp_path):
    """Regression: a request on a TCP listener is served by any shard, and
    each changed its own copy of the set and wrote the file, so two
    changes at once through different shards could lose one."""
    port = free_port(socket.AF_INET, "127.0.0.1")
    srv, sock = relay(start_ringmaild, tmp_path, port, http=True)
    for i in range(8):
        conn = http.client.HTTPConnection("127.0.0.1", srv.http_port, timeout=10)
        conn.request("POST", f"/api/destinations/s{i}.test/suspend",
                     body=json.dumps({"duration_s": 600}), headers={"Authorization": "Bearer abc"})
        r = conn.getresponse()
        assert r.status == 200, r.read()
        conn.close()
    assert sorted(x["domain"] for x in summary(sock)["suspended"]) == [f"s{i}.test" for i in range(8)]



def cli(srv, *args):
    return tool("--config", str(srv.config_path), *args)


def test_ringmail_queue_and_mailq(start_ringmaild, tmp_path):
    port = free_port(socket.AF_INET, "127.0.0.1")
    srv, sock = relay(start_ringmaild, tmp_path, port)
    send(srv, "app@src.test", ["a@far.test", "b@near.test"], subject="one")
    send(srv, "ops@src.test", ["c@far.test"], subject="two")
    wait_for(lambda: summary(sock)["recipients"] == 3 and all(
        d["last_error"] for d in summary(sock)["domains"]), "3 recipients deferred")
    r = cli(srv, "queue", "summary")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    total = next(line for line in lines if line.split()[:1] == ["TOTAL"])
    assert total.split()[1] == "3", r.stdout
    assert any(line.split()[:2] == ["far.test", "2"] for line in lines), r.stdout
    j = json.loads(cli(srv, "queue", "summary", "--json").stdout)
    assert j["recipients"] == 3
    listed = json.loads(cli(srv, "queue", "list", "--json").stdout)["messages"]
    assert len(listed) == 2
    ids = {m["recipients"][0]["address"]: m["id"] for m in listed}
    r = cli(srv, "queue", "list", "--domain", "near.test")
    assert r.returncode == 0 and ids["a@far.test"] in r.stdout and ids["c@far.test"] not in r.stdout
    r = cli(srv, "queue", "show", ids["c@far.test"])
    assert r.returncode == 0 and "Subject: two" in r.stdout, r.stdout
    r = cli(srv, "queue", "hold", ids["c@far.test"])
    assert r.returncode == 0 and "held 1 message" in r.stdout, (r.stdout, r.stderr)
    # mailq: Postfix's postqueue -p layout, '!' after a held id.
    mq = subprocess.run([SENDMAIL, "-C", str(srv.config_path), "-bp"], capture_output=True,
                        text=True, timeout=30)
    assert mq.returncode == 0, mq.stderr
    out = mq.stdout
    assert out.startswith("-Queue ID-") and f"{ids['c@far.test']}!" in out, out
    assert "c@far.test" in out and "ops@src.test" in out
    assert out.rstrip().endswith("in 2 Requests."), out
    r = cli(srv, "queue", "delete")
    assert r.returncode == 64 and "--all" in r.stderr, r.stderr
    r = cli(srv, "queue", "delete", "--domain", "near.test")
    assert r.returncode == 0 and "deleted 1 recipient" in r.stdout, r.stdout
    r = cli(srv, "queue", "suspend", "far.test", "--for", "2h", "--reason", "maintenance")
    assert r.returncode == 0, r.stderr
    assert "far.test" in cli(srv, "queue", "summary").stdout
    r = cli(srv, "queue", "resume", "far.test")
    assert r.returncode == 0, r.stderr
    r = cli(srv, "queue", "show", "0NOSUCHID0000")
    assert r.returncode == 1 and "0NOSUCHID0000" in r.stderr
    mq = subprocess.run([SENDMAIL, "-C", str(srv.config_path), "-q"], capture_output=True,
                        text=True, timeout=30)
    assert mq.returncode == 0, mq.stderr
    srv.stop()
    r = cli(srv, "queue", "summary")
    assert r.returncode == 75 and "not running" in r.stderr and len(r.stderr.splitlines()) == 1


def test_a_suspended_utf8_domain(start_ringmaild, tmp_path):
    port = free_port(socket.AF_INET, "127.0.0.1")
    srv, sock = relay(start_ringmaild, tmp_path, port)
    st, j = api(sock, "POST", "/api/destinations/B%C3%BCcher.test/suspend", {"duration_s": 60})
    assert st == 200 and j["domain"] == "b\u00fccher.test", j
    st, j = api(sock, "POST", "/api/destinations/bad%2/suspend", {"duration_s": 60})
    assert st == 400 and "escape" in j["error"], j


def test_bytes_that_are_not_utf8_do_not_crash_the_admin_api(start_ringmaild, tmp_path):
    """A path, or a queued message's 8-bit header, that is not UTF-8 used
    to make nlohmann-json throw on the shard's thread: the daemon died."""
    port = free_port(socket.AF_INET, "127.0.0.1")
    srv, sock = relay(start_ringmaild, tmp_path, port)
    with smtplib.SMTP("127.0.0.1", srv.port, timeout=30) as s:
        s.sendmail("a@src.test", ["bob@far.test"],
                   b"Subject: caf\xe9 (Latin-1)\r\nFrom: a@src.test\r\n\r\nhello\r\n")
    [m] = wait_for(lambda: all_messages(sock), "the message queued")
    st, j = api(sock, "GET", f"/api/queue/messages/{m['id']}")
    assert st == 200 and "caf\ufffd (Latin-1)" in j["headers"], j
    raw = socket.socket(socket.AF_UNIX)
    raw.settimeout(10)
    raw.connect(str(sock))
    raw.sendall(b"GET /api/\xff HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    data = b""
    while chunk := raw.recv(4096):
        data += chunk
    raw.close()
    assert data.startswith(b"HTTP/1.1 404 "), data
    assert "\ufffd" in json.loads(data.partition(b"\r\n\r\n")[2])["error"]
    assert srv.alive()
    assert api(sock, "GET", "/api/queue")[0] == 200
