"""/metrics (issue 23): every counter and histogram moves by what a known
load makes it move; the queue's gauges by state and destination stay
bounded ([metrics] top_destinations); the Grafana dashboard in
dist/grafana/ringmail.json names only metrics a daemon exports.

Remote delivery goes to receivers on loopback addresses whose MX records
come from tests/dns_server.py: another ringmaild (TLS), Postfix's
smtp-sink answering 4xx or 5xx, and closed ports."""
import http.client
import json
import re
import smtplib
import socket
import time
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from conftest import free_port
from test_auth import add_user, plain
from test_outbound import Peer, port, serve_zone, sink, submit  # noqa: F401 (fixture)
from test_tls import certs, client_context  # noqa: F401 (fixture)

ROOT = Path(__file__).resolve().parent.parent.parent
DASHBOARD = ROOT / "dist" / "grafana" / "ringmail.json"
DEAD = [f"d{i}.test" for i in range(1, 7)]  # nothing listens at their MX
ZONE = """
peer.test. 60 IN MX 10 mx1.peer.test.
mx1.peer.test. 60 IN A 127.0.0.2
reject.test. 60 IN MX 10 mx.reject.test.
mx.reject.test. 60 IN A 127.0.0.4
soft.test. 60 IN MX 10 mx.soft.test.
mx.soft.test. 60 IN A 127.0.0.5
""" + "".join(f"{d}. 60 IN MX 10 mx.{d}.\nmx.{d}. 60 IN A 127.0.0.{10 + i}\n"
              for i, d in enumerate(DEAD))


@pytest.fixture
def dns(tmp_path):
    yield from serve_zone(tmp_path, ZONE)


def relay_with_metrics(start_ringmaild, certs, tmp_path, dns, port, top=20):  # noqa: F811
    """alice@example.test submits (AUTH); one attempt per message within
    the test (the first retry is 10 minutes away)."""
    domains = tmp_path / "domains"
    add_user(domains, "alice@example.test")
    return start_ringmaild(tls_cert_dirs=[certs], domains_dir=domains, http=True,
                           auth={"failure_delay_ms": 0},
                           outbound={"dns_servers": f"127.0.0.1:{dns}", "port": port,
                                     "retry_first_s": 600, "retry_max_s": 600,
                                     "connect_timeout_s": 3, "command_timeout_s": 10},
                           extra_toml=f"[metrics]\ntop_destinations = {top}\n")


def scrape(host, port):
    """Every sample: {name: {frozenset(labels without shard): value summed over shards}}."""
    c = http.client.HTTPConnection(host, port, timeout=30)
    c.request("GET", "/metrics")
    r = c.getresponse()
    body = r.read().decode()
    c.close()
    assert r.status == 200, body
    out = {}
    for fam in text_string_to_metric_families(body):
        for s in fam.samples:
            key = frozenset((k, v) for k, v in s.labels.items() if k != "shard")
            series = out.setdefault(s.name, {})
            series[key] = series.get(key, 0) + s.value
    return out


def value(samples, name, **labels):
    return samples.get(name, {}).get(frozenset(labels.items()), 0)


def wait_until(fn, what, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if fn():
            return
        time.sleep(0.2)
    raise AssertionError(what)


def test_counters_and_histograms_move_by_the_load(start_ringmaild, certs, tmp_path, dns,  # noqa: F811
                                                   port, ringmaild_binary):
    http_port = free_port(socket.AF_INET, "127.0.0.2")
    peer = Peer(ringmaild_binary, tmp_path / "receiver", "mx1.peer.test",
                [(f"127.0.0.2:{port}", "smtp"), (f"127.0.0.2:{http_port}", "http")], [certs])
    refuse = sink("127.0.0.4", port, "-f", "RCPT")  # 5xx to every RCPT
    later = sink("127.0.0.5", port, "-r", "RCPT")  # 4xx to every RCPT
    relay = relay_with_metrics(start_ringmaild, certs, tmp_path, dns, port)
    try:
        before = scrape("127.0.0.1", relay.http_port)
        peer_before = scrape("127.0.0.2", http_port)
        # One AUTH failure, then five submissions (five AUTH successes).
        with smtplib.SMTP("127.0.0.1", relay.sub_port, timeout=30) as s:
            s.starttls(context=client_context())
            s.ehlo("client.example")
            # One AUTH PLAIN (smtplib's login() would try LOGIN as well).
            code, _ = s.docmd(plain("alice@example.test", "not the password"))
            assert code == 535
        for i in range(3):
            submit(relay, [f"bob{i}@peer.test"])
        submit(relay, ["later@soft.test"])
        submit(relay, ["nobody@reject.test"])

        def settled():
            s = scrape("127.0.0.1", relay.http_port)
            d = value(s, "ringmail_outbound_attempts_total", result="delivered") - \
                value(before, "ringmail_outbound_attempts_total", result="delivered")
            t = value(s, "ringmail_outbound_attempts_total", result="deferred") - \
                value(before, "ringmail_outbound_attempts_total", result="deferred")
            f = value(s, "ringmail_outbound_attempts_total", result="failed") - \
                value(before, "ringmail_outbound_attempts_total", result="failed")
            q = value(s, "ringmail_dsn_queued_total") - value(before, "ringmail_dsn_queued_total")
            return d == 3 and t == 1 and f == 1 and q == 1
        wait_until(settled, "the five attempts did not finish:\n" + relay.log_tail())
        # The DSN for reject.test is delivered locally to alice.
        relay.wait_for_mail("example.test", "alice", timeout=30)
        after = scrape("127.0.0.1", relay.http_port)
        peer_after = scrape("127.0.0.2", http_port)
    finally:
        for p in (refuse, later):
            p.kill()
            p.wait()
        peer.stop()

    def delta(name, **labels):
        return value(after, name, **labels) - value(before, name, **labels)

    assert delta("ringmail_messages_accepted_total") == 5
    assert delta("ringmail_auth_attempts_total", result="success") == 5
    assert delta("ringmail_auth_attempts_total", result="failure") == 1
    assert delta("ringmail_outbound_recipients_total", result="delivered") == 3
    assert delta("ringmail_outbound_recipients_total", result="bounced") == 1
    reasons = ["reply", "dns", "connect", "tls", "timeout", "other"]
    assert {r: delta("ringmail_outbound_deferrals_total", reason=r) for r in reasons} == \
        {r: (1 if r == "reply" else 0) for r in reasons}
    assert {r: delta("ringmail_outbound_failures_total", reason=r) for r in reasons} == \
        {r: (1 if r == "reply" else 0) for r in reasons}
    # Histograms: one observation per event.
    assert delta("ringmail_smtp_data_to_reply_seconds_count") == 5
    assert delta("ringmail_smtp_data_to_reply_seconds_bucket", le="+Inf") == 5
    assert delta("ringmail_outbound_queue_time_seconds_count") == 3
    assert delta("ringmail_outbound_attempt_duration_seconds_count") == 5
    # The spool's fdatasyncs carried the five messages and the DSN, in at
    # least one batch and at most one each.
    assert delta("ringmail_spool_fsync_batch_messages_sum") == 6
    assert 1 <= delta("ringmail_spool_fsync_batch_messages_count") <= 6
    # Each outbound TLS handshake is one inbound at the peer (smtp-sink
    # offers no STARTTLS).
    peer_tls = value(peer_after, "ringmail_tls_handshakes_total") - \
        value(peer_before, "ringmail_tls_handshakes_total")
    assert peer_tls >= 1
    assert delta("ringmail_outbound_tls_handshakes_total", result="success") == peer_tls
    assert delta("ringmail_outbound_tls_handshakes_total", result="failure") == 0
    # What waits now: the message to soft.test, deferred.
    assert value(after, "ringmail_outbound_queue_messages", state="waiting") == 1
    assert value(after, "ringmail_outbound_queue_recipients", state="waiting") == 1
    assert value(after, "ringmail_outbound_queue_recipients", state="in_flight") == 0
    assert value(after, "ringmail_outbound_queue_recipients", state="held") == 0
    assert value(after, "ringmail_outbound_queue_bytes", state="waiting") > 0
    assert value(after, "ringmail_outbound_destination_recipients", destination="soft.test") == 1
    assert value(after, "ringmail_spool_segments") >= 1
    assert value(after, "ringmail_spool_bytes") > 0


def test_destinations_are_bounded_with_the_rest_as_other(start_ringmaild, certs, tmp_path, dns,  # noqa: F811
                                                         port):
    relay = relay_with_metrics(start_ringmaild, certs, tmp_path, dns, port, top=3)
    # One message each: d1.test has 5 recipients (the test limit), d2.test
    # 4, ... d5.test and d6.test 1.
    counts = [5, 4, 3, 2, 1, 1]
    for d, n in zip(DEAD, counts):
        submit(relay, [f"u{k}@{d}" for k in range(n)])
    total = sum(counts)

    def tried():
        return value(scrape("127.0.0.1", relay.http_port), "ringmail_outbound_deferrals_total",
                     reason="connect") == total
    wait_until(tried, "not every recipient was tried once:\n" + relay.log_tail())
    s = scrape("127.0.0.1", relay.http_port)
    for name in ("ringmail_outbound_destination_recipients", "ringmail_outbound_destination_messages",
                 "ringmail_outbound_destination_bytes"):
        assert len(s[name]) == 4, s[name]  # 3 and "other"
    per = {dict(k)["destination"]: v for k, v in s["ringmail_outbound_destination_recipients"].items()}
    assert per == {"d1.test": 5, "d2.test": 4, "d3.test": 3, "other": 2 + 1 + 1}
    msgs = {dict(k)["destination"]: v for k, v in s["ringmail_outbound_destination_messages"].items()}
    assert msgs == {"d1.test": 1, "d2.test": 1, "d3.test": 1, "other": 3}
    by_state = sum(v for v in s["ringmail_outbound_queue_recipients"].values())
    assert sum(per.values()) == by_state == total
    assert sum(s["ringmail_outbound_queue_messages"].values()) == len(DEAD)
    assert sum(s["ringmail_outbound_queued"].values()) == len(DEAD)
    assert value(s, "ringmail_outbound_deferrals_total", reason="reply") == 0


def dashboard_metric_names():
    model = json.loads(DASHBOARD.read_text())
    exprs = []

    def walk(panels):
        for p in panels:
            exprs.extend(t["expr"] for t in p.get("targets", []) if "expr" in t)
            walk(p.get("panels", []))
    walk(model["panels"])
    for v in model.get("templating", {}).get("list", []):
        q = v.get("query")
        if isinstance(q, dict):
            q = q.get("query")
        if isinstance(q, str):
            exprs.append(q)
    return exprs, {n for e in exprs for n in re.findall(r"\bringmail_[a-z0-9_]+", e)}


def test_dashboard_names_only_exported_metrics(start_ringmaild, certs, tmp_path, dns, port):  # noqa: F811
    exprs, names = dashboard_metric_names()
    assert len(exprs) >= 10 and len(names) >= 15, exprs
    relay = relay_with_metrics(start_ringmaild, certs, tmp_path, dns, port)
    submit(relay, ["x@d1.test"])  # queued: the destination series exist
    wait_until(lambda: value(scrape("127.0.0.1", relay.http_port),
                             "ringmail_outbound_destination_recipients", destination="d1.test") == 1,
               "the queued message does not show")
    exported = set(scrape("127.0.0.1", relay.http_port))
    unknown = sorted(names - exported)
    assert not unknown, f"the dashboard names metrics ringmaild does not export: {unknown}"
    # Histograms are used through their buckets.
    assert any(n.endswith("_bucket") for n in names)
    assert all(n[:-len("_bucket")] + "_count" in exported for n in names if n.endswith("_bucket"))
