"""Socket activation (README "Install as a service", ringmaild(8)): the
listening sockets systemd passes (sd_listen_fds) take the place of the
[[listener]]s bound to their addresses; the others bind as without
systemd. Run under Debian's systemd-socket-activate (it binds, waits for
the first client, then execs ringmaild with LISTEN_FDS), and under a
holder of the test's own that keeps the socket across two daemons, as
systemd does across a restart. Also: dist/ringmail.socket parses and
names the listeners `ringmail init` writes."""
import os
import re
import shutil
import signal
import smtplib
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import RINGMAILD, SMTPConn, free_port

ACTIVATE = "/usr/bin/systemd-socket-activate"
ROOT = Path(__file__).resolve().parent.parent.parent
needs_activate = pytest.mark.skipif(not os.access(ACTIVATE, os.X_OK),
                                    reason="systemd-socket-activate (package systemd) missing")


def listening(port, table):
    """Inodes of the sockets in LISTEN state on `port` (/proc/net/tcp or tcp6)."""
    out = []
    for line in Path(f"/proc/net/{table}").read_text().splitlines()[1:]:
        f = line.split()
        if int(f[1].rsplit(":", 1)[1], 16) == port and f[3] == "0A":
            out.append(f[9])
    return out


def socket_fds(pid, inode):
    """How many of `pid`'s descriptors are the socket `inode`."""
    n = 0
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            if os.readlink(fd) == f"socket:[{inode}]":
                n += 1
        except OSError:
            continue
    return n


def wait_for_log(srv, text, timeout=20):
    deadline = time.monotonic() + timeout
    while text not in srv.log_path.read_text(errors="replace"):
        assert srv.proc.poll() is None, srv.log_tail()
        assert time.monotonic() < deadline, f"no {text!r} in the log:\n{srv.log_tail()}"
        time.sleep(0.05)


def start_activated(srv, addresses):
    """Starts `srv` under systemd-socket-activate listening on `addresses`;
    returns once the first client (which starts it) was greeted."""
    srv.port = free_port(socket.AF_INET, "127.0.0.1")
    srv.port6 = free_port(socket.AF_INET6, "::1")
    srv.sub_port = free_port(socket.AF_INET, "127.0.0.1")
    srv.write_config()
    cmd = [ACTIVATE]
    for a in addresses(srv):
        cmd += ["-l", a]
    log = open(srv.log_path, "ab")
    srv.proc = subprocess.Popen(cmd + srv.command(), stdin=subprocess.DEVNULL, stdout=log,
                                stderr=subprocess.STDOUT)
    log.close()
    # systemd-socket-activate execs ringmaild (same pid) at the first
    # connection, which then waits in the socket's queue until accepted.
    deadline = time.monotonic() + 20
    while True:
        try:
            c = SMTPConn("127.0.0.1", srv.port, timeout=20)
            break
        except OSError:
            assert srv.proc.poll() is None and time.monotonic() < deadline, srv.log_tail()
            time.sleep(0.05)
    assert c.read_reply().code == 220
    c.sock.close()
    wait_for_log(srv, "main: ready: ")


@needs_activate
def test_listeners_take_the_sockets_systemd_passes(start_ringmaild):
    srv = start_ringmaild(start=False)  # threads = 2: both shards share each socket
    start_activated(srv, lambda s: [f"127.0.0.1:{s.port}", f"127.0.0.1:{s.sub_port}"])
    log = srv.log_path.read_text()
    assert f"listener 127.0.0.1:{srv.port} (smtp) from systemd (socket activation)" in log, log
    assert f"listener 127.0.0.1:{srv.sub_port} (submission) from systemd (socket activation)" in log
    assert f"[::1]:{srv.port6} (smtp) from systemd" not in log, log
    assert "socket activation:" not in log, log  # nothing unmatched, nothing refused

    # Mail is taken on the passed smtp socket, ...
    with smtplib.SMTP("127.0.0.1", srv.port, timeout=30) as s:
        s.ehlo("client.test")
        assert s.sendmail("a@src.test", ["bob@example.test"],
                         "Subject: activated\r\n\r\nhello\r\n") == {}
    # ... the submission one still wants AUTH, ...
    with smtplib.SMTP("127.0.0.1", srv.sub_port, timeout=30) as s:
        s.ehlo("client.test")
        assert s.docmd("MAIL FROM:<a@example.test>") == (530, b"5.7.0 Authentication required")
    # ... and the listener nothing was passed for binds its own.
    c = SMTPConn("::1", srv.port6)
    assert c.read_reply().code == 220
    c.sock.close()

    # One listening socket per passed address (systemd-socket-activate's),
    # which each shard holds a copy of; the daemon binds one socket per
    # shard (SO_REUSEPORT) where nothing was passed.
    pid = srv.proc.pid
    for port in (srv.port, srv.sub_port):
        inodes = listening(port, "tcp")
        assert len(inodes) == 1, (port, inodes)
        assert socket_fds(pid, inodes[0]) == srv.threads, port
    own = listening(srv.port6, "tcp6")
    assert len(own) == srv.threads, own
    assert all(socket_fds(pid, i) == 1 for i in own)

    # On io_uring the shards take turns on the shared socket. (A multishot
    # accept keeps its place at the head of the socket's wait queue: one
    # shard took every connection.) epoll wakes every shard, which then
    # race for the connection: no turns to check there.
    if "shards on io_uring" not in log:
        return
    for _ in range(20):
        c = SMTPConn("127.0.0.1", srv.port)
        assert c.read_reply().code == 220
        c.sock.close()
    assert srv.stop() == (0, None)
    per_shard = [int(n) for n in re.findall(r"shard \d+: stopped: (\d+) connections", srv.log_path.read_text())]
    assert len(per_shard) == srv.threads and all(n > 0 for n in per_shard), per_shard


@needs_activate
def test_a_passed_socket_no_listener_takes_is_closed(start_ringmaild):
    srv = start_ringmaild(start=False, threads=1)
    extra = free_port(socket.AF_INET, "127.0.0.1")
    start_activated(srv, lambda s: [f"127.0.0.1:{s.port}", f"127.0.0.1:{extra}"])
    log = srv.log_path.read_text()
    assert (f"socket activation: the socket 127.0.0.1:{extra} from systemd matches no "
            f"[[listener]] in {srv.config_path}: closed") in log, log
    # Nobody holds it any more (systemd-socket-activate became ringmaild).
    assert listening(extra, "tcp") == [], listening(extra, "tcp")
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", extra), timeout=5).close()
    assert srv.alive()
    c = SMTPConn("127.0.0.1", srv.sub_port)  # bound by the daemon itself
    assert c.read_reply().code == 220
    c.sock.close()


WRAPPER = """import os, sys
fd = int(sys.argv[1])
if fd != 3:
    os.dup2(fd, 3)
    os.close(fd)
os.environ.update(LISTEN_FDS="1", LISTEN_PID=str(os.getpid()), LISTEN_FDNAMES="smtp")
os.execv(sys.argv[2], sys.argv[2:])
"""


def test_stop_leaves_systemds_socket_listening(start_ringmaild):
    """Regression: at a stop each shard shut its listening sockets down,
    which on a passed socket stops systemd's copy listening too: clients
    during a restart were refused. Now the socket keeps its queue, and the
    next daemon greets the client that connected in between."""
    held = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    held.bind(("127.0.0.1", 0))
    held.listen(16)
    srv = start_ringmaild(start=False)
    srv.port = held.getsockname()[1]
    srv.port6 = free_port(socket.AF_INET6, "::1")
    srv.sub_port = free_port(socket.AF_INET, "127.0.0.1")
    srv.write_config()

    def run():
        log = open(srv.log_path, "ab")
        srv.proc = subprocess.Popen([sys.executable, "-c", WRAPPER, str(held.fileno()), *srv.command()],
                                    stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                    pass_fds=(held.fileno(),))
        log.close()

    run()
    wait_for_log(srv, "main: ready: ")
    assert f"listener 127.0.0.1:{srv.port} (smtp) from systemd" in srv.log_path.read_text()
    c = SMTPConn("127.0.0.1", srv.port)
    assert c.read_reply().code == 220
    c.sock.close()
    srv.proc.send_signal(signal.SIGTERM)
    assert srv.proc.wait(timeout=30) == 0, srv.log_tail()

    # Between the two daemons: the connection waits in the queue.
    waiting = SMTPConn("127.0.0.1", srv.port, timeout=30)
    first_log = srv.log_path.read_text()
    run()
    assert waiting.read_reply().code == 220
    assert waiting.cmd("EHLO client.test").code == 250
    waiting.sock.close()
    # Greeted by the second daemon, which took the same socket.
    deadline = time.monotonic() + 20
    while srv.log_path.read_text().count("from systemd") < 2 * first_log.count("from systemd"):
        assert time.monotonic() < deadline, srv.log_tail()
        time.sleep(0.05)
    held.close()


def test_a_passed_descriptor_that_is_no_listening_socket_is_closed(start_ringmaild):
    """LISTEN_FDS naming something else (here a socket that does not
    listen): a warning, the descriptor closed, and the listeners bound as
    without systemd."""
    other = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    other.bind(("127.0.0.1", 0))  # bound, not listening
    srv = start_ringmaild(start=False, threads=1)
    srv.port = free_port(socket.AF_INET, "127.0.0.1")
    srv.port6 = free_port(socket.AF_INET6, "::1")
    srv.sub_port = free_port(socket.AF_INET, "127.0.0.1")
    srv.write_config()
    log = open(srv.log_path, "ab")
    srv.proc = subprocess.Popen([sys.executable, "-c", WRAPPER, str(other.fileno()), *srv.command()],
                                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                pass_fds=(other.fileno(),))
    log.close()
    inode = os.fstat(other.fileno()).st_ino
    other.close()
    wait_for_log(srv, "main: ready: ")
    text = srv.log_path.read_text()
    assert ("socket activation: descriptor 3 (smtp) from systemd is not a listening TCP socket "
            "(ListenStream= with an IP address and port): closed") in text, text
    assert "from systemd (socket activation)" not in text, text
    assert socket_fds(srv.proc.pid, inode) == 0
    c = SMTPConn("127.0.0.1", srv.port)
    assert c.read_reply().code == 220
    c.sock.close()


def test_check_config_listeners_in_use_ok(start_ringmaild):
    """The unit's ExecStartPre: systemd passes its sockets to ringmaild,
    not to the check, so with ringmail.socket active the addresses are in
    use. --listeners-in-use-ok makes that a warning; without it, an error."""
    srv = start_ringmaild(start=False)
    srv.domains_dir.mkdir(parents=True)
    held = socket.socket()
    held.bind(("127.0.0.1", 0))
    held.listen()
    srv.port = held.getsockname()[1]
    srv.port6 = free_port(socket.AF_INET6, "::1")
    srv.sub_port = free_port(socket.AF_INET, "127.0.0.1")
    srv.write_config()
    check = [RINGMAILD, "--check-config", "--config", str(srv.config_path)]
    r = subprocess.run(check, capture_output=True, text=True, timeout=60)
    assert r.returncode == 1 and f"listener 127.0.0.1:{srv.port}: Address already in use" in r.stderr, r.stderr
    r = subprocess.run(check + ["--listeners-in-use-ok"], capture_output=True, text=True, timeout=60)
    held.close()
    assert r.returncode == 0, r.stderr
    assert (f"warning: listener 127.0.0.1:{srv.port}: Address already in use" in r.stderr
            and "fine when the socket unit holds it" in r.stderr), r.stderr


def socket_unit():
    """dist/ringmail.socket as {section: [(key, value)]}, in order."""
    sections, cur = {}, None
    for raw in (ROOT / "dist" / "ringmail.socket").read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if m := re.fullmatch(r"\[(\w+)\]", line):
            cur = sections.setdefault(m[1], [])
            continue
        key, sep, value = line.partition("=")
        assert sep and cur is not None and re.fullmatch(r"[A-Za-z0-9]+", key), raw
        cur.append((key, value))
    return sections


def test_socket_unit_names_the_listeners_ringmail_init_writes(tmp_path):
    unit = socket_unit()
    sock = unit["Socket"]
    listen = [v for k, v in sock if k == "ListenStream"]
    assert ("BindIPv6Only", "ipv6-only") in sock and ("Service", "ringmail.service") in sock
    assert ("WantedBy", "sockets.target") in unit["Install"]
    assert not any(k == "ReusePort" for k, _ in sock)
    from test_tools import RINGMAIL
    if not os.path.exists(RINGMAIL):
        pytest.skip(f"{RINGMAIL} not built")
    r = subprocess.run([RINGMAIL, "init", "example.com", "--config-dir", str(tmp_path / "etc"),
                        "--addresses", "192.0.2.1"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    toml = (tmp_path / "etc" / "ringmail.toml").read_text()
    # 465 is written commented out until there is a certificate.
    written = re.findall(r'^#?address = "([^"]+)"', toml, re.M)
    assert sorted(listen) == sorted(written) and len(listen) == 6, (listen, written)


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze missing")
def test_socket_unit_verifies(tmp_path):
    """systemd-analyze accepts the socket unit beside the service it starts
    (whose commands must exist: here, the build's ringmaild)."""
    service = (ROOT / "dist" / "ringmail.service.in").read_text()
    for k, v in {"@sbindir@": str(Path(RINGMAILD).resolve().parent), "@sysconfdir@": "/etc",
                 "@docdir@": "/usr/share/doc/ringmail", "@spooldir@": "/var/spool/ringmail"}.items():
        service = service.replace(k, v)
    (tmp_path / "ringmail.service").write_text(service)
    shutil.copy(ROOT / "dist" / "ringmail.socket", tmp_path / "ringmail.socket")
    r = subprocess.run(["systemd-analyze", "verify", "--man=no", str(tmp_path / "ringmail.socket"),
                        str(tmp_path / "ringmail.service")], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and r.stdout.strip() == "" and r.stderr.strip() == "", r.stdout + r.stderr
    # The same check catches a mistake in it.
    bad = (tmp_path / "ringmail.socket").read_text().replace("NoDelay=yes", "NoDelay=yes\nListenStrem=26")
    (tmp_path / "ringmail.socket").write_text(bad)
    r = subprocess.run(["systemd-analyze", "verify", "--man=no", str(tmp_path / "ringmail.socket"),
                        str(tmp_path / "ringmail.service")], capture_output=True, text=True, timeout=60)
    assert "Unknown key" in r.stderr, r.stderr
