#!/usr/bin/python3
"""smtp-blaster against Postfix's smtp-source, both sending to one
smtp-sink on loopback, with the same connections and message size.

For each connection count, REPS rounds; in each round both generators send
MESSAGES messages (the order alternates between rounds, so neither always
goes first on a machine that warms up or gets busier). Reported per run:
messages/s (messages the sink acknowledged over the generator's wall time),
the generator's CPU (user+sys) per message, and the sink's CPU per message.
Each run's count is also read from smtp-sink's own running counter (-c) and
must agree with the generator's: a disagreement is an error, not a footnote.

The message size is matched on the wire: smtp-source -l L sends L bytes of
payload under its own headers, so one smtp-source message is captured by a
dumping sink first and smtp-blaster --size is set to that message's size in
CRLF bytes.

    bench/blaster_vs_source.py [--connections 1,8,32] [--messages 20000]
                               [--payload 1000] [--reps 3] [--blaster PATH]
                               [--one-per-connection] [--pipelining on|off]

By default each connection carries message after message (smtp-source -d,
smtp-blaster --per-connection MESSAGES); --one-per-connection makes every
message a session of its own (smtp-source without -d, --per-connection 1).

Needs root (smtp-sink -u postfix) and the postfix package. Loopback only.
"""
import argparse
import json
import os
import re
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SINK = "/usr/sbin/smtp-sink"
SOURCE = "/usr/sbin/smtp-source"


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_port(port, proc):
    for _ in range(200):
        if proc.poll() is not None:
            raise SystemExit(f"smtp-sink exited ({proc.returncode})")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.02)
    raise SystemExit("smtp-sink did not start")


def proc_cpu(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / tick  # utime + stime


def wire_size(payload):
    """Bytes on the wire (CRLF, before dot-stuffing) of one smtp-source -l
    payload message, as a dumping smtp-sink received it."""
    d = tempfile.mkdtemp()
    os.chmod(d, 0o777)
    port = free_port()
    sink = subprocess.Popen([SINK, "-u", "postfix", "-d", f"{d}/%M.", f"127.0.0.1:{port}", "16"])
    try:
        wait_port(port, sink)
        subprocess.run([SOURCE, "-s", "1", "-m", "1", "-l", str(payload), "-f", "a@src.test",
                        "-t", "b@dst.test", f"127.0.0.1:{port}"], check=True, timeout=30)
        for _ in range(100):
            files = os.listdir(d)
            if files:
                break
            time.sleep(0.05)
        time.sleep(0.2)
        with open(os.path.join(d, files[0]), "rb") as f:
            lines = f.read().split(b"\n")
    finally:
        sink.kill()
        sink.wait()
        shutil.rmtree(d)
    # The dump starts with the sink's X-* fields and a Received field (two
    # continuation lines), and ends with an empty line of its own.
    body = lines[8:]
    while body and body[-1] == b"":
        body.pop()
    return sum(len(x) + 2 for x in body)


class Sink:
    """smtp-sink -c: its running counter (sess=N quit=N mesg=N) on stdout."""

    def __init__(self):
        self.port = free_port()
        self.out = tempfile.TemporaryFile()
        self.p = subprocess.Popen([SINK, "-c", "-u", "postfix", f"127.0.0.1:{self.port}", "1024"],
                                  stdout=self.out)
        wait_port(self.port, self.p)

    def messages(self):
        # The counter is written on each '.', QUIT and session end; give it
        # a moment to catch up with the last one.
        last = -1
        for _ in range(50):
            self.out.seek(0)
            found = re.findall(rb"mesg=(\d+)", self.out.read())
            n = int(found[-1]) if found else 0
            if n == last:
                return n
            last = n
            time.sleep(0.05)
        return last

    def cpu(self):
        return proc_cpu(self.p.pid)

    def stop(self):
        self.p.kill()
        self.p.wait()


def timed(cmd):
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.monotonic()
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    wall = time.monotonic() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if r.returncode != 0:
        raise SystemExit(f"{cmd[0]} failed ({r.returncode}): {r.stderr.strip()[:300]}")
    return wall, cpu, r.stdout


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--connections", default="1,8,32")
    ap.add_argument("--messages", type=int, default=20000)
    ap.add_argument("--payload", type=int, default=1000, help="smtp-source -l")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--blaster", default=os.path.join(HERE, "..", "build", "smtp-blaster"))
    ap.add_argument("--pipelining", default="on", choices=["on", "off"])
    ap.add_argument("--one-per-connection", action="store_true")
    a = ap.parse_args()
    for exe in (SINK, SOURCE, a.blaster):
        if not os.access(exe, os.X_OK):
            raise SystemExit(f"missing {exe}")
    size = wire_size(a.payload)
    print(f"# smtp-source -l {a.payload} sends {size} bytes a message; smtp-blaster --size {size}",
          file=sys.stderr)
    sink = Sink()
    rows = []
    try:
        for conns in [int(x) for x in a.connections.split(",")]:
            for rep in range(a.reps):
                order = ["source", "blaster"] if rep % 2 == 0 else ["blaster", "source"]
                for gen in order:
                    if gen == "source":
                        cmd = [SOURCE, "-s", str(conns), "-m", str(a.messages), "-l", str(a.payload),
                               *([] if a.one_per_connection else ["-d"]),
                               "-f", "a@src.test", "-t", "b@dst.test", f"127.0.0.1:{sink.port}"]
                    else:
                        cmd = [a.blaster, "--json", "--target", f"127.0.0.1:{sink.port}",
                               "--connections", str(conns), "--messages", str(a.messages),
                               "--per-connection", "1" if a.one_per_connection else str(a.messages), "--size", str(size),
                               "--from", "a@src.test", "--to", "b@dst.test", "--pipelining", a.pipelining]
                    n0, c0 = sink.messages(), sink.cpu()
                    wall, cpu, out = timed(cmd)
                    got = sink.messages() - n0
                    sink_cpu = sink.cpu() - c0
                    if gen == "blaster":
                        rep_json = json.loads(out)
                        if rep_json["accepted"] != got:
                            raise SystemExit(f"smtp-blaster says {rep_json['accepted']} accepted, "
                                             f"smtp-sink counted {got}")
                    if got != a.messages:
                        raise SystemExit(f"{gen}: smtp-sink counted {got} of {a.messages} messages")
                    row = dict(gen=gen, conns=conns, rep=rep, mps=got / wall, cpu_us=cpu / got * 1e6,
                               sink_us=sink_cpu / got * 1e6)
                    rows.append(row)
                    print("RESULT gen={gen} connections={conns} rep={rep} msg_per_s={mps:.0f} "
                          "client_cpu_us_per_msg={cpu_us:.2f} sink_cpu_us_per_msg={sink_us:.2f}".format(**row),
                          flush=True)
    finally:
        sink.stop()
    print()
    print(f"{'connections':>11} {'source msg/s':>13} {'blaster msg/s':>14} {'ratio':>6} "
          f"{'source cpu/msg':>15} {'blaster cpu/msg':>16} {'ratio':>6}")
    for conns in sorted({r["conns"] for r in rows}):
        med = {}
        for gen in ("source", "blaster"):
            sel = [r for r in rows if r["conns"] == conns and r["gen"] == gen]
            med[gen] = (statistics.median(r["mps"] for r in sel), statistics.median(r["cpu_us"] for r in sel))
        print(f"{conns:>11} {med['source'][0]:>13.0f} {med['blaster'][0]:>14.0f} "
              f"{med['blaster'][0] / med['source'][0]:>5.2f}x {med['source'][1]:>12.2f} us "
              f"{med['blaster'][1]:>13.2f} us {med['source'][1] / med['blaster'][1]:>5.2f}x")
    print("(medians; msg/s ratio = blaster/source, CPU ratio = source/blaster, higher is better for both)")


if __name__ == "__main__":
    main()
