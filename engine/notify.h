// systemd's service protocol for a Type=notify unit (sd_notify(3),
// sd_watchdog_enabled(3)): READY=1 once every listener is bound and the
// spool is recovered, RELOADING=1 ... READY=1 around a SIGHUP reload,
// STOPPING=1 at a stop, STATUS= lines for `systemctl status`, and WATCHDOG=1
// pings while every shard's loop keeps turning. Outside systemd (no
// NOTIFY_SOCKET) every call does nothing.
#pragma once

#include <cstdint>
#include <string>

namespace ringmail::engine::notify {

void ready(const std::string& status);
void reloading();
void stopping(const std::string& status);
void status(const std::string& status);
// The watchdog interval the service manager asked for (WATCHDOG_USEC, for
// this process), in microseconds; 0 when there is none.
uint64_t watchdog_usec();
void watchdog();

}  // namespace ringmail::engine::notify
