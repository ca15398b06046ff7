// What smtp-blaster's two modes share: the settings from the command line,
// the latency histogram, the workload (senders, recipients, sizes: the same
// options make the same load over SMTP and over HTTP) and the report's
// latency lines, and the driver loop (Driver: connections kept open and
// busy, the bounds and the open-loop schedule, failed connections
// counted, the progress line). The SMTP mode is bench/smtp_blaster.cc,
// the HTTP injection mode bench/blaster_http.cc; both run on one engine
// Backend.
#pragma once

#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "engine/backend.h"
#include "proto/quoted.h"

namespace ringmail::blaster {

using Clock = std::chrono::steady_clock;

// Log-linear latency histogram, microseconds: 64 sub-buckets per power of
// two (under 1.6% error), up to about 73 minutes.
class Histogram {
 public:
  void add(double seconds) {
    const uint64_t us = static_cast<uint64_t>(std::max(0.0, seconds) * 1e6);
    ++counts_[bucket(us)];
    ++n_;
    max_ = std::max(max_, us);
  }
  // The value at quantile q (0..1), seconds.
  double at(double q) const {
    if (n_ == 0) return 0;
    const uint64_t want = static_cast<uint64_t>(std::ceil(q * static_cast<double>(n_)));
    uint64_t seen = 0;
    for (size_t b = 0; b < counts_.size(); ++b) {
      seen += counts_[b];
      if (seen >= std::max<uint64_t>(want, 1)) return std::min(upper(b), max_) / 1e6;
    }
    return max_ / 1e6;
  }
  double max() const { return max_ / 1e6; }
  uint64_t count() const { return n_; }

 private:
  static constexpr int kSub = 64;
  static size_t bucket(uint64_t us) {
    if (us < kSub) return us;
    const int e = 63 - __builtin_clzll(us) - 5;  // us >> e in [64, 128)
    return static_cast<size_t>(e) * kSub + static_cast<size_t>(us >> e);
  }
  static uint64_t upper(size_t b) {
    if (b < 2 * kSub) return b;
    const size_t e = b / kSub - 1;
    return ((b % kSub + kSub + 1) << e) - 1;
  }
  std::array<uint64_t, 64 * 40> counts_{};
  uint64_t n_ = 0;
  uint64_t max_ = 0;
};

// `"p50": S, "p90": S, ...` (seconds) for a JSON report.
inline std::string latency_json(const Histogram& h) {
  char buf[200];
  std::snprintf(buf, sizeof buf,
                "\"p50\": %.6f, \"p90\": %.6f, \"p99\": %.6f, \"p99.9\": %.6f, \"max\": %.6f",
                h.at(0.5), h.at(0.9), h.at(0.99), h.at(0.999), h.max());
  return buf;
}

// One line of the text report: `what p50 ... max ... (count)`, milliseconds.
inline void print_latency(const char* what, const Histogram& h) {
  std::printf("%s p50 %.2f ms  p90 %.2f ms  p99 %.2f ms  p99.9 %.2f ms  max %.2f ms (%llu)\n", what,
              h.at(0.5) * 1e3, h.at(0.9) * 1e3, h.at(0.99) * 1e3, h.at(0.999) * 1e3, h.max() * 1e3,
              static_cast<unsigned long long>(h.count()));
}

struct Settings {
  std::string target;
  int connections = 10;
  uint64_t messages = 0;
  double duration = 0;
  int per_connection = 100;
  int recipients = 1;
  size_t size = 1024, size_min = 0, size_max = 0;
  std::string from = "blaster@example.org";
  std::string to = "user{n}@example.test";
  std::string domains;
  std::string helo = "blaster.example.org";
  std::string backend = "auto";
  bool json = false;
  double rate = 0;  // messages (HTTP: requests) per second; 0: closed loop
  bool starttls = false, implicit_tls = false;
  std::string sni;
  std::string auth_user, auth_password;
  bool pipelining = true;
  uint64_t max_errors = 100;
  std::string body;  // --body-file, CRLF line endings
  // --size-file: sizes and their weights.
  std::vector<size_t> sizes;
  std::vector<double> weights;
};

// Bytes per filler line, CRLF included.
inline constexpr size_t kFillerLine = 77;

// The messages a run sends, whatever carries them: message n's sender and
// recipients (the --from and --to patterns, the --domain mix) and sizes
// drawn with a fixed seed, so that runs repeat.
class Workload {
 public:
  explicit Workload(const Settings& s) : s_(s) {
    for (std::string_view rest = s_.domains; !rest.empty();) {
      const size_t comma = rest.find(',');
      std::string_view item = rest.substr(0, comma);
      rest.remove_prefix(comma == std::string_view::npos ? rest.size() : comma + 1);
      const size_t colon = item.find(':');
      const int w = colon == std::string_view::npos
                        ? 1
                        : std::atoi(std::string(item.substr(colon + 1)).c_str());
      for (int i = 0; i < std::max(w, 1); ++i) domain_mix_.emplace_back(item.substr(0, colon));
    }
    if (!s_.sizes.empty())
      size_pick_ = std::discrete_distribution<size_t>(s_.weights.begin(), s_.weights.end());
    // Filler text for the largest message, cut to each one's size.
    size_t biggest = std::max(s_.size, s_.size_max);
    for (size_t z : s_.sizes) biggest = std::max(biggest, z);
    static const std::string line =
        "The quick brown fox jumps over the lazy dog while the blaster keeps sending\r\n";
    static_assert(kFillerLine == 77);
    while (filler_.size() < biggest) filler_ += line;
  }

  // `pattern` with every "{n}" replaced by `n` and every "{c}" by `slot`
  // (the connection's, 0..connections-1).
  static std::string numbered(std::string pattern, uint64_t n, size_t slot) {
    for (const auto& [key, value] :
         {std::pair<std::string_view, std::string>{"{n}", std::to_string(n)},
          {"{c}", std::to_string(slot)}}) {
      for (size_t p; (p = pattern.find(key)) != std::string::npos;)
        pattern.replace(p, key.size(), value);
    }
    return pattern;
  }
  std::string sender(uint64_t n, size_t slot) const { return numbered(s_.from, n, slot); }
  // The recipient numbered `n`, in its domain of the mix when there is one.
  std::string recipient(uint64_t n, size_t slot) const {
    std::string a = numbered(s_.to, n, slot);
    if (!domain_mix_.empty())
      a = a.substr(0, a.rfind('@')) + "@" + domain_mix_[n % domain_mix_.size()];
    return a;
  }
  // The next message's size in bytes: --size, uniform between --size-min
  // and --size-max, or drawn from --size-file's weights.
  size_t next_size() {
    if (!s_.sizes.empty()) return s_.sizes[size_pick_(rng_)];
    if (s_.size_max > 0)
      return std::uniform_int_distribution<size_t>(s_.size_min, s_.size_max)(rng_);
    return s_.size;
  }
  // Lines of kFillerLine bytes (CRLF ends), at least as long as the
  // largest size.
  const std::string& filler() const { return filler_; }

 private:
  const Settings& s_;
  std::vector<std::string> domain_mix_;
  std::mt19937_64 rng_{1};
  std::discrete_distribution<size_t> size_pick_;
  std::string filler_;
};

// The counters every mode keeps about its connections; each mode's stats
// add their own.
struct ConnectionStats {
  uint64_t conn_errors = 0, connects = 0;
  std::map<std::string, uint64_t> errors;  // why connections failed
  Histogram connect;
};

// `"why": N, ...` for a JSON report's "errors": why connections failed.
inline std::string errors_json(const ConnectionStats& st) {
  std::string errors;
  for (const auto& [k, v] : st.errors)
    errors += (errors.empty() ? "" : ", ") + proto::quoted(k) + ": " + std::to_string(v);
  return errors;
}

// The text report's `failed: N x why` lines.
inline void print_failures(const ConnectionStats& st) {
  for (const auto& [k, v] : st.errors)
    std::printf("failed: %llu x %s\n", static_cast<unsigned long long>(v), k.c_str());
}

// The driver loop both modes share: `Derived` (the mode's blaster) keeps
// `conns_` busy on one backend and provides open(Conn*) (a new connection
// in that slot when there is work left), progress() and report(). `Conn`
// has fd, idle (open loop: waiting for its next due time), pump(),
// t_connect and on_connect_op; `Stats` derives from ConnectionStats.
template <class Derived, class Conn, class Stats>
class Driver {
 public:
  // Opens every connection and runs the loop until the last one is over,
  // then reports; 1 after --max-errors failed connections, else 0.
  int run() {
    t0_ = Clock::now();
    for (auto& c : conns_) self().open(&c);
    while (active_ > 0) {
      be_->wait(s_.rate > 0 ? 1 : 100);
      if (s_.rate > 0) {
        for (auto& c : conns_) {
          if (c.fd >= 0 && c.idle) c.pump();
        }
      }
      self().progress();
    }
    self().report();
    if (gave_up_) {
      std::string top;
      uint64_t most = 0;
      for (const auto& [k, v] : stats_.errors) {
        if (v > most) most = v, top = k;
      }
      std::fprintf(stderr, "smtp-blaster: gave up after %llu failed connections (most often: %s)\n",
                   static_cast<unsigned long long>(stats_.conn_errors), top.c_str());
      return 1;
    }
    return 0;
  }

  double seconds() const { return std::chrono::duration<double>(Clock::now() - t0_).count(); }
  engine::Backend& backend() { return *be_; }
  Stats& stats() { return stats_; }

 protected:
  Driver(const Settings& s, const sockaddr_storage& addr, socklen_t len,
         std::unique_ptr<engine::Backend> be)
      : s_(s),
        addr_(addr),
        len_(len),
        be_(std::move(be)),
        work_(s_),
        conns_(static_cast<size_t>(s.connections)) {}

  // Whether the `started`th message (request) may start, now or (open
  // loop) later: under `limit` (0: none) and within --duration.
  bool within_bounds(uint64_t started, uint64_t limit) const {
    if (limit > 0 && started >= limit) return false;
    if (s_.rate > 0 && s_.duration > 0)
      return started < static_cast<uint64_t>(s_.rate * s_.duration);
    if (s_.duration > 0 && seconds() >= s_.duration) return false;
    return true;
  }
  // Open loop: the time of the next one after `started` has come.
  bool due_after(uint64_t started) const {
    return s_.rate <= 0 || static_cast<double>(started) <= seconds() * s_.rate;
  }
  // When number `n` started: now, or (open loop) when it was due, so that
  // its latency counts from then.
  Clock::time_point start_time(uint64_t n) const {
    return s_.rate > 0 ? t0_ + std::chrono::duration_cast<Clock::duration>(
                                   std::chrono::duration<double>(static_cast<double>(n) / s_.rate))
                       : Clock::now();
  }

  // A new socket in `c` and its connect under way (after the mode has
  // made `c` ready for a new connection).
  void connect(Conn* c) {
    c->fd = ::socket(addr_.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    c->t_connect = Clock::now();
    ++active_;
    ++stats_.connects;
    be_->connect(c->fd, reinterpret_cast<const sockaddr*>(&addr_), len_, &c->on_connect_op);
  }
  // A connection failed, `why`; after --max-errors of them the run gives
  // up (a server that refuses every connection would be asked forever).
  void count_failure(std::string why) {
    ++stats_.conn_errors;
    if (why.size() > 120) why.resize(120);
    ++stats_.errors[why];
    if (s_.max_errors > 0 && stats_.conn_errors >= s_.max_errors) gave_up_ = true;
  }
  // No operation of c's is in flight any more: its socket closes, and a
  // new connection starts in the slot if there is work left.
  void end(Conn* c) {
    be_->close(c->fd);
    c->fd = -1;
    --active_;
    self().open(c);
  }
  // The line on stderr, once a second on a terminal: `done` so far and
  // their rate ("... accepted ... msg/s").
  void show_progress(uint64_t done, const char* what, const char* per_s) {
    if (s_.json || !::isatty(2)) return;
    const double t = seconds();
    if (t - last_progress_ < 1) return;
    last_progress_ = t;
    std::fprintf(stderr, "\r%6.1fs  %llu %s  %.0f %s  %d connections   ", t,
                 static_cast<unsigned long long>(done), what, done / t, per_s, active_);
  }

  const Settings& s_;
  sockaddr_storage addr_;
  socklen_t len_;
  std::unique_ptr<engine::Backend> be_;
  Workload work_;
  std::vector<Conn> conns_;
  Stats stats_;
  Clock::time_point t0_;
  int active_ = 0;
  bool gave_up_ = false;

 private:
  Derived& self() { return static_cast<Derived&>(*this); }
  double last_progress_ = 0;
};

// A multishot receive's event on connection `c` (fd, recv_armed, closing,
// on_recv_op, on_bytes(std::string_view)): the bytes go to c->on_bytes
// unless the connection is closing, the buffer back to `be`, and the
// receive is armed again where it ended and the connection goes on. True
// once the stream is over (the caller ends the connection).
template <class Conn>
bool receive_ended(Conn* c, engine::Backend& be, const engine::Event& ev) {
  if (!ev.more) c->recv_armed = false;
  if (ev.res > 0) {
    if (!c->closing) c->on_bytes(std::string_view(ev.data, static_cast<size_t>(ev.res)));
    if (ev.has_buf) be.release(ev.buf_id);
    if (!c->recv_armed && c->fd >= 0 && !c->closing) {
      c->recv_armed = true;
      be.recv(c->fd, &c->on_recv_op);
    }
    return false;
  }
  if (ev.has_buf) be.release(ev.buf_id);
  if (ev.error() == engine::IoError::kNoBuffers && !c->recv_armed) {
    c->recv_armed = true;
    be.recv(c->fd, &c->on_recv_op);
    return false;
  }
  return !ev.more;
}

// The HTTP injection mode's own settings (--http, bench/blaster_http.cc).
struct HttpTarget {
  std::string host_header;  // HOST[:PORT] as written in the URL
  std::string path;         // the URL's path and query; "/" when it has none
  std::string token;        // the bearer token
  int recipients_per_request = 1;
  uint64_t requests = 0;  // 0: --duration bounds the run
};

// Reads --http's URL, http://HOST[:PORT][/PATH] (http-parser's URL
// parser), into `h`'s Host field and path and the host and port to
// connect to (80 when it has none); false, with a one-line reason, for
// anything else, https:// included.
bool parse_http_url(const std::string& url, HttpTarget* h, std::string* host, std::string* port,
                    std::string* why);

// Runs the HTTP injection mode against `addr` on `be` (the calling
// thread's loop) and prints the report; returns the exit status (0, or 1
// after --max-errors failed connections). `s` and `h` stay valid until
// it returns.
int run_http(const Settings& s, const HttpTarget& h, const sockaddr_storage& addr, socklen_t len,
             std::unique_ptr<engine::Backend> be);

}  // namespace ringmail::blaster
