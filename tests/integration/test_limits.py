"""Limits on what one client can take (issue 19): connections per address
counted over all shards, the descriptor reserve that still answers 421 when
the process is out of file descriptors, and deadlines a slow client cannot
stretch."""
import socket
import time

import pytest


def first_line(host, port, source=None, timeout=3):
    """Connect (from `source` if given) and return (socket, first reply line)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(timeout)
    if source:
        s.bind((source, 0))
    s.connect((host, port))
    data = b""
    while not data.endswith(b"\r\n"):
        chunk = s.recv(512)
        if not chunk:
            break
        data += chunk
    return s, data.decode("ascii", "replace").strip()


def test_connections_per_ip_are_limited_over_all_shards(start_ringmaild):
    """Regression (issue 19, defect 5): nothing limited the connections of
    one address, so one client could take every connection. Five are
    allowed (counted over both shards), the sixth gets 421; another address
    is not affected; a closed connection frees its place."""
    server = start_ringmaild(limits={"connections_per_ip_max": 5}, threads=2)
    held = []
    for _ in range(5):
        s, line = first_line(server.host, server.port)
        assert line.startswith("220 "), line
        held.append(s)
    s, line = first_line(server.host, server.port)
    assert line == "421 4.7.0 Too many connections from your address", line
    s.close()
    other, line = first_line(server.host, server.port, source="127.0.0.2")
    assert line.startswith("220 "), line
    other.close()
    held.pop().close()
    deadline = time.monotonic() + 5
    while True:
        s, line = first_line(server.host, server.port)
        s.close()
        if line.startswith("220 "):
            break
        assert time.monotonic() < deadline, line
        time.sleep(0.1)
    for s in held:
        s.close()
    assert "connection refused with 421: client=127.0.0.1:" in server.log_path.read_text()


def test_out_of_descriptors_clients_still_get_421(start_ringmaild):
    """Regression (issue 19, defect 5): with the open-file limit used up,
    new clients hung with no 220 and no 421. Connections are capped below
    the open-file limit (a spare of 64 descriptors here), so clients past
    it are still accepted and told 421; once connections close, clients
    are served again. The start logs that the limits exceed the open-file
    limit."""
    server = start_ringmaild(start=False, limits={"connections_per_ip_max": 10000}, threads=1)
    plain = server.command
    server.command = lambda: ["prlimit", "--nofile=160:160", "--"] + plain()
    server.start()
    held, refused = [], 0
    for _ in range(220):
        s, line = first_line(server.host, server.port, timeout=10)  # a hang fails here
        if line.startswith("220 "):
            held.append(s)
        else:
            assert line == "421 4.7.0 Too many connections", line
            refused += 1
            s.close()
    assert len(held) == 160 - 64 and refused == 220 - len(held), (len(held), refused)
    # Still answering while full.
    s, line = first_line(server.host, server.port, timeout=10)
    s.close()
    assert line == "421 4.7.0 Too many connections", (line, len(held), refused, server.log_tail())
    for s in held:
        s.close()
    deadline = time.monotonic() + 5
    while True:
        s, line = first_line(server.host, server.port)
        s.close()
        if line.startswith("220 "):
            break
        assert time.monotonic() < deadline, line
        time.sleep(0.1)
    log = server.log_path.read_text()
    assert "is more than the open-file limit 160 (RLIMIT_NOFILE)" in log, log
    assert "96 connections in all, the most the open-file limit allows" in log, log
