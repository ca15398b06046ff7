"""[events.amqp] (issue 25, docs/events.md "AMQP"): the event log
published to a real RabbitMQ broker, one persistent message per event,
from a durable cursor moved only past what the broker confirmed. A
private rabbitmq-server (Debian's) on a free loopback port; a durable
queue bound to the routing key collects the messages, counted by id:
every event in the log files arrives at least once, also when the broker
is stopped for a while under load and brought back."""
import json
import os
import signal
import socket
import subprocess
import time

import pytest

from conftest import free_port
from test_events import events
from test_metrics import scrape, value
from test_outbound import wait_log
from test_queue import wait_for
from test_webhooks import send_many

RABBIT_BIN = "/usr/lib/rabbitmq/bin"
QUEUE = "ringmail-test-events"
KEY = "ringmail.events"

pytestmark = pytest.mark.skipif(
    not os.path.exists(f"{RABBIT_BIN}/rabbitmq-server"),
    reason="rabbitmq-server is not installed (apt-get install rabbitmq-server)")


class Broker:
    """A private RabbitMQ node on 127.0.0.1:port with its data under
    `base`; start() again after stop() keeps its durable queues."""

    def __init__(self, base):
        self.base = base
        self.port = free_port(socket.AF_INET, "127.0.0.1")
        self.dist_port = free_port(socket.AF_INET, "127.0.0.1")
        self.epmd_port = free_port(socket.AF_INET, "127.0.0.1")
        self.node = f"rm{self.port}@localhost"
        home = base / "home"
        home.mkdir(parents=True, exist_ok=True)
        (base / "enabled_plugins").write_text("[].\n")
        (base / "env.conf").write_text("")
        self.env = dict(os.environ,
                        HOME=str(home),
                        RABBITMQ_NODENAME=self.node,
                        RABBITMQ_NODE_IP_ADDRESS="127.0.0.1",
                        RABBITMQ_NODE_PORT=str(self.port),
                        RABBITMQ_DIST_PORT=str(self.dist_port),
                        ERL_EPMD_PORT=str(self.epmd_port),
                        RABBITMQ_MNESIA_BASE=str(base / "mnesia"),
                        RABBITMQ_LOG_BASE=str(base / "log"),
                        RABBITMQ_ENABLED_PLUGINS_FILE=str(base / "enabled_plugins"),
                        RABBITMQ_CONF_ENV_FILE=str(base / "env.conf"),
                        RABBITMQ_CONFIG_FILE=str(base / "rabbitmq"),
                        RABBITMQ_ADVANCED_CONFIG_FILE=str(base / "advanced.config"),
                        RABBITMQ_PID_FILE=str(base / "rabbit.pid"))
        self.epmd = None
        self.proc = None

    def url(self):
        return f"amqp://guest:guest@127.0.0.1:{self.port}/%2f"

    def start(self, timeout=90):
        if self.epmd is None:  # our own epmd, on its own port, ended by stop_all()
            self.epmd = subprocess.Popen(["epmd", "-port", str(self.epmd_port)], env=self.env,
                                         start_new_session=True)
        self.proc = subprocess.Popen([f"{RABBIT_BIN}/rabbitmq-server"], env=self.env,
                                     cwd=self.base, start_new_session=True,
                                     stdout=open(self.base / "stdout", "ab"),
                                     stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError("rabbitmq-server exited: "
                                     + (self.base / "stdout").read_text()[-3000:])
            try:
                return self.connect()
            except Exception:  # noqa: BLE001 - not accepting AMQP yet
                time.sleep(0.5)
        raise AssertionError("rabbitmq-server did not accept AMQP in time: "
                             + (self.base / "stdout").read_text()[-3000:])

    def connect(self):
        import pika
        return pika.BlockingConnection(pika.ConnectionParameters(
            host="127.0.0.1", port=self.port, connection_attempts=1, socket_timeout=5,
            credentials=pika.PlainCredentials("guest", "guest")))

    def stop(self):
        if self.proc is None:
            return
        subprocess.run([f"{RABBIT_BIN}/rabbitmqctl", "-n", self.node, "stop"], env=self.env,
                       capture_output=True, timeout=60)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        self.proc = None

    def stop_all(self):
        try:
            self.stop()
        finally:
            if self.proc is not None:
                os.killpg(self.proc.pid, signal.SIGKILL)
            if self.epmd is not None:
                os.killpg(self.epmd.pid, signal.SIGKILL)
                self.epmd.wait()
                self.epmd = None


@pytest.fixture
def broker(tmp_path_factory):
    pytest.importorskip("pika", reason="python3-pika is not installed")
    # A short path: the Erlang node's files live under it.
    b = Broker(tmp_path_factory.mktemp("rabbit"))
    conn = b.start()
    ch = conn.channel()
    ch.queue_declare(queue=QUEUE, durable=True)
    ch.queue_bind(queue=QUEUE, exchange="amq.direct", routing_key=KEY)
    conn.close()
    try:
        yield b
    finally:
        b.stop_all()


class Collector:
    """Drains the queue, keeping every message by event id."""

    def __init__(self, broker):
        self.broker = broker
        self.ids = set()
        self.bad = []

    def drain(self):
        conn = self.broker.connect()
        try:
            ch = conn.channel()
            while True:
                method, props, body = ch.basic_get(queue=QUEUE, auto_ack=True)
                if method is None:
                    return self.ids
                e = json.loads(body)
                if props.message_id != e["id"] or props.delivery_mode != 2 \
                        or props.content_type != "application/json":
                    self.bad.append((props, body[:200]))
                self.ids.add(e["id"])
        finally:
            conn.close()


def amqp_toml(broker, **keys):
    lines = ["[events.amqp]", f'url = "{broker.url()}"', 'exchange = "amq.direct"',
             f'routing_key = "{KEY}"']
    lines += [f"{k} = {json.dumps(v)}" for k, v in keys.items()]
    return "\n".join(lines) + "\n"


def wait_all_arrived(srv, coll, timeout=120):
    def done():
        want = {e["id"] for e in events(srv)}
        return want and want <= coll.drain()
    try:
        wait_for(done, "every event in the queue", timeout=timeout)
    except AssertionError:
        missing = {e["id"] for e in events(srv)} - coll.ids
        raise AssertionError(f"{len(missing)} events never arrived, e.g. {sorted(missing)[:5]}\n"
                             + srv.log_tail())


def test_every_event_reaches_the_queue(start_ringmaild, broker):
    srv = start_ringmaild(http=True, extra_toml=amqp_toml(broker, batch_size=20))
    wait_log(srv, "amqp: new, starting at the end of the event log")
    send_many(srv, 200, lambda i: f"a{i % 20}@example.test")
    wait_for(lambda: len(events(srv)) == 400, "the load's events")
    coll = Collector(broker)
    wait_all_arrived(srv, coll)
    assert coll.bad == []
    m = scrape("127.0.0.1", srv.http_port)
    assert value(m, "ringmail_amqp_events_sent_total") >= 400
    assert value(m, "ringmail_amqp_failures_total") == 0
    assert value(m, "ringmail_amqp_up") == 1
    assert (srv.data_dir / "events" / "cursor-amqp").read_text().startswith(
        "ringmail-event-cursor 1\n")
    assert "amqp: down" not in srv.log_path.read_text()


def test_broker_down_for_a_while_under_load(start_ringmaild, broker):
    srv = start_ringmaild(http=True, extra_toml=amqp_toml(broker, batch_size=25,
                                                          max_backoff_s=2, timeout_s=5))
    coll = Collector(broker)
    send_many(srv, 60, lambda i: f"u{i % 20}@example.test")
    wait_for(lambda: len(coll.drain()) > 0, "the first events")
    broker.stop()
    send_many(srv, 140, lambda i: f"v{i % 20}@example.test")
    wait_log(srv, "amqp: down: ")
    time.sleep(3)  # a few retries against a closed port
    broker.start().close()
    wait_for(lambda: len(events(srv)) == 400, "the load's events")
    wait_all_arrived(srv, coll)
    wait_log(srv, "amqp: back up")
    log = srv.log_path.read_text()
    assert log.count("amqp: down") == 1, log
    assert log.count("amqp: back up") == 1, log
    assert coll.bad == []
    m = scrape("127.0.0.1", srv.http_port)
    assert value(m, "ringmail_amqp_failures_total") >= 1
    assert value(m, "ringmail_amqp_up") == 1


def test_a_bad_amqp_configuration_is_refused(start_ringmaild):
    srv = start_ringmaild(start=False, extra_toml='[events.amqp]\nurl = "http://x/"\n')
    srv.port, srv.port6, srv.sub_port = 1, 2, 3
    srv.write_config()
    r = subprocess.run([srv.binary, "--check-config", "--config", str(srv.config_path)],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode != 0
    lines = [l for l in (r.stdout + r.stderr).splitlines() if l.strip()]
    assert len(lines) == 1 and "events.amqp.url: not an amqp://" in lines[0], lines
