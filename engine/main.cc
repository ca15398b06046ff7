// ringmaild: the mail relay daemon. Parses the command line and the
// configuration, recovers the spool, binds listeners, starts one shard per
// core and then waits for signals (SIGTERM/SIGINT stop, SIGHUP reloads,
// SIGUSR1 reopens the log file).
#include <fcntl.h>
#include <mimalloc-new-delete.h>  // mimalloc is the daemon's allocator
#include <mimalloc.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pwd.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <latch>
#include <thread>

#include "config/cli.h"
#include "config/config.h"
#include "engine/admin_api.h"
#include "engine/amqp_publisher.h"
#include "engine/config_check.h"
#include "engine/inject_api.h"
#include "engine/log.h"
#include "engine/notify.h"
#include "engine/shard.h"
#include "engine/socket_activation.h"
#include "engine/srs.h"
#include "engine/verp.h"
#include "engine/webhooks.h"
#include "storage/data_dir_lock.h"
#include "storage/file_io.h"
#include "storage/spool.h"
#include "tls/cert_store.h"
#include "tls/ticket_keys.h"
#include "tls/wolfssl_info.h"

namespace ringmail::engine {
namespace {

constexpr time_t kCertPollS = 2;

// Sends every shard a copy of `m`.
void post_all(const std::vector<std::unique_ptr<Shard>>& shards, const ShardMessage& m) {
  for (const auto& s : shards) s->post_from_main(ShardMessage(m));
}

// Writes a self-signed certificate for the host name into <data_dir>/certs
// (the embedded development configuration), key readable by us only.
Result<void> write_self_signed(const config::Config& cfg) {
  const auto pair = tls::make_self_signed(cfg.hostname, std::time(nullptr), 365);
  if (!pair) return Error{pair.error()};
  const std::string& cert = pair->cert_pem;
  const std::string& key = pair->key_pem;
  namespace fs = std::filesystem;
  const fs::path dir = fs::path(cfg.data_dir) / "certs" / cfg.hostname;
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) return Error{dir.string() + ": " + ec.message()};
  {
    std::ofstream k(dir / "privkey.pem");
    fs::permissions(dir / "privkey.pem", fs::perms::owner_read | fs::perms::owner_write, ec);
    k << key;
    std::ofstream(dir / "fullchain.pem") << cert;
    if (!k) return Error{(dir / "privkey.pem").string() + ": cannot write"};
  }
  log_line("tls: made a self-signed certificate for " + cfg.hostname + " in " + dir.string());
  return {};
}

// The configured directories, and the self-signed one once it exists.
std::vector<std::string> cert_dirs(const config::Config& cfg) {
  std::vector<std::string> dirs = cfg.tls_cert_dirs;
  std::error_code ec;
  if (cfg.tls_self_signed && std::filesystem::is_directory(cfg.data_dir + "/certs", ec)) {
    dirs.push_back(cfg.data_dir + "/certs");
  }
  return dirs;
}

// The certificates for TLS, or an error when a listener needs TLS and there
// is none. On a reload, `previous` keeps serving what fails to load now.
// With `check` (--check-config) nothing is written or logged: every problem
// goes into *check, a self-signed certificate still to be made counts as
// one that will exist.
Result<std::shared_ptr<const tls::CertStore>> load_certs(
    const config::Config& cfg, std::shared_ptr<tls::TicketKeys> tickets,
    const tls::CertStore* previous = nullptr, std::vector<std::string>* check = nullptr) {
  std::vector<std::string> dirs;
  auto load = [&] {
    dirs = cert_dirs(cfg);
    std::vector<std::string> problems;
    auto store = tls::CertStore::load(dirs, std::time(nullptr), tickets, &problems, previous);
    for (const auto& p : problems) {
      if (check != nullptr) {
        check->push_back("certificate: " + p);
      } else {
        log_line("tls: certificate skipped: " + p, LogLevel::kWarning);
      }
    }
    return store;
  };
  auto store = load();
  if (store->empty() && cfg.tls_self_signed) {
    if (check != nullptr) return store;  // made at the first start
    if (auto made = write_self_signed(cfg); !made) return Error{made.error()};
    store = load();
  }
  std::string where;
  for (const auto& d : dirs) where += (where.empty() ? "" : ", ") + d;
  if (store->empty()) {
    for (const auto& l : cfg.listeners) {
      if (l.implicit_tls) {
        return Error{"listener " + l.address +
                     " is kind \"submissions\" (TLS) but no certificate was found in " +
                     (where.empty() ? std::string("tls.cert_dirs (empty)") : where)};
      }
    }
    if (check == nullptr) {
      log_line("tls: no certificate found" + (where.empty() ? std::string() : " in " + where) +
               ": STARTTLS is not offered");
    }
    return store;
  }
  if (check != nullptr) return store;
  for (const auto& c : store->contexts()) {
    std::string names;
    for (const auto& n : c->names()) names += (names.empty() ? "" : ",") + n;
    log_line("tls: certificate " + c->cert_path() + " for " + names +
             (c->ecdsa() ? " (ECDSA)" : " (RSA)") + ", expires " +
             std::to_string((c->not_after() - std::time(nullptr)) / 86400) + " days from now");
  }
  return store;
}

// SO_REUSEPORT lets any process of the same user join a listening address,
// and the kernel would then split the connections between us and it. So,
// before the shards bind, a probe binds the address alone (SO_REUSEADDR for
// TIME_WAIT leftovers, no SO_REUSEPORT): that fails while anyone listens
// there. Another process could still bind in the moment between the probe
// and the shards' binds; a second ringmaild started later always fails.
// How long the start waits for a listening address still in use.
constexpr int kListenWaitMs = 5000;
constexpr int kListenRetryMs = 100;

// 0 when nothing listens on `l`'s address, else the errno of the probe
// bind with `error` set. (Not a Result: the caller acts on the errno,
// waiting while it is EADDRINUSE, and an Error carries only the message.)
int address_free(const config::ListenerConfig& l, std::string* error) {
  const int fd = ::socket(l.addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    const int e = errno;
    *error = l.address + ": socket: " + std::strerror(e);
    return e;
  }
  int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (l.addr.ss_family == AF_INET6) ::setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
  const bool ok = ::bind(fd, reinterpret_cast<const sockaddr*>(&l.addr), l.addr_len) == 0;
  const int e = errno;
  ::close(fd);
  if (!ok) {
    *error =
        l.address + ": " + std::strerror(e) +
        (e == EADDRINUSE ? " (another process listens there: another ringmaild, or another MTA)"
                         : "");
  }
  return ok ? 0 : e;
}

// One SO_REUSEPORT socket per shard and listener, so the kernel spreads
// connections over the shards without a shared accept queue.
Result<int> open_listener(const config::ListenerConfig& l) {
  const int family = l.addr.ss_family;
  int fd = ::socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return Error{l.address + ": socket: " + std::strerror(errno)};
  int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
  // Accepted sockets inherit TCP_NODELAY: replies go out at once (pipelined
  // replies are already batched into one send).
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  if (family == AF_INET6) ::setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
  if (::bind(fd, reinterpret_cast<const sockaddr*>(&l.addr), l.addr_len) != 0 ||
      ::listen(fd, 4096) != 0) {
    Error why{l.address + ": " + std::strerror(errno)};
    ::close(fd);
    return why;
  }
  return fd;
}

// The admin API's UNIX socket ([admin] socket), mode 0660: who may open
// the file may ask. A socket file nobody answers on is a leftover (a
// crash) and is replaced; one that answers belongs to another daemon.
Result<int> open_admin_socket(const std::string& path) {
  sockaddr_un sa{};
  sa.sun_family = AF_UNIX;
  std::memcpy(sa.sun_path, path.data(), std::min(path.size(), sizeof sa.sun_path - 1));
  struct stat st {};
  if (::lstat(path.c_str(), &st) == 0) {
    if (!S_ISSOCK(st.st_mode))
      return Error{"admin socket " + path + ": exists and is not a socket"};
    // A daemon killed a moment ago may still answer: its io_uring rings
    // are torn down after the process is gone, and with them its listening
    // socket. So it counts as live only when it still answers after 3 s.
    bool live = true;
    for (int tries = 0; live && tries < 30; ++tries) {
      if (tries > 0) ::usleep(100'000);
      const int probe = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
      live = probe >= 0 && ::connect(probe, reinterpret_cast<const sockaddr*>(&sa), sizeof sa) == 0;
      if (probe >= 0) ::close(probe);
    }
    if (live)
      return Error{"admin socket " + path + ": another process answers there (another ringmaild?)"};
    ::unlink(path.c_str());
  }
  // Its directory (/run/ringmail) comes from systemd (RuntimeDirectory=);
  // started by hand, the daemon makes it (one level), for its group only.
  const std::string dir = std::filesystem::path(path).parent_path().string();
  if (!dir.empty() && ::mkdir(dir.c_str(), 0750) != 0 && errno != EEXIST) {
    return Error{"admin socket " + path + ": cannot make " + dir + ": " + std::strerror(errno)};
  }
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return Error{"admin socket " + path + ": " + std::strerror(errno)};
  const mode_t old = ::umask(0117);  // created 0660, never wider for a moment
  const bool bound = ::bind(fd, reinterpret_cast<const sockaddr*>(&sa), sizeof sa) == 0;
  const int bind_errno = errno;
  ::umask(old);
  if (!bound || ::chmod(path.c_str(), 0660) != 0 || ::listen(fd, 128) != 0) {
    Error why{"admin socket " + path + ": " + std::strerror(bound ? errno : bind_errno)};
    ::close(fd);
    return why;
  }
  return fd;
}

// --check-config: loads what the daemon loads, without writing or binding
// anything, and says what would go wrong. 0 when nothing would.
// `in_use_ok`: an address in use is a warning, not an error (the unit's
// ExecStartPre: ringmail.socket holds its addresses, and systemd passes
// them to ringmaild alone, not to the check before it).
int check_config(const config::Config& cfg, const std::string& config_path, std::string check_as,
                 bool in_use_ok) {
  std::vector<std::string> errors;
  std::vector<std::string> warnings = config_warnings(cfg);
  for (auto& h : hidden_from_service(cfg, config_path)) warnings.push_back(std::move(h));
  if (std::string p = data_dir_problem(cfg.data_dir); !p.empty()) errors.push_back(p);
  std::error_code ec;
  if (!std::filesystem::is_directory(cfg.domains_dir, ec)) {
    errors.push_back(cfg.domains_dir +
                     ": domains_dir does not exist (users, aliases and DKIM keys live there; "
                     "ringmail init makes it)");
  }
  std::string err;
  if (auto certs = load_certs(cfg, nullptr, nullptr, &errors); !certs) {
    errors.push_back(certs.error());
  }
  std::vector<std::string> problems;
  DkimKeys::load(cfg.domains_dir, &problems);
  for (const auto& p : problems) errors.push_back("dkim: " + p);
  problems.clear();
  storage::PosixFileIo fio;
  storage::Domains::load(
      fio, cfg.domains_dir,
      std::vector<std::string>(cfg.local_domains.begin(), cfg.local_domains.end()), cfg.aliases,
      &problems);
  for (const auto& p : problems) errors.push_back("domains: " + p);
  if (cfg.srs_enabled && !cfg.srs_secret_file.empty()) {
    if (std::filesystem::exists(cfg.srs_secret_file, ec) &&
        ::access(cfg.srs_secret_file.c_str(), R_OK) != 0) {
      errors.push_back(cfg.srs_secret_file + ": srs.secret_file is not readable");
    }
  }
  if (std::string p = dns_servers_problem(cfg.dns_servers); !p.empty()) errors.push_back(p);
  for (const auto& l : cfg.listeners) {
    const int e = address_free(l, &err);
    if (e == 0) continue;
    if (const long pid = storage::DataDirLock::holder(cfg.data_dir); pid > 0) {
      warnings.push_back(
          err + " (by the ringmaild, pid " + std::to_string(pid) +
          ", running on this data_dir: fine for a reload; a restart frees it first)");
    } else if (in_use_ok && e == EADDRINUSE) {
      warnings.push_back("listener " + err +
                         " (fine when the socket unit holds it: systemd passes it to ringmaild)");
    } else {
      errors.push_back("listener " + err);
    }
  }
  // As the user the service runs as: ringmail.service's User=, when it
  // exists and we are root (or whom --check-as names).
  if (check_as.empty() && ::geteuid() == 0 && ::getpwnam("ringmail") != nullptr)
    check_as = "ringmail";
  if (!check_as.empty()) {
    for (auto& p : check_as_user(cfg, config_path, cert_dirs(cfg), check_as))
      errors.push_back(std::move(p));
  }
  for (const auto& w : warnings)
    std::fprintf(stderr, "ringmaild: %s: warning: %s\n", cfg.source.c_str(), w.c_str());
  for (const auto& e : errors)
    std::fprintf(stderr, "ringmaild: %s: %s\n", cfg.source.c_str(), e.c_str());
  if (!errors.empty()) {
    std::fprintf(stderr, "ringmaild: %s: %zu problem%s\n", cfg.source.c_str(), errors.size(),
                 errors.size() == 1 ? "" : "s");
    return 1;
  }
  std::printf("%s: configuration ok%s\n", cfg.source.c_str(),
              check_as.empty() ? "" : (" (files checked as user " + check_as + ")").c_str());
  return 0;
}

// The command line of ringmaild.
struct Options {
  std::string config_path;  // "" = the embedded dev configuration
  bool check_only = false;
  std::string check_as;
  bool listeners_in_use_ok = false;
  int threads = -1;  // -1: the configuration's
  std::string backend;
  std::string data_dir;
};

// The daemon from start to stop: run() goes through the start-up phases in
// order (each logs why it failed and returns false), then serves signals
// until SIGTERM/SIGINT.
class Daemon {
 public:
  explicit Daemon(Options o) : opt_(std::move(o)) {}
  int run();

 private:
  bool load_configuration();
  bool apply_log_settings(const config::Config& c);
  void prepare_process();
  bool lock_data_dir();
  void choose_backend();
  bool load_certificates();
  void load_keys_domains_srs();
  bool take_passed_sockets();
  bool wait_for_addresses();
  void recover_spool();
  bool make_shards();
  bool start_webhooks();
  bool start_amqp();
  bool start_shards();
  void serve();
  void stop();

  // The configuration file with the command line's overrides.
  std::shared_ptr<const config::Config> with_flags(std::shared_ptr<const config::Config> c) const;
  std::shared_ptr<const DkimKeys> load_dkim() const;
  std::shared_ptr<const storage::Domains> load_domains();
  std::shared_ptr<const proto::srs::Config> load_srs_config() const;
  std::shared_ptr<const SecretKeys> load_unsubscribe_config() const;
  std::shared_ptr<const SecretKeys> load_verp_config() const;
  void reload_certs(const std::string& why);
  void reload(const std::string& ready_status);
  void pet_watchdog();

  Options opt_;
  std::shared_ptr<const config::Config> cfg_;
  sigset_t sigs_{};
  storage::DataDirLock data_lock_;
  config::BackendKind backend_ = config::BackendKind::kAuto;
  std::shared_ptr<tls::TicketKeys> tickets_;
  std::shared_ptr<const tls::CertStore> certs_;
  std::string cert_state_;
  std::shared_ptr<const DkimKeys> dkim_;
  std::shared_ptr<const storage::Domains> domains_;
  std::string domains_state_;
  std::shared_ptr<const proto::srs::Config> srs_;
  std::shared_ptr<const SecretKeys> unsubscribe_;
  std::shared_ptr<const SecretKeys> verp_;
  std::shared_ptr<const InjectRates> inject_rates_;  // the tokens' budgets, kept over reloads
  std::vector<storage::Spool::RecoveredSegment> recovered_;
  std::vector<std::string> obsolete_segments_;  // recovered_: removed once adopted
  std::vector<std::unique_ptr<Shard>> shards_;
  // Sockets systemd passed (socket activation) and the listener each one
  // serves; each shard gets a copy, and these are closed once they have.
  std::vector<PassedSocket> passed_;
  SocketPlan plan_;
  std::string admin_socket_;  // the path bound (removed at the end)
  std::vector<std::thread> threads_;
  std::unique_ptr<Webhooks> webhooks_;   // when [[events.webhook]] names any
  std::unique_ptr<AmqpPublisher> amqp_;  // with [events.amqp]
  std::string ready_status_;
  // The watchdog is pinged from the signal loop while every shard's loop
  // turns; a stuck shard stops the pings and the service manager restarts us.
  uint64_t watchdog_us_ = 0;
  int64_t ping_every_ms_ = 0;
  int64_t stale_ms_ = 0;
  int64_t last_ping_ms_ = 0;
  bool stale_logged_ = false;
};

int Daemon::run() {
  if (!load_configuration()) return 1;
  if (opt_.check_only) {
    return check_config(*cfg_, opt_.config_path, opt_.check_as, opt_.listeners_in_use_ok);
  }
  if (!apply_log_settings(*cfg_)) return 1;
  prepare_process();
  if (!take_passed_sockets()) return 1;
  if (!lock_data_dir()) return 1;
  choose_backend();
  if (!load_certificates()) return 1;
  load_keys_domains_srs();
  if (!wait_for_addresses()) return 1;
  recover_spool();
  const bool made = make_shards();
  for (const PassedSocket& p : passed_) {
    if (p.fd >= 0) ::close(p.fd);  // every shard has its copy
  }
  passed_.clear();
  if (!made) return 1;
  if (!start_webhooks() || !start_amqp()) return 1;
  const bool started = start_shards();
  if (started) {
    serve();
  } else {
    // The shards that did start are turning: stop them (the others have
    // no backend to wake) before joining.
    for (auto& s : shards_) {
      if (s->error().empty()) s->post_from_main(msg::Stop{});
    }
  }
  stop();
  log_line(started ? "stopped" : "start-up failed", started ? LogLevel::kInfo : LogLevel::kError);
  return started ? 0 : 1;
}

std::shared_ptr<const config::Config> Daemon::with_flags(
    std::shared_ptr<const config::Config> c) const {
  auto m = std::make_shared<config::Config>(*c);
  if (opt_.threads == 0) m->threads = config::shards_for_cpus(config::usable_cpus());
  if (opt_.threads > 0) m->threads = static_cast<uint32_t>(opt_.threads);
  if (opt_.backend == "io_uring") m->backend = config::BackendKind::kUring;
  if (opt_.backend == "epoll") m->backend = config::BackendKind::kEpoll;
  if (opt_.backend == "auto") m->backend = config::BackendKind::kAuto;
  if (!opt_.data_dir.empty()) m->data_dir = opt_.data_dir;
  return m;
}

// [log] level and file: at start (a file that cannot be opened stops the
// start) and on SIGHUP (it keeps the running destination).
bool Daemon::apply_log_settings(const config::Config& c) {
  LogLevel level = LogLevel::kInfo;
  parse_log_level(c.log_level, &level);  // checked by the configuration
  set_log_level(level);
  const std::string error = set_log_file(c.log_file);
  if (error.empty()) return true;
  log_line(error, LogLevel::kError);
  return false;
}

bool Daemon::load_configuration() {
  auto cfg = opt_.config_path.empty()
                 ? config::parse_config(config::kDevConfig, "<embedded dev configuration>")
                 : config::load_config_file(opt_.config_path);
  if (!cfg) {
    std::fprintf(stderr, "ringmaild: %s\n", cfg.error().c_str());
    return false;
  }
  cfg_ = with_flags(*cfg);
  return true;
}

void Daemon::prepare_process() {
  // Signals are taken by this thread alone (sigtimedwait in serve()); shard
  // threads inherit the blocked mask.
  sigemptyset(&sigs_);
  sigaddset(&sigs_, SIGTERM);
  sigaddset(&sigs_, SIGINT);
  sigaddset(&sigs_, SIGHUP);
  sigaddset(&sigs_, SIGUSR1);
  pthread_sigmask(SIG_BLOCK, &sigs_, nullptr);
  ::signal(SIGPIPE, SIG_IGN);

  // Each connection is a descriptor: take the whole hard limit.
  rlimit nofile{};
  if (::getrlimit(RLIMIT_NOFILE, &nofile) == 0 && nofile.rlim_cur < nofile.rlim_max) {
    nofile.rlim_cur = nofile.rlim_max;
    ::setrlimit(RLIMIT_NOFILE, &nofile);
  }

  log_line("ringmaild starting: config " + cfg_->source + ", " + std::to_string(cfg_->threads) +
           " shards, data " + cfg_->data_dir + ", mimalloc " + std::to_string(mi_version()) + ", " +
           tls::describe(tls::wolfssl_info()));
  for (const auto& w : config_warnings(*cfg_)) log_line("configuration: " + w, LogLevel::kWarning);
  // Say so when the limits allow more connections than descriptors (past
  // that, clients get 421 from the shards' reserve descriptor, not a session).
  if (::getrlimit(RLIMIT_NOFILE, &nofile) == 0 &&
      uint64_t{cfg_->connections_max} * cfg_->threads > static_cast<uint64_t>(nofile.rlim_cur)) {
    log_line("limits: connections_max " + std::to_string(cfg_->connections_max) + " x " +
                 std::to_string(cfg_->threads) + " shards is more than the open-file limit " +
                 std::to_string(nofile.rlim_cur) +
                 " (RLIMIT_NOFILE): past it new clients get 421; raise LimitNOFILE= or lower "
                 "connections_max",
             LogLevel::kWarning);
  }
}

// One daemon per data_dir, taken before anything in it is touched: spool
// recovery would remove the live segments of a daemon already running.
bool Daemon::lock_data_dir() {
  const auto locked = data_lock_.acquire(cfg_->data_dir);
  if (locked) return true;
  log_line("cannot start: " + locked.error(), LogLevel::kError);
  return false;
}

void Daemon::choose_backend() {
  backend_ = cfg_->backend;
  if (backend_ != config::BackendKind::kAuto) return;
  std::string why;
  if (uring_available(&why)) {
    backend_ = config::BackendKind::kUring;
  } else {
    log_line("io_uring unavailable (" + why + "): using the epoll backend");
    backend_ = config::BackendKind::kEpoll;
  }
}

bool Daemon::load_certificates() {
  tickets_ = tls::TicketKeys::create();
  auto certs = load_certs(*cfg_, tickets_);
  if (!certs) {
    log_line("cannot start: " + certs.error(), LogLevel::kError);
    return false;
  }
  certs_ = std::move(*certs);
  cert_state_ = tls::cert_files_state(cert_dirs(*cfg_));
  return true;
}

std::shared_ptr<const DkimKeys> Daemon::load_dkim() const {
  std::vector<std::string> problems;
  auto keys = DkimKeys::load(cfg_->domains_dir, &problems);
  for (const auto& p : problems) log_line("dkim: " + p + " (skipped)");
  for (const auto& [domain, list] : keys->all()) {
    for (const auto& k : list) {
      log_line("dkim: " + domain + " selector " + k.selector + " (" +
               (k.key->type() == tls::DkimKey::Type::kRsa ? "rsa " + std::to_string(k.key->bits())
                                                          : std::string("ed25519")) +
               ")");
    }
  }
  return keys;
}

// Domains, users and aliases: read at start, on SIGHUP, and when a users or
// aliases file changes (looked at with the certificates).
std::shared_ptr<const storage::Domains> Daemon::load_domains() {
  domains_state_ = storage::Domains::fingerprint(cfg_->domains_dir);
  std::vector<std::string> problems;
  storage::PosixFileIo fio;
  auto d = storage::Domains::load(
      fio, cfg_->domains_dir,
      std::vector<std::string>(cfg_->local_domains.begin(), cfg_->local_domains.end()),
      cfg_->aliases, &problems);
  for (const auto& p : problems)
    log_line("domains: " + p + " (mail for the domain waits with 451 until fixed)");
  log_line("domains: " + std::to_string(d->domains().size()) + " local domains");
  return d;
}

std::shared_ptr<const proto::srs::Config> Daemon::load_srs_config() const {
  auto s = load_srs(*cfg_);
  if (!s) {
    log_line("srs: " + s.error() + ": forwarded mail keeps its sender (SPF may fail)");
    return nullptr;
  }
  if (*s != nullptr) log_line("srs: forwarded senders rewritten into " + (*s)->domain);
  return *s;
}

std::shared_ptr<const SecretKeys> Daemon::load_unsubscribe_config() const {
  auto k = load_unsubscribe_keys(*cfg_);
  if (!k) {
    log_line("unsubscribe: " + k.error() + ": injected mail gets no List-Unsubscribe field",
             LogLevel::kError);
    return nullptr;
  }
  return *k;
}

std::shared_ptr<const SecretKeys> Daemon::load_verp_config() const {
  auto k = load_verp_keys(*cfg_);
  if (!k) {
    log_line("verp: " + k.error() + ": outbound mail keeps its envelope sender", LogLevel::kError);
    return nullptr;
  }
  if (*k != nullptr) log_line("verp: return paths bounce+ID-HASH@" + config::verp_domain(*cfg_));
  return *k;
}

void Daemon::load_keys_domains_srs() {
  dkim_ = load_dkim();
  domains_ = load_domains();
  srs_ = load_srs_config();
  unsubscribe_ = load_unsubscribe_config();
  verp_ = load_verp_config();
  const double gain = calibrate_dkim_batching(cfg_->dkim_sha256);
  log_line(std::string("dkim: body hashing with ") +
           tls::to_string(tls::resolve(cfg_->dkim_sha256)) +
           (gain > 0 ? "; 16-lane AVX-512 batches " + std::string(dkim_batching() ? "on" : "off") +
                           " (" + std::to_string(gain).substr(0, 4) + "x in calibration)"
                     : std::string()));
}

// Socket activation: the sockets systemd passed take the place of the
// listeners bound to their addresses (engine/socket_activation.h). One
// that no listener takes is closed, with a warning: systemd keeps it
// listening, and only the socket unit or the configuration can change that.
bool Daemon::take_passed_sockets() {
  std::vector<std::string> problems;
  passed_ = engine::take_passed_sockets(&problems);
  for (const auto& p : problems) log_line("socket activation: " + p, LogLevel::kWarning);
  auto plan = plan_sockets(cfg_->listeners, passed_);
  if (!plan) {
    log_line("cannot start: socket activation: " + plan.error(), LogLevel::kError);
    return false;
  }
  plan_ = std::move(*plan);
  for (size_t j : plan_.unused) {
    log_line("socket activation: the socket " + describe(passed_[j]) +
                 " from systemd matches no [[listener]] in " + cfg_->source +
                 ": closed; systemd still listens there, so clients connecting to it wait "
                 "unanswered (remove it from the socket unit, or add a listener for it)",
             LogLevel::kWarning);
    ::close(passed_[j].fd);
    passed_[j].fd = -1;
  }
  for (size_t i = 0; i < cfg_->listeners.size(); ++i) {
    if (plan_.for_listener[i] < 0) continue;
    const config::ListenerConfig& l = cfg_->listeners[i];
    PassedSocket& p = passed_[static_cast<size_t>(plan_.for_listener[i])];
    // The backends accept until EAGAIN; accepted sockets inherit
    // TCP_NODELAY, as from open_listener.
    ::fcntl(p.fd, F_SETFL, ::fcntl(p.fd, F_GETFL) | O_NONBLOCK);
    int one = 1;
    ::setsockopt(p.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    const std::string bound = describe(p);
    std::string note;
    if (bound != l.address) note = ": the socket " + bound;
    if (p.addr.ss_family == AF_INET6 && !p.v6only) note += ", which takes IPv4 too";
    log_line("listener " + l.address + " (" + config::kind_name(l) +
             ") from systemd (socket activation)" + note);
  }
  return true;
}

// Nobody else listens on our addresses (see address_free). Right after a
// crash the previous daemon's listening sockets can outlive it a little:
// the kernel tears a killed process's io_uring down in the background, and
// its pending accepts hold the sockets until then. An address in use is
// given a few seconds to become free.
bool Daemon::wait_for_addresses() {
  std::string error;
  for (size_t i = 0; i < cfg_->listeners.size(); ++i) {
    if (plan_.for_listener[i] >= 0) continue;  // systemd's socket holds the address
    const auto& l = cfg_->listeners[i];
    for (int waited_ms = 0;; waited_ms += kListenRetryMs) {
      const int e = address_free(l, &error);
      if (e == 0) break;
      if (e != EADDRINUSE || waited_ms >= kListenWaitMs) {
        log_line("cannot listen on " + error, LogLevel::kError);
        return false;
      }
      if (waited_ms == 0) {
        log_line("waiting up to " + std::to_string(kListenWaitMs / 1000) + " s for " + l.address +
                     " (in use: the previous ringmaild may still be closing)",
                 LogLevel::kWarning);
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(kListenRetryMs));
    }
  }
  return true;
}

// The spool is recovered before anything is accepted.
void Daemon::recover_spool() {
  storage::PosixFileIo io;
  auto st = storage::Spool::recover(
      io, cfg_->data_dir, &recovered_, [](const std::string& line) { log_line(line); },
      &obsolete_segments_);
  log_line("spool recovered: " + std::to_string(st.recovered) + " to deliver in " +
           std::to_string(recovered_.size()) + " segments, " +
           std::to_string(st.delivered_skipped) + " already delivered, " +
           std::to_string(st.corrupt) + " damaged regions moved to corrupt/, " +
           std::to_string(obsolete_segments_.size()) + " finished segments to remove");
}

bool Daemon::make_shards() {
  auto auth_failures = std::make_shared<AuthFailures>();       // one lock-out for all shards
  auto per_client = std::make_shared<ConnectionsPerClient>();  // one count for all shards
  inject_rates_ = InjectRates::make(*cfg_, nullptr);
  // Descriptors beyond connections: spool segments, Maildir files, pipes,
  // DNS and outbound sockets, rings. Past the rest, clients are accepted
  // and told 421, so accepting never fails for want of descriptors (and
  // when it does anyway, each shard's reserve descriptor answers).
  rlimit nofile{};
  if (::getrlimit(RLIMIT_NOFILE, &nofile) == 0 && nofile.rlim_cur != RLIM_INFINITY) {
    const uint64_t spare = std::max<uint64_t>(64, nofile.rlim_cur / 8);
    per_client->set_total_max(nofile.rlim_cur > spare ? nofile.rlim_cur - spare : 1);
  }
  for (uint32_t i = 0; i < cfg_->threads; ++i) {
    std::vector<ListenSocket> fds;
    const auto close_all = [&fds] {
      for (const ListenSocket& f : fds) ::close(f.fd);
    };
    for (size_t li = 0; li < cfg_->listeners.size(); ++li) {
      if (const int j = plan_.for_listener[li]; j >= 0) {
        // One socket for all shards: they take turns accepting on it.
        const int fd = ::fcntl(passed_[static_cast<size_t>(j)].fd, F_DUPFD_CLOEXEC, 0);
        if (fd < 0) {
          log_line("cannot copy the socket from systemd for " + cfg_->listeners[li].address + ": " +
                       std::strerror(errno),
                   LogLevel::kError);
          close_all();
          return false;
        }
        fds.push_back(ListenSocket{fd, true});
        continue;
      }
      const auto fd = open_listener(cfg_->listeners[li]);
      if (!fd) {
        log_line("cannot listen on " + fd.error(), LogLevel::kError);
        close_all();
        return false;
      }
      fds.push_back(ListenSocket{*fd, false});
    }
    if (i == 0 && !cfg_->admin_socket.empty()) {
      // The admin API is served by the first shard (a UNIX socket has no
      // SO_REUSEPORT to spread it); the others answer through it.
      const auto afd = open_admin_socket(cfg_->admin_socket);
      if (!afd) {
        log_line("cannot listen on " + afd.error(), LogLevel::kError);
        close_all();
        return false;
      }
      fds.push_back(ListenSocket{*afd, false});
      admin_socket_ = cfg_->admin_socket;
    }
    auto s = std::make_unique<Shard>(i, cfg_, std::move(fds), backend_);
    s->set_certs(certs_);
    s->set_dkim(dkim_);
    s->set_domains(domains_);
    s->set_srs(srs_);
    s->set_unsubscribe(unsubscribe_);
    s->set_verp(verp_);
    s->set_auth_failures(auth_failures);
    s->set_inject_rates(inject_rates_);
    s->set_connections_per_client(per_client);
    if (int r = s->open_spool(); r < 0) {
      log_line("cannot open the spool under " + cfg_->data_dir + ": " + std::strerror(-r),
               LogLevel::kError);
      return false;
    }
    shards_.push_back(std::move(s));
  }
  std::vector<Shard*> peers;
  for (auto& s : shards_) peers.push_back(s.get());
  for (auto& s : shards_) s->set_peers(peers);
  // Each recovered segment goes whole to one shard, which then owns it.
  for (size_t i = 0; i < recovered_.size(); ++i) {
    shards_[i % shards_.size()]->adopt(std::move(recovered_[i]));
  }
  recovered_.clear();
  // The adopted segments' state is written again and durable: the finished
  // segments that held it can go.
  storage::PosixFileIo io;
  storage::Spool::remove_obsolete(io, cfg_->data_dir, obsolete_segments_,
                                  [](const std::string& line) { log_line(line); });
  obsolete_segments_.clear();
  // Destinations suspended before the restart stay suspended.
  auto suspended = read_suspensions(cfg_->data_dir + "/suspended", ::time(nullptr));
  if (!suspended) {
    log_line("cannot read the suspended destinations: " + suspended.error(), LogLevel::kError);
    return false;
  }
  auto snap = std::make_shared<const Shard::Suspensions>(std::move(*suspended));
  for (auto& s : shards_) s->set_suspensions(snap);
  if (!snap->empty()) log_line(std::to_string(snap->size()) + " destinations suspended");
  // The suppression list, shared by every shard (engine/suppression.h).
  auto suppressed = load_suppressions(storage::suppression_path(cfg_->data_dir));
  if (!suppressed) {
    log_line("cannot read the suppression list: " + suppressed.error(), LogLevel::kError);
    return false;
  }
  for (auto& s : shards_) s->set_suppressions(*suppressed);
  if ((*suppressed)->size() > 0) {
    log_line("suppression list: " + std::to_string((*suppressed)->size()) + " entries, " +
             std::to_string((*suppressed)->bytes() >> 20) + " MiB");
  }
  return true;
}

// One thread for all the [[events.webhook]]s (engine/webhooks.h), started
// before the shards so its counters are there for their first scrape.
// The endpoints stay as they are until a restart (SIGHUP keeps them).
bool Daemon::start_webhooks() {
  if (cfg_->events_webhooks.empty() || !cfg_->events_enabled) return true;
  webhooks_ = std::make_unique<Webhooks>(cfg_->events_webhooks, config::events_dir(*cfg_));
  if (auto r = webhooks_->start(); !r) {
    log_line(r.error(), LogLevel::kError);
    return false;
  }
  return true;
}

// The [events.amqp] publisher's thread (engine/amqp_publisher.h), started like the
// webhooks'.
bool Daemon::start_amqp() {
  if (!cfg_->events_amqp || !cfg_->events_enabled) return true;
  amqp_ = std::make_unique<AmqpPublisher>(*cfg_->events_amqp, config::events_dir(*cfg_));
  if (auto r = amqp_->start(); !r) {
    log_line(r.error(), LogLevel::kError);
    return false;
  }
  return true;
}

bool Daemon::start_shards() {
  std::latch ready(static_cast<std::ptrdiff_t>(shards_.size()));
  for (auto& s : shards_) threads_.emplace_back([&ready, sh = s.get()] { sh->run(ready); });
  ready.wait();
  bool failed = false;
  for (auto& s : shards_) {
    if (!s->error().empty()) {
      log_line(s->error(), LogLevel::kError);
      failed = true;
    }
  }
  if (failed) return false;
  std::string addrs;
  for (const auto& l : cfg_->listeners) {
    addrs += " " + l.address + "/" + config::kind_name(l);
  }
  if (!admin_socket_.empty()) addrs += " " + admin_socket_ + "/admin";
  ready_status_ = std::to_string(shards_.size()) + " shards on " +
                  to_string(shards_[0]->backend_kind()) + ", listening on" + addrs;
  log_line("ready: " + ready_status_);
  notify::ready(ready_status_);  // listeners bound, spool recovered
  watchdog_us_ = notify::watchdog_usec();
  ping_every_ms_ = static_cast<int64_t>(watchdog_us_ / 3000);
  stale_ms_ = std::max<int64_t>(static_cast<int64_t>(watchdog_us_ / 2000), 1500);
  if (watchdog_us_ != 0) {
    log_line("watchdog: pinging every " + std::to_string(ping_every_ms_) +
             " ms while every shard turns");
  }
  return true;
}

void Daemon::pet_watchdog() {
  if (watchdog_us_ == 0) return;
  const int64_t now = system_clock().mono_ms();  // the shards' clock
  if (now - last_ping_ms_ < ping_every_ms_) return;
  for (size_t i = 0; i < shards_.size(); ++i) {
    const int64_t idle = now - shards_[i]->last_turn_ms();
    if (idle > stale_ms_) {
      if (!stale_logged_) {
        log_line("watchdog: shard " + std::to_string(i) + " has not turned for " +
                     std::to_string(idle) + " ms; no more pings",
                 LogLevel::kError);
        stale_logged_ = true;
      }
      return;
    }
  }
  stale_logged_ = false;
  last_ping_ms_ = now;
  notify::watchdog();
}

// Certificates are built here, off the shards' threads, validated, and
// handed to every shard; sessions in progress keep the context they have.
void Daemon::reload_certs(const std::string& why) {
  auto fresh = load_certs(*cfg_, tickets_, certs_.get());
  cert_state_ = tls::cert_files_state(cert_dirs(*cfg_));
  if (!fresh) {
    log_line("tls: reload (" + why + ") refused, the running certificates stay: " + fresh.error(),
             LogLevel::kWarning);
    return;
  }
  certs_ = std::move(*fresh);
  post_all(shards_, msg::Certs{certs_});
  log_line("tls: certificates reloaded (" + why +
           "): " + std::to_string(certs_->contexts().size()) + " in use");
}

// SIGHUP: certificates, then the configuration file (kept when it does
// not load), keys, domains and SRS; whatever the outcome the daemon
// serves again (READY=1).
void Daemon::reload(const std::string& ready_status) {
  notify::reloading();
  struct ReadyAgain {
    const std::string& status;
    ~ReadyAgain() { notify::ready(status); }
  } ready_again{ready_status};
  reload_certs("SIGHUP");
  if (opt_.config_path.empty()) {
    log_line("SIGHUP: the embedded configuration stays; keys, users and aliases read again");
  } else {
    auto loaded = config::load_config_file(opt_.config_path);
    if (!loaded) {
      log_line("SIGHUP: configuration refused, keeping the running one: " + loaded.error(),
               LogLevel::kWarning);
      return;
    }
    auto fresh = std::make_shared<config::Config>(*with_flags(*loaded));
    // What is bound or started stays as it runs until a restart: the shards
    // serve their listening sockets by their place in `listeners`, so a new
    // list must not reach them (a listener of another kind at the same
    // place was served as that kind; a shorter list was read past its end).
    const auto same_listener = [](const config::ListenerConfig& a,
                                  const config::ListenerConfig& b) {
      return a.address == b.address && a.kind == b.kind && a.implicit_tls == b.implicit_tls &&
             a.http == b.http;
    };
    if (!std::equal(fresh->listeners.begin(), fresh->listeners.end(), cfg_->listeners.begin(),
                    cfg_->listeners.end(), same_listener) ||
        fresh->threads != cfg_->threads || fresh->data_dir != cfg_->data_dir ||
        fresh->admin_socket != cfg_->admin_socket) {
      log_line(
          "SIGHUP: listener, admin socket, thread or data_dir changes need a restart (the running "
          "ones stay until then); other changes applied",
          LogLevel::kWarning);
      fresh->listeners = cfg_->listeners;
      fresh->threads = cfg_->threads;
      fresh->data_dir = cfg_->data_dir;
      fresh->admin_socket = cfg_->admin_socket;
    }
    cfg_ = fresh;
    apply_log_settings(*cfg_);
  }
  dkim_ = load_dkim();
  domains_ = load_domains();
  srs_ = load_srs_config();
  unsubscribe_ = load_unsubscribe_config();
  verp_ = load_verp_config();
  inject_rates_ = InjectRates::make(*cfg_, inject_rates_.get());
  post_all(shards_, msg::Reload{cfg_, inject_rates_, dkim_, domains_, srs_, unsubscribe_, verp_});
}

// The main thread's loop: signals, and every few seconds a look at the
// certificate files (an acme.sh renewal needs no signal) and the domains.
void Daemon::serve() {
  while (true) {
    siginfo_t info;
    pet_watchdog();
    timespec poll{kCertPollS, 0};
    if (watchdog_us_ != 0 && ping_every_ms_ < kCertPollS * 1000) {
      poll = timespec{ping_every_ms_ / 1000, (ping_every_ms_ % 1000) * 1000000};
    }
    int sig = sigtimedwait(&sigs_, &info, &poll);
    // Taken at once: the checks below make system calls that set errno.
    const bool timed_out = sig < 0 && errno == EAGAIN;
    pet_watchdog();
    if (sig < 0) {
      if (timed_out && tls::cert_files_state(cert_dirs(*cfg_)) != cert_state_) {
        reload_certs("a certificate file changed");
      }
      if (timed_out && storage::Domains::fingerprint(cfg_->domains_dir) != domains_state_) {
        domains_ = load_domains();
        post_all(shards_, msg::Domains{domains_});
      }
      continue;
    }
    if (sig == SIGHUP) {
      reload(ready_status_);
      continue;
    }
    if (sig == SIGUSR1) {
      // logrotate moved the file: lines go on to the moved file until the
      // reopen, then to the new one.
      const std::string error = reopen_log_file();
      log_line(error.empty() ? "SIGUSR1: log file reopened" : "SIGUSR1: " + error,
               error.empty() ? LogLevel::kInfo : LogLevel::kError);
      continue;
    }
    log_line(std::string("received ") + (sig == SIGTERM ? "SIGTERM" : "SIGINT") +
             ": stopping (open transactions get " + std::to_string(cfg_->shutdown_grace_s) + "s)");
    notify::stopping("stopping: finishing open transactions and deliveries in flight");
    post_all(shards_, msg::Stop{});
    return;
  }
}

void Daemon::stop() {
  // The webhook thread finishes its POSTs in flight while the shards stop.
  if (webhooks_) webhooks_->stop();
  if (amqp_) amqp_->stop();
  for (auto& t : threads_) t.join();
  if (webhooks_) webhooks_->join();
  if (amqp_) amqp_->join();
  if (!admin_socket_.empty()) ::unlink(admin_socket_.c_str());
}

int run(int argc, char** argv) {
  CLI::App app{"ringmaild: the ringmail mail relay daemon"};
  Options o;
  bool dev = false;
  app.add_option("--config,-c", o.config_path, "configuration file (TOML)");
  app.add_flag("--dev", dev, "use the embedded development configuration");
  app.add_flag("--check-config", o.check_only,
               "load the configuration as the daemon would, say what is wrong, exit");
  app.add_option("--check-as", o.check_as,
                 "with --check-config: read every file as this user (default: ringmail, when it "
                 "exists and we are root)");
  app.add_flag("--listeners-in-use-ok", o.listeners_in_use_ok,
               "with --check-config: a listener's address in use is a warning, not an error "
               "(socket activation: ringmail.socket holds it)");
  app.add_option("--threads", o.threads, "shards (0 = one per CPU, one up to two CPUs)")
      ->check(CLI::Range(0, 1024));
  app.add_option("--backend", o.backend, "auto, io_uring or epoll")
      ->check(CLI::IsMember({"auto", "io_uring", "epoll"}));
  app.add_option("--data-dir", o.data_dir, "directory for spool/ and mail/");
  config::add_version_flag(app, "ringmaild");
  if (auto done = config::parse_command_line(app, argc, argv)) return *done;
  if (dev && !o.config_path.empty()) {
    std::fprintf(stderr, "ringmaild: --dev and --config exclude each other\n");
    return config::kUsageExit;
  }
  return Daemon(std::move(o)).run();
}

}  // namespace
}  // namespace ringmail::engine

int main(int argc, char** argv) { return ringmail::engine::run(argc, argv); }
