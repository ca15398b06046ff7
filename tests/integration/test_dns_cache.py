"""Each shard's DNS cache (docs/configuration.md [dns]), seen from a real
DNS server on loopback (tests/dns_server.py) that logs every question it
gets: inbound checks ask each name once per TTL however many messages come,
a TTL of 1 s runs out, negative answers are kept for the SOA's negative TTL,
and the old name [outbound] dns_servers still works, with a line in the log."""
import smtplib
import subprocess
import time
from collections import Counter

import pytest

from test_config import checked
from test_dkim import DNS_SERVER

ZONE = """\
src.test. 300 IN SOA ns1.src.test. admin.src.test. 1 7200 900 1209600 120
src.test. 300 IN TXT "v=spf1 ip4:127.0.0.0/8 -all"
_dmarc.src.test. 300 IN TXT "v=DMARC1; p=none"
helo.test. 300 IN TXT "v=spf1 ip4:127.0.0.0/8 -all"
short.test. 1 IN TXT "v=spf1 ip4:127.0.0.0/8 -all"
_dmarc.short.test. 1 IN TXT "v=DMARC1; p=none"
"""


@pytest.fixture
def counting_dns(tmp_path):
    """(port, questions()): the server's port, and a Counter of the
    "TYPE name" questions it has received so far."""
    zone, log = tmp_path / "zone", tmp_path / "questions"
    zone.write_text(ZONE)
    log.write_text("")
    p = subprocess.Popen(["/usr/bin/python3", str(DNS_SERVER), str(zone), "--log", str(log)],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    port = int(p.stdout.readline())
    yield port, lambda: Counter(log.read_text().splitlines())
    p.stdin.close()
    p.wait(timeout=10)


def deliver(server, sender, n, helo="helo.test", rcpt="someone@example.test"):
    """Sends `n` messages in one session and waits until they are delivered."""
    before = len(server.mail_files("example.test", rcpt.split("@")[0]))
    with smtplib.SMTP("127.0.0.1", server.port, timeout=30) as s:
        s.helo(helo)
        for i in range(n):
            s.sendmail(sender, [rcpt], f"From: {sender}\r\nSubject: {i}\r\n\r\nbody\r\n".encode())
    server.wait_for_mail("example.test", rcpt.split("@")[0], count=before + n, settle=0)


@pytest.fixture
def one_shard(start_ringmaild, counting_dns):
    """(daemon, questions()): one shard (the cache is per shard, and the
    counts must not depend on which shard took the connection) asking the
    counting server."""
    port, questions = counting_dns
    return start_ringmaild(dns={"servers": f"127.0.0.1:{port}"}, threads=1), questions


def test_each_name_is_asked_once_per_ttl(one_shard):
    mx, questions = one_shard
    deliver(mx, "a@src.test", 20)
    asked = questions()
    assert asked["TXT src.test"] == 1, asked
    assert asked["TXT _dmarc.src.test"] == 1, asked
    assert asked["TXT helo.test"] == 1, asked
    # No DMARC record for the HELO name's domain is needed; nothing else
    # was asked more than once.
    assert max(asked.values()) == 1, asked


def test_a_ttl_of_one_second_runs_out(one_shard):
    mx, questions = one_shard
    deliver(mx, "a@short.test", 3)
    assert questions()["TXT short.test"] == 1, questions()
    time.sleep(2.2)
    deliver(mx, "a@short.test", 1)
    assert questions()["TXT short.test"] == 2, questions()
    assert questions()["TXT _dmarc.short.test"] == 2, questions()


def test_negative_answers_are_kept_for_the_soa_minimum(one_shard):
    mx, questions = one_shard
    # nobody.src.test does not exist (NXDOMAIN with src.test's SOA, minimum
    # 120 s): its SPF and DMARC questions are asked once.
    deliver(mx, "a@nobody.src.test", 5)
    asked = questions()
    assert asked["TXT nobody.src.test"] == 1, asked
    assert asked["TXT _dmarc.nobody.src.test"] == 1, asked


def test_no_cache_still_merges_and_the_old_name_works(start_ringmaild, counting_dns):
    port, questions = counting_dns
    mx = start_ringmaild(outbound={"dns_servers": f"127.0.0.1:{port}"}, threads=1,
                         dns={"cache_entries_max": 0})
    deliver(mx, "a@src.test", 3)
    assert questions()["TXT src.test"] == 3, questions()  # nothing kept
    log = mx.log_path.read_text()
    assert "outbound.dns_servers: deprecated, now [dns] servers (it still works)" in log, log


def test_both_names_set_is_an_error(start_ringmaild, ringmaild_binary):
    d = start_ringmaild(start=False, outbound={"dns_servers": "127.0.0.1:9"},
                        dns={"servers": "127.0.0.1:9"})
    d.domains_dir.mkdir(parents=True)
    rc, _, err = checked(d, ringmaild_binary)
    assert rc != 0
    assert "outbound.dns_servers: set dns.servers only (outbound.dns_servers is its old name)" in err, err
