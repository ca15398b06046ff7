"""One-click unsubscribe (issue 25, RFC 8058, docs/unsubscribe.md):
injected mail of an [[unsubscribe]] rule carries List-Unsubscribe and
List-Unsubscribe-Post under its DKIM signature (dkimpy verifies it); a
POST of List-Unsubscribe=One-Click to its URL suppresses the recipient
for the sender domain, with an Unsubscribe event, and the next injection
to it is refused; a GET does not; a token changed by one character gets
400 and changes nothing; the mailto form on port 25 works too."""
import email
import email.policy
import http.client
import re
import smtplib
import time
import urllib.parse

import pytest
from test_auth import add_user
from test_dkim import dns_records, ok, verify_all
from test_events import wait_event
from test_inject import injector, post, request, sink  # noqa: F401
from test_tools import tool

RULE = """
[[unsubscribe]]
token = "app"
url = "https://mail.example.test/u/"
mailto = "unsub@example.test"
stream = "news"
"""


@pytest.fixture
def srv(start_ringmaild, tmp_path, sink):  # noqa: F811
    domains = tmp_path / "domains"
    add_user(domains, "alice@example.test")
    add_user(domains, "unsub@example.test")  # where the mailto form arrives
    ok("dkim-keygen", "example.test", "--selector", "ed1", "--algo", "ed25519",
       "--domains-dir", str(domains))
    srv = injector(start_ringmaild, tmp_path, sink.port, domains_dir=domains, toml=RULE,
                   relay_networks=["127.0.0.0/8"])
    srv.domains = domains
    return srv


def inject_one(srv, sink, rcpt, n, content=None):  # noqa: F811
    """Injects one message to `rcpt`, the sink's n-th: its bytes and parse."""
    status, _, body = post(srv, request([{"email": rcpt, "substitutions": {"name": "B"}}],
                                        content))
    assert status == 200 and body["success_count"] == 1, body
    sink.wait(n)
    for raw in sink.messages():
        msg = email.message_from_bytes(raw, policy=email.policy.default)
        if msg["To"].addresses[0].addr_spec == rcpt:
            return raw, msg
    raise AssertionError(f"no message to {rcpt} at the sink")


def urls(msg):
    value = " ".join(str(msg["List-Unsubscribe"]).split())
    return re.findall(r"<([^>]*)>", value)


def suppressed(srv, address):
    r = tool("--config", str(srv.config_path), "suppress", "check", address,
             "--sender-domain", "example.test")
    return r.returncode == 0


def fetch(srv, method, path, body=None, ctype=None):
    conn = http.client.HTTPConnection("127.0.0.1", srv.http_port, timeout=30)
    conn.request(method, path, body=body, headers={"Content-Type": ctype} if ctype else {})
    r = conn.getresponse()
    text = r.read().decode()
    conn.close()
    return r.status, text


def one_click(srv, path, body="List-Unsubscribe=One-Click",
              ctype="application/x-www-form-urlencoded"):
    return fetch(srv, "POST", path, body, ctype)


def test_signed_fields_post_suppresses_get_does_not_forgery_refused(srv, sink):  # noqa: F811
    raw, msg = inject_one(srv, sink, "bob@far.test", 1)
    assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    https, mailto = urls(msg)
    assert https.startswith("https://mail.example.test/u/"), https
    # Both fields under the signature (RFC 8058 4), and it verifies.
    sig = " ".join(str(msg["DKIM-Signature"]).split())
    signed = re.search(r"h=([^;]*)", sig).group(1).replace(" ", "").lower().split(":")
    assert "list-unsubscribe" in signed and "list-unsubscribe-post" in signed, signed
    assert verify_all(raw, dns_records(srv.domains)) == ["ed25519-sha256"]
    path = urllib.parse.urlparse(https).path
    # A GET shows the choice and changes nothing.
    status, page = fetch(srv, "GET", path)
    assert status == 200 and "bob@far.test" in page and 'method="post"' in page, page
    assert not suppressed(srv, "bob@far.test")
    # A token changed by one character: 400, nothing changes.
    token = path[len("/u/"):]
    for i in (0, len(token) // 2, len(token) - 1):
        bad = token[:i] + ("A" if token[i] != "A" else "B") + token[i + 1:]
        status, page = one_click(srv, "/u/" + bad)
        assert status == 400 and "not valid" in page, (i, status, page)
    status, _ = one_click(srv, "/u/not-a-token")
    assert status == 400
    # A POST without the one-click body: 400.
    status, page = one_click(srv, path, body="")
    assert status == 400 and "One-Click" in page, page
    assert not suppressed(srv, "bob@far.test")
    # The one-click POST: suppressed (within 1 s: answered once durable).
    status, page = one_click(srv, path)
    assert status == 200 and "bob@far.test" in page, page
    assert suppressed(srv, "bob@far.test")
    ev = wait_event(srv, "bob@far.test", "Unsubscribe")
    assert (ev["sender_domain"], ev["stream"], ev["method"]) == ("example.test", "news",
                                                                 "one-click"), ev
    # Again: still 200, no second change.
    assert one_click(srv, path)[0] == 200
    # The next injection to bob is refused, to carol not.
    status, _, body = post(srv, request([{"email": "bob@far.test"}, {"email": "carol@far.test"}]))
    assert status == 200 and body["success_count"] == 1, body
    assert body["failed_recipients"] == [
        {"email": "bob@far.test", "reason": "550 5.1.1 recipient is on the suppression list"}]
    # multipart/form-data is a one-click body too (RFC 8058 3.1).
    _, msg = inject_one(srv, sink, "dan@far.test", 3)
    path = urllib.parse.urlparse(urls(msg)[0]).path
    form = ("--XyZ\r\nContent-Disposition: form-data; name=\"List-Unsubscribe\"\r\n\r\n"
            "One-Click\r\n--XyZ--\r\n")
    assert one_click(srv, path, form, "multipart/form-data; boundary=XyZ")[0] == 200
    assert suppressed(srv, "dan@far.test")


def test_the_applications_own_list_unsubscribe_is_kept(srv, sink):  # noqa: F811
    content = {"from": {"email": "news@example.test"}, "subject": "Hi", "text_body": "x\n",
               "headers": {"List-Unsubscribe": "<https://app.example.test/stop>"}}
    _, msg = inject_one(srv, sink, "erin@far.test", 1, content)
    assert msg.get_all("List-Unsubscribe") == ["<https://app.example.test/stop>"]
    assert msg["List-Unsubscribe-Post"] is None


def wait_suppressed(srv, address, timeout=10):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if suppressed(srv, address):
            return True
        time.sleep(0.2)
    return False


@pytest.mark.parametrize("rcpt,form", [("b@x.test", "suffix"), ("frank@far.test", "subject")])
def test_the_mailto_form_on_port_25(srv, sink, rcpt, form):  # noqa: F811
    _, msg = inject_one(srv, sink, rcpt, 1)
    mailto = urllib.parse.urlparse(urls(msg)[1])
    to = mailto.path
    subject = urllib.parse.parse_qs(mailto.query).get("subject", [""])[0]
    if form == "suffix":
        assert to.startswith("unsub+") and to.endswith("@example.test") and not subject, mailto
    else:
        assert to == "unsub@example.test" and subject, mailto
    # A forged one changes nothing (and the mail is still taken).
    with smtplib.SMTP("127.0.0.1", srv.port, timeout=30) as s:
        s.sendmail(rcpt, ["unsub@example.test"],
                   f"From: {rcpt}\r\nTo: unsub@example.test\r\nSubject: AAAA{subject[4:]}\r\n\r\n"
                   "unsubscribe\r\n")
        s.sendmail(rcpt, [to], f"From: {rcpt}\r\nTo: {to}\r\nSubject: {subject}\r\n\r\n"
                   "unsubscribe\r\n")
    assert wait_suppressed(srv, rcpt)
    ev = wait_event(srv, rcpt, "Unsubscribe")
    assert ev["method"] == "mailto", ev
