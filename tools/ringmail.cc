// ringmail: the operator's command.
//
//   ringmail spool-list [--data-dir DIR]        what waits for delivery
//   ringmail spool-show ID [--data-dir DIR]     one message: envelope and text
//   ringmail user-add ADDR [--password-stdin]   add a user or set a password
//   ringmail user-remove ADDR
//   ringmail user-list [DOMAIN]
//   ringmail authenticate ADDR [--password-stdin]
//   ringmail check-users                        validate every users file
//   ringmail dkim-keygen DOMAIN [--selector S] [--algo rsa2048|rsa3072|ed25519]
//   ringmail dkim-dns DOMAIN                    the TXT records to publish
//   ringmail aliases-resolve ADDR              where mail for ADDR goes
//   ringmail config-show                       the effective configuration as TOML
//   ringmail token-new NAME [--scope admin|inject] [--sender-domain D]
//                                               a random API token and its [[api.token]]
//   ringmail token-hash [TOKEN|-]               its SHA-256, for [[api.token]] sha256
//   ringmail status [--json]                    the running daemon, through its admin
//                                               socket ([admin] socket; exit 75: not running)
//   ringmail queue summary [--json]             the queue by destination and age (qshape),
//                                               suspended destinations
//   ringmail queue list [--domain D] [--sender A] [--rcpt A] [--older-than DURATION]
//                       [--state waiting|in_flight|held] [--limit N] [--json]
//                                               the messages, every page of them
//   ringmail queue show ID [--body] [--json]    one message: envelope, recipients, header
//   ringmail queue flush|hold|release [ID... | --domain D | --sender A | --all]
//                                               (no selector: every message)
//   ringmail queue delete|bounce (ID... | --domain D | --sender A | --all)
//                                               delete: no DSN; bounce: a DSN to the sender
//   ringmail queue suspend DOMAIN --for 2h [--reason TEXT]
//   ringmail queue resume DOMAIN                no connections to DOMAIN for a while / again
//       The queue commands go through the admin socket as status does
//       (tools/queue_cli.h, docs/admin-api.md): exit 75 when ringmaild is
//       not running, 1 with its error text when it refuses. Durations:
//       90s, 30m, 2h, 1d or seconds.
//   ringmail send-test --to ADDR --user USER [--password-stdin] [--server HOST:587]
//                      [--tls-name NAME]
//   Every command takes --config FILE (tools/tool_config.h: default
//   $RINGMAIL_CONFIG, else /etc/ringmail/ringmail.toml, else in a checkout
//   the embedded dev configuration); spool commands take --data-dir DIR and
//   user, alias and DKIM commands --domains-dir DIR instead of its paths.
//   ringmail init DOMAIN [--hostname mail.DOMAIN] [--config-dir DIR] [--data-dir DIR]
//                 [--addresses IP,IP] [--letsencrypt-dir DIR]
//       a first configuration: DIR/ringmail.toml (default /etc/ringmail:
//       hostname, data_dir, local_domains, domains_dir, listeners on
//       0.0.0.0 and [::] ports 25 smtp, 587 submission, 465 submissions,
//       [tls] cert_dirs for certificates found in ~/.acme.sh/<name>[_ecc]
//       or <letsencrypt-dir>/live/<name> for the hostname or the domain; 465
//       is left commented out when there is none), DIR/domains/DOMAIN/ with
//       an empty users file (0600), an aliases file of commented examples
//       and two DKIM keys (RSA-2048, Ed25519). Prints the next steps and
//       every DNS record to publish, in zone-file form: MX, A/AAAA, SPF
//       (v=spf1 mx ip4:.. ip6:.. ~all), both DKIM keys, DMARC (p=none,
//       rua=postmaster@), and the PTR records to ask the hosting provider
//       for. Addresses: --addresses, else the interfaces' global ones
//       (getifaddrs). An existing ringmail.toml is never overwritten (one
//       line on stderr, exit 1).
//   ringmail dns-check DOMAIN [--hostname H] [--addresses IP,IP]
//                      [--resolver IPV4:PORT]
//       looks the domain's records up (the system's resolver, or
//       --resolver) and prints one line per check, "pass|warn|fail|info
//       <what>  <fix>": MX names the hostname; the hostname's A/AAAA are
//       this server's addresses; each address's PTR names the hostname
//       and it resolves back; one valid SPF record that passes each
//       address (proto/spf.h's evaluator); each local DKIM key
//       (<domains_dir>/DOMAIN/dkim:<selector>.pem, domains_dir from the
//       configuration) is the one published at <selector>._domainkey; one
//       valid DMARC record; MTA-STS and TLS-RPT records (info only).
//       The hostname comes from --hostname, else the configuration
//       (default /etc/ringmail/ringmail.toml when it exists), else
//       mail.DOMAIN. Exit 1 when any check fails.
//   ringmail import-chasquid CHASQUID_DIR [--to DIR] [--data-dir DIR] [--force]
//       chasquid's configuration (/etc/chasquid) as ringmail's (default
//       --to /etc/ringmail): domains/ (users, aliases, dkim:<selector>.pem)
//       and certs/ copied as they are, chasquid.conf turned into
//       ringmail.toml; every setting or file without an equivalent is
//       reported on one line. Exit 0 when the result is usable, 1 with one
//       line on stderr when not (no chasquid.conf, a line of it that does
//       not parse, a destination file that exists without --force).
//
// The spool commands read without changing anything (storage::Spool::scan),
// so they are safe while ringmaild runs; ringmaild picks up users file
// changes by itself.
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <ctime>
#include <string>
#include <vector>

#include "config/cli.h"
#include "config/config.h"
#include "storage/data_dir_lock.h"
#include "storage/file_io.h"
#include "storage/spool.h"
#include "tls/api_token.h"
#include "tools/admin_client.h"
#include "tools/aliases.h"
#include "tools/chasquid.h"
#include "tools/dkim.h"
#include "tools/events_cli.h"
#include "tools/queue_cli.h"
#include "tools/send_test.h"
#include "tools/setup.h"
#include "tools/suppress_cli.h"
#include "tools/tool_config.h"
#include "tools/users.h"

namespace {

using ringmail::storage::PosixFileIo;
using ringmail::storage::Spool;

std::string iso_time(int64_t t) {
  std::time_t tt = static_cast<std::time_t>(t);
  std::tm tm{};
  gmtime_r(&tt, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

// The spool tools read without the daemon's lock (storage/data_dir_lock.h):
// say so when one is running, since what they print may change under them.
void note_live_spool(const std::string& data_dir) {
  const long pid = ringmail::storage::DataDirLock::holder(data_dir);
  if (pid == 0) return;
  std::fprintf(stderr, "ringmail: reading a live spool: ringmaild%s is running on %s\n",
               pid > 0 ? (" (pid " + std::to_string(pid) + ")").c_str() : "", data_dir.c_str());
}

int spool_list(const std::string& data_dir) {
  note_live_spool(data_dir);
  PosixFileIo io;
  Spool::Scan sc = Spool::scan(io, data_dir);
  size_t pending = 0, damaged = 0, unreadable = 0;
  for (const auto& seg : sc.segments) {
    if (seg.read_error < 0) {
      std::printf("segment %s: cannot read (errno %d)\n", seg.name.c_str(), -seg.read_error);
      ++unreadable;
      continue;
    }
    for (const auto& [offset, len] : seg.damaged) {
      std::printf("segment %s: damaged region at offset %llu, %llu bytes\n", seg.name.c_str(),
                  static_cast<unsigned long long>(offset), static_cast<unsigned long long>(len));
      ++damaged;
    }
    for (const auto& r : seg.records) {
      if (sc.delivered.count(r.env.id)) continue;
      ++pending;
      // Finished recipients say how; a held message says so.
      const auto done = sc.rcpt_done.find(r.env.id);
      std::string rcpts;
      for (size_t i = 0; i < r.env.rcpts.size(); ++i) {
        rcpts += (rcpts.empty() ? "<" : ", <") + r.env.rcpts[i].to_string() + ">";
        if (done == sc.rcpt_done.end()) continue;
        const auto one = done->second.find(static_cast<uint32_t>(i));
        if (one == done->second.end()) continue;
        rcpts += one->second == 'd'   ? " (delivered)"
                 : one->second == 'b' ? " (bounced)"
                                      : " (deleted)";
      }
      const auto hold = sc.hold.find(r.env.id);
      const bool held = hold != sc.hold.end() && hold->second.second;
      std::printf("%s  %s  %8llu bytes  <%s> -> %s%s\n", r.env.id.c_str(),
                  iso_time(r.env.arrival_unix).c_str(), static_cast<unsigned long long>(r.length),
                  r.env.from.to_string().c_str(), rcpts.c_str(), held ? "  HELD" : "");
    }
  }
  std::printf("%zu message%s waiting for delivery in %zu segment%s", pending,
              pending == 1 ? "" : "s", sc.segments.size(), sc.segments.size() == 1 ? "" : "s");
  if (damaged > 0) std::printf(", %zu damaged region%s", damaged, damaged == 1 ? "" : "s");
  if (unreadable > 0)
    std::printf(", %zu unreadable segment%s", unreadable, unreadable == 1 ? "" : "s");
  std::printf("\n");
  return unreadable > 0 ? 1 : 0;
}

int spool_show(const std::string& data_dir, const std::string& id) {
  note_live_spool(data_dir);
  PosixFileIo io;
  Spool::Scan sc = Spool::scan(io, data_dir);
  for (const auto& seg : sc.segments) {
    for (auto r : seg.records) {
      if (r.env.id != id) continue;
      if (int e = Spool::load_from(io, data_dir, seg.name, r); e < 0) {
        std::fprintf(stderr, "ringmail: cannot read message %s from %s (errno %d)\n", id.c_str(),
                     seg.name.c_str(), -e);
        return 1;
      }
      std::printf(
          "id: %s\nsegment: %s at offset %llu\nstate: %s\narrival: %s\nclient: %s\n"
          "helo: %s\nfrom: <%s>\n",
          r.env.id.c_str(), seg.name.c_str(), static_cast<unsigned long long>(r.offset),
          sc.delivered.count(id) ? "delivered (segment not yet removed)" : "waiting",
          iso_time(r.env.arrival_unix).c_str(), r.env.client.c_str(), r.env.helo.c_str(),
          r.env.from.to_string().c_str());
      for (const auto& a : r.env.rcpts) std::printf("rcpt: <%s>\n", a.to_string().c_str());
      std::printf("\n");
      std::fwrite(r.message.data(), 1, r.message.size(), stdout);
      return 0;
    }
  }
  std::fprintf(stderr, "ringmail: no message %s in %s/spool\n", id.c_str(), data_dir.c_str());
  return 1;
}

// token-hash: the token from the argument, else one line of standard
// input (so that it stays out of the shell's history and ps).
int token_hash(std::string token) {
  if (token.empty() || token == "-") {
    char line[4096];
    if (std::fgets(line, sizeof line, stdin) == nullptr) {
      std::fprintf(stderr, "ringmail: token-hash: no token given (argument or standard input)\n");
      return ringmail::config::kUsageExit;
    }
    token = line;
    while (!token.empty() && (token.back() == '\n' || token.back() == '\r')) token.pop_back();
  }
  if (token.empty()) {
    std::fprintf(stderr, "ringmail: token-hash: the token is empty\n");
    return ringmail::config::kUsageExit;
  }
  std::printf("%s\n", ringmail::tls::api_token_hash(token).c_str());
  return 0;
}

// token-new: a random token, printed once, and its [[api.token]] table,
// checked with the daemon's parser.
int token_new(const std::string& name, const std::vector<std::string>& scopes,
              const std::vector<std::string>& sender_domains) {
  const std::string token = ringmail::tls::new_api_token();
  if (token.empty()) {
    std::fprintf(stderr, "ringmail: token-new: the random source failed\n");
    return 1;
  }
  const auto quoted = [](const std::vector<std::string>& v) {
    std::string s = "[";
    for (size_t i = 0; i < v.size(); ++i) s += (i ? ", \"" : "\"") + v[i] + "\"";
    return s + "]";
  };
  std::string table =
      "[[api.token]]\nname = \"" + name + "\"\nsha256 = \"" + ringmail::tls::api_token_hash(token) +
      "\"\nscopes = " + quoted(scopes.empty() ? std::vector<std::string>{"admin"} : scopes) + "\n";
  if (!sender_domains.empty()) table += "sender_domains = " + quoted(sender_domains) + "\n";
  for (char ch : name) {
    if (ch == '"' || ch == '\\' || static_cast<unsigned char>(ch) < 0x20) {
      std::fprintf(stderr,
                   "ringmail: token-new: the name cannot hold quotes or control characters\n");
      return ringmail::config::kUsageExit;
    }
  }
  const auto check = ringmail::config::parse_config(
      "hostname = \"check.invalid\"\ndata_dir = \"/nonexistent\"\nlocal_domains = "
      "[\"check.invalid\"]\n[[listener]]\naddress = \"127.0.0.1:25\"\n" +
          table,
      "token-new");
  if (!check) {
    std::string why = check.error();
    if (const size_t at = why.find(": api.token"); at != std::string::npos) why.erase(0, at + 2);
    std::fprintf(stderr, "ringmail: token-new: %s\n", why.c_str());
    return ringmail::config::kUsageExit;
  }
  std::printf(
      "token: %s\n# Give the token to the client; it is not kept anywhere. Add this to\n"
      "# ringmail.toml (then SIGHUP or a restart):\n\n%s",
      token.c_str(), table.c_str());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"ringmail: operate a ringmail relay"};
  app.require_subcommand(1);
  // Every command reads the daemon's configuration for its paths
  // (tools/tool_config.h); --config may come before or after the command.
  std::string config_path;
  app.add_option("--config", config_path,
                 "ringmaild's configuration (default: $RINGMAIL_CONFIG, else "
                 "/etc/ringmail/ringmail.toml; in a checkout without it, the embedded dev one)");
  app.fallthrough();
  std::string data_dir;
  std::string id;
  CLI::App* list = app.add_subcommand("spool-list", "list the messages waiting for delivery");
  list->add_option("--data-dir", data_dir, "ringmaild's data_dir (default: the configuration's)");
  CLI::App* show = app.add_subcommand("spool-show", "print one spooled message");
  show->add_option("id", id, "message id (from the log or spool-list)")->required();
  show->add_option("--data-dir", data_dir, "ringmaild's data_dir (default: the configuration's)");
  std::string domains_dir;
  const char* domains_help = "one folder per domain (default: the configuration's domains_dir)";
  std::string address, domain;
  ringmail::tools::PasswordSource pw;
  auto users_cmd = [&](const char* name, const char* help, bool with_address, bool with_password) {
    CLI::App* c = app.add_subcommand(name, help);
    if (with_address) c->add_option("address", address, "user@domain")->required();
    if (with_password) {
      c->add_flag("--password-stdin", pw.from_stdin, "read the password from standard input");
    }
    c->add_option("--domains-dir", domains_dir, domains_help);
    return c;
  };
  CLI::App* add =
      users_cmd("user-add", "add a user, or set an existing user's password", true, true);
  CLI::App* remove = users_cmd("user-remove", "remove a user", true, false);
  CLI::App* ulist = users_cmd("user-list", "list the users (of one domain)", false, false);
  ulist->add_option("domain", domain, "only this domain");
  CLI::App* auth = users_cmd("authenticate", "check a password (exit 0 if right)", true, true);
  CLI::App* check = users_cmd("check-users", "validate every users file", false, false);
  std::string selector, algo = "rsa2048";
  CLI::App* keygen =
      app.add_subcommand("dkim-keygen", "make a DKIM signing key, print its DNS record");
  keygen->add_option("domain", domain, "the signing domain (d=)")->required();
  keygen->add_option("--selector", selector, "s= (default: today's date, 20261123)");
  keygen->add_option("--algo", algo, "rsa2048, rsa3072 or ed25519")->capture_default_str();
  keygen->add_option("--domains-dir", domains_dir, domains_help);
  CLI::App* dns = app.add_subcommand("dkim-dns", "print the DNS records of a domain's DKIM keys");
  dns->add_option("domain", domain, "the signing domain")->required();
  dns->add_option("--domains-dir", domains_dir, domains_help);
  CLI::App* resolve = app.add_subcommand("aliases-resolve", "show where mail for an address goes");
  resolve->add_option("address", address, "local@domain")->required();
  resolve->add_option("--domains-dir", domains_dir, domains_help);
  ringmail::tools::ImportOptions import_opts;
  CLI::App* import =
      app.add_subcommand("import-chasquid", "turn a chasquid configuration into a ringmail one");
  import
      ->add_option("chasquid_dir", import_opts.from,
                   "chasquid's configuration directory (/etc/chasquid)")
      ->required();
  import->add_option("--to", import_opts.to, "ringmail's configuration directory")
      ->capture_default_str();
  import->add_option("--data-dir", import_opts.data_dir, "ringmail's data_dir (spool and Maildirs)")
      ->capture_default_str();
  import->add_flag("--force", import_opts.force,
                   "overwrite ringmail.toml and copied files that exist");
  ringmail::tools::SendTest st;
  CLI::App* sendtest = app.add_subcommand("send-test", "submit a test message over TLS with AUTH");
  sendtest->add_option("--to", st.to, "recipient")->required();
  sendtest->add_option("--user", st.user, "user@domain to log in as (also the sender)")->required();
  sendtest->add_flag("--password-stdin", pw.from_stdin, "read the password from standard input");
  sendtest->add_option("--server", st.server, "HOST:PORT (587: STARTTLS; 465: TLS at once)")
      ->capture_default_str();
  sendtest->add_flag("--tls", st.implicit_tls, "TLS from the first byte (port 465)");
  sendtest->add_option("--ca-file", st.ca_file, "trust this CA (PEM) instead of the system's");
  sendtest->add_option(
      "--tls-name", st.tls_name,
      "the name the certificate must be for (and SNI), when --server is an address");
  sendtest->add_flag("--insecure", st.insecure, "go on when the certificate does not check out");
  ringmail::tools::InitOptions init_opts;
  CLI::App* init =
      app.add_subcommand("init", "write a first configuration for a domain, print its DNS records");
  init->add_option("domain", init_opts.domain, "the mail domain (example.com)")->required();
  init->add_option("--hostname", init_opts.hostname, "this server's name (default: mail.DOMAIN)");
  init->add_option("--config-dir", init_opts.config_dir, "where ringmail.toml and domains/ go")
      ->capture_default_str();
  init->add_option("--data-dir", init_opts.data_dir, "ringmaild's data_dir (spool and Maildirs)")
      ->capture_default_str();
  init->add_option("--addresses", init_opts.addresses,
                   "this server's public addresses, IP,IP (default: the interfaces' global ones)");
  init->add_flag(
      "--force", init_opts.force,
      "write the configuration again (the old one as .bak), keeping users, aliases and DKIM keys");
  init->add_option("--letsencrypt-dir", init_opts.letsencrypt_dir,
                   "certbot's directory (live/<name>/)")
      ->capture_default_str();
  ringmail::tools::DnsCheckOptions check_opts;
  CLI::App* dns_check =
      app.add_subcommand("dns-check", "check a domain's DNS records for this server");
  dns_check->add_option("domain", check_opts.domain, "the mail domain")->required();
  dns_check->add_option("--hostname", check_opts.hostname,
                        "this server's name (default: the configuration's, else mail.DOMAIN)");
  dns_check->add_option(
      "--addresses", check_opts.addresses,
      "this server's public addresses, IP,IP (default: the interfaces' global ones)");
  dns_check->add_option("--resolver", check_opts.resolver,
                        "ask this DNS server, IPV4:PORT (default: /etc/resolv.conf's)");
  dns_check->add_option("--domains-dir", domains_dir, domains_help);
  CLI::App* config_show = app.add_subcommand(
      "config-show", "print the effective configuration, defaults filled in, as TOML");
  std::string token, token_name;
  std::vector<std::string> token_scopes, token_domains;
  CLI::App* thash = app.add_subcommand(
      "token-hash", "print the SHA-256 of an API token, for [[api.token]] sha256");
  thash->add_option("token", token, "the token (default, or -: one line of standard input)");
  CLI::App* tnew =
      app.add_subcommand("token-new", "make a random API token, print it and its [[api.token]]");
  tnew->add_option("name", token_name, "what the token is for (billing-app)")->required();
  tnew->add_option("--scope", token_scopes, "admin or inject (repeatable; default admin)");
  tnew->add_option("--sender-domain", token_domains,
                   "inject: a domain the token may send as (repeatable)");
  bool as_json = false;
  CLI::App* status = app.add_subcommand("status", "what the running ringmaild says about itself");
  status->add_flag("--json", as_json, "the admin API's JSON as it came");
  ringmail::tools::QueueCli queue(app);
  ringmail::tools::EventsCli events(app);
  ringmail::tools::SuppressCli suppress(app);
  ringmail::config::add_version_flag(app, "ringmail");
  if (auto done = ringmail::config::parse_command_line(app, argc, argv)) return *done;
  if (thash->parsed()) return token_hash(token);
  if (tnew->parsed()) return token_new(token_name, token_scopes, token_domains);
  if (init->parsed()) return ringmail::tools::init(init_opts);
  if (import->parsed()) return ringmail::tools::import_chasquid(import_opts);
  if (sendtest->parsed()) {
    auto secret = ringmail::tools::password(pw, false);
    if (!secret) return 1;  // read_password said why
    st.password = *secret;
    return ringmail::tools::send_test(st);
  }

  // The rest work on the daemon's files: its configuration says where.
  namespace t = ringmail::tools;
  auto loaded = t::load_tool_config(config_path, !dns_check->parsed());
  if (!loaded) {
    std::fprintf(stderr, "ringmail: %s\n", loaded.error().c_str());
    return ringmail::config::kConfigExit;
  }
  const t::ToolConfig& tc = *loaded;
  const bool needs_data_dir = list->parsed() || show->parsed();
  const bool needs_config = config_show->parsed() || resolve->parsed() || status->parsed() ||
                            queue.parsed() || events.parsed() || suppress.parsed();
  const std::string& given_dir = needs_data_dir ? data_dir : domains_dir;
  if (!tc.note.empty() && (needs_config || given_dir.empty())) {
    std::fprintf(stderr, "ringmail: %s\n", tc.note.c_str());
  }
  if (tc.cfg == nullptr && (needs_config || (given_dir.empty() && !dns_check->parsed()))) {
    std::fprintf(stderr,
                 "ringmail: no configuration: %s does not exist (give --config FILE or set "
                 "RINGMAIL_CONFIG%s)\n",
                 t::default_config_path().c_str(),
                 needs_config     ? ""
                 : needs_data_dir ? ", or --data-dir DIR"
                                  : ", or --domains-dir DIR");
    return ringmail::config::kConfigExit;
  }
  if (tc.cfg != nullptr) {
    if (data_dir.empty()) data_dir = tc.cfg->data_dir;
    if (domains_dir.empty()) domains_dir = tc.cfg->domains_dir;
  }
  if (config_show->parsed()) {
    std::fputs(ringmail::config::to_toml(*tc.cfg).c_str(), stdout);
    return 0;
  }
  if (status->parsed()) return t::status_command(*tc.cfg, as_json);
  if (queue.parsed()) return queue.run(*tc.cfg);
  if (events.parsed()) return events.run(*tc.cfg);
  if (suppress.parsed()) return suppress.run(*tc.cfg);
  if (dns_check->parsed()) {
    if (tc.cfg != nullptr) check_opts.config_hostname = tc.cfg->hostname;
    if (!domains_dir.empty()) check_opts.domains_dir = domains_dir;
    return t::dns_check(check_opts);
  }
  if (resolve->parsed()) {
    t::AliasSettings as;
    as.domains_dir = domains_dir;
    as.local_domains.assign(tc.cfg->local_domains.begin(), tc.cfg->local_domains.end());
    as.suffix_separators = tc.cfg->aliases.suffix_separators;
    as.drop_characters = tc.cfg->aliases.drop_chars;
    return t::aliases_resolve(as, address);
  }
  if (list->parsed()) return spool_list(data_dir);
  if (show->parsed()) return spool_show(data_dir, id);
  if (add->parsed()) return t::user_add(domains_dir, address, pw);
  if (remove->parsed()) return t::user_remove(domains_dir, address);
  if (ulist->parsed()) return t::user_list(domains_dir, domain);
  if (auth->parsed()) return t::authenticate(domains_dir, address, pw);
  if (check->parsed()) return t::check_users(domains_dir);
  if (keygen->parsed()) return t::dkim_keygen(domains_dir, domain, selector, algo);
  if (dns->parsed()) return t::dkim_dns(domains_dir, domain);
  return ringmail::config::kUsageExit;
}
