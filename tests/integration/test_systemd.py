"""ringmaild under systemd's rules, without a running systemd: the
sd_notify protocol against a notify socket of the test's own (READY=1 once
the listeners accept, watchdog pings, RELOADING=1 then READY=1 around
SIGHUP, STOPPING=1), the `meson install` layout in a DESTDIR with a unit
that `systemd-analyze verify` accepts, and the daemon running as an
unprivileged user that holds only CAP_NET_BIND_SERVICE (what the unit's
User= and AmbientCapabilities= give it) on a port below 1024."""
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from conftest import RINGMAILD, SMTPConn, free_port, needs_root

BUILD = Path(RINGMAILD).resolve().parent.parent


class NotifySocket:
    def __init__(self, path):
        self.path = str(path)
        self.s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.s.bind(self.path)
        self.seen = []

    def wait_for(self, key, timeout=20):
        """Messages until one has the line `key` (e.g. READY=1); returns it."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.s.settimeout(max(0.05, deadline - time.monotonic()))
            try:
                msg = self.s.recv(4096).decode()
            except socket.timeout:
                break
            self.seen.append(msg)
            if key in msg.split("\n"):
                return msg
        raise AssertionError(f"no {key} within {timeout} s; got {self.seen}")


def test_notify_readiness_watchdog_reload_and_stop(start_ringmaild, tmp_path):
    n = NotifySocket(tmp_path / "notify")
    srv = start_ringmaild(start=False, env={"NOTIFY_SOCKET": n.path, "WATCHDOG_USEC": "1500000"})
    srv.port = free_port(socket.AF_INET, "127.0.0.1")
    srv.port6 = free_port(socket.AF_INET6, "::1")
    srv.sub_port = free_port(socket.AF_INET, "127.0.0.1")
    srv.write_config()
    log = open(srv.log_path, "ab")
    srv.proc = subprocess.Popen(srv.command(), stdout=log, stderr=subprocess.STDOUT,
                                env={**os.environ, **srv.env})
    ready = n.wait_for("READY=1")
    # READY=1 only once every listener is bound: connecting now works.
    for fam, host, port in [(socket.AF_INET, "127.0.0.1", srv.port), (socket.AF_INET6, "::1", srv.port6),
                            (socket.AF_INET, "127.0.0.1", srv.sub_port)]:
        socket.create_connection((host, port), timeout=5).close()
    assert "STATUS=2 shards on" in ready and f"127.0.0.1:{srv.port}/smtp" in ready, ready
    assert not any("WATCHDOG=1" in m for m in n.seen[:-1])  # nothing before READY
    n.wait_for("WATCHDOG=1", timeout=10)
    n.wait_for("WATCHDOG=1", timeout=10)  # and again
    srv.proc.send_signal(signal.SIGHUP)
    reloading = n.wait_for("RELOADING=1")
    assert "MONOTONIC_USEC=" in reloading, reloading
    n.wait_for("READY=1")
    # A refused configuration keeps the running one, and READY=1 comes back.
    good = srv.config_path.read_text()
    srv.config_path.write_text("threads = \"many\"\n")
    srv.proc.send_signal(signal.SIGHUP)
    n.wait_for("RELOADING=1")
    n.wait_for("READY=1")
    srv.config_path.write_text(good)
    c = SMTPConn(srv.host, srv.port)
    assert c.read_reply().code == 220
    c.sock.close()
    srv.proc.send_signal(signal.SIGTERM)
    assert "STOPPING=1" in n.wait_for("STOPPING=1")
    assert srv.proc.wait(timeout=30) == 0
    srv.proc = None
    log.close()


@needs_root  # systemd-tmpfiles gives the directories their owners
def test_install_layout_and_unit_verify(tmp_path):
    dest = tmp_path / "dest"
    r = subprocess.run(["meson", "install", "-C", str(BUILD), "--no-rebuild", "--destdir", str(dest)],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    prefix = subprocess.run(["meson", "introspect", "--buildoptions", str(BUILD)], capture_output=True,
                            text=True, timeout=60).stdout
    if '"name": "prefix", "value": "/usr"' not in prefix.replace("\n", " "):
        pytest.skip("the build's prefix is not /usr (tools/dev sets it)")
    for f in ["usr/sbin/ringmaild", "usr/bin/ringmail", "usr/sbin/ringmail-sendmail", "usr/bin/smtp-blaster"]:
        assert os.access(dest / f, os.X_OK), f
    assert (dest / "etc/ringmail").is_dir()
    # The socket unit beside the service, as it is in dist/ (socket activation).
    socket_unit = (dest / "usr/lib/systemd/system/ringmail.socket").read_text()
    assert socket_unit == (BUILD.parent / "dist" / "ringmail.socket").read_text()
    unit = (dest / "usr/lib/systemd/system/ringmail.service").read_text()
    for line in ["Type=notify", "User=ringmail", "ExecReload=/bin/kill -HUP $MAINPID",
                 "ExecStart=/usr/sbin/ringmaild --config /etc/ringmail/ringmail.toml",
                 "AmbientCapabilities=CAP_NET_BIND_SERVICE", "ProtectSystem=strict",
                 "ReadWritePaths=/var/spool/ringmail", "NoNewPrivileges=yes", "PrivateTmp=yes",
                 "ProtectHome=yes", "RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX",
                 "SystemCallFilter=@system-service io_uring_setup io_uring_enter io_uring_register",
                 "WatchdogSec=30s"]:
        assert line in unit.splitlines(), line
    # The user and the spool, made inside the DESTDIR as the install step
    # makes them on the host.
    (dest / "etc").mkdir(exist_ok=True)
    r = subprocess.run(["systemd-sysusers", f"--root={dest}", str(dest / "usr/lib/sysusers.d/ringmail.conf")],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    user = [line.split(":") for line in (dest / "etc/passwd").read_text().splitlines()
            if line.startswith("ringmail:")]
    assert user and user[0][5] == "/var/spool/ringmail" and user[0][6] == "/usr/sbin/nologin", user
    r = subprocess.run(["systemd-tmpfiles", f"--root={dest}", "--create",
                        str(dest / "usr/lib/tmpfiles.d/ringmail.conf")], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    spool = (dest / "var/spool/ringmail").stat()
    assert spool.st_uid == int(user[0][2]) and oct(spool.st_mode & 0o7777) == "0o750", spool
    # systemd-analyze checks the commands exist: point them at the DESTDIR's.
    check = tmp_path / "ringmail.service"
    check.write_text(unit.replace("/usr/sbin/", f"{dest}/usr/sbin/"))
    r = subprocess.run(["systemd-analyze", "verify", "--man=no", str(check)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and r.stdout.strip() == "" and r.stderr.strip() == "", r.stdout + r.stderr
    # The same check does catch a broken unit.
    check.write_text(check.read_text().replace("Type=notify", "Type=notify\nWatchdgSec=5"))
    r = subprocess.run(["systemd-analyze", "verify", "--man=no", str(check)],
                       capture_output=True, text=True, timeout=60)
    assert "Unknown key" in r.stderr, r.stderr


def low_port():
    for port in range(700, 1000):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
                return port
            except OSError:
                continue
    pytest.skip("no free port below 1024")


@needs_root  # it drops from root to nobody, keeping one capability
def test_runs_unprivileged_with_only_net_bind_service():
    if not shutil.which("setpriv"):
        pytest.skip("setpriv (util-linux) missing")
    nobody = pwd.getpwnam("nobody")
    work = Path(tempfile.mkdtemp(prefix="ringmail-unpriv-"))
    try:
        os.chmod(work, 0o755)
        data = work / "data"
        data.mkdir()
        os.chown(data, nobody.pw_uid, nobody.pw_gid)
        port = low_port()
        cfg = work / "ringmail.toml"
        cfg.write_text(f'hostname = "mx.test.example"\ndata_dir = "{data}"\nthreads = 1\n'
                       f'local_domains = ["example.test"]\ndomains_dir = "{work}/domains"\n'
                       f'[[listener]]\naddress = "127.0.0.1:{port}"\nkind = "smtp"\n'
                       f'[outbound]\ndns_servers = "127.0.0.1:9"\n')
        cmd = ["setpriv", f"--reuid={nobody.pw_uid}", f"--regid={nobody.pw_gid}", "--clear-groups",
               "--inh-caps=-all,+net_bind_service", "--ambient-caps=-all,+net_bind_service",
               "--bounding-set=-all,+net_bind_service", "--no-new-privs",
               os.path.abspath(RINGMAILD), "--config", str(cfg)]
        p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 15
            while True:
                try:
                    c = SMTPConn("127.0.0.1", port)
                    break
                except OSError:
                    assert p.poll() is None and time.monotonic() < deadline, p.stdout.read().decode()
                    time.sleep(0.1)
            assert c.read_reply().code == 220
            assert c.cmd("EHLO client.test").code == 250
            assert c.cmd("MAIL FROM:<a@src.test>").code == 250
            assert c.cmd("RCPT TO:<bob@example.test>").code == 250
            assert c.cmd("DATA").code == 354
            assert c.cmd("Subject: unprivileged\r\n\r\nhello\r\n.").code == 250  # fsynced, as nobody
            c.sock.close()
            deadline = time.monotonic() + 15
            while not list((data / "mail").rglob("new/*")) and time.monotonic() < deadline:
                time.sleep(0.1)
            assert list((data / "mail").rglob("new/*")), "not delivered"
            for f in (data / "mail").rglob("*"):
                assert f.stat().st_uid == nobody.pw_uid, f
            status = Path(f"/proc/{p.pid}/status").read_text()
            uid_line = next(line for line in status.splitlines() if line.startswith("Uid:"))
            assert uid_line.split()[1:] == [str(nobody.pw_uid)] * 4, uid_line
            caps = next(line for line in status.splitlines() if line.startswith("CapEff:"))
            assert int(caps.split()[1], 16) == 1 << 10, caps  # CAP_NET_BIND_SERVICE alone
        finally:
            p.send_signal(signal.SIGTERM)
            out = p.communicate(timeout=30)[0].decode()
        assert p.returncode == 0, out
    finally:
        shutil.rmtree(work, ignore_errors=True)


@needs_root  # it adds the ringmail group
def test_init_shares_secrets_with_the_ringmail_group(tmp_path):
    """On a host with the ringmail group (made by the install), `ringmail
    init` leaves the users file and DKIM keys 0640 root:ringmail, so the
    service's user can read them; the group is made here for the test when
    the host has none, and removed after."""
    import grp
    from test_tools import RINGMAIL
    made = False
    try:
        grp.getgrnam("ringmail")
    except KeyError:
        subprocess.run(["groupadd", "--system", "ringmail"], check=True, timeout=60)
        made = True
    try:
        gid = grp.getgrnam("ringmail").gr_gid
        r = subprocess.run([RINGMAIL, "init", "example.com", "--config-dir", str(tmp_path / "etc"),
                            "--addresses", "192.0.2.1"], capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stderr
        assert "mode 0640, group ringmail" in r.stdout, r.stdout
        dom = tmp_path / "etc" / "domains" / "example.com"
        secrets = [dom / "users"] + list(dom.glob("dkim:*.pem"))
        assert len(secrets) == 3, secrets
        for f in secrets:
            st = f.stat()
            assert st.st_gid == gid and oct(st.st_mode & 0o777) == "0o640", (f, oct(st.st_mode))
    finally:
        if made:
            subprocess.run(["groupdel", "ringmail"], timeout=60)


def test_journal_stream_gets_priorities(start_ringmaild, tmp_path):
    """With stderr being the journal's stream (JOURNAL_STREAM names its
    device and inode, as systemd sets it), lines carry a <N> priority
    prefix instead of a timestamp: journald makes it the entry's PRIORITY."""
    srv = start_ringmaild(start=False)
    srv.log_path.parent.mkdir(parents=True, exist_ok=True)
    srv.log_path.touch()
    st = srv.log_path.stat()
    srv.env["JOURNAL_STREAM"] = f"{st.st_dev}:{st.st_ino}"
    srv.start()
    good = srv.config_path.read_text()
    srv.config_path.write_text("threads = \"many\"\n")
    srv.proc.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + 15
    while "configuration refused" not in srv.log_path.read_text() and time.monotonic() < deadline:
        time.sleep(0.1)
    srv.config_path.write_text(good)
    lines = [x for x in srv.log_path.read_text().splitlines() if not x.startswith("====")]
    assert any(x.startswith("<6>main: ready: ") for x in lines), lines[:20]
    assert any(x.startswith("<4>main: SIGHUP: configuration refused") for x in lines), lines
    assert all(x[:1] == "<" and x[2:3] == ">" for x in lines), [x for x in lines if x[:1] != "<"][:5]
    # Without JOURNAL_STREAM (or naming another file): timestamps as before.
    other = start_ringmaild(env={"JOURNAL_STREAM": "1:1"})
    first = [x for x in other.log_path.read_text().splitlines() if not x.startswith("====")][0]
    assert first[:2] == "20" and first[10] == "T", first


def test_start_failure_is_logged_as_an_error(tmp_path):
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen(1)
    port = busy.getsockname()[1]
    cfg = tmp_path / "r.toml"
    cfg.write_text(f'hostname = "mx.test"\ndata_dir = "{tmp_path}/data"\nlocal_domains = ["example.test"]\n'
                   f'[[listener]]\naddress = "127.0.0.1:{port}"\nkind = "smtp"\n')
    log = tmp_path / "log"
    with open(log, "wb") as f:
        st = os.fstat(f.fileno())
        r = subprocess.run([RINGMAILD, "--config", str(cfg)], stdout=f, stderr=f, timeout=60,
                           env={**os.environ, "JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino}"})
    busy.close()
    text = log.read_text()
    assert r.returncode != 0, text
    assert any(x.startswith("<3>") and "in use" in x for x in text.splitlines()), text
