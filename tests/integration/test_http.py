"""ringmaild's HTTP listener (kind = "http"): /metrics scraped and parsed
by the Prometheus client library's own text parser, its counts against the
messages sent; /healthz; HTTP/1.1 keep-alive and pipelining; and the
errors: unknown path 404, wrong method 405, a broken request 400, fields
too large 431, each with the connection closed where HTTP says so."""
import http.client
import socket
import time

from prometheus_client.parser import text_string_to_metric_families

from test_blaster import blast


def scrape(srv):
    c = http.client.HTTPConnection("127.0.0.1", srv.http_port, timeout=10)
    c.request("GET", "/metrics")
    r = c.getresponse()
    body = r.read().decode()
    assert r.status == 200 and r.getheader("Content-Type").startswith("text/plain; version=0.0.4"), body
    c.close()
    samples = {}
    for fam in text_string_to_metric_families(body):
        for s in fam.samples:
            # Keyed by shard; other labels (result, le) join the key.
            key = ",".join([s.labels.get("shard", "")] +
                           [f"{k}={v}" for k, v in sorted(s.labels.items()) if k != "shard"])
            samples.setdefault(s.name, {})[key] = s.value
    return samples


def raw(srv, data, timeout=10):
    """Sends bytes, reads until the server closes (or `timeout`)."""
    s = socket.create_connection(("127.0.0.1", srv.http_port), timeout=timeout)
    s.sendall(data)
    out = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            chunk = s.recv(65536)
        except socket.timeout:
            break
        if not chunk:
            break
        out += chunk
    s.close()
    return out


def test_metrics_count_what_was_sent(start_ringmaild):
    srv = start_ringmaild(http=True)
    before = scrape(srv)
    assert set(before["ringmail_messages_accepted_total"]) == {"0", "1"}  # one series a shard
    assert before["ringmail_up"][""] == 1
    out = blast("--target", f"127.0.0.1:{srv.port}", "--connections", "4", "--messages", "120",
                "--per-connection", "10", "--to", "u{n}@example.test", "--size", "800")
    assert out["accepted"] == 120, out
    after = scrape(srv)
    accepted = sum(after["ringmail_messages_accepted_total"].values()) - \
        sum(before["ringmail_messages_accepted_total"].values())
    assert accepted == 120, after["ringmail_messages_accepted_total"]
    conns = sum(after["ringmail_connections_accepted_total"].values()) - \
        sum(before["ringmail_connections_accepted_total"].values())
    assert conns >= out["connections"], (conns, out["connections"])  # and this scrape's own
    assert sum(after["ringmail_loop_busy_seconds_total"].values()) > 0
    assert sum(after["ringmail_loop_wait_seconds_total"].values()) > 0
    assert all(v < 5 for v in after["ringmail_loop_last_turn_age_seconds"].values()), after
    assert sum(after["ringmail_http_requests_total"].values()) >= 2
    deadline = time.monotonic() + 20
    while sum(scrape(srv)["ringmail_messages_delivered_total"].values()) < 120:
        assert time.monotonic() < deadline, "deliveries not counted"
        time.sleep(0.2)


def test_healthz_keepalive_pipelining_and_errors(start_ringmaild):
    srv = start_ringmaild(http=True)
    c = http.client.HTTPConnection("127.0.0.1", srv.http_port, timeout=10)
    for _ in range(3):  # one connection, kept alive
        c.request("GET", "/healthz")
        r = c.getresponse()
        assert (r.status, r.read()) == (200, b"ok\n")
    c.request("GET", "/nowhere")
    r = c.getresponse()
    assert r.status == 404 and b"/nowhere" in r.read()
    c.request("POST", "/metrics", body=b"x")
    r = c.getresponse()
    assert r.status == 405
    r.read()
    c.close()
    # Two requests in one write: two answers, in order; then the close
    # HTTP/1.0 asks for.
    out = raw(srv, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\nGET /nowhere HTTP/1.0\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 200 OK\r\n") and out.count(b"HTTP/1.1 ") == 2, out
    assert b"HTTP/1.1 404 Not Found\r\n" in out and b"Connection: close" in out, out
    out = raw(srv, b"HELO smtp.example\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 400 Bad Request\r\n") and b"Connection: close" in out, out
    out = raw(srv, b"GET / HTTP/1.1\r\nX-Big: " + b"a" * 20000 + b"\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 431 "), out[:100]
    out = raw(srv, b"POST /x HTTP/1.1\r\nContent-Length: 999999999\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 413 "), out[:100]
    # SMTP still works beside it.
    assert scrape(srv)["ringmail_up"][""] == 1


def test_metrics_count_deferred_outbound(start_ringmaild):
    """A relayed message whose domain cannot be resolved (DNS goes to a
    closed port in the tests) is deferred: the counter says so."""
    import smtplib
    srv = start_ringmaild(http=True, relay_networks=["127.0.0.0/8"],
                          outbound={"retry_first_s": 60, "connect_timeout_s": 2})
    with smtplib.SMTP("127.0.0.1", srv.port, timeout=30) as s:
        s.sendmail("app@example.test", ["someone@remote.example"],
                   b"From: app@example.test\r\nTo: someone@remote.example\r\nSubject: m\r\n\r\nhi\r\n")
    deadline = time.monotonic() + 30
    def attempts(samples, result):
        return sum(v for k, v in samples["ringmail_outbound_attempts_total"].items()
                   if k.endswith(f"result={result}"))
    while attempts(scrape(srv), "deferred") < 1:
        assert time.monotonic() < deadline, scrape(srv)
        time.sleep(0.2)
    after = scrape(srv)
    assert attempts(after, "delivered") == 0
    assert sum(after["ringmail_outbound_recipients_total"].values()) == 0
    assert sum(after["ringmail_messages_accepted_total"].values()) == 1
