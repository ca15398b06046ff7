#!/usr/bin/python3
"""A local DNS server for tests (python3-dnslib): serves the zone file given,
on 127.0.0.1 at a free UDP and TCP port, prints the port on one line, and
runs until its standard input closes. Unlike dnslib's plain zone resolver it
answers NOERROR with no records (NODATA) for a name that exists with other
types, as a real server does: "no MX" must not look like "no such domain";
and, like a recursive resolver, it follows a CNAME inside the zone (the
answer holds the CNAME and the target's records of the type asked for).

    dns_server.py ZONEFILE [PORT]

PORT (default: a free one) is for tests that run it as a network
namespace's resolver on port 53.
"""
import sys

from dnslib import QTYPE, RCODE
from dnslib.server import DNSLogger, DNSServer
from dnslib.zoneresolver import ZoneResolver


class Resolver(ZoneResolver):
    def resolve(self, request, handler):
        reply = super().resolve(request, handler)
        qname = request.q.qname
        if reply.header.rcode == RCODE.NXDOMAIN and any(name == qname for name, _, _ in self.zone):
            reply.header.rcode = RCODE.NOERROR
        qtype = QTYPE[request.q.qtype]
        seen = {str(qname)}
        for rr in list(reply.rr):
            if QTYPE[rr.rtype] != "CNAME" or qtype in ("CNAME", "ANY"):
                continue
            target = rr.rdata.label
            for _ in range(8):  # a chain, not a loop
                if str(target) in seen:
                    break
                seen.add(str(target))
                nxt = None
                for name, rtype, a in self.zone:
                    if name != target:
                        continue
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
    zone = open(sys.argv[1]).read()
    resolver = Resolver(zone)
    logger = DNSLogger(log="-request,-reply,-truncated,-error,-recv,-send,-data", prefix=False)
    want = int(sys.argv[2]) if len(sys.argv) > 2 else 0
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
