#!/usr/bin/python3
"""Hold N idle SMTP connections open against a loopback server and report its RSS.

    bench/idle_conns.py 127.0.0.1:2525 PID [-n 10000] [--hold 5]

Opens N TCP connections (non-blocking, selectors/epoll, at most --inflight
handshakes at a time so the listen backlog is not overrun), reads the 220
greeting on each, holds them all idle for --hold seconds, then reads VmRSS
(and VmHWM) of the server process PID from /proc, prints

    idle_conns=N rss_kb=R baseline_rss_kb=B per_conn_bytes=X hwm_kb=H failed=F alive=A open_secs=S
    rss_after_close_kb=R2 (--after seconds after closing them all)

and closes everything.  N is the number of connections that got their
greeting; alive is how many were still open (not closed by the server) at
the end of the hold.  Only loopback targets are accepted.
"""

import argparse
import errno
import ipaddress
import resource
import selectors
import socket
import sys
import time


def parse_target(s):
    if s.startswith("["):
        host, _, port = s[1:].partition("]:")
    else:
        host, _, port = s.rpartition(":")
    if not host or not port:
        sys.exit(f"bad target {s!r}: want HOST:PORT or [V6]:PORT")
    addr = ipaddress.ip_address(host)
    if not addr.is_loopback:
        sys.exit(f"refusing non-loopback target {host}")
    return host, int(port), (socket.AF_INET6 if addr.version == 6 else socket.AF_INET)


def proc_kb(pid, key):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def raise_nofile(want):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else max(soft, want)
    if soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return target


def greeting_done(buf):
    """True once the last complete line is a final 220 line ("220 ..." not "220-")."""
    lines = buf.split(b"\r\n")
    for line in lines[:-1]:
        if len(line) >= 4 and line[3:4] != b"-":
            return True
    return False


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("target", help="HOST:PORT, loopback only (127.0.0.1:2525, [::1]:2525)")
    ap.add_argument("pid", type=int, help="server process id whose VmRSS is reported")
    ap.add_argument("-n", "--conns", type=int, default=10000)
    ap.add_argument("--hold", type=float, default=5.0, help="seconds to hold the idle connections")
    ap.add_argument("--after", type=float, default=3.0,
                    help="seconds after closing them to read the RSS again")
    ap.add_argument("--inflight", type=int, default=256, help="max concurrent handshakes")
    ap.add_argument("--timeout", type=float, default=60.0, help="give up opening after this many seconds")
    args = ap.parse_args()

    host, port, family = parse_target(args.target)
    limit = raise_nofile(args.conns + 64)
    n_want = args.conns
    if limit < n_want + 16:
        n_want = max(0, limit - 16)
        print(f"# RLIMIT_NOFILE hard limit {limit}: only {n_want} connections", file=sys.stderr)

    baseline = proc_kb(args.pid, "VmRSS")
    if baseline is None:
        print(f"# warning: cannot read /proc/{args.pid}/status", file=sys.stderr)

    sel = selectors.DefaultSelector()
    idle = []          # sockets that got their greeting
    bufs = {}          # sock -> bytes received so far
    started = 0
    failed = 0
    errors = {}
    t0 = time.monotonic()
    deadline = t0 + args.timeout

    def fail(sock, why):
        nonlocal failed
        failed += 1
        errors[why] = errors.get(why, 0) + 1
        try:
            sel.unregister(sock)
        except (KeyError, ValueError):
            pass
        bufs.pop(sock, None)
        sock.close()

    while len(idle) + failed < n_want and time.monotonic() < deadline:
        while started < n_want and len(bufs) < args.inflight:
            s = socket.socket(family, socket.SOCK_STREAM)
            s.setblocking(False)
            err = s.connect_ex((host, port))
            started += 1
            bufs[s] = b""
            if err in (0, errno.EINPROGRESS):
                sel.register(s, selectors.EVENT_WRITE if err else selectors.EVENT_READ, "conn" if err else "read")
            else:
                fail(s, errno.errorcode.get(err, str(err)))
        for key, _ in sel.select(timeout=0.5):
            s = key.fileobj
            if key.data == "conn":
                err = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                if err:
                    fail(s, errno.errorcode.get(err, str(err)))
                else:
                    sel.modify(s, selectors.EVENT_READ, "read")
                continue
            try:
                data = s.recv(4096)
            except OSError as e:
                fail(s, errno.errorcode.get(e.errno, str(e)))
                continue
            if not data:
                fail(s, "closed_before_greeting")
                continue
            bufs[s] += data
            if greeting_done(bufs[s]):
                code = bufs[s][:3]
                sel.unregister(s)
                del bufs[s]
                if code == b"220":
                    idle.append(s)
                else:
                    failed += 1
                    errors["greeting_" + code.decode(errors="replace")] = errors.get("greeting_" + code.decode(errors="replace"), 0) + 1
                    s.close()
    open_secs = time.monotonic() - t0
    for s in list(bufs):
        fail(s, "timeout")

    print(f"# opened {len(idle)} idle connections in {open_secs:.2f}s"
          + (f", failed {failed}: {errors}" if failed else "") + f"; holding {args.hold:g}s", file=sys.stderr)
    time.sleep(args.hold)

    rss = proc_kb(args.pid, "VmRSS")
    hwm = proc_kb(args.pid, "VmHWM")

    # which connections did the server close during the hold?
    for s in idle:
        sel.register(s, selectors.EVENT_READ)
    closed = 0
    for key, _ in sel.select(timeout=0):
        try:
            if key.fileobj.recv(4096, socket.MSG_PEEK) == b"":
                closed += 1
        except OSError:
            closed += 1
    alive = len(idle) - closed

    per_conn = "-"
    if rss is not None and baseline is not None and idle:
        per_conn = str(round((rss - baseline) * 1024 / len(idle)))
    fmt = lambda v: "-" if v is None else str(v)
    print(f"idle_conns={len(idle)} rss_kb={fmt(rss)} baseline_rss_kb={fmt(baseline)} "
          f"per_conn_bytes={per_conn} hwm_kb={fmt(hwm)} failed={failed} alive={alive} open_secs={open_secs:.2f}")
    sys.stdout.flush()

    for s in idle:
        sel.unregister(s)
        s.close()
    sel.close()
    # Memory given back once they are gone (the server sees the closes and
    # frees the sessions; its allocator may or may not return the pages).
    time.sleep(args.after)
    after = proc_kb(args.pid, "VmRSS")
    print(f"rss_after_close_kb={fmt(after)} (after {args.after:g}s; "
          f"{'-' if after is None or baseline is None else after - baseline} kB above the baseline)")
    return 0 if idle and failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
