"""smtp-blaster --http (bench/blaster_http.cc) against ringmaild's
injection API, POST /api/inject/v1: its counts (requests, statuses,
recipients accepted and failed) against ringmaild's "queued" log lines
and the Maildirs it delivered to, the substitutions and numbering as the
messages arrived, a wrong token counted as 401s, a token's rate limit
counted as 429s, and one-line errors with exit status 64 for bad
arguments."""
import email
import hashlib
import json
import re
import subprocess
import time

from conftest import BACKEND
from test_blaster import BLASTER

TOKEN = "blaster-token-for-tests"
PATH = "/api/inject/v1"


def tokens(**extra):
    lines = ["[[api.token]]", 'name = "blast"',
             f'sha256 = "{hashlib.sha256(TOKEN.encode()).hexdigest()}"',
             'scopes = ["inject"]', 'sender_domains = ["example.test"]']
    lines += [f"{k} = {v}" for k, v in extra.items()]
    return "\n".join(lines) + "\n"


def blast_http(srv, *args, token=TOKEN, rc=0):
    r = subprocess.run([BLASTER, "--json", "--backend", BACKEND,
                        "--http", f"http://127.0.0.1:{srv.http_port}{PATH}", "--token", token, *args],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == rc, r.stderr
    return json.loads(r.stdout)


def inject_server(start_ringmaild, **token_extra):
    return start_ringmaild(http=True, extra_toml=tokens(**token_extra))


def delivered(srv, domain, want):
    """The files in every Maildir/new of `domain`, once there are `want`
    (or after 20 s, whatever is there)."""
    root = srv.data_dir / "mail" / domain
    deadline = time.monotonic() + 20
    while True:
        files = sorted(root.glob("*/Maildir/new/*")) if root.exists() else []
        if len(files) >= want or time.monotonic() > deadline:
            time.sleep(0.2)  # nothing more should come
            return sorted(root.glob("*/Maildir/new/*")) if root.exists() else []
        time.sleep(0.1)


def queued_lines(srv, want):
    """ringmaild's log lines for messages the token "blast" queued, once
    there are `want` (or after 20 s)."""
    deadline = time.monotonic() + 20
    while True:
        lines = [l for l in srv.log_path.read_text(errors="replace").splitlines()
                 if re.search(r": queued .* api=blast ", l)]
        if len(lines) >= want or time.monotonic() > deadline:
            return lines
        time.sleep(0.1)


def test_counts_agree_with_the_log_and_the_maildirs(start_ringmaild):
    srv = inject_server(start_ringmaild)
    out = blast_http(srv, "--requests", "30", "--recipients-per-request", "4", "--connections", "3",
                     "--size", "3000", "--from", "blaster@example.test", "--to", "u{n}@example.test",
                     "--domain", "example.test:3,other.test:1")
    assert out["requests"] == out["answered"] == 30, out
    assert out["statuses"] == {"200": 30}, out
    assert out["recipients_accepted"] == 120 and out["recipients_failed"] == 0, out
    assert out["connection_errors"] == 0 and out["unreadable_responses"] == 0, out
    assert out["bytes"] > 30 * 4 * 100, out  # 4 recipients' JSON and a 3000-byte body a request
    lat = out["latency_s"]
    assert 0 < lat["p50"] <= lat["p90"] <= lat["p99"] <= lat["p99.9"] <= lat["max"], lat
    # One "queued" line per recipient, each with its own recipient.
    queued = queued_lines(srv, 120)
    assert len(queued) == 120, queued[-5:]
    assert {re.search(r" to=<u(\d+)@", l).group(1) for l in queued} == {str(n) for n in range(120)}
    # Recipient n is in other.test when n % 4 == 3 (weights 3:1).
    main, other = delivered(srv, "example.test", 90), delivered(srv, "other.test", 30)
    assert (len(main), len(other)) == (90, 30), (len(main), len(other))
    seen = set()
    for f in main + other:
        user = f.parts[-4]  # mail/<domain>/<user>/Maildir/new/<file>
        n = int(user[1:])
        msg = email.message_from_bytes(f.read_bytes())
        # Each recipient's own substitutions: {{n}} in the subject, {{name}}
        # in the body.
        assert msg["Subject"] == f"blaster {n}", (f, msg["Subject"])
        assert f"Hello recipient {n}," in msg.get_payload(), f
        assert "blaster@example.test" in msg["From"], msg["From"]
        assert 3000 * 0.9 < f.stat().st_size < 3000 + 1000, (f, f.stat().st_size)
        assert f.parts[-5] == ("other.test" if n % 4 == 3 else "example.test"), f
        seen.add(n)
    assert seen == set(range(120)), sorted(seen)


def test_refused_recipients_are_counted_as_failed(start_ringmaild):
    """Half of each request's recipients are not addresses (a domain with a
    space): the request goes on without them, and they come back in
    fail_count."""
    srv = inject_server(start_ringmaild)
    out = blast_http(srv, "--requests", "5", "--recipients-per-request", "4", "--connections", "1",
                     "--from", "blaster@example.test", "--to", "f{n}@example.test",
                     "--domain", "example.test:1,not valid:1")
    assert out["statuses"] == {"200": 5}, out
    assert out["recipients_accepted"] == 10 and out["recipients_failed"] == 10, out
    got = delivered(srv, "example.test", 10)
    assert sorted(int(f.parts[-4][1:]) for f in got) == list(range(0, 20, 2)), got


def test_wrong_token_is_counted_as_401(start_ringmaild):
    srv = inject_server(start_ringmaild)
    out = blast_http(srv, "--requests", "6", "--connections", "2", "--from", "blaster@example.test",
                     token="not-the-token")
    assert out["requests"] == out["answered"] == 6, out
    assert out["statuses"] == {"401": 6}, out
    assert out["recipients_accepted"] == 0 and out["connection_errors"] == 0, out
    assert delivered(srv, "example.test", 0) == []


def test_rate_limited_token_counts_429_and_only_what_was_taken(start_ringmaild):
    """A token allowed one recipient a second: what is over gets 429. How
    many pass depends on timing, so the checks are that every request is
    answered 200 or 429 and that the 200s' success_count is what arrived."""
    srv = inject_server(start_ringmaild, recipients_per_second=1)
    out = blast_http(srv, "--requests", "40", "--connections", "2", "--from", "blaster@example.test",
                     "--to", "r{n}@example.test")
    assert out["answered"] == 40, out
    assert set(out["statuses"]) <= {"200", "429"}, out
    assert out["statuses"].get("429", 0) > 0, out  # 40 requests in well under 40 s
    assert out["recipients_accepted"] == out["statuses"].get("200", 0), out
    assert len(delivered(srv, "example.test", out["recipients_accepted"])) == out["recipients_accepted"]


def test_open_loop_over_http(start_ringmaild):
    srv = inject_server(start_ringmaild)
    out = blast_http(srv, "--requests", "12", "--rate", "40", "--connections", "2",
                     "--recipients-per-request", "2", "--from", "blaster@example.test")
    assert out["statuses"] == {"200": 12} and out["recipients_accepted"] == 24, out
    assert out["seconds"] >= 11 / 40, out  # request 11 was due at 0.275 s
    assert len(delivered(srv, "example.test", 24)) == 24


def test_http_argument_errors_get_one_line_and_64():
    url = "http://127.0.0.1:1/api/inject/v1"
    http = ["--http", url, "--token", "t", "--requests", "1"]
    for args, text in [
            (("--http", "https://127.0.0.1:1/api/inject/v1", "--token", "t", "--requests", "1"),
             "http:// URLs only"),
            (("--http", "127.0.0.1:1", "--token", "t", "--requests", "1"), "--http must be a URL"),
            (("--http", url, "--requests", "1"), "--http needs --token"),
            (("--http", url, "--token", "a\r\nX-Evil: 1", "--requests", "1"),
             "--token: printable ASCII without spaces only"),
            (("--http", "http://user@127.0.0.1:1/", "--token", "t", "--requests", "1"),
             "no user or #fragment"),
            ((*http, "--target", "127.0.0.1:25"), "not both"),
            ((*http, "--starttls"), "--starttls is for SMTP"),
            ((*http, "--tls"), "--tls is for SMTP"),
            ((*http, "--auth", "a:b"), "--auth is for SMTP"),
            ((*http, "--pipelining", "off"), "--pipelining is for SMTP"),
            ((*http, "--helo", "x.test"), "--helo is for SMTP"),
            ((*http, "--per-connection", "5"), "--per-connection is for SMTP"),
            ((*http, "--messages", "5"), "--messages is for SMTP"),
            (("--target", "127.0.0.1:25", "--messages", "1", "--token", "t"), "--token needs --http"),
            (("--target", "127.0.0.1:25", "--messages", "1", "--recipients-per-request", "3"),
             "--recipients-per-request needs --http"),
            (("--messages", "1"), "--target is required (or --http URL")]:
        r = subprocess.run([BLASTER, *args], capture_output=True, text=True, timeout=30)
        assert r.returncode == 64 and text in r.stderr, (args, r.returncode, r.stderr)
        assert len(r.stderr.strip().splitlines()) == 1, (args, r.stderr)
    # Refused by the command line parser (CLI11 adds its "Run with --help").
    for args, text in [(("--http", url, "--token", "t", "--requests", "0"),
                        "--requests: must be a number above 0"),
                       ((*http[:-2], "--recipients-per-request", "0", "--requests", "1"),
                        "--recipients-per-request")]:
        r = subprocess.run([BLASTER, *args], capture_output=True, text=True, timeout=30)
        assert r.returncode == 64 and text in r.stderr, (args, r.returncode, r.stderr)
        assert len(r.stderr.strip().splitlines()) <= 2, (args, r.stderr)
    # Unbounded: the same exit status as the SMTP mode's (2).
    r = subprocess.run([BLASTER, "--http", url, "--token", "t"], capture_output=True, text=True,
                       timeout=30)
    assert r.returncode == 2 and "give --requests N or --duration S" in r.stderr, r.stderr
