#!/usr/bin/env python3
"""Golden MIME check: the message proto::build_message makes (through
tests/tools/mime_golden) parsed back with Python's email package
(policy=default): the tree of parts, the headers, the charsets and the
decoded bytes of every part.

usage: mime_golden_test.py MIME_GOLDEN_EXECUTABLE
"""
import datetime
import email
import email.policy
import os
import subprocess
import sys
import tempfile


def check(cond, what):
    if not cond:
        raise AssertionError(what)


def text_of(part):
    # The email package keeps the wire's CRLF in decoded text; compare lines.
    return part.get_content().replace("\r\n", "\n")


def tree(part):
    if part.is_multipart():
        return part.get_content_type() + "(" + ",".join(tree(p) for p in part.iter_parts()) + ")"
    return part.get_content_type()


def main():
    exe = sys.argv[1]
    # Bytes that no transfer encoding may change: every octet value, CR
    # and LF alone and together, a long run without line breaks.
    pdf = b"%PDF-1.4\n" + bytes(range(256)) + b"\r\n\n\r" + os.urandom(3000) + b"\n%%EOF\n"
    png = b"\x89PNG\r\n\x1a\n" + os.urandom(700)
    with tempfile.TemporaryDirectory() as d:
        pdf_path = os.path.join(d, "a.pdf")
        png_path = os.path.join(d, "a.png")
        with open(pdf_path, "wb") as f:
            f.write(pdf)
        with open(png_path, "wb") as f:
            f.write(png)
        run = subprocess.run([exe, pdf_path, png_path], capture_output=True, timeout=60)
    check(run.returncode == 0, f"mime_golden failed: {run.stderr!r}")
    check(run.stderr == b"", f"unexpected warnings: {run.stderr!r}")
    raw = run.stdout

    # Wire form: CRLF only, no line over 998 octets, headers in ASCII.
    lines = raw.split(b"\r\n")
    check(all(b"\n" not in l and b"\r" not in l for l in lines), "bare CR or LF")
    check(max(len(l) for l in lines) <= 998, "line over 998 octets")
    check(raw.split(b"\r\n\r\n", 1)[0].isascii(), "8-bit header")

    msg = email.message_from_bytes(raw, policy=email.policy.default)
    for part in msg.walk():
        check(not part.defects, f"defects in {part.get_content_type()}: {part.defects}")

    check(str(msg["Subject"]) == "Grüße, Zoë: Ihre Rechnung 4711", f"Subject {msg['Subject']!r}")
    frm = msg["From"].addresses
    check(len(frm) == 1 and frm[0].display_name == "Jürgen Müller" and frm[0].addr_spec == "rechnung@example.com",
          f"From {msg['From']!r}")
    to = msg["To"].addresses
    check(len(to) == 1 and to[0].display_name == "Zoë Łukasz" and to[0].addr_spec == "zoe@example.org",
          f"To {msg['To']!r}")
    check(msg["Reply-To"].addresses[0].addr_spec == "hilfe@example.com", "Reply-To")
    check(msg["Date"].datetime == datetime.datetime(2026, 12, 6, 22, 0, tzinfo=datetime.timezone.utc),
          f"Date {msg['Date']!r}")
    check(msg["Message-ID"] == "<00000000000000010000000000000002@mx.example.net>", f"Message-ID {msg['Message-ID']!r}")
    check(msg["MIME-Version"] == "1.0", "MIME-Version")
    check(msg["X-Invoice"] == "4711", "X-Invoice")
    # Folded at the space only: the URL arrives whole, not as encoded words.
    check(msg["List-Unsubscribe"] ==
          "<mailto:unsub@example.com>, <https://example.com/unsubscribe?list=invoices&token="
          "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef>",
          f"List-Unsubscribe {msg['List-Unsubscribe']!r}")
    check(b"=?" not in raw.split(b"List-Unsubscribe:", 1)[1].split(b"\r\nMIME-Version", 1)[0],
          "List-Unsubscribe encoded")

    shape = tree(msg)
    check(shape == "multipart/mixed(multipart/alternative(text/plain,multipart/related(text/html,image/png)),"
                   "application/pdf)", f"tree {shape}")
    alternative, pdf_part = list(msg.iter_parts())
    text, related = list(alternative.iter_parts())
    html, img = list(related.iter_parts())
    check(related.get_param("type") == "text/html", "multipart/related type")

    check(text.get_content_charset() == "utf-8", f"text charset {text.get_content_charset()}")
    check(text_of(text) == "Hallo Zoë,\nanbei Ihre Rechnung über 12.5 €.\n", f"text {text.get_content()!r}")
    check(html.get_content_charset() == "utf-8", f"html charset {html.get_content_charset()}")
    check(text_of(html) == '<p>Hallo Zoë &amp; A<B>,</p><img src="cid:logo@example.com"><p>A&lt;B&gt;</p>\n',
          f"html {html.get_content()!r}")

    check(img.get_content_disposition() == "inline", "image disposition")
    check(img["Content-ID"] == "<logo@example.com>", f"Content-ID {img['Content-ID']!r}")
    check(img.get_filename() == "logo.png", "image file name")
    check(img.get_content() == png, "image bytes differ")

    check(pdf_part.get_content_disposition() == "attachment", "pdf disposition")
    check(pdf_part.get_filename() == "Rechnung-Ü.pdf", f"pdf file name {pdf_part.get_filename()!r}")
    check(pdf_part["Content-Transfer-Encoding"] == "base64", "pdf transfer encoding")
    check(pdf_part.get_content() == pdf, "pdf bytes differ")
    print("mime_golden: ok")


if __name__ == "__main__":
    main()
