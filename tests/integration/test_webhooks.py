"""Webhooks (issue 25, docs/events.md "Webhooks"): the event log POSTed
in signed JSON batches to [[events.webhook]] endpoints from a durable
cursor. A Python http.server on 127.0.0.1 is the endpoint: it checks the
signature of every POST and counts events by id. Every event in the log
files arrives at least once (duplicates allowed) while the endpoint is
down for a while under load, and across a kill -9 of ringmaild; the
events of a recipient arrive in order; `types` filters."""
import hashlib
import hmac
import json
import re
import smtplib
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from conftest import free_port
from test_events import events
from test_metrics import scrape, value
from test_outbound import wait_log
from test_queue import wait_for

SECRET = "s3cret-for-tests"


class Receiver:
    """An HTTP endpoint on 127.0.0.1:port that takes POSTs of event
    batches; start() and stop() may be called again (same port)."""

    def __init__(self, port=None, delay_s=0.0):
        self.port = port or free_port(socket.AF_INET, "127.0.0.1")
        self.delay_s = delay_s
        self.lock = threading.Lock()
        self.batches = []     # (webhook name, [event, ...]) in arrival order
        self.bad = []         # what was wrong with a request
        self.server = None

    def start(self):
        recv = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                want = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
                problem = None
                if self.headers.get("X-Ringmail-Signature") != want:
                    problem = f"bad signature {self.headers.get('X-Ringmail-Signature')}"
                elif self.headers.get("Content-Type") != "application/json":
                    problem = f"content type {self.headers.get('Content-Type')}"
                if problem is None:
                    try:
                        batch = json.loads(body)
                        assert isinstance(batch, list) and batch
                    except Exception as e:  # noqa: BLE001
                        problem = f"not a JSON array: {e}: {body[:200]!r}"
                if recv.delay_s:
                    time.sleep(recv.delay_s)
                with recv.lock:
                    if problem:
                        recv.bad.append(problem)
                    else:
                        recv.batches.append((self.headers.get("X-Ringmail-Webhook"), batch))
                self.send_response(401 if problem else 200)
                self.send_header("Content-Length", "0")
                self.end_headers()

        for _ in range(50):
            try:
                self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
                break
            except OSError:  # the port of the last run still held a moment
                time.sleep(0.1)
        else:
            raise AssertionError(f"cannot listen on 127.0.0.1:{self.port}")
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self):
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    def events(self, name=None):
        with self.lock:
            return [e for n, b in self.batches if name in (None, n) for e in b]

    def ids(self, name=None):
        return {e["id"] for e in self.events(name)}


def hook(name, port, **keys):
    lines = ["[[events.webhook]]", f'name = "{name}"',
             f'url = "http://127.0.0.1:{port}/hook/{name}"', f'secret = "{SECRET}"']
    for k, v in keys.items():
        lines.append(f"{k} = {json.dumps(v)}")
    return "\n".join(lines) + "\n"


def send_many(srv, n, rcpt_of, connections=4):
    """n messages to local mailboxes over a few SMTP connections at once."""
    def worker(k):
        with smtplib.SMTP("127.0.0.1", srv.port, timeout=60) as s:
            for i in range(k, n, connections):
                s.sendmail("load@src.example", [rcpt_of(i)],
                           f"Subject: load {i}\r\nFrom: load@src.example\r\n\r\nhello {i}\r\n"
                           .encode())
    threads = [threading.Thread(target=worker, args=(k,)) for k in range(connections)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def wait_all_arrived(srv, recv, name=None, timeout=120):
    """Every event of the log files arrived at `recv` (by id)."""
    def done():
        want = {e["id"] for e in events(srv)}
        return want and want <= recv.ids(name)
    try:
        wait_for(done, "every event at the webhook", timeout=timeout)
    except AssertionError:
        missing = {e["id"] for e in events(srv)} - recv.ids(name)
        raise AssertionError(f"{len(missing)} events never arrived, e.g. {sorted(missing)[:5]}\n"
                             + srv.log_tail())


def test_events_arrive_signed_filtered_and_in_order(start_ringmaild):
    recv = Receiver().start()
    try:
        srv = start_ringmaild(http=True, extra_toml=hook("all", recv.port) +
                              hook("deliveries", recv.port, types=["Delivery"], batch_size=2))
        rcpts = [f"bob+{i}@example.test" for i in range(6)]
        send_many(srv, len(rcpts), lambda i: rcpts[i], connections=2)
        wait_for(lambda: len(events(srv)) == 2 * len(rcpts), "Reception and Delivery events")
        wait_all_arrived(srv, recv, "all")
        log = events(srv)
        assert recv.bad == []
        got = recv.events("all")
        for r in rcpts:
            mine = [e["type"] for e in got if e["recipient"] == r]
            # In order (duplicates, were there any, after the first of each).
            assert mine[0] == "Reception" and "Delivery" in mine, (r, mine)
            assert mine.index("Delivery") > 0, (r, mine)
        # Sent as written: each object the log's line, byte for byte.
        lines = {json.loads(l)["id"]: l for f in sorted((srv.data_dir / "events").glob("ev-*"))
                 for l in f.read_text().splitlines()}
        for e in got:
            assert json.dumps(e, separators=(",", ":"), ensure_ascii=False) == lines[e["id"]] \
                or json.loads(lines[e["id"]]) == e
        wait_for(lambda: len(recv.ids("deliveries")) == len(rcpts), "the Delivery events")
        assert {e["type"] for e in recv.events("deliveries")} == {"Delivery"}
        with recv.lock:
            sizes = [len(b) for n, b in recv.batches if n == "deliveries"]
        assert max(sizes) <= 2, sizes
        m = scrape("127.0.0.1", srv.http_port)
        assert value(m, "ringmail_webhook_events_sent_total", webhook="all") >= len(log)
        assert value(m, "ringmail_webhook_failures_total", webhook="all") == 0
        assert value(m, "ringmail_webhook_up", webhook="deliveries") == 1
        # Cursor files beside the segments, one per endpoint.
        assert (srv.data_dir / "events" / "cursor-all").read_text().startswith(
            "ringmail-event-cursor 1\n")
    finally:
        recv.stop()


def test_a_new_endpoint_starts_at_the_end_of_the_log(start_ringmaild):
    recv = Receiver().start()
    try:
        srv = start_ringmaild()
        send_many(srv, 1, lambda i: "old@example.test", connections=1)
        wait_for(lambda: len(events(srv)) == 2, "the old message's events")
        srv.stop()
        srv.extra_toml = hook("late", recv.port)
        srv.start()
        wait_log(srv, "webhook late: new, starting at the end of the event log")
        send_many(srv, 1, lambda i: "new@example.test", connections=1)
        wait_for(lambda: {e["recipient"] for e in recv.events()} == {"new@example.test"}
                 and len(recv.ids()) == 2, "the new message's events only")
        time.sleep(0.5)
        assert {e["recipient"] for e in recv.events()} == {"new@example.test"}
    finally:
        recv.stop()


def test_endpoint_down_for_a_while_under_load(start_ringmaild):
    """300 messages (600 events) while the endpoint is away for part of
    them: every event in the log arrives once it is back, retried with
    backoff, and the log says down and back up once each."""
    recv = Receiver().start()
    try:
        srv = start_ringmaild(http=True, extra_toml=hook("crm", recv.port, batch_size=50,
                                                         max_backoff_s=2, timeout_s=5))
        send_many(srv, 100, lambda i: f"u{i % 20}@example.test")
        wait_for(lambda: len(recv.ids()) > 0, "the first events")
        recv.stop()
        send_many(srv, 200, lambda i: f"v{i % 20}@example.test")
        wait_log(srv, "webhook crm: down: ")
        time.sleep(3)  # a few retries against a closed port
        recv.start()
        wait_for(lambda: len(events(srv)) == 600, "the load's events")
        wait_all_arrived(srv, recv)
        wait_log(srv, "webhook crm: back up")
        log = srv.log_path.read_text()
        assert log.count("webhook crm: down") == 1, log
        assert log.count("webhook crm: back up") == 1, log
        m = scrape("127.0.0.1", srv.http_port)
        assert value(m, "ringmail_webhook_failures_total", webhook="crm") >= 1
        assert value(m, "ringmail_webhook_events_sent_total", webhook="crm") >= 600
        assert recv.bad == []
    finally:
        recv.stop()


def test_kill9_while_shipping(start_ringmaild):
    """kill -9 of ringmaild while batches are on their way (the endpoint
    answers slowly): restarted on the same data directory it goes on from
    its cursor, and every event arrives at least once."""
    recv = Receiver(delay_s=0.1).start()
    try:
        srv = start_ringmaild(extra_toml=hook("crm", recv.port, batch_size=10))
        send_many(srv, 300, lambda i: f"k{i % 30}@example.test")
        wait_for(lambda: len(events(srv)) == 600, "the load's events")
        wait_for(lambda: len(recv.ids()) >= 100, "some events at the webhook")
        before = len(recv.ids())
        srv.kill9()
        assert before < 600, "shipped everything before the kill: no test"
        srv.start()
        wait_all_arrived(srv, recv)
        assert recv.bad == []
        # Nothing new: duplicates at most one batch's worth, plus none lost.
        assert {e["id"] for e in events(srv)} == recv.ids()
    finally:
        recv.stop()


def test_a_bad_webhook_configuration_is_refused(start_ringmaild, tmp_path):
    srv = start_ringmaild(start=False, extra_toml=hook("crm", 1).replace(
        f'secret = "{SECRET}"\n', ""))
    srv.port, srv.port6, srv.sub_port = 1, 2, 3
    srv.write_config()
    import subprocess
    r = subprocess.run([srv.binary, "--check-config", "--config", str(srv.config_path)],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode != 0
    lines = [l for l in (r.stdout + r.stderr).splitlines() if l.strip()]
    assert len(lines) == 1 and re.search(
        r"events\.webhook\.secret: is required \(or secret_file\)", lines[0]), lines
