"""A tiny raw-socket SMTP client for scripted dialogs.

It sends exactly the bytes it is given and reads one complete reply at a time
(multi-line aware, CRLF enforced), and keeps a transcript that is put into
every assertion message.
"""

import re
import socket
import time


class ConnectionClosed(AssertionError):
    pass


class Reply:
    def __init__(self, lines):
        self.lines = lines  # each line without its CRLF, e.g. "250-PIPELINING"

    @property
    def code(self):
        return int(self.lines[0][:3])

    @property
    def last(self):
        return self.lines[-1]

    def __repr__(self):
        return "Reply(%r)" % (self.lines,)


class SMTPConn:
    def __init__(self, host, port, timeout=10):
        self.host, self.port = host, port
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.connect((host, port))
        self.timeout = timeout
        self.buf = b""
        self.log = []
        self.eof = False

    # ------------------------------------------------------------ basics
    def transcript(self, limit=60):
        lines = self.log[-limit:]
        return "--- transcript (last %d) ---\n%s" % (len(lines), "\n".join(lines))

    def _note(self, prefix, data):
        text = data if isinstance(data, str) else repr(data)[2:-1]
        if len(text) > 300:
            text = text[:200] + "...(%d bytes)..." % len(text) + text[-60:]
        self.log.append(prefix + text)

    def send(self, data):
        if isinstance(data, str):
            data = data.encode("utf-8")
        self._note("C: ", data)
        self.sock.sendall(data)

    def _fill(self, deadline):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise socket.timeout()
        self.sock.settimeout(remaining)
        try:
            chunk = self.sock.recv(65536)
        except ConnectionResetError:
            chunk = b""
        if not chunk:
            self.eof = True
            raise ConnectionClosed("connection closed by server\n" + self.transcript())
        self.buf += chunk

    def read_line(self, timeout=None):
        deadline = time.monotonic() + (timeout or self.timeout)
        while b"\n" not in self.buf:
            try:
                self._fill(deadline)
            except socket.timeout:
                raise AssertionError("timeout waiting for a reply line; partial data %r\n%s"
                                     % (self.buf, self.transcript())) from None
        line, self.buf = self.buf.split(b"\n", 1)
        self._note("S: ", line + b"\n")
        assert line.endswith(b"\r"), (
            "reply line not terminated by CRLF: %r\n%s" % (line + b"\n", self.transcript()))
        return line[:-1].decode("utf-8", "replace")

    def read_reply(self, timeout=None):
        lines = []
        while True:
            line = self.read_line(timeout)
            assert re.match(r"^[2-5][0-9][0-9]([ -]|$)", line), (
                "malformed reply line %r\n%s" % (line, self.transcript()))
            if lines:
                assert line[:3] == lines[0][:3], (
                    "multi-line reply changes code: %r\n%s" % (lines + [line], self.transcript()))
            lines.append(line)
            if len(line) == 3 or line[3] == " ":
                return Reply(lines)

    def cmd(self, line, timeout=None):
        if isinstance(line, str):
            line = line.encode("utf-8")
        self.send(line + b"\r\n")
        return self.read_reply(timeout)

    # ------------------------------------------------------ assertions
    def check(self, reply, expected, what=""):
        """Assert that `reply` is the single line `expected` (exact)."""
        assert reply.lines == [expected], (
            "%sexpected %r, got %r\n%s" % (what + ": " if what else "", expected,
                                           reply.lines, self.transcript()))
        return reply

    def check_re(self, reply, pattern, what=""):
        assert len(reply.lines) == 1 and re.fullmatch(pattern, reply.lines[0]), (
            "%sexpected a line matching %r, got %r\n%s" % (
                what + ": " if what else "", pattern, reply.lines, self.transcript()))
        return re.fullmatch(pattern, reply.lines[0])

    def expect(self, line, expected):
        """Send one command line and require the exact single-line reply."""
        return self.check(self.cmd(line), expected, "reply to %r" % (line,))

    def greeting(self, hostname):
        return self.check(self.read_reply(), "220 %s ESMTP ringmail" % hostname, "greeting")

    def expect_closed(self, timeout=5):
        """Require that the server closes the connection within `timeout`
        without sending anything more."""
        deadline = time.monotonic() + timeout
        extra = self.buf
        self.buf = b""
        while not self.eof:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError("connection still open %s s later (unread data %r)\n%s"
                                     % (timeout, extra, self.transcript()))
            self.sock.settimeout(remaining)
            try:
                chunk = self.sock.recv(65536)
            except ConnectionResetError:
                chunk = b""
            except socket.timeout:
                continue
            if not chunk:
                self.eof = True
            else:
                self._note("S: ", chunk)
                extra += chunk
        assert extra == b"", ("server sent more before closing: %r\n%s"
                              % (extra, self.transcript()))

    def expect_open(self, wait=0.3):
        """Require that nothing arrives and the connection stays open."""
        self.sock.settimeout(wait)
        try:
            chunk = self.sock.recv(65536)
        except socket.timeout:
            return
        except ConnectionResetError:
            chunk = b""
        if chunk:
            self.buf += chunk
            raise AssertionError("unexpected data from server: %r\n%s" % (chunk, self.transcript()))
        self.eof = True
        raise AssertionError("server closed the connection\n" + self.transcript())

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass
