"""The admin API (issue 22): /api/status on the admin UNIX socket, whose
file mode is the authentication, and on the TCP http listener behind
bearer tokens; `ringmail status`; the socket's life (0660, removed at
the stop, a leftover replaced, a stranger's file refused)."""
import http.client
import json
import os
import re
import socket
import stat
import subprocess
import time

import pytest
from conftest import needs_root
from test_tls import HOSTS, certs  # noqa: F401 (fixture)
from test_tools import RINGMAIL, tool

# Tokens "abc" and "hello" (their SHA-256 below): an admin and an inject one.
TOKENS = """[[api.token]]
name = "ops"
sha256 = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
scopes = ["admin"]
[[api.token]]
name = "app"
sha256 = "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
scopes = ["inject"]
sender_domains = ["example.test"]
"""


class UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path):
        super().__init__("ringmaild", timeout=10)
        self.path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(10)
        self.sock.connect(self.path)


def get(conn, path, headers=None):
    conn.request("GET", path, headers=headers or {})
    r = conn.getresponse()
    body = r.read().decode()
    return r.status, r.getheader("Content-Type"), body


def admin_server(start_ringmaild, tmp_path, sock=None, **kw):
    sock = sock or tmp_path / "admin.sock"
    srv = start_ringmaild(extra_toml=f'[admin]\nsocket = "{sock}"\n' + TOKENS, **kw)
    return srv, sock


def test_status_on_the_admin_socket(start_ringmaild, tmp_path):
    # Its directory does not exist yet (systemd makes /run/ringmail; by
    # hand the daemon does).
    srv, sock = admin_server(start_ringmaild, tmp_path, sock=tmp_path / "run" / "admin.sock",
                             threads=2)
    assert stat.S_IMODE(os.stat(sock.parent).st_mode) == 0o750
    assert stat.S_ISSOCK(os.stat(sock).st_mode)
    assert stat.S_IMODE(os.stat(sock).st_mode) == 0o660
    status, ctype, body = get(UnixHTTPConnection(str(sock)), "/api/status")
    assert status == 200 and ctype == "application/json", body
    st = json.loads(body)
    assert st["hostname"] == srv.hostname and st["pid"] == srv.proc.pid
    assert st["version"] and st["backend"] in ("io_uring", "epoll")
    assert [s["index"] for s in st["shards"]] == [0, 1]
    assert {"address": str(sock), "kind": "admin"} in st["listeners"]
    assert {"address": f"127.0.0.1:{srv.port}", "kind": "smtp"} in st["listeners"]
    assert 0 <= st["uptime_s"] < 60 and st["stopping"] is False
    assert all(0 <= s["loop_utilisation"] <= 1 for s in st["shards"])
    status, _, body = get(UnixHTTPConnection(str(sock)), "/api/nothing")
    assert status == 404 and json.loads(body) == {"error": "no such path: /api/nothing (try /api/status, /api/queue, /api/queue/messages, /api/destinations/)"}
    srv.stop()
    assert not sock.exists()  # removed at the stop


def test_api_on_tcp_needs_an_admin_token(start_ringmaild, tmp_path):
    srv, _ = admin_server(start_ringmaild, tmp_path, http=True)
    c = http.client.HTTPConnection("127.0.0.1", srv.http_port, timeout=10)
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic abc"},
                    {"Authorization": "Bearer ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"}):
        status, _, body = get(c, "/api/status", headers)
        assert status == 401, (headers, body)
        assert "bearer token" in json.loads(body)["error"]
    status, _, body = get(c, "/api/status", {"Authorization": "Bearer hello"})
    assert status == 403 and json.loads(body) == {"error": 'the token "app" has no admin scope'}
    status, _, body = get(c, "/api/status", {"Authorization": "Bearer abc"})
    assert status == 200 and json.loads(body)["hostname"] == srv.hostname
    status, _, _ = get(c, "/metrics")  # still open on the listener
    assert status == 200


def test_ringmail_status(start_ringmaild, tmp_path, certs):  # noqa: F811
    srv, sock = admin_server(start_ringmaild, tmp_path, threads=1, tls_cert_dirs=[certs])
    r = tool("--config", str(srv.config_path), "status")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("ringmaild ") and f"on {srv.hostname}, pid {srv.proc.pid}" in r.stdout
    assert f"{sock} (admin)" in r.stdout and "1 shard," in r.stdout
    # The certificates with their names and expiry (30 days, openssl req -days 30).
    assert f"certificate {HOSTS['rsa']} (RSA), expires " in r.stdout
    assert re.search(rf"^certificate {HOSTS['ecc']} \(ECDSA\), expires 20\d\d-\d\d-\d\d "
                     r"\d\d:\d\d:\d\d UTC \((29|30) days\)$", r.stdout, re.M), r.stdout
    r = tool("--config", str(srv.config_path), "status", "--json")
    st = json.loads(r.stdout)
    assert r.returncode == 0 and st["pid"] == srv.proc.pid
    assert sorted(n for c in st["certificates"] for n in c["names"]) == sorted(HOSTS.values())
    assert all(28 <= c["days_left"] <= 30 for c in st["certificates"]), st["certificates"]
    srv.stop()
    r = tool("--config", str(srv.config_path), "status")
    assert r.returncode == 75 and r.stdout == ""
    assert r.stderr == f"ringmail: ringmaild is not running ({sock}: No such file or directory)\n"


def test_a_leftover_socket_is_replaced_and_a_stranger_file_refused(start_ringmaild, tmp_path):
    sock = tmp_path / "admin.sock"
    leftover = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    leftover.bind(str(sock))  # bound, never listening: what a kill -9 leaves
    leftover.close()
    srv, _ = admin_server(start_ringmaild, tmp_path)
    assert get(UnixHTTPConnection(str(sock)), "/api/status")[0] == 200
    srv.stop()
    sock.write_text("not a socket\n")
    r = subprocess.run(srv.command(), capture_output=True, text=True, timeout=60)
    assert r.returncode == 1
    assert f"cannot listen on admin socket {sock}: exists and is not a socket" in r.stderr
    assert sock.read_text() == "not a socket\n"


@needs_root
def test_a_user_outside_the_group_cannot_open_the_socket(start_ringmaild):
    """The socket is 0660 root:root here: nobody (another user, in no group
    of ours) is refused by the file mode, not by a directory on the way."""
    import shutil
    import tempfile
    d = tempfile.mkdtemp()
    try:
        os.chmod(d, 0o755)
        sock = os.path.join(d, "admin.sock")
        srv = start_ringmaild(extra_toml=f'[admin]\nsocket = "{sock}"\n')
        cfg = os.path.join(d, "ringmail.toml")
        shutil.copy(srv.config_path, cfg)
        os.chmod(cfg, 0o644)
        r = subprocess.run(["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups",
                            RINGMAIL, "--config", cfg, "status"],
                           capture_output=True, text=True, timeout=30)
        assert r.returncode == 1, r
        assert r.stderr == f"ringmail: cannot reach ringmaild ({sock}: Permission denied)\n"
        assert tool("--config", cfg, "status").returncode == 0  # root may
    finally:
        shutil.rmtree(d, ignore_errors=True)


def test_status_counts_the_queue(start_ringmaild, tmp_path):
    """Remote mail that cannot go (DNS at a closed port: deferred) is
    counted with the age of the oldest; local mail is delivered and leaves
    the count."""
    import smtplib
    srv, sock = admin_server(start_ringmaild, tmp_path, relay_networks=["127.0.0.0/8"], http=True)
    with smtplib.SMTP(srv.host, srv.port, timeout=10) as s:
        for i in range(3):
            s.sendmail("app@example.test", [f"r{i}@remote.example"], f"Subject: {i}\r\n\r\nx\r\n")
        s.sendmail("app@example.test", ["bob@example.test"], "Subject: local\r\n\r\nx\r\n")
    deadline = time.monotonic() + 20
    while True:
        q = json.loads(get(UnixHTTPConnection(str(sock)), "/api/status")[2])["queue"]
        if (q["outbound_messages"], q["local_deliveries"]) == (3, 0):
            break
        assert time.monotonic() < deadline, q
        time.sleep(0.2)
    assert q["oldest_outbound_arrival_unix"] > 0 and 0 <= q["oldest_outbound_age_s"] < 60, q
    r = tool("--config", str(srv.config_path), "status")
    assert re.search(r"queue: 3 messages for remote recipients, the oldest waiting \d+s,", r.stdout), \
        r.stdout
    assert ", 0 local deliveries\n" in r.stdout
    from test_http import scrape
    m = scrape(srv)
    assert sum(m["ringmail_outbound_queued"].values()) == 3, m["ringmail_outbound_queued"]
    assert max(m["ringmail_outbound_oldest_age_seconds"].values()) < 60
    assert sum(m["ringmail_local_queued"].values()) == 0


def test_admin_socket_rebinds_right_after_kill9(start_ringmaild, tmp_path):
    """Regression: after kill -9 the io_uring rings of the dead daemon are
    torn down a moment later, and its admin socket still accepted a
    connection then, so the restart refused to start ("another process
    answers there")."""
    srv, sock = admin_server(start_ringmaild, tmp_path)
    for _ in range(5):
        srv.kill9()
        srv.start()  # waits for the TCP listeners; the admin socket comes after them
        deadline = time.monotonic() + 10
        while True:
            try:
                conn = UnixHTTPConnection(str(sock))
                assert get(conn, "/api/status")[0] == 200
                conn.close()
                break
            except (ConnectionRefusedError, FileNotFoundError):
                assert time.monotonic() < deadline, srv.log_tail()
                time.sleep(0.05)
        assert srv.proc.poll() is None, srv.log_tail()
