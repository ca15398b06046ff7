"""The log (docs/logging.md): a message followed by its queue id from
acceptance to delivery, refusals fail2ban reads (with Debian's
fail2ban-regex against dist/fail2ban), [log] file with SIGUSR1, levels, and
a shutdown line that counts from the queues."""

import re
import shutil
import signal
import smtplib
import ssl
import threading
import socket
import subprocess
import time
from pathlib import Path

import pytest

from test_auth import PASSWORD, add_user, plain
from test_outbound import alice_relay, attempt, dns, port, sink, submit, wait_log  # noqa: F401
from test_tls import HOSTS, certs, client_context  # noqa: F401 (fixture)

DIST = Path(__file__).resolve().parent.parent.parent / "dist"


def lines_of(log, qid):
    return [x for x in log.splitlines() if f" {qid}: " in x]


def test_one_message_end_to_end_by_its_queue_id(start_ringmaild, certs, tmp_path, dns,  # noqa: F811
                                                port):
    """Accepted over STARTTLS+AUTH, deferred once (4xx), then delivered:
    `grep ID` shows every step with its fields."""
    relay = alice_relay(start_ringmaild, certs, tmp_path, dns_servers=f"127.0.0.1:{dns}", port=port,
                        retry_first_s=1, retry_max_s=1, connect_timeout_s=3)
    s = sink("127.0.0.5", port, "-r", "RCPT")  # 4xx to every RCPT
    try:
        submit(relay, ["later@soft.test"])
        wait_log(relay, "status=deferred")
    finally:
        s.kill()
        s.wait()
    ok = sink("127.0.0.5", port)
    try:
        log = wait_log(relay, "status=delivered", timeout=30)
    finally:
        ok.kill()
        ok.wait()
    queued = re.search(r" (\S+): queued client=(127\.0\.0\.1:\d+) helo=client\.example "
                       r"tls=TLSv1\.3 \S+ auth=alice@example\.test from=<alice@example\.test> "
                       r"rcpts=1 bytes=\d+$", log, re.M)
    assert queued, log
    qid, client = queued[1], queued[2]
    mine = lines_of(log, qid)
    assert any(f"{qid}: for outbound delivery (1 recipients)" in x for x in mine), mine
    first = [x for x in mine if "attempt=1 " in x]
    assert len(first) == 1 and re.search(
        r"to=<later@soft\.test> relay=mx\.soft\.test\[127\.0\.0\.5\] delay=\d+s attempt=1 "
        r"status=deferred \(4\d\d ", first[0]), mine
    later = [x for x in mine if "status=delivered" in x]
    assert len(later) == 1 and re.search(
        r"to=<later@soft\.test> relay=mx\.soft\.test\[127\.0\.0\.5\] delay=\d+s attempt=2 "
        r"status=delivered \(250 ", later[0]), mine
    # The session's own lines, by its client address and port.
    assert re.search(rf"connect client={client} listener=127\.0\.0\.1:{relay.sub_port}$", log, re.M)
    assert re.search(rf"auth ok client={client} user=alice@example\.test$", log, re.M), log
    assert re.search(rf"disconnect client={client} listener=127\.0\.0\.1:{relay.sub_port} "
                     r"helo=client\.example tls=TLSv1\.3/\S+ auth=alice@example\.test messages=1 "
                     r"refused=0 duration=\d+\.\d{3}s$", log, re.M), log


def f2b_matches(tmp_path, log_text):
    """The addresses fail2ban-regex finds in `log_text` with our filter (and
    fail2ban's common.conf beside it, as in /etc/fail2ban/filter.d)."""
    d = tmp_path / "f2b" / "filter.d"
    d.mkdir(parents=True, exist_ok=True)
    shutil.copy("/etc/fail2ban/filter.d/common.conf", d)
    shutil.copy(DIST / "fail2ban" / "filter.d" / "ringmail.conf", d)
    log = tmp_path / "f2b" / "input.log"
    log.write_text(log_text)
    r = subprocess.run(["fail2ban-regex", "-o", "<ip>", str(log), str(d / "ringmail.conf")],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    return [x.strip() for x in r.stdout.splitlines() if x.strip()]


def smtp_from(ip, port, **kw):
    return smtplib.SMTP("127.0.0.1", port, timeout=30, source_address=(ip, 0), **kw)


def test_fail2ban_filter_matches_refusals(start_ringmaild, certs, tmp_path):  # noqa: F811
    """A refused relay, an unknown user, a wrong password and an early
    talker each give one line the filter matches, with the client's
    address; a user name that carries another address does not move the
    match; ordinary lines match nothing."""
    domains = tmp_path / "domains"
    add_user(domains, "alice@example.test")
    srv = start_ringmaild(tls_cert_dirs=[certs], domains_dir=domains,
                          inbound={"greeting_delay_s": 1},
                          auth={"failures_max": 10, "failure_delay_ms": 0})
    # The good client first: its lines must match nothing.
    with smtp_from("127.0.0.10", srv.sub_port) as s:
        s.starttls(context=client_context())
        s.login("alice@example.test", PASSWORD)
    with smtp_from("127.0.0.11", srv.port) as s:  # relay probing
        s.ehlo("probe.example")
        s.mail("a@probe.example")
        code, text = s.rcpt("victim@elsewhere.example")
        assert (code, text) == (554, b"5.7.1 Relay access denied")
    with smtp_from("127.0.0.12", srv.port) as s:  # dictionary attack on users
        s.ehlo("probe.example")
        s.mail("a@probe.example")
        assert s.rcpt("nobody-here@example.test")[0] == 550
    with smtp_from("127.0.0.13", srv.sub_port) as s:  # a wrong password
        s.starttls(context=client_context())
        s.ehlo("client.example")
        assert s.docmd(plain("alice@example.test", "wrong"))[0] == 535
    with smtp_from("127.0.0.14", srv.sub_port) as s:  # a user name with an address in it
        s.starttls(context=client_context())
        s.ehlo("client.example")
        assert s.docmd(plain("x client=192.0.2.7:25 user=y", "wrong"))[0] == 535
    with socket.create_connection(("127.0.0.1", srv.port), timeout=10,
                                  source_address=("127.0.0.15", 0)) as c:  # early talker
        c.sendall(b"EHLO spam.example\r\n")
        assert c.recv(4096).startswith(b"554 5.7.1 ")
    log = wait_log(srv, "client=127.0.0.15:")
    deadline = time.monotonic() + 10
    while log.count("disconnect client=") < 6 and time.monotonic() < deadline:
        time.sleep(0.1)
        log = srv.log_path.read_text()
    found = f2b_matches(tmp_path, log)
    assert sorted(found) == ["127.0.0.11", "127.0.0.12", "127.0.0.13", "127.0.0.14",
                             "127.0.0.15"], (found, log)
    # Each refusal is one line with its reply.
    assert re.search(r"NOQUEUE: refused client=127\.0\.0\.11:\d+ helo=probe\.example "
                     r"from=<a@probe\.example>: rcpt TO:<victim@elsewhere\.example>: "
                     r"554 5\.7\.1 Relay access denied$", log, re.M), log
    assert re.search(r"auth failed client=127\.0\.0\.14:\d+ user=x client=192\.0\.2\.7:25 user=y ",
                     log), log


def test_log_file_reopened_on_sigusr1(start_ringmaild, tmp_path):
    """logrotate moves the file, SIGUSR1: new lines go to a new file at the
    same path, and every message's line is in one of the two."""
    logdir = tmp_path / "logs"
    logdir.mkdir()
    path = logdir / "ringmail.log"
    srv = start_ringmaild(extra_toml=f'[log]\nfile = "{path}"\n')

    def send(n):
        with smtplib.SMTP("127.0.0.1", srv.port, timeout=30) as s:
            for i in range(n):
                s.sendmail("a@src.example", ["bob@example.test"], f"Subject: {i}\r\n\r\nx\r\n")

    send(5)
    assert path.read_text().count(": queued client=") == 5
    rotated = logdir / "ringmail.log.1"
    path.rename(rotated)
    send(3)  # before the signal: still to the moved file
    srv.signal(signal.SIGUSR1)
    deadline = time.monotonic() + 10
    while not (path.exists() and "SIGUSR1: log file reopened" in path.read_text()):
        assert time.monotonic() < deadline, rotated.read_text()[-2000:]
        time.sleep(0.05)
    send(4)
    old, new = rotated.read_text(), path.read_text()
    assert old.count(": queued client=") == 8, old
    assert new.count(": queued client=") == 4, new
    assert srv.log_path.read_text().count(": queued client=") == 0  # not on stderr


def test_log_levels_and_protocol_trace(start_ringmaild, certs, tmp_path):  # noqa: F811
    """debug: the SMTP dialogue, credentials left out; warning: no
    per-session lines."""
    domains = tmp_path / "domains"
    add_user(domains, "alice@example.test")
    srv = start_ringmaild(tls_cert_dirs=[certs], domains_dir=domains,
                          extra_toml='[log]\nlevel = "debug"\n')
    credentials = plain("alice@example.test", PASSWORD)
    with smtplib.SMTP("127.0.0.1", srv.sub_port, timeout=30) as s:
        s.starttls(context=client_context())
        s.ehlo("client.example")
        assert s.docmd(credentials)[0] == 235
        s.sendmail("alice@example.test", ["alice@example.test"], b"Subject: t\r\n\r\nsecret body\r\n")
    log = wait_log(srv, "> 221 ")
    assert re.search(r"NOQUEUE: client=\S+ < ehlo client\.example$", log, re.M), log
    assert re.search(r"NOQUEUE: client=\S+ < AUTH PLAIN$", log, re.M), log
    assert re.search(r"NOQUEUE: client=\S+ > 235 2\.7\.0 ", log, re.M), log
    assert re.search(r" (\S+): client=\S+ < data$", log, re.M), log  # the id from DATA on
    assert re.search(r"client=\S+ > 250 2\.0\.0 Ok: queued as \S+$", log, re.M), log
    assert credentials.split()[-1] not in log and "secret body" not in log
    srv.stop()
    srv.extra_toml = '[log]\nlevel = "warning"\n'
    before = srv.log_path.read_text()
    srv.start()
    with smtplib.SMTP("127.0.0.1", srv.port, timeout=30) as s:
        s.sendmail("a@src.example", ["alice@example.test"], b"Subject: t\r\n\r\nx\r\n")
    srv.wait_for_mail("example.test", "alice", 2)
    after = srv.log_path.read_text()[len(before):]
    assert "connect client=" not in after and ": queued " not in after, after


def test_shutdown_line_counts_from_the_queue(start_ringmaild, certs, tmp_path, dns,  # noqa: F811
                                            port):
    """Two messages relayed, then three left waiting for a closed
    destination: the shards' stop lines add up to exactly that."""
    relay = alice_relay(start_ringmaild, certs, tmp_path, dns_servers=f"127.0.0.1:{dns}", port=port,
                        retry_first_s=60, retry_max_s=60, connect_timeout_s=2)
    s = sink("127.0.0.5", port)
    try:
        submit(relay, ["one@soft.test"])
        submit(relay, ["two@soft.test"])
        log = wait_log(relay, "to=<two@soft.test> relay=mx.soft.test")
        wait_log(relay, "to=<one@soft.test> relay=mx.soft.test")
    finally:
        s.kill()
        s.wait()
    for i in range(3):
        submit(relay, [f"wait{i}@soft.test"])
    deadline = time.monotonic() + 20
    while relay.log_path.read_text().count("status=deferred") < 3:
        assert time.monotonic() < deadline, relay.log_tail()
        time.sleep(0.2)
    rc, problem = relay.stop()
    assert problem is None, problem
    log = relay.log_path.read_text()
    stops = re.findall(r"stopped: \d+ connections, (\d+) messages accepted with \d+ spool syncs; "
                       r"finished: \d+ messages delivered locally, (\d+) messages relayed "
                       r"\((\d+) recipients delivered, (\d+) bounced\); left for the next start: "
                       r"(\d+) messages for remote recipients, (\d+) local deliveries", log)
    assert len(stops) == 2, log  # one per shard
    total = [sum(int(x[i]) for x in stops) for i in range(6)]
    assert total == [5, 2, 2, 0, 3, 0], (total, log)


@pytest.mark.parametrize("name", ["filter.d/ringmail.conf", "jail.d/ringmail.conf"])
def test_fail2ban_files_parse(name, tmp_path):
    """fail2ban-client reads the jail and the filter (-t: test the
    configuration) from a copy of /etc/fail2ban with ours added."""
    etc = tmp_path / "fail2ban"
    shutil.copytree("/etc/fail2ban", etc)
    shutil.copy(DIST / "fail2ban" / name, etc / name)
    if name.startswith("jail.d"):
        shutil.copy(DIST / "fail2ban" / "filter.d" / "ringmail.conf", etc / "filter.d")
    r = subprocess.run(["fail2ban-client", "-c", str(etc), "-d"], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    if name.startswith("jail.d"):
        assert "'add', 'ringmail', 'systemd'" in r.stdout, r.stdout[-3000:]


def tls_then_refusal(ip, port, cert_dir):
    """mx1 for the test below: STARTTLS, then 554 to the EHLO after it (the
    client goes on to the next MX). Serves one client in a thread."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert_dir / "fullchain.pem", cert_dir / "privkey.pem")
    listener = socket.create_server((ip, port))

    def serve():
        conn, _ = listener.accept()
        f = conn.makefile("rwb")
        f.write(b"220 mx1.peer.test ESMTP\r\n")
        f.flush()
        f.readline()  # EHLO
        f.write(b"250-mx1.peer.test\r\n250 STARTTLS\r\n")
        f.flush()
        f.readline()  # STARTTLS
        f.write(b"220 go ahead\r\n")
        f.flush()
        t = ctx.wrap_socket(conn, server_side=True)
        tf = t.makefile("rwb")
        tf.readline()  # EHLO again
        tf.write(b"554 5.7.0 not you\r\n")
        tf.flush()
        t.close()
        listener.close()

    th = threading.Thread(target=serve, daemon=True)
    th.start()
    return th


def test_tls_of_a_failed_host_is_not_reported_for_the_next(start_ringmaild, certs, tmp_path,  # noqa: F811
                                                         dns, port):
    """mx1 speaks TLS and then refuses; mx2 (smtp-sink) takes the message in
    clear: its attempt line must not carry mx1's TLS (the session kept its
    TLS flags from one connection to the next)."""
    relay = alice_relay(start_ringmaild, certs, tmp_path, dns_servers=f"127.0.0.1:{dns}", port=port,
                        retry_first_s=60, connect_timeout_s=3)
    mx1 = tls_then_refusal("127.0.0.2", port, certs / HOSTS["plain"])
    mx2 = sink("127.0.0.3", port)
    try:
        submit(relay, ["bob@peer.test"])
        log = wait_log(relay, attempt("bob@peer.test", "mx2.peer.test", "delivered"))
    finally:
        mx2.kill()
        mx2.wait()
    mx1.join(timeout=10)
    line = [x for x in log.splitlines() if "relay=mx2.peer.test[" in x][0]
    assert "tls=" not in line and "cert=" not in line, line
