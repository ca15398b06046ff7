#!/usr/bin/python3
"""A local DNS server for tests (python3-dnslib): serves the zone file given,
on 127.0.0.1 at a free UDP and TCP port, prints the port on one line, and
runs until its standard input closes. Unlike dnslib's plain zone resolver it
answers NOERROR with no records (NODATA) for a name that exists with other
types, as a real server does: "no MX" must not look like "no such domain";
and, like a recursive resolver, it follows a CNAME inside the zone (the
answer holds the CNAME and the target's records of the type asked for).

A negative answer (no such name, no records of the type) carries the
zone's SOA in its authority section, as RFC 2308 asks, when the zone file
has a SOA above the name: resolvers cache it for the SOA's negative TTL.

    dns_server.py ZONEFILE [PORT] [--log FILE] [--delay-ms N]

PORT (default: a free one) is for tests that run it as a network
namespace's resolver on port 53. --log appends "TYPE NAME" for every
question received (tests count them); --delay-ms answers each question
that much later (a slow or distant server; questions overlap).
"""
import argparse
import sys
import threading
import time

from dnslib import QTYPE, RCODE, RR, DNSLabel
from dnslib.server import BaseResolver, DNSLogger, DNSServer


def key(label):
    return str(label).lower()


class Resolver(BaseResolver):
    """dnslib's ZoneResolver, with the records indexed by name: its scan of
    every record for each question took milliseconds with a zone of a few
    thousand names (bench/dns_latency.py), and the server, not the
    program under test, set the pace."""

    def __init__(self, zone, log=None, delay_ms=0):
        self.zone = [(rr.rname, QTYPE[rr.rtype], rr) for rr in RR.fromZone(zone)]
        self.by_name = {}
        for entry in self.zone:
            self.by_name.setdefault(key(entry[0]), []).append(entry)
        self.log = open(log, "a", buffering=1) if log else None
        self.log_lock = threading.Lock()
        self.delay_s = delay_ms / 1000

    def named(self, label):
        return self.by_name.get(key(label), [])

    def resolve(self, request, handler):
        qname = request.q.qname
        qtype = QTYPE[request.q.qtype]
        if self.log:
            with self.log_lock:
                self.log.write(f"{qtype} {str(qname).rstrip('.').lower()}\n")
        if self.delay_s:
            time.sleep(self.delay_s)
        reply = request.reply()
        for _, rtype, rr in self.named(qname):
            if qtype in (rtype, "ANY") or rtype == "CNAME":
                reply.add_answer(rr)
                if rtype in ("CNAME", "NS", "MX", "PTR"):
                    for _, a_rtype, a_rr in self.named(rr.rdata.label):
                        if a_rtype in ("A", "AAAA"):
                            reply.add_ar(a_rr)
        if not reply.rr and not self.named(qname):
            reply.header.rcode = RCODE.NXDOMAIN
        if not reply.rr:
            # The closest enclosing SOA (the name itself, then its parents).
            labels = qname.label
            for i in range(len(labels) + 1):
                soas = [a for _, rtype, a in self.named(DNSLabel(labels[i:])) if rtype == "SOA"]
                if soas:
                    reply.add_auth(soas[0])
                    break
        seen = {key(qname)}
        for rr in list(reply.rr):
            if QTYPE[rr.rtype] != "CNAME" or qtype in ("CNAME", "ANY"):
                continue
            target = rr.rdata.label
            for _ in range(8):  # a chain, not a loop
                if key(target) in seen:
                    break
                seen.add(key(target))
                nxt = None
                for _, rtype, a in self.named(target):
                    if rtype == qtype:
                        reply.add_answer(a)
                    elif rtype == "CNAME":
                        reply.add_answer(a)
                        nxt = a.rdata.label
                if nxt is None:
                    break
                target = nxt
        return reply


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("zonefile")
    ap.add_argument("port", nargs="?", type=int, default=0)
    ap.add_argument("--log")
    ap.add_argument("--delay-ms", type=int, default=0)
    args = ap.parse_args()
    zone = open(args.zonefile).read()
    resolver = Resolver(zone, log=args.log, delay_ms=args.delay_ms)
    logger = DNSLogger(log="-request,-reply,-truncated,-error,-recv,-send,-data", prefix=False)
    want = args.port
    # The UDP port is picked free; the same number may be taken for TCP
    # (another test's connection): then pick again.
    for attempt in range(50):
        udp = DNSServer(resolver, port=want, address="127.0.0.1", logger=logger)
        port = udp.server.server_address[1]
        try:
            tcp = DNSServer(resolver, port=port, address="127.0.0.1", tcp=True, logger=logger)
            break
        except OSError:
            udp.server.server_close()
            if want or attempt == 49:
                raise
    udp.start_thread()
    tcp.start_thread()
    print(port, flush=True)
    sys.stdin.read()  # until the test closes our input
    udp.stop()
    tcp.stop()


if __name__ == "__main__":
    main()
