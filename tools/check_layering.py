#!/usr/bin/env python3
"""Fails when an #include crosses the dependency direction in STYLE.md.

usage: check_layering.py SOURCE_ROOT STAMP_FILE
"""
import pathlib
import re
import sys

# folder -> folders it may include from (besides itself)
ALLOWED = {
    "proto": set(),
    "tls": set(),
    "storage": {"proto"},
    "config": {"proto", "tls"},
    "engine": {"proto", "tls", "storage", "config"},
    "tools": {"proto", "tls", "storage", "config"},
    "bench": {"proto", "tls", "storage", "config", "engine"},
    "tests": {"proto", "tls", "storage", "config", "engine", "tools"},
    "fuzz": {"proto", "storage"},
}
# Single headers a folder may include from a folder it otherwise may not:
# the tools ask DNS through the daemon's resolver (one DNS stack); tls
# reports failures with proto's Result (header only, no I/O).
EXCEPTIONS = {
    "tools": {"engine/blocking_dns.h"},
    "tls": {"proto/result.h", "proto/ascii.h"},
}
# Third-party headers each layer may use (proto: standard library only).
FORBIDDEN_SYSTEM = {
    "proto": re.compile(r"^(liburing|wolfssl|ares|libpsl|sys/socket|netinet|unistd|fcntl|toml)"),
    "tls": re.compile(r"^(liburing|ares|sys/socket)"),
    "storage": re.compile(r"^(liburing|wolfssl|ares)"),
}
INCLUDE = re.compile(r'^\s*#\s*include\s*([<"])([^>"]+)[>"]')


def main() -> int:
    root = pathlib.Path(sys.argv[1])
    errors = []
    for folder, allowed in ALLOWED.items():
        for path in sorted((root / folder).rglob("*")):
            if path.suffix not in (".h", ".cc", ".cpp"):
                continue
            for lineno, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
                m = INCLUDE.match(line)
                if not m:
                    continue
                kind, name = m.groups()
                first = name.split("/", 1)[0]
                if (kind == '"' and first in ALLOWED and first != folder and first not in allowed
                        and name not in EXCEPTIONS.get(folder, set())):
                    errors.append(f"{path.relative_to(root)}:{lineno}: {folder}/ may not include {name}")
                bad = FORBIDDEN_SYSTEM.get(folder)
                if kind == "<" and bad and bad.match(name):
                    errors.append(f"{path.relative_to(root)}:{lineno}: {folder}/ may not use <{name}>")
    if errors:
        print("\n".join(errors), file=sys.stderr)
        return 1
    pathlib.Path(sys.argv[2]).write_text("ok\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
