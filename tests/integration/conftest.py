"""Fixtures of the ringmaild integration suite.

Environment:
  RINGMAILD          path of the daemon (default <checkout>/build/engine/ringmaild)
  RINGMAIL_BACKEND   io_uring | epoll | auto (passed as --backend; default auto)

Every test gets its own daemon on its own data directory (tmp_path), with
listeners on 127.0.0.1 and [::1] (kind smtp) and one submission listener on
127.0.0.1, all on free ports. Teardown closes the test's client connections,
sends SIGTERM and requires exit code 0 within 20 s (else kill -9 and fail).
The whole suite is skipped when the binary does not exist.

The contract tested is docs/configuration.md and docs/smtp-replies.md.
"""

import errno
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from smtpclient import SMTPConn  # noqa: E402

RINGMAILD = os.environ.get(
    "RINGMAILD",
    os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "build", "engine", "ringmaild"))
BACKEND = os.environ.get("RINGMAIL_BACKEND", "auto")
HOSTNAME = "mx.test.example"
LOCAL_DOMAINS = ["example.test", "other.test"]

# Limits of the default daemon of a test (the `server` fixture). Tests that
# need other values start their own daemon with start_ringmaild(...).
DEFAULT_LIMITS = {
    "message_bytes_max": 100000,
    "rcpt_count_max": 5,
    "errors_max": 5,
    "received_headers_max": 50,
    "command_timeout_s": 60,
    "data_timeout_s": 60,
    "shutdown_grace_s": 5,
    # Small segments: rotation is exercised, and ~150 daemons per run do not
    # each keep tens of MiB of zero-filled segments on disk.
    "spool_segment_bytes": 1048576,
}

STOP_TIMEOUT_S = 20
START_TIMEOUT_S = 15

# What needs root, and why: the suite also runs as any user (tools/dev test
# without root); those tests then skip and say so.
IS_ROOT = os.geteuid() == 0
needs_root = pytest.mark.skipif(not IS_ROOT, reason="needs root (run the suite as root)")
# smtp-sink's options to drop from root to `postfix` after binding; run by
# anyone else it keeps its user (and -u would fail in initgroups).
SINK_USER_OPTS = ["-u", "postfix"] if IS_ROOT else []


sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from ports import free_port  # noqa: E402  (tests/ports.py)


def assert_config_checks(path):
    """`ringmaild --check-config` accepts the file at `path`. Run by
    anyone but root, binding ports below 1024 is refused: those listener
    lines, and only those, are accepted then (the service has
    CAP_NET_BIND_SERVICE for them)."""
    r = subprocess.run([RINGMAILD, "--check-config", "--config", str(path)],
                       capture_output=True, text=True, timeout=30)
    if r.returncode == 0:
        return
    low_port = re.compile(r": listener \S+:(\d+): Permission denied$")
    other = [l for l in r.stderr.splitlines()
             if IS_ROOT or not (m := low_port.search(l)) or int(m.group(1)) >= 1024]
    # The count line that ends the list, when the list had nothing else.
    assert len(other) == 1 and re.search(r": \d+ problems?$", other[0]), r.stderr


def toml_value(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    raise TypeError(v)


class Ringmaild:
    """One ringmaild process with its configuration and data directory."""

    def __init__(self, binary, workdir, limits=None, hostname=HOSTNAME,
                 local_domains=LOCAL_DOMAINS, backend=BACKEND, threads=2,
                 data_dir=None, extra_args=(), tls_cert_dirs=None, domains_dir=None,
                 auth=None, outbound=None, relay_networks=None, dkim=None, inbound=None,
                 env=None, http=False, dns=None, extra_toml=""):
        self.binary = binary
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.data_dir = Path(data_dir) if data_dir else self.workdir / "data"
        self.hostname = hostname
        self.local_domains = list(local_domains)
        self.limits = dict(DEFAULT_LIMITS)
        self.limits.update(limits or {})
        self.backend = backend
        self.threads = threads
        self.host = "127.0.0.1"
        self.host6 = "::1"
        self.port = self.port6 = self.sub_port = None
        self.proc = None
        self.returncode = None
        self.config_path = self.workdir / "ringmaild.toml"
        self.log_path = self.workdir / "ringmaild.log"
        self._log = None
        self.clients = []
        self.starts = 0
        self.extra_args = list(extra_args)
        # With certificate directories: STARTTLS on the smtp and submission
        # listeners, and an implicit TLS ("submissions") listener on smtps_port.
        self.tls_cert_dirs = list(tls_cert_dirs) if tls_cert_dirs else None
        self.smtps_port = None
        self.domains_dir = Path(domains_dir) if domains_dir else self.workdir / "domains"
        self.auth = dict(auth or {})  # [auth] keys
        # [dns] keys. By default DNS goes to a closed loopback port: no test
        # ever asks a resolver outside this machine; outbound mail then waits
        # in the queue (temporary DNS failure). A test that sets the old name
        # [outbound] dns_servers gets no [dns] servers.
        self.dns = dict(dns or {})
        self.outbound = dict(outbound or {})  # [outbound] keys
        self.relay_networks = list(relay_networks or [])
        self.dkim = dict(dkim or {})  # [dkim] keys
        self.inbound = dict(inbound or {})  # [inbound] keys
        self.env = dict(env or {})  # added to the daemon's environment
        self.http = http  # an HTTP listener (/metrics, /healthz) on http_port
        self.http_port = None
        self.extra_toml = extra_toml  # appended as it is ([admin], [[api.token]], ...)

    # ----------------------------------------------------------- process
    def write_config(self):
        lines = [
            f"hostname = {toml_value(self.hostname)}",
            f"data_dir = {toml_value(str(self.data_dir))}",
            f"threads = {self.threads}",
            f"backend = {toml_value(self.backend)}",
            f"local_domains = {toml_value(self.local_domains)}",
            f"domains_dir = {toml_value(str(self.domains_dir))}",
            f"relay_networks = {toml_value(self.relay_networks)}",
            "",
            "[[listener]]",
            f'address = "127.0.0.1:{self.port}"',
            'kind = "smtp"',
            "",
            "[[listener]]",
            f'address = "[::1]:{self.port6}"',
            'kind = "smtp"',
            "",
            "[[listener]]",
            f'address = "127.0.0.1:{self.sub_port}"',
            'kind = "submission"',
            "",
        ]
        if self.http:
            lines += ["[[listener]]", f'address = "127.0.0.1:{self.http_port}"', 'kind = "http"', ""]
        if self.tls_cert_dirs:
            lines += ["[[listener]]", f'address = "127.0.0.1:{self.smtps_port}"',
                      'kind = "submissions"', "", "[tls]",
                      f"cert_dirs = {toml_value([str(d) for d in self.tls_cert_dirs])}", ""]
        if self.auth:
            lines += ["[auth]"] + [f"{k} = {toml_value(v)}" for k, v in self.auth.items()] + [""]
        if self.dkim:
            lines += ["[dkim]"] + [f"{k} = {toml_value(v)}" for k, v in self.dkim.items()] + [""]
        if self.inbound:
            lines += ["[inbound]"] + [f"{k} = {toml_value(v)}" for k, v in self.inbound.items()] + [""]
        dns = dict(self.dns)
        if "dns_servers" not in self.outbound:
            dns.setdefault("servers", "127.0.0.1:9")
        if dns:
            lines += ["[dns]"] + [f"{k} = {toml_value(v)}" for k, v in dns.items()] + [""]
        # A list of dicts (e.g. "route") becomes [[outbound.<key>]] tables.
        tables = {k: v for k, v in self.outbound.items() if isinstance(v, list) and v and isinstance(v[0], dict)}
        lines += ["[outbound]"] + [f"{k} = {toml_value(v)}" for k, v in self.outbound.items()
                                   if k not in tables] + [""]
        for k, entries in tables.items():
            for e in entries:
                lines += [f"[[outbound.{k}]]"] + [f"{ek} = {toml_value(ev)}" for ek, ev in e.items()] + [""]
        lines += [
            "[limits]",
        ]
        for k, v in self.limits.items():
            lines.append(f"{k} = {toml_value(v)}")
        lines += ["", self.extra_toml]
        self.config_path.write_text("\n".join(lines) + "\n")

    def command(self):
        return [self.binary, "--config", str(self.config_path),
                "--backend", self.backend, "--threads", str(self.threads)] + self.extra_args

    def start(self, keep_ports=False):
        """Start the daemon and wait until every listener accepts."""
        attempts = 1 if keep_ports else 3
        for attempt in range(attempts):
            if not keep_ports or self.port is None:
                self.port = free_port(socket.AF_INET, "127.0.0.1")
                self.port6 = free_port(socket.AF_INET6, "::1")
                self.sub_port = free_port(socket.AF_INET, "127.0.0.1")
                if self.tls_cert_dirs:
                    self.smtps_port = free_port(socket.AF_INET, "127.0.0.1")
                if self.http:
                    self.http_port = free_port(socket.AF_INET, "127.0.0.1")
            self.write_config()
            self._log = open(self.log_path, "ab")
            self._log.write(f"==== start #{self.starts}: {' '.join(self.command())}\n".encode())
            self._log.flush()
            self.proc = subprocess.Popen(self.command(), stdin=subprocess.DEVNULL,
                                         stdout=self._log, stderr=subprocess.STDOUT,
                                         env={**os.environ, **self.env})
            self.starts += 1
            self.returncode = None
            err = self._wait_listening()
            if err is None:
                return self
            log = self.log_tail()
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
            if "in use" in log.lower() and attempt + 1 < attempts:
                continue  # port race with another process: new ports
            raise AssertionError(f"ringmaild did not start: {err}\n--- log ---\n{log}")
        raise AssertionError("unreachable")

    def _wait_listening(self):
        deadline = time.monotonic() + START_TIMEOUT_S
        pending = [(socket.AF_INET, "127.0.0.1", self.port),
                   (socket.AF_INET6, "::1", self.port6),
                   (socket.AF_INET, "127.0.0.1", self.sub_port)]
        if self.smtps_port:
            pending.append((socket.AF_INET, "127.0.0.1", self.smtps_port))
        if self.http_port:
            pending.append((socket.AF_INET, "127.0.0.1", self.http_port))
        # The admin socket ([admin] in extra_toml) is bound after the TCP
        # listeners (and after a predecessor killed a moment ago lets go).
        admin = re.search(r'^socket = "([^"]+)"', self.extra_toml, re.M)
        if admin and "[admin]" in self.extra_toml:
            pending.append((socket.AF_UNIX, admin[1], None))
        while pending:
            rc = self.proc.poll()
            if rc is not None:
                return f"exited with status {rc} during start-up"
            fam, addr, port = pending[0]
            try:
                with socket.socket(fam, socket.SOCK_STREAM) as s:
                    s.settimeout(1)
                    s.connect(addr if fam == socket.AF_UNIX else (addr, port))
                    if fam == socket.AF_UNIX:  # answering, not a dying daemon's socket
                        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                        if not s.recv(64).startswith(b"HTTP/1.1 "):
                            raise OSError("no answer")
                pending.pop(0)
            except OSError:
                if time.monotonic() > deadline:
                    return f"{addr} port {port} not accepting after {START_TIMEOUT_S} s"
                time.sleep(0.05)
        return None

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def signal(self, sig):
        self.proc.send_signal(sig)

    def stop(self, timeout=STOP_TIMEOUT_S):
        """SIGTERM and wait. Returns (exit status, problem-or-None)."""
        if self.proc is None:
            return None, None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        problem = None
        try:
            rc = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = self.proc.wait()
            problem = f"did not exit within {timeout} s of SIGTERM (killed with SIGKILL)"
        if problem is None and rc != 0:
            problem = f"exit status {rc} after SIGTERM, expected 0"
        self.returncode = rc
        self.proc = None
        if self._log:
            self._log.close()
            self._log = None
        return rc, problem

    def wait_exit(self, timeout):
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def kill9(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.proc = None

    def log_tail(self, n=60):
        try:
            data = self.log_path.read_bytes().decode("utf-8", "replace")
        except OSError:
            return ""
        return "\n".join(data.splitlines()[-n:])

    # ----------------------------------------------------------- clients
    def connect(self, port=None, v6=False, timeout=10, read_greeting=False):
        host = self.host6 if v6 else self.host
        if port is None:
            port = self.port6 if v6 else self.port
        c = SMTPConn(host, port, timeout=timeout)
        self.clients.append(c)
        if read_greeting:
            c.greeting(self.hostname)
        return c

    def close_clients(self):
        for c in self.clients:
            c.close()
        self.clients = []

    # ----------------------------------------------------------- Maildir
    def maildir(self, domain, user):
        return self.data_dir / "mail" / domain / user / "Maildir"

    def mail_files(self, domain, user, sub="new"):
        d = self.maildir(domain, user) / sub
        try:
            return sorted(p for p in d.iterdir() if p.is_file())
        except FileNotFoundError:
            return []

    def all_mail_files(self):
        root = self.data_dir / "mail"
        if not root.exists():
            return []
        return sorted(p for p in root.glob("*/*/Maildir/new/*") if p.is_file())

    def wait_for_mail(self, domain, user, count=1, timeout=15, settle=0.3):
        """Wait until Maildir/new of domain/user holds `count` files, then
        check (after `settle` s) that it holds exactly `count`."""
        deadline = time.monotonic() + timeout
        while True:
            files = self.mail_files(domain, user)
            if len(files) >= count:
                break
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"{len(files)} file(s) in {self.maildir(domain, user)}/new after "
                    f"{timeout} s, expected {count}; all delivered files: "
                    f"{[str(p.relative_to(self.data_dir)) for p in self.all_mail_files()]}"
                    f"\n--- daemon log ---\n{self.log_tail()}")
            time.sleep(0.05)
        if settle:
            time.sleep(settle)
        files = self.mail_files(domain, user)
        assert len(files) == count, (
            f"{len(files)} files in {self.maildir(domain, user)}/new, expected exactly {count}: "
            f"{[p.name for p in files]}")
        return files


def _binary_or_skip():
    if not os.path.exists(RINGMAILD):
        pytest.skip(f"ringmaild binary not found at {RINGMAILD} (set RINGMAILD or build it)")
    if not os.access(RINGMAILD, os.X_OK):
        pytest.skip(f"{RINGMAILD} is not executable")
    return RINGMAILD


@pytest.fixture(scope="session")
def ringmaild_binary():
    return _binary_or_skip()


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    setattr(item, "rep_" + rep.when, rep)


@pytest.fixture
def start_ringmaild(request, tmp_path, ringmaild_binary):
    """Factory: start_ringmaild(limits={...}, **kw) -> running Ringmaild
    (start=False: configured but not started; the test calls .start())."""
    started = []

    def _start(limits=None, start=True, **kw):
        d = Ringmaild(ringmaild_binary, tmp_path / f"rm{len(started)}", limits=limits, **kw)
        started.append(d)
        if start:
            d.start()
        return d

    yield _start

    problems = []
    for d in started:
        d.close_clients()
        rc, problem = d.stop()
        if problem:
            problems.append(f"{d.workdir.name}: {problem}")
    failed = getattr(request.node, "rep_call", None)
    if problems or (failed is not None and failed.failed):
        for d in started:
            print(f"--- {d.workdir.name} log ({d.log_path}) ---\n{d.log_tail(80)}")
    if problems:
        pytest.fail("ringmaild shutdown: " + "; ".join(problems))


@pytest.fixture
def server(start_ringmaild):
    """A ringmaild with the default test limits (DEFAULT_LIMITS)."""
    return start_ringmaild()
