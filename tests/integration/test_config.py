"""docs/configuration.md: --check-config, configuration errors, --data-dir,
SIGHUP reload."""

import os
import re
import select
import shutil
from pathlib import Path
import signal
import socket
import subprocess
import threading
import time

import pytest

from conftest import BACKEND, free_port
from mailcheck import crlf, parse_delivery

SIMPLE = crlf("Subject: cfg\n\nbody\n")


def check_config(binary, path):
    p = subprocess.run([binary, "--check-config", "--config", str(path)],
                       stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=20)
    return p.returncode, p.stdout.decode("utf-8", "replace"), p.stderr.decode("utf-8", "replace")


def test_check_config_valid(start_ringmaild, ringmaild_binary):
    d = start_ringmaild(start=False)
    d.domains_dir.mkdir(parents=True)
    rc, out, err = checked(d, ringmaild_binary)
    assert rc == 0, f"--check-config on a valid file: exit {rc}\nstdout: {out}\nstderr: {err}"


def config_text(top="", listener="", tail=""):
    """A valid file with `top` lines after data_dir (line 3 onwards), extra
    `listener` lines in the [[listener]] table and `tail` at the end."""
    return ('hostname = "mx.test.example"\n'
            'data_dir = "/tmp/x"\n' + top +
            'local_domains = ["example.test"]\n'
            '[[listener]]\n'
            'address = "127.0.0.1:2525"\n' + listener +
            'kind = "smtp"\n' + tail)


BAD_CONFIGS = {
    # name: (text, key that must be named, line number of the error)
    "unknown-top-level-key": (config_text(top='hostnme = "typo.example"\n'), "hostnme", 3),
    "unknown-limits-key": (
        config_text(tail='[limits]\nrcpt_count_max = 5\nmessage_byte_max = 1000\n'),
        "message_byte_max", 9),
    "unknown-listener-key": (config_text(listener='knd = "smtp"\n'), "knd", 6),
    "bad-backend-value": (config_text(top='backend = "kqueue"\n'), "backend", 3),
    "wrong-type": (config_text(tail='[limits]\nerrors_max = "ten"\n'), "errors_max", 8),
    # Regression (issue 19, defect 4): a listener listed twice bound twice.
    "duplicate-listener": (config_text(tail='[[listener]]\naddress = "127.0.0.1:2525"\n'),
                           "listener.address", 8),
}


@pytest.mark.parametrize("name", list(BAD_CONFIGS))
def test_check_config_invalid(tmp_path, ringmaild_binary, name):
    text, key, line = BAD_CONFIGS[name]
    path = tmp_path / f"{name}.toml"
    path.write_text(text)
    rc, out, err = check_config(ringmaild_binary, path)
    assert rc == 1, f"--check-config on an invalid file: exit {rc}, expected 1\nstderr: {err}"
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].strip(), f"expected one line on stderr, got {lines!r}"
    msg = lines[0]
    assert str(path) in msg or path.name in msg, f"error does not name the file: {msg!r}"
    assert key in msg, f"error does not name the key {key!r}: {msg!r}"
    assert re.search(r"(?<!\d)%d(?!\d)" % line, msg.replace(str(path), "")), (
        f"error does not name line {line}: {msg!r}")


def test_invalid_config_stops_startup(tmp_path, ringmaild_binary):
    text, key, line = BAD_CONFIGS["unknown-limits-key"]
    path = tmp_path / "bad.toml"
    path.write_text(text.replace("/tmp/x", str(tmp_path / "data")))
    p = subprocess.Popen([ringmaild_binary, "--config", str(path)], stdin=subprocess.DEVNULL,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        out, err = p.communicate(timeout=10)
    except subprocess.TimeoutExpired:
        p.kill()
        p.communicate()
        pytest.fail("ringmaild kept running with an invalid configuration")
    assert p.returncode != 0, "ringmaild exited 0 with an invalid configuration"
    assert key in err.decode("utf-8", "replace"), err


def test_data_dir_flag_overrides_file(start_ringmaild, tmp_path):
    other = tmp_path / "flag-data"
    d = start_ringmaild(extra_args=["--data-dir", str(other)])
    c = d.connect(read_greeting=True)
    c.cmd("EHLO cfg.test.example")
    c.expect("MAIL FROM:<a@src.example>", "250 2.1.0 Ok")
    c.expect("RCPT TO:<flag@example.test>", "250 2.1.5 Ok")
    c.expect("DATA", "354 End data with <CR><LF>.<CR><LF>")
    c.send(SIMPLE + b".\r\n")
    c.check_re(c.read_reply(), r"250 2\.0\.0 Ok: queued as \S+")
    deadline = time.monotonic() + 15
    target = other / "mail" / "example.test" / "flag" / "Maildir" / "new"
    while not (target.is_dir() and any(target.iterdir())):
        assert time.monotonic() < deadline, f"nothing delivered under {target}"
        time.sleep(0.05)
    assert not (d.data_dir / "mail" / "example.test" / "flag").exists(), (
        "delivered under the file's data_dir although --data-dir was given")


def greeting_of(d):
    with socket.create_connection((d.host, d.port), timeout=5) as s:
        data = b""
        while b"\r\n" not in data:
            chunk = s.recv(1000)
            if not chunk:
                break
            data += chunk
        return data.split(b"\r\n")[0].decode()


def test_sighup_reload(start_ringmaild):
    d = start_ringmaild()
    old = d.connect(read_greeting=True)
    d.hostname = "reloaded.test.example"
    d.local_domains = ["example.test", "third.test"]
    d.limits["message_bytes_max"] = 2000
    d.write_config()
    d.signal(signal.SIGHUP)
    deadline = time.monotonic() + 5
    while greeting_of(d) != "220 reloaded.test.example ESMTP ringmail":
        assert time.monotonic() < deadline, f"after SIGHUP the greeting is still {greeting_of(d)!r}"
        time.sleep(0.1)
    c = d.connect(read_greeting=False)
    c.check(c.read_reply(), "220 reloaded.test.example ESMTP ringmail")
    r = c.cmd("EHLO cfg.test.example")
    assert r.lines[0] == "250-reloaded.test.example" and "250-SIZE 2000" in r.lines, r.lines
    c.expect("MAIL FROM:<a@src.example>", "250 2.1.0 Ok")
    c.expect("RCPT TO:<x@third.test>", "250 2.1.5 Ok")
    c.expect("RCPT TO:<x@other.test>", "554 5.7.1 Relay access denied")
    # the connection opened before the reload keeps the old configuration
    r = old.cmd("EHLO cfg.test.example")
    assert r.lines[0] == "250-mx.test.example" and "250-SIZE 100000" in r.lines, (
        f"connection opened before SIGHUP: {r.lines}")

    # an invalid file is refused and the running configuration stays
    d.config_path.write_text(d.config_path.read_text() + "bogus_key = 1\n")
    d.signal(signal.SIGHUP)
    time.sleep(1.0)
    assert d.alive(), "ringmaild died on SIGHUP with an invalid file"
    assert greeting_of(d) == "220 reloaded.test.example ESMTP ringmail"
    d.write_config()  # valid again for a clean shutdown


def test_second_daemon_cannot_share_a_listening_address(start_ringmaild):
    """Regression (issue 19, defect 4): SO_REUSEPORT let another ringmaild
    (another configuration, another data_dir) bind an address in use, and
    the connections were split between the two. It must refuse to start."""
    first = start_ringmaild()
    second = start_ringmaild(start=False)
    second.port, second.port6, second.sub_port = free_port_of(first)
    second.write_config()
    p = subprocess.run(second.command(), stdin=subprocess.DEVNULL, capture_output=True, timeout=30)
    out = (p.stdout + p.stderr).decode("utf-8", "replace")
    assert p.returncode == 1, out
    assert (f"cannot listen on 127.0.0.1:{first.port}: Address already in use "
            "(another process listens there: another ringmaild, or another MTA)") in out, out
    assert "spool recovered" not in out, out
    # Every connection still reaches the first daemon.
    for _ in range(20):
        c = first.connect(read_greeting=True)
        c.close()


def free_port_of(first):
    """The first daemon's smtp port, and fresh ports for the others."""
    from conftest import free_port
    return first.port, free_port(socket.AF_INET6, "::1"), free_port(socket.AF_INET, "127.0.0.1")


def checked(d, ringmaild_binary, *extra):
    """--check-config on the Ringmaild `d` as configured now (free ports)."""
    from conftest import free_port
    if d.port is None:
        d.port = free_port(socket.AF_INET, "127.0.0.1")
        d.port6 = free_port(socket.AF_INET6, "::1")
        d.sub_port = free_port(socket.AF_INET, "127.0.0.1")
        d.smtps_port = free_port(socket.AF_INET, "127.0.0.1")
    d.write_config()
    p = subprocess.run([ringmaild_binary, "--check-config", "--config", str(d.config_path), *extra],
                       stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=30)
    return p.returncode, p.stdout, p.stderr


def test_check_config_loads_what_the_daemon_loads(start_ringmaild, ringmaild_binary, tmp_path):
    """Regression (issue 19, defect 10): --check-config said ok for
    configurations that cannot start. Each case alone fails the check with
    a line that says what is wrong."""
    from test_tls import make_cert
    d = start_ringmaild(start=False)
    d.domains_dir.mkdir(parents=True)
    assert checked(d, ringmaild_binary)[0] == 0

    # A submissions listener with no certificate.
    d.tls_cert_dirs = [tmp_path / "empty-certs"]
    (tmp_path / "empty-certs").mkdir()
    rc, _, err = checked(d, ringmaild_binary)
    assert rc == 1 and 'is kind "submissions" (TLS) but no certificate was found' in err, err

    # A certificate whose key is missing (the daemon logged "no certificate found").
    make_cert(tmp_path / "certs" / "mx.test.example", "mx.test.example", "fullchain.pem", "privkey.pem")
    (tmp_path / "certs" / "mx.test.example" / "privkey.pem").unlink()
    d.tls_cert_dirs = [tmp_path / "certs"]
    rc, _, err = checked(d, ringmaild_binary)
    assert rc == 1 and "fullchain.pem: no key beside it (privkey.pem or mx.test.example.key)" in err, err
    d.tls_cert_dirs = None

    # An address already in use by another process.
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen()
    d.port = busy.getsockname()[1]
    rc, _, err = checked(d, ringmaild_binary)
    busy.close()
    assert rc == 1 and f"listener 127.0.0.1:{d.port}: Address already in use" in err, err
    d.port = None

    # An unusable data_dir, bad dns_servers, a missing domains_dir.
    (tmp_path / "a-file").write_text("x")
    d.data_dir = tmp_path / "a-file" / "data"
    rc, _, err = checked(d, ringmaild_binary)
    assert rc == 1 and "data_dir cannot be made" in err, err
    d.data_dir = tmp_path / "data"
    d.dns["servers"] = "nonsense here"
    rc, _, err = checked(d, ringmaild_binary)
    assert rc == 1 and "[dns] servers 'nonsense here'" in err, err
    d.dns["servers"] = "127.0.0.1:9"
    d.domains_dir = tmp_path / "nowhere"
    rc, _, err = checked(d, ringmaild_binary)
    assert rc == 1 and "nowhere: domains_dir does not exist" in err, err



def test_check_config_blames_only_the_file_at_fault(start_ringmaild, ringmaild_binary):
    """Regression: one error string was shared by a domain's users file and
    its domain.toml, so a mistake in the users file also reported the good
    domain.toml as broken, with the users file's reason."""
    d = start_ringmaild(start=False)
    dom = d.domains_dir / "example.test"
    dom.mkdir(parents=True)
    (dom / "users").write_text("alice\n")
    (dom / "domain.toml").write_text('delivery = "maildir"\n')
    rc, _, err = checked(d, ringmaild_binary)
    assert rc == 1 and "example.test/users: line 1: expected 'user $scrypt$...'" in err, err
    assert "domain.toml" not in err, err

def test_check_config_warns_of_an_open_relay(start_ringmaild, ringmaild_binary):
    d = start_ringmaild(start=False, relay_networks=["0.0.0.0/0"])
    d.domains_dir.mkdir(parents=True)
    rc, out, err = checked(d, ringmaild_binary)
    assert rc == 0, err
    assert "warning: relay_networks has 0.0.0.0/0: every client on the Internet may relay" in err, err
    assert "configuration ok" in out


def test_check_config_reads_files_as_the_service_user(ringmaild_binary):
    """The files must be readable by the user the service runs as, not
    only by root (who runs the check)."""
    import shutil
    import tempfile
    from conftest import Ringmaild
    from test_tls import make_cert
    if os.geteuid() != 0:
        pytest.skip("needs root")
    base = Path(tempfile.mkdtemp(prefix="ringmail-checkas-"))  # /tmp's pytest folders are 0700
    try:
        base.chmod(0o755)
        certs = base / "certs"
        make_cert(certs / "mx.test.example", "mx.test.example", "fullchain.pem", "privkey.pem")
        d = Ringmaild(ringmaild_binary, base / "rm", tls_cert_dirs=[certs])
        d.domains_dir.mkdir(parents=True)
        d.data_dir.mkdir(parents=True)
        d.data_dir.chmod(0o777)
        for p in [certs, *certs.rglob("*"), d.workdir, d.domains_dir]:
            p.chmod(0o755 if p.is_dir() else 0o644)
        (certs / "mx.test.example" / "privkey.pem").chmod(0o600)  # root's only
        rc, out, err = checked(d, ringmaild_binary, "--check-as", "nobody")
        assert rc == 1, out + err
        assert "privkey.pem: not readable by user nobody (Permission denied)" in err, err
        assert err.count("not readable by user nobody") == 1, err
        (certs / "mx.test.example" / "privkey.pem").chmod(0o644)
        rc, out, err = checked(d, ringmaild_binary, "--check-as", "nobody")
        assert rc == 0, err
        assert "(files checked as user nobody)" in out
    finally:
        shutil.rmtree(base)


def test_check_config_warns_of_paths_the_service_cannot_see(start_ringmaild, ringmaild_binary):
    d = start_ringmaild(start=False, tls_cert_dirs=["/root/.acme.sh"])
    d.domains_dir.mkdir(parents=True)
    rc, out, err = checked(d, ringmaild_binary)
    assert "/root/.acme.sh (tls.cert_dirs) is under /root, which ringmail.service does not see" in err, err


def test_restart_waits_for_an_address_the_previous_daemon_still_holds(start_ringmaild):
    """Regression (found by the crash test): after kill -9 the kernel tears
    an io_uring daemon's ring down in the background, and its pending
    accepts keep the listening sockets open a little longer; the restart
    found its address in use and exited. It now waits a few seconds."""
    from conftest import free_port
    d = start_ringmaild(start=False)
    d.port = free_port(socket.AF_INET, "127.0.0.1")
    d.port6 = free_port(socket.AF_INET6, "::1")
    d.sub_port = free_port(socket.AF_INET, "127.0.0.1")
    holder = socket.socket()
    holder.bind(("127.0.0.1", d.sub_port))
    holder.listen()
    release = threading.Timer(1.5, holder.close)
    release.start()
    try:
        d.start(keep_ports=True)
    finally:
        release.cancel()
        holder.close()
    assert f"waiting up to 5 s for 127.0.0.1:{d.sub_port}" in d.log_tail(), d.log_tail()
    c = d.connect(port=d.sub_port, read_greeting=True)  # the daemon's, not the holder's
    c.close()


def test_start_failure_of_one_shard_does_not_hang(tmp_path, ringmaild_binary):
    """Regression: when one shard could not start its backend (here: out of
    descriptors, RLIMIT_NOFILE just large enough for the other shard), the
    daemon said "start-up failed" but then waited forever for the shards
    that had started, which were never told to stop. The limit is scanned
    upward until both shards start; every attempt must end by itself."""
    if shutil.which("prlimit") is None:
        pytest.skip("prlimit (util-linux) missing")
    port = free_port(socket.AF_INET, "127.0.0.1")
    cfg = tmp_path / "ringmail.toml"
    cfg.write_text(f'hostname = "mx.test.example"\nthreads = 2\nlocal_domains = ["example.test"]\n'
                   f'data_dir = "{tmp_path}/data"\ndomains_dir = "{tmp_path}/domains"\n'
                   f'[outbound]\ndns_servers = "127.0.0.1:9"\n'
                   f'[[listener]]\naddress = "127.0.0.1:{port}"\nkind = "smtp"\n')
    backend_failed = 0
    for limit in range(8, 200):
        data = tmp_path / f"data-{limit}"
        p = subprocess.Popen(["prlimit", f"--nofile={limit}:{limit}", ringmaild_binary, "--config", str(cfg),
                              "--data-dir", str(data), "--backend", BACKEND],
                             stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        # Read until it ends; stop it once ready; give up on it after 20 s.
        log, deadline, stopped = "", time.monotonic() + 20, False
        while time.monotonic() < deadline:
            ready, _, _ = select.select([p.stderr], [], [], 0.5)
            chunk = os.read(p.stderr.fileno(), 65536).decode() if ready else ""
            log += chunk
            if ready and not chunk:
                break
            if " ready: " in log and not stopped:
                p.send_signal(signal.SIGTERM)
                stopped = True
        else:
            p.kill()
            p.wait()
            pytest.fail(f"RLIMIT_NOFILE {limit}: ringmaild did not end:\n" + log[-2000:])
        p.wait(timeout=20)
        if "cannot start the" in log:
            backend_failed += 1
            assert p.returncode == 1 and "start-up failed" in log, log
        if " ready: " in log:
            assert p.returncode == 0, log
            break
    else:
        pytest.fail("ringmaild never started, even with 200 descriptors")
    assert backend_failed > 0, "no limit made exactly the backends fail"


def test_sighup_with_changed_listeners_keeps_serving_the_bound_ones(start_ringmaild):
    """Regression: a SIGHUP whose file changed the listeners (they need a
    restart) still handed the new list to the shards, which serve their
    bound sockets by their place in it: the HTTP listener, now listed as
    an smtp one, answered HTTP clients with an SMTP greeting (and a
    shorter list was read past its end). The bound sockets keep the kinds
    they were opened with, and the log says a restart is needed."""
    import http.client
    d = start_ringmaild(http=True)
    http_port = d.http_port
    text = d.config_path.read_text()
    new_port = free_port(socket.AF_INET, "127.0.0.1")
    changed = text.replace(f'address = "127.0.0.1:{http_port}"\nkind = "http"',
                           f'address = "127.0.0.1:{new_port}"\nkind = "smtp"')
    assert changed != text
    d.config_path.write_text(changed)
    d.signal(signal.SIGHUP)
    deadline = time.monotonic() + 10
    while "need a restart (the running ones stay until then)" not in d.log_path.read_text():
        assert time.monotonic() < deadline, d.log_path.read_text()[-2000:]
        time.sleep(0.1)
    c = http.client.HTTPConnection("127.0.0.1", http_port, timeout=10)
    c.request("GET", "/healthz")
    r = c.getresponse()
    assert (r.status, r.read()) == (200, b"ok\n")
    assert greeting_of(d) == "220 mx.test.example ESMTP ringmail"
    d.write_config()  # as it runs, for a clean stop
