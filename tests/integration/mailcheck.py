"""Helpers shared by the integration tests: message framing and the check of
a delivered Maildir file against docs/smtp-replies.md ("Local delivery").

The delivered file is, with LF line endings:

    Return-Path: <sender>
    Delivered-To: <recipient>
    Received: from <helo> (<client-literal>)
    \tby <host> (ringmail) with ESMTP id <ID>
    \tfor <recipient>; <RFC 5322 date>     (when the message has one recipient)
    \t<RFC 5322 date>                      (otherwise: no recipient is disclosed)
    <the message as sent, dot-unstuffed, CRLF turned into LF>

and its name is <arrival-unix-time>.<ID>_<n>.<host>.

Interpretation of the placeholders: Return-Path carries its angle brackets
(RFC 5322 `path`, "<>" for the null sender); for Delivered-To and the `for`
clause the doc's `<recipient>` is read as the address with or without angle
brackets (both forms are accepted); <client-literal> is the RFC 5321
address literal: "[127.0.0.1]", "[IPv6:::1]".
"""

import email.utils
import re
import time

CRLF = b"\r\n"

DELIVERY_RE = re.compile(
    rb"Return-Path: <(?P<rp>[^>\n]*)>\n"
    rb"Delivered-To: (?P<dt>[^\n]*)\n"
    rb"Received: from (?P<helo>[^ \n]+) \((?P<lit>[^)\n]*)\)\n"
    rb"\tby (?P<by>[^ \n]+) \(ringmail\) with (?P<proto>[A-Z0-9]+) id (?P<id>[^ \n]+)\n"
    rb"\t(?:for (?P<for>[^;\n]+); )?(?P<date>[^\n]+)\n"
    # Added by ringmail below its Received (docs/smtp-replies.md): the SPF,
    # DKIM and DMARC results of inbound mail, or signatures of submitted mail.
    rb"(?P<added>(?:(?:Authentication-Results|DKIM-Signature|Received-SPF|X-Ringmail-Disposition): "
    rb"[^\n]*\n(?:[ \t][^\n]*\n)*)*)")

LITERAL_V4 = r"\[127\.0\.0\.1\]"
LITERAL_V6 = r"\[IPv6:(::1|0:0:0:0:0:0:0:1)\]"


def crlf(text):
    """str or bytes with LF line ends -> bytes with CRLF line ends."""
    if isinstance(text, str):
        text = text.encode("utf-8")
    assert b"\r" not in text
    return text.replace(b"\n", b"\r\n")


def dot_stuff(msg):
    """RFC 5321 4.5.2 transparency: msg (CRLF lines, ending in CRLF) ->
    bytes to send after 354, including the terminating ".\r\n"."""
    assert msg.endswith(CRLF) or msg == b"", msg[-20:]
    lines = msg.split(CRLF)[:-1] if msg else []
    out = [(b"." + l if l.startswith(b".") else l) for l in lines]
    return b"".join(l + CRLF for l in out) + b".\r\n"


def to_lf(msg):
    return msg.replace(CRLF, b"\n")


def addr_forms(addr):
    """Accepted spellings of a recipient in Delivered-To / for: with or
    without angle brackets, compared case-insensitively (ASCII)."""
    a = (addr.encode("utf-8") if isinstance(addr, str) else addr).lower()
    return (a, b"<" + a + b">")


BLOCK_LINES = [
    (rb"Return-Path: <[^>\n]*>", "Return-Path: <sender>"),
    (rb"Delivered-To: [^\n]*", "Delivered-To: <recipient>"),
    (rb"Received: from [^ \n]+ \([^)\n]*\)", "Received: from <helo> (<client-literal>)"),
    (rb"\tby [^ \n]+ \(ringmail\) with [A-Z0-9]+ id [^ \n]+",
     "<TAB>by <host> (ringmail) with ESMTP id <ID>"),
    (rb"\t(?:for [^;\n]+; )?[^\n]+", "<TAB>for <recipient>; <RFC 5322 date>  or  <TAB><RFC 5322 date>"),
]


def parse_delivery(data, where=""):
    m = DELIVERY_RE.match(data)
    if not m:
        lines = data.split(b"\n")
        why = "unknown"
        for i, (pat, shape) in enumerate(BLOCK_LINES):
            got = lines[i] if i < len(lines) else b"<end of file>"
            if not re.fullmatch(pat, got):
                why = "line %d is %r, expected the shape %r" % (i + 1, got[:200], shape)
                break
        raise AssertionError(
            "delivered file %s does not start with the Return-Path/Delivered-To/Received "
            "block of docs/smtp-replies.md: %s; first 400 bytes:\n%r" % (where, why, data[:400]))
    return m, data[m.end():]


def check_delivery(path, *, sender, rcpt, helo, hostname, literal=LITERAL_V4,
                   qid=None, message=None, t0=None, t1=None, proto="ESMTP", nrcpt=1):
    """Check one delivered Maildir file. `message` is the message as the
    client meant it (CRLF line ends, not dot-stuffed); None skips the body
    comparison. `nrcpt`: number of accepted recipients of the message (the
    `for` clause is there only when it is 1). Returns (match, body,
    filename-match)."""
    data = path.read_bytes()
    m, body = parse_delivery(data, str(path))
    g = {k: (v or b"").decode("utf-8", "replace") for k, v in m.groupdict().items()}
    ctx = "in %s:\n%s" % (path, data[:700].decode("utf-8", "replace"))
    assert m.group("rp") == sender.encode("utf-8"), (
        "Return-Path: expected <%s>, got <%s> %s" % (sender, g["rp"], ctx))
    assert m.group("dt").lower() in addr_forms(rcpt), (
        "Delivered-To: expected %s, got %r %s" % (rcpt, g["dt"], ctx))
    if nrcpt == 1:
        assert m.group("for") is not None and m.group("for").lower() in addr_forms(rcpt), (
            "Received 'for' clause: expected 'for %s;' (message with one recipient), got %r %s"
            % (rcpt, g["for"], ctx))
    else:
        assert m.group("for") is None, (
            "Received discloses a recipient ('for %s;') of a message with %d recipients %s"
            % (g["for"], nrcpt, ctx))
        assert rcpt.lower() not in g["date"].lower(), "recipient disclosed in Received %s" % ctx
    assert g["helo"] == helo, "Received from: expected %r, got %r %s" % (helo, g["helo"], ctx)
    assert re.fullmatch(literal, g["lit"]), (
        "Received client literal: expected /%s/, got %r %s" % (literal, g["lit"], ctx))
    assert g["proto"] == proto, (
        "Received: expected 'with %s', got 'with %s' %s" % (proto, g["proto"], ctx))
    assert g["by"] == hostname, "Received by: expected %r, got %r %s" % (hostname, g["by"], ctx)
    if qid is not None:
        assert g["id"] == qid, "Received id: expected %r (queued as), got %r %s" % (qid, g["id"], ctx)
    try:
        when = email.utils.parsedate_to_datetime(g["date"])
    except (TypeError, ValueError):
        when = None
    assert when is not None and when.tzinfo is not None, (
        "Received date %r is not an RFC 5322 date-time with zone %s" % (g["date"], ctx))
    assert abs(when.timestamp() - time.time()) < 600, (
        "Received date %r is not the current time %s" % (g["date"], ctx))
    fm = re.fullmatch(r"(\d+)\.%s_(\d+)\.%s" % (re.escape(g["id"]), re.escape(hostname)),
                      path.name)
    assert fm, ("file name %r is not <arrival-unix-time>.<ID>_<n>.<host> with ID %r host %r"
                % (path.name, g["id"], hostname))
    if t0 is not None:
        assert int(t0) - 2 <= int(fm.group(1)) <= int(t1 or time.time()) + 2, (
            "arrival time %s in file name %r not within the test's time window [%d, %d]"
            % (fm.group(1), path.name, t0, t1 or time.time()))
    assert b"\r" not in data, "CR left in the delivered file (must be LF only) %s" % ctx
    if message is not None:
        expected = to_lf(message)
        assert body == expected, (
            "delivered message differs from the message sent (dot-unstuffed, LF)\n"
            "expected: %r\n     got: %r" % (expected[:1500], body[:1500]))
    return m, body, fm
