"""Ports for test servers, shared by the integration suite (conftest.py)
and the crash test."""
import socket

_HANDED_OUT = set()


def free_port(family, addr):
    """A port free on `addr` now, never one this process was given before:
    the kernel may hand the same free port out twice in a row, and two
    listeners of one daemon on the same address and port are refused as
    a configuration error."""
    while True:
        with socket.socket(family, socket.SOCK_STREAM) as s:
            s.bind((addr, 0))
            port = s.getsockname()[1]
        if (addr, port) not in _HANDED_OUT:
            _HANDED_OUT.add((addr, port))
            return port
