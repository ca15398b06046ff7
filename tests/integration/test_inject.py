"""The HTTP injection API, POST /api/inject/v1 (issue 24, docs/inject.md),
against a real ringmaild whose outbound route leads to Postfix's
smtp-sink, which dumps every message it takes into a file: structured
content built into MIME and DKIM-signed (checked with Python's email
package and dkimpy), substitutions per recipient, metadata in the spool,
the log and the queue API, every 4xx/5xx answer with its exact body, a
30 MB body refused before it is read, a full disk that stores nothing,
and 1,000 recipients end to end."""
import base64
import email
import email.policy
import http.client
import json
import os
import re
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
from conftest import free_port, needs_root
from test_admin import TOKENS
from test_auth import add_user
from test_dkim import dns_records, ok, verify_all
from test_outbound import sink as start_sink
from test_outbound import wait_log

# TOKENS: "hello" may inject as example.test; "abc" is an admin token.
INJECT_TOKEN = "hello"
ADMIN_TOKEN = "abc"
PATH = "/api/inject/v1"


class DumpSink:
    """smtp-sink writing each message it takes to its own file."""

    def __init__(self):
        # Outside pytest's (root-only) tree: smtp-sink -u postfix writes here.
        self.dir = Path(tempfile.mkdtemp(prefix="ringmail-sink-"))
        os.chmod(self.dir, 0o777)
        self.port = free_port(socket.AF_INET, "127.0.0.1")
        self.p = start_sink("127.0.0.1", self.port, "-d", f"{self.dir}/%M.")

    def files(self):
        return sorted(p for p in self.dir.rglob("*") if p.is_file())

    def wait(self, n, timeout=60):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if len(self.files()) >= n:
                time.sleep(0.3)  # the last file is complete
                return self.files()
            time.sleep(0.1)
        raise AssertionError(f"{len(self.files())} of {n} messages reached the sink")

    def messages(self):
        """Each dumped transaction's message (smtp-sink writes the envelope
        lines first, then the data)."""
        out = []
        for f in self.files():
            data = f.read_bytes()
            out.append(data[data.index(b"\n", data.index(b"RCPT TO:")) + 1:]
                       if b"RCPT TO:" in data else data)
        return out

    def stop(self):
        self.p.kill()
        self.p.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def sink():
    s = DumpSink()
    yield s
    s.stop()


def injector(start_ringmaild, tmp_path, next_hop_port, tokens=TOKENS, **kw):
    """ringmaild with an http listener, the tokens above and every remote
    domain routed to 127.0.0.1:next_hop_port."""
    outbound = {"connect_timeout_s": 2, "retry_first_s": 3600, "retry_max_s": 3600,
                "route": [{"domain": "*", "next_hop": f"[127.0.0.1]:{next_hop_port}"}]}
    outbound.update(kw.pop("outbound", {}))
    sock = tmp_path / "admin.sock"
    return start_ringmaild(http=True, outbound=outbound,
                           extra_toml=f'[admin]\nsocket = "{sock}"\n' + tokens + kw.pop("toml", ""),
                           **kw)


def post(srv, body, token=INJECT_TOKEN, ctype="application/json", method="POST", headers=None):
    """(status, headers, parsed JSON body)."""
    conn = http.client.HTTPConnection("127.0.0.1", srv.http_port, timeout=60)
    h = {"Content-Type": ctype} if ctype else {}
    if token:
        h["Authorization"] = f"Bearer {token}"
    h.update(headers or {})
    data = body if isinstance(body, (bytes, str)) else json.dumps(body)
    conn.request(method, PATH, body=data, headers=h)
    r = conn.getresponse()
    text = r.read().decode()
    conn.close()
    assert r.getheader("Content-Type") == "application/json", text
    return r.status, r, json.loads(text)


def request(recipients, content=None, **extra):
    body = {"envelope_sender": "bounces@example.test",
            "content": content or {"from": {"email": "news@example.test", "name": "News"},
                                   "subject": "Hello {{name}}",
                                   "text_body": "Dear {{name}}, your code is {{code}}.\n"},
            "recipients": recipients}
    body.update(extra)
    return body


PDF = b"%PDF-1.4\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF\n" + bytes(range(256))
PNG = b"\x89PNG\r\n\x1a\n" + bytes(200)


def test_structured_content_is_built_signed_and_delivered(start_ringmaild, tmp_path, sink):
    domains = tmp_path / "domains"
    add_user(domains, "alice@example.test")
    ok("dkim-keygen", "example.test", "--selector", "rsa1", "--domains-dir", str(domains))
    ok("dkim-keygen", "example.test", "--selector", "ed1", "--algo", "ed25519",
       "--domains-dir", str(domains))
    srv = injector(start_ringmaild, tmp_path, sink.port, domains_dir=domains)
    content = {
        "from": {"email": "news@example.test", "name": "Zoë Café"},
        "reply_to": {"email": "help@example.test"},
        "subject": "Grüße, {{name}}",
        "text_body": "Hallo {{name}}, Ihre Rechnung für März liegt bei.\n",
        "html_body": '<p>Hallo {{name}}</p><img src="cid:logo@example.test">',
        "headers": {"X-Campaign": "winter-{{code}}"},
        "attachments": [
            {"data": base64.b64encode(PNG).decode(), "base64": True, "content_type": "image/png",
             "content_id": "logo@example.test"},
            {"data": base64.b64encode(PDF).decode(), "base64": True,
             "content_type": "application/pdf", "file_name": "Rechnung März.pdf"}]}
    rcpts = [{"email": "bob@far.test", "name": "Bob Müller",
              "substitutions": {"name": "Bob", "code": 7},
              "metadata": {"customer": 42, "tier": "gold"}}]
    status, _, body = post(srv, request(rcpts, content))
    assert status == 200, body
    assert body["success_count"] == 1 and body["fail_count"] == 0, body
    assert body["failed_recipients"] == [] and body["errors"] == [] and body["warnings"] == []
    [qid] = body["ids"]
    assert re.fullmatch(r"[0-9A-Z]{13}", qid)
    [raw] = sink.messages() if sink.wait(1) else []
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    assert msg["Subject"] == "Grüße, Bob"
    assert msg["From"].addresses[0].display_name == "Zoë Café"
    assert msg["To"].addresses[0].display_name == "Bob Müller"
    assert msg["To"].addresses[0].addr_spec == "bob@far.test"
    assert msg["Reply-To"].addresses[0].addr_spec == "help@example.test"
    assert msg["X-Campaign"] == "winter-7"
    assert msg["Date"] and msg["Message-ID"]
    assert any(f"with HTTP id {qid}" in r for r in msg.get_all("Received"))
    assert msg.get_content_type() == "multipart/mixed"
    text = msg.get_body(("plain",))
    assert text.get_content() == "Hallo Bob, Ihre Rechnung für März liegt bei.\n"
    assert text.get_content_charset() == "utf-8"
    html = msg.get_body(("html",))
    assert "<p>Hallo Bob</p>" in html.get_content()
    parts = {p.get_content_type(): p for p in msg.walk()}
    assert "multipart/related" in parts and "multipart/alternative" in parts
    assert parts["image/png"].get_content() == PNG
    assert parts["image/png"]["Content-ID"] == "<logo@example.test>"
    assert parts["application/pdf"].get_content() == PDF
    assert parts["application/pdf"].get_filename() == "Rechnung März.pdf"
    assert max(len(line) for line in raw.split(b"\n")) <= 998
    # Both keys signed it (the From domain's), and dkimpy agrees.
    assert sorted(verify_all(raw, dns_records(domains))) == ["ed25519-sha256", "rsa-sha256"]
    # The metadata is in the spool, so in every line about the recipient.
    meta = 'meta={"customer":42,"tier":"gold"}'
    log = wait_log(srv, f"{qid}: to=<bob@far.test> {meta} relay=127.0.0.1[127.0.0.1]")
    assert re.search(rf"{qid}: queued client=127\.0\.0\.1:\d+ api=app "
                     rf"from=<bounces@example\.test> bytes=\d+ to=<bob@far\.test> {re.escape(meta)}",
                     log), log


def test_substitutions_per_recipient_global_and_missing(start_ringmaild, tmp_path, sink):
    srv = injector(start_ringmaild, tmp_path, sink.port)
    rcpts = [{"email": f"r{i}@far.test", "substitutions": {"name": f"Name{i}"}} for i in range(3)]
    rcpts[2]["substitutions"]["code"] = "own"
    status, _, body = post(srv, request(rcpts, substitutions={"code": "global", "name": "nobody"},
                                        content={"from": {"email": "news@example.test"},
                                                 "subject": "Hi {{name}} {{missing}}",
                                                 "text_body": "{{name}}:{{code}}:{{gone}}\n"}))
    assert status == 200, body
    assert body["success_count"] == 3 and len(set(body["ids"])) == 3
    # Each missing name is reported once for the whole request.
    assert sorted(body["warnings"]) == ["missing substitution 'gone'", "missing substitution 'missing'"]
    seen = {}
    for raw in sink.messages() if sink.wait(3) else []:
        m = email.message_from_bytes(raw, policy=email.policy.default)
        seen[m["To"].addresses[0].addr_spec] = (m["Subject"], m.get_content().strip())
    assert seen == {"r0@far.test": ("Hi Name0", "Name0:global:"),
                    "r1@far.test": ("Hi Name1", "Name1:global:"),
                    "r2@far.test": ("Hi Name2", "Name2:own:")}


def test_every_refusal_has_its_status_and_exact_body(start_ringmaild, tmp_path, sink):
    srv = injector(start_ringmaild, tmp_path, sink.port)
    good = request([{"email": "bob@far.test"}])
    assert post(srv, good, token=None)[::2] == (401, {
        "error": "a bearer token of an [[api.token]] is needed (Authorization: Bearer ...)"})
    assert post(srv, good, token="wrong")[0] == 401
    assert post(srv, good, token=ADMIN_TOKEN)[::2] == (403, {
        "error": "the token \"ops\" has no inject scope"})
    assert post(srv, good, ctype="text/plain")[::2] == (415, {
        "error": "the body must be application/json, not \"text/plain\""})
    assert post(srv, good, ctype="application/json; charset=utf-8")[0] == 200
    assert post(srv, "", method="GET")[::2] == (405, {"error": "use POST"})
    assert post(srv, "{\"envelope_sender\": ")[0] == 400
    status, _, body = post(srv, dict(good, envelope_sender=5))
    assert (status, body) == (400, {"error": "/envelope_sender: must be a string, not a number",
                                    "pointer": "/envelope_sender"})
    status, _, body = post(srv, request([{"email": "not an address"}]))
    assert status == 400 and body["pointer"] == "/recipients/0/email", body
    assert post(srv, dict(good, envelope_sender="x@elsewhere.test"))[::2] == (400, {
        "error": "/envelope_sender: the token \"app\" may not send as elsewhere.test",
        "pointer": "/envelope_sender"})
    status, _, body = post(srv, request([{"email": "bob@far.test"}],
                                        {"from": {"email": "ceo@bank.test"}, "subject": "s",
                                         "text_body": "t"}))
    assert (status, body) == (400, {
        "error": "/content/from/email: the token \"app\" may not send as bank.test",
        "pointer": "/content/from/email"})
    # A subdomain of a sender domain is the domain's.
    assert post(srv, dict(good, envelope_sender="b@bounce.example.test"))[0] == 200
    status, _, body = post(srv, request([{"email": "bob@far.test"}],
                                        {"from": {"email": "news@example.test"}, "subject": "s",
                                         "text_body": "t", "headers": {"From": "x@bank.test"}}))
    assert status == 400 and body["pointer"] == "/content/headers/From", body
    # A template that does not parse: the field and the position.
    status, _, body = post(srv, request([{"email": "bob@far.test"}],
                                        {"from": {"email": "news@example.test"},
                                         "subject": "Hi {{#open}}", "text_body": "t"}))
    assert status == 400 and body["pointer"] == "/content/subject", body
    assert re.search(r"offset \d+|position \d+|at \d+", body["error"]), body
    # One bad recipient among good ones: the others are queued.
    status, _, body = post(srv, request([{"email": "a@far.test"}, {"email": "nope"},
                                         {"email": "c@far.test"}]))
    assert status == 200, body
    assert body["success_count"] == 2 and body["fail_count"] == 1
    assert body["failed_recipients"] == [{"email": "nope", "reason": body["failed_recipients"][0]["reason"]}]
    assert body["ids"][0] and body["ids"][1] is None and body["ids"][2]


def test_no_inject_token_means_no_endpoint(start_ringmaild, tmp_path, sink):
    admin_only = TOKENS[:TOKENS.index("[[api.token]]\nname = \"app\"")]
    srv = injector(start_ringmaild, tmp_path, sink.port, tokens=admin_only)
    assert post(srv, request([{"email": "bob@far.test"}]))[::2] == (404, {
        "error": "no [[api.token]] has the inject scope: the injection API is off"})


def test_a_30mb_body_is_refused_before_it_is_read(start_ringmaild, tmp_path, sink):
    srv = injector(start_ringmaild, tmp_path, sink.port)
    s = socket.create_connection(("127.0.0.1", srv.http_port), timeout=10)
    s.sendall(f"POST {PATH} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
              f"Authorization: Bearer {INJECT_TOKEN}\r\nContent-Length: 30000000\r\n\r\n".encode()
              + b"[" * 65536)
    # Answered with 64 KiB of the 30 MB sent: the rest is never needed.
    data = b""
    while b"\r\n\r\n" not in data or not data.endswith(b"}\n"):
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
    s.close()
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 413 Content Too Large\r\n"), data
    assert b"Content-Type: application/json" in head
    assert json.loads(body) == {"error": "the body is larger than 26214400 bytes"}


def test_rate_limit_and_spool_high_water_give_429(start_ringmaild, tmp_path):
    limited = TOKENS + "recipients_per_second = 5\n"
    dead = free_port(socket.AF_INET, "127.0.0.1")  # nothing listens: mail stays queued
    srv = injector(start_ringmaild, tmp_path, dead, tokens=limited, threads=1,
                   toml="[inject]\nspool_high_water_bytes = 1048576\n")
    five = request([{"email": f"r{i}@far.test", "metadata": {"n": i}} for i in range(5)])
    assert post(srv, five)[0] == 200
    status, r, body = post(srv, five)
    assert status == 429, body
    wait = int(r.getheader("Retry-After"))
    assert 1 <= wait <= 2
    assert body == {"error": f"the token \"app\" may inject 5 recipients a second: try again in {wait} s"}
    time.sleep(wait + 0.1)
    # A big message fills the spool past 1 MiB...
    big = request([{"email": "big@far.test"}], {"from": {"email": "news@example.test"},
                                                 "subject": "big", "text_body": "x" * 1500000})
    status, _, body = post(srv, big)
    assert status == 200, body
    time.sleep(1.1)
    # ...and the next request is held back (the token's budget is there).
    status, r, body = post(srv, request([{"email": "late@far.test"}]))
    assert status == 429 and r.getheader("Retry-After") == "10", body
    assert re.fullmatch(r"the spool holds \d+ bytes, over \[inject\] spool_high_water_bytes "
                        r"\(1048576\): try again later", body["error"]), body
    # Injected mail is in the queue API, with its metadata.
    conn = http.client.HTTPConnection("127.0.0.1", srv.http_port, timeout=10)
    conn.request("GET", "/api/queue/messages?limit=100",
                 headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
    listing = json.loads(conn.getresponse().read())
    assert len(listing["messages"]) == 6, listing
    small = [m for m in listing["messages"] if m["size"] < 100000]
    conn.request("GET", f"/api/queue/messages/{small[0]['id']}",
                 headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
    one = json.loads(conn.getresponse().read())
    assert one["metadata"] in [{"n": i} for i in range(5)], one


@needs_root
def test_a_full_disk_stores_nothing_and_answers_503(start_ringmaild, tmp_path, sink):
    data = tmp_path / "data"
    data.mkdir()
    # 8 MiB: after the filler goes, room for the retry's 1 MiB batch on
    # whichever shard takes it, beside both shards' 1 MiB spares (each
    # made at a shard's first commit) and what the failed batch left.
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(data)], check=True)
    try:
        srv = injector(start_ringmaild, tmp_path, sink.port, data_dir=data,
                       limits={"spool_segment_bytes": 1048576})
        # Fill the file system but for a little.
        filler = data / "filler"
        subprocess.run(["dd", "if=/dev/zero", f"of={filler}", "bs=64k"], capture_output=True)
        filler.write_bytes(b"\0" * (filler.stat().st_size - 200000))
        hundred = request([{"email": f"r{i}@far.test"} for i in range(100)],
                          {"from": {"email": "news@example.test"}, "subject": "s",
                           "text_body": "y" * 10000})
        status, _, body = post(srv, hundred)
        assert (status, body) == (503, {
            "error": "the spool's disk is full: nothing of this request was queued"})
        wait_log(srv, "100 messages not queued (disk full)")
        # Room again: the same request goes through, and only it is delivered.
        filler.unlink()
        status, _, body = post(srv, hundred)
        assert status == 200 and body["success_count"] == 100, body
        sink.wait(100)
        time.sleep(1)
        assert len(sink.files()) == 100
        srv.stop()
    finally:
        subprocess.run(["umount", "-l", str(data)])


def test_a_thousand_recipients_reach_the_sink_each_with_its_own(start_ringmaild, tmp_path, sink):
    srv = injector(start_ringmaild, tmp_path, sink.port)
    rcpts = [{"email": f"user{i}@far{i % 7}.test", "substitutions": {"name": f"N{i}"}}
             for i in range(1000)]
    status, _, body = post(srv, request(rcpts, substitutions={"code": "c"}))
    assert status == 200 and body["success_count"] == 1000, body
    assert len(set(body["ids"])) == 1000
    got = {}
    for raw in sink.messages() if sink.wait(1000, timeout=120) else []:
        m = email.message_from_bytes(raw, policy=email.policy.default)
        got[m["To"].addresses[0].addr_spec] = m["Subject"]
    assert got == {f"user{i}@far{i % 7}.test": f"Hello N{i}" for i in range(1000)}


def test_expect_100_continue_is_answered_before_the_body(start_ringmaild, tmp_path, sink):
    srv = injector(start_ringmaild, tmp_path, sink.port)
    body = json.dumps(request([{"email": "bob@far.test"}])).encode()
    s = socket.create_connection(("127.0.0.1", srv.http_port), timeout=10)
    s.sendall(f"POST {PATH} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
              f"Authorization: Bearer {INJECT_TOKEN}\r\nExpect: 100-continue\r\n"
              f"Content-Length: {len(body)}\r\n\r\n".encode())
    # curl waits for this (a second, past 1 MiB) before it sends the body.
    assert s.recv(100) == b"HTTP/1.1 100 Continue\r\n\r\n"
    s.sendall(body)
    data = b""
    while not data.endswith(b"}\n"):
        chunk = s.recv(65536)
        assert chunk, data
        data += chunk
    s.close()
    assert data.startswith(b"HTTP/1.1 200 OK\r\n"), data
    assert json.loads(data.partition(b"\r\n\r\n")[2])["success_count"] == 1


def test_a_request_that_would_build_too_much_is_refused(start_ringmaild, tmp_path, sink):
    srv = injector(start_ringmaild, tmp_path, sink.port,
                   toml="[inject]\nrequest_messages_bytes_max = 1048576\n")
    content = {"from": {"email": "news@example.test"}, "subject": "s", "text_body": "z" * 10000}
    # 200 x 10,018 bytes of content (from, subject, body): 2 MB from a 20 KB request.
    status, _, body = post(srv, request([{"email": f"r{i}@far.test"} for i in range(200)], content))
    assert (status, body) == (413, {
        "error": "the request's 200 messages would take 2003600 bytes, more than [inject] "
                 "request_messages_bytes_max (1048576): split it"})
    assert post(srv, request([{"email": f"r{i}@far.test"} for i in range(100)], content))[0] == 200


def metric_sum(srv, name, **labels):
    """The sum over shards of a /metrics series with these labels."""
    conn = http.client.HTTPConnection("127.0.0.1", srv.http_port, timeout=10)
    conn.request("GET", "/metrics")
    text = conn.getresponse().read().decode()
    total = 0
    for m in re.finditer(rf"^{name}\{{([^}}]*)\}} (\S+)$", text, re.M):
        have = dict(re.findall(r'(\w+)="([^"]*)"', m.group(1)))
        if all(have.get(k) == v for k, v in labels.items()):
            total += float(m.group(2))
    return total


def test_metrics_count_answers_and_recipients(start_ringmaild, tmp_path, sink):
    srv = injector(start_ringmaild, tmp_path, sink.port)
    assert post(srv, request([{"email": "a@far.test"}, {"email": "nope"}]))[0] == 200
    assert post(srv, request([{"email": "a@far.test"}]), token="wrong")[0] == 401
    assert post(srv, request([{"email": "a@far.test"}]), ctype="text/plain")[0] == 415
    assert metric_sum(srv, "ringmail_inject_requests_total", status="200") == 1
    assert metric_sum(srv, "ringmail_inject_requests_total", status="401") == 1
    assert metric_sum(srv, "ringmail_inject_requests_total", status="415") == 1
    assert metric_sum(srv, "ringmail_inject_requests_total", status="503") == 0
    assert metric_sum(srv, "ringmail_inject_recipients_total", result="queued") == 1
    assert metric_sum(srv, "ringmail_inject_recipients_total", result="failed") == 1


def test_a_content_type_that_is_not_utf8_gets_415_not_a_crash(start_ringmaild, tmp_path, sink):
    srv = injector(start_ringmaild, tmp_path, sink.port)
    s = socket.create_connection(("127.0.0.1", srv.http_port), timeout=10)
    s.sendall(f"POST {PATH} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {INJECT_TOKEN}\r\n"
              "Content-Length: 2\r\nContent-Type: text/".encode() + b"\xff\r\n\r\n{}")
    data = b""
    while not data.endswith(b"}\n"):
        chunk = s.recv(4096)
        assert chunk, data
        data += chunk
    s.close()
    assert data.startswith(b"HTTP/1.1 415 "), data
    assert json.loads(data.partition(b"\r\n\r\n")[2]) == {
        "error": "the body must be application/json, not \"text/\ufffd\""}
    assert srv.alive()
