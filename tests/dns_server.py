#!/usr/bin/python3
"""A local DNS server for tests (python3-dnslib): serves the zone file given,
on 127.0.0.1 at a free UDP and TCP port, prints the port on one line, and
runs until its standard input closes. Unlike dnslib's plain zone resolver it
answers NOERROR with no records (NODATA) for a name that exists with other
types, as a real server does: "no MX" must not look like "no such domain".

    dns_server.py ZONEFILE
"""
import sys
import threading

from dnslib import QTYPE, RCODE
from dnslib.server import DNSLogger, DNSServer
from dnslib.zoneresolver import ZoneResolver


class Resolver(ZoneResolver):
    def resolve(self, request, handler):
        reply = super().resolve(request, handler)
        qname = request.q.qname
        if reply.header.rcode == RCODE.NXDOMAIN and any(name == qname for name, _, _ in self.zone):
            reply.header.rcode = RCODE.NOERROR
        return reply


def main():
    zone = open(sys.argv[1]).read()
    resolver = Resolver(zone)
    logger = DNSLogger(log="-request,-reply,-truncated,-error,-recv,-send,-data", prefix=False)
    udp = DNSServer(resolver, port=0, address="127.0.0.1", logger=logger)
    port = udp.server.server_address[1]
    tcp = DNSServer(resolver, port=port, address="127.0.0.1", tcp=True, logger=logger)
    udp.start_thread()
    tcp.start_thread()
    print(port, flush=True)
    sys.stdin.read()  # until the test closes our input
    udp.stop()
    tcp.stop()


if __name__ == "__main__":
    main()
