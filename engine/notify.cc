#include "engine/notify.h"

#include <systemd/sd-daemon.h>

#include <ctime>

namespace ringmail::engine::notify {
namespace {

void send(const std::string& text) { sd_notify(0, text.c_str()); }

uint64_t monotonic_usec() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000000u + static_cast<uint64_t>(ts.tv_nsec) / 1000u;
}

}  // namespace

void ready(const std::string& status) { send("READY=1\nSTATUS=" + status); }

// MONOTONIC_USEC lets a Type=notify-reload manager (systemd 253+) match the
// reload to its request; older ones ignore it.
void reloading() {
  send("RELOADING=1\nMONOTONIC_USEC=" + std::to_string(monotonic_usec()) +
       "\nSTATUS=reloading the configuration");
}

void stopping(const std::string& status) { send("STOPPING=1\nSTATUS=" + status); }

void status(const std::string& status) { send("STATUS=" + status); }

uint64_t watchdog_usec() {
  uint64_t usec = 0;
  return sd_watchdog_enabled(0, &usec) > 0 ? usec : 0;
}

void watchdog() { send("WATCHDOG=1"); }

}  // namespace ringmail::engine::notify
