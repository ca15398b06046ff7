#!/bin/sh
# meson install step: make the ringmail user and the spool on this system.
# Skipped for a DESTDIR install (a package's maintainer scripts do it there).
set -e
[ -n "${DESTDIR:-}" ] && exit 0
if command -v systemd-sysusers >/dev/null 2>&1; then
  systemd-sysusers "$1/sysusers.d/ringmail.conf"
  systemd-tmpfiles --create "$1/tmpfiles.d/ringmail.conf"
fi
if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
  systemctl daemon-reload || true
fi
