#include "tools/setup.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <grp.h>
#include <ifaddrs.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <tuple>
#include <vector>

#include "config/config.h"
#include "engine/blocking_dns.h"
#include "proto/address.h"
#include "proto/ascii.h"
#include "proto/dkim.h"
#include "proto/dmarc.h"
#include "proto/ip.h"
#include "proto/quoted.h"
#include "proto/spf.h"
#include "storage/durable_file.h"
#include "tls/dkim_key.h"
#include "tools/dkim.h"

namespace ringmail::tools {

namespace fs = std::filesystem;

namespace {

constexpr int kTtl = 3600;

int fail(const std::string& why) {
  std::fprintf(stderr, "ringmail: %s\n", why.c_str());
  return 1;
}

std::string toml_str(const std::string& s) { return proto::quoted(s); }

bool in_net(const proto::IpAddress& a, const char* net, unsigned bits) {
  auto n = proto::parse_ip(net);
  return n && n->v6 == a.v6 && proto::same_prefix(a, *n, bits);
}

// Publicly routable: not private, loopback, link-local, shared (CGNAT),
// documentation, multicast or reserved space. IPv6: 2000::/3 only.
bool is_global(const proto::IpAddress& a) {
  if (!a.v6) {
    static const std::pair<const char*, unsigned> kNot[] = {
        {"0.0.0.0", 8},      {"10.0.0.0", 8},    {"100.64.0.0", 10},   {"127.0.0.0", 8},
        {"169.254.0.0", 16}, {"172.16.0.0", 12}, {"192.0.0.0", 24},    {"192.0.2.0", 24},
        {"192.168.0.0", 16}, {"198.18.0.0", 15}, {"198.51.100.0", 24}, {"203.0.113.0", 24},
        {"224.0.0.0", 4},    {"240.0.0.0", 4}};
    for (const auto& [n, b] : kNot) {
      if (in_net(a, n, b)) return false;
    }
    return true;
  }
  return in_net(a, "2000::", 3) && !in_net(a, "2001:db8::", 32);
}

std::vector<proto::IpAddress> interface_addresses() {
  std::vector<proto::IpAddress> out;
  ifaddrs* ifa = nullptr;
  if (::getifaddrs(&ifa) != 0) return out;
  for (ifaddrs* i = ifa; i != nullptr; i = i->ifa_next) {
    if (i->ifa_addr == nullptr) continue;
    char buf[INET6_ADDRSTRLEN];
    if (i->ifa_addr->sa_family == AF_INET) {
      ::inet_ntop(AF_INET, &reinterpret_cast<sockaddr_in*>(i->ifa_addr)->sin_addr, buf, sizeof buf);
    } else if (i->ifa_addr->sa_family == AF_INET6) {
      ::inet_ntop(AF_INET6, &reinterpret_cast<sockaddr_in6*>(i->ifa_addr)->sin6_addr, buf,
                  sizeof buf);
    } else {
      continue;
    }
    auto a = proto::parse_ip(buf);
    if (a && is_global(*a) && std::find(out.begin(), out.end(), *a) == out.end()) out.push_back(*a);
  }
  ::freeifaddrs(ifa);
  // IPv4 first, each family in a stable order.
  std::sort(out.begin(), out.end(), [](const proto::IpAddress& x, const proto::IpAddress& y) {
    return std::make_pair(x.v6, x.bytes) < std::make_pair(y.v6, y.bytes);
  });
  return out;
}

// --addresses "ip,ip" (any address, for tests and for hosts behind NAT), or
// the interfaces' global ones. An error for text that is not an address.
Result<std::vector<proto::IpAddress>> server_addresses(const std::string& list) {
  if (list.empty()) return interface_addresses();
  std::vector<proto::IpAddress> out;
  size_t start = 0;
  while (start <= list.size()) {
    size_t comma = list.find(',', start);
    if (comma == std::string::npos) comma = list.size();
    const std::string item = list.substr(start, comma - start);
    auto a = proto::parse_ip(item);
    if (!a) return Error{"--addresses: '" + item + "' is not an IP address"};
    out.push_back(a->unmapped());
    start = comma + 1;
  }
  return out;
}

std::string reverse_name(const proto::IpAddress& a) {
  std::string out;
  char buf[8];
  if (!a.v6) {
    for (int i = 3; i >= 0; --i) {
      std::snprintf(buf, sizeof buf, "%u.", a.bytes[i]);
      out += buf;
    }
    return out + "in-addr.arpa";
  }
  for (int i = 15; i >= 0; --i) {
    out += proto::kHexDigits[a.bytes[i] & 0xf];
    out += '.';
    out += proto::kHexDigits[a.bytes[i] >> 4];
    out += '.';
  }
  return out + "ip6.arpa";
}

std::string spf_record(const std::vector<proto::IpAddress>& addrs) {
  std::string r = "v=spf1 mx";
  for (const auto& a : addrs) r += (a.v6 ? " ip6:" : " ip4:") + a.to_string();
  return r + " ~all";
}

std::string dmarc_record(const std::string& domain) {
  return "v=DMARC1; p=none; rua=mailto:postmaster@" + domain;
}

std::string rr(const std::string& name, const char* type, const std::string& data) {
  return name + ". " + std::to_string(kTtl) + " IN " + type + " " + data;
}

std::string quoted(const std::string& s) { return "\"" + s + "\""; }

Result<void> write_new(const std::string& path, const std::string& data, mode_t mode) {
  const int r = storage::write_durable_file(path, data, mode, storage::Existing::kRefuse);
  if (r < 0) return Error{"cannot create " + path + ": " + std::strerror(-r)};
  return {};
}

// On a host where `meson install` made the ringmail user, the daemon runs
// as it: give its group read access to the secrets init wrote (0640,
// root:ringmail). Elsewhere the files stay 0600 for their owner.
std::string share_with_daemon_group(const std::vector<std::string>& paths) {
  const group* g = ::getgrnam("ringmail");
  if (g == nullptr || ::geteuid() != 0) return "";
  for (const auto& p : paths) {
    if (::chown(p.c_str(), 0, g->gr_gid) != 0 || ::chmod(p.c_str(), 0640) != 0) {
      return "could not give group ringmail read access to " + p + ": " + std::strerror(errno);
    }
  }
  return "ok";
}

bool read_file(const std::string& path, std::string* out) {
  std::ifstream f(path, std::ios::binary);
  if (!f) return false;
  std::ostringstream ss;
  ss << f.rdbuf();
  *out = ss.str();
  return static_cast<bool>(f) || f.eof();
}

bool path_exists(const fs::path& p) {
  std::error_code ec;
  return fs::exists(fs::symlink_status(p, ec));
}

// A certificate for `names` in the layouts tls/cert_store.h reads: the
// directory to put in cert_dirs and what was found (empty when nothing).
struct FoundCert {
  std::string name;    // the certificate's name (a host name)
  std::string where;   // the certificate's folder
  std::string layout;  // "acme.sh" | "certbot"
  std::string chain, key;
  bool ecc = false;  // acme.sh's _ecc folder
};
std::vector<FoundCert> find_certs(const std::vector<std::string>& names,
                                  const std::string& letsencrypt) {
  std::vector<FoundCert> out;
  const char* home = std::getenv("HOME");
  if (home != nullptr && *home != '\0') {
    const fs::path acme = fs::path(home) / ".acme.sh";
    for (const auto& n : names) {
      for (const std::string& sub : {n + "_ecc", n}) {
        const fs::path d = acme / sub;
        if (path_exists(d / "fullchain.cer") && path_exists(d / (n + ".key"))) {
          out.push_back({n, d.string(), "acme.sh", (d / "fullchain.cer").string(),
                         (d / (n + ".key")).string(), sub != n});
        }
      }
    }
  }
  for (const auto& n : names) {
    const fs::path d = fs::path(letsencrypt) / "live" / n;
    if (path_exists(d / "fullchain.pem") && path_exists(d / "privkey.pem")) {
      out.push_back({n, d.string(), "certbot", (d / "fullchain.pem").string(),
                     (d / "privkey.pem").string(), false});
    }
  }
  return out;
}

const char* kUsersText =
    "# ringmail users (docs/users-format.md): one line per user, \"name <hash>\",\n"
    "# sorted by name; written by `ringmail user-add`, never by hand, e.g.\n"
    "#   ringmail user-add alice@%s --password-stdin --domains-dir %s\n"
    "# which adds a line like\n"
    "#   alice $scrypt$ln=14,r=8,p=1$<salt>$<key>\n";

const char* kAliasesText =
    "# Aliases of %s (docs/aliases.md): \"local: target, target\".\n"
    "# Examples (remove the '#' to use them):\n"
    "#postmaster: alice                 # to alice@%s; DMARC reports go to postmaster@\n"
    "#abuse: alice\n"
    "#info: alice, bob@other.example    # to several, local or not\n"
    "#*: alice                          # catch-all: every address that is neither a user\n"
    "#                                  # nor another alias\n";

std::string printf_string(const char* fmt, const std::string& a, const std::string& b) {
  char buf[2048];
  std::snprintf(buf, sizeof buf, fmt, a.c_str(), b.c_str());
  return buf;
}

}  // namespace

int init(const InitOptions& o) {
  const std::string domain = proto::ascii_lower(o.domain);
  if (!proto::is_valid_domain(domain) || domain.find('.') == std::string::npos) {
    return fail("'" + o.domain + "' is not a domain name");
  }
  const std::string hostname =
      proto::ascii_lower(o.hostname.empty() ? "mail." + domain : o.hostname);
  if (!proto::is_valid_domain(hostname))
    return fail("--hostname: '" + o.hostname + "' is not a host name");
  if (o.config_dir.empty()) return fail("--config-dir must not be empty");
  if (o.data_dir.empty()) return fail("--data-dir must not be empty");
  const auto listed = server_addresses(o.addresses);
  if (!listed) return fail(listed.error());
  const std::vector<proto::IpAddress>& addrs = *listed;
  std::error_code ec;
  const fs::path config_dir = fs::absolute(o.config_dir, ec);
  const fs::path data_dir = fs::absolute(o.data_dir, ec);
  const fs::path toml_path = config_dir / "ringmail.toml";
  const fs::path domains_dir = config_dir / "domains";
  const fs::path dom = domains_dir / domain;
  // Without --force nothing that exists is touched. With it the
  // configuration is written again (the old one kept as .bak), while the
  // users, aliases and DKIM keys stay as they are: the records printed
  // are those of the keys in use.
  if (!o.force) {
    if (path_exists(toml_path)) {
      return fail(toml_path.string() +
                  " exists already: init does not overwrite a configuration (--force writes it "
                  "again, keeping "
                  "users, aliases and DKIM keys, and prints the DNS records)");
    }
    for (const char* f : {"users", "aliases"}) {
      if (path_exists(dom / f))
        return fail((dom / f).string() + " exists already: init does not overwrite it");
    }
  }
  fs::create_directories(dom, ec);
  if (ec) return fail("cannot create " + dom.string() + ": " + ec.message());

  // DKIM keys first: what can fail most is done before the files that make
  // a second run refuse.
  std::vector<std::string> dkim_lines, dkim_paths;
  const auto existing = tls::list_dkim_key_files(domains_dir.string(), domain);
  if (o.force && !existing.empty()) {
    for (const auto& f : existing) {
      auto key = tls::DkimKey::load(f.path);
      if (!key) return fail(key.error());
      dkim_lines.push_back(proto::dkim::zone_line(f.selector, domain, dkim_record(**key)));
    }
  } else {
    const auto rsa =
        dkim_make_key(domains_dir.string(), domain, default_selector(false), "rsa2048");
    if (!rsa) return fail(rsa.error());
    const auto ed = dkim_make_key(domains_dir.string(), domain, default_selector(true), "ed25519");
    if (!ed) return fail(ed.error());
    dkim_lines = {rsa->zone_line, ed->zone_line};
    dkim_paths = {rsa->path, ed->path};
  }
  std::vector<std::string> written;
  if (!path_exists(dom / "users")) {
    if (auto w = write_new((dom / "users").string(),
                           printf_string(kUsersText, domain, domains_dir.string()), 0600);
        !w) {
      return fail(w.error());
    }
    written.push_back((dom / "users").string());
  }
  if (!path_exists(dom / "aliases")) {
    if (auto w = write_new((dom / "aliases").string(), printf_string(kAliasesText, domain, domain),
                           0644);
        !w) {
      return fail(w.error());
    }
    written.push_back((dom / "aliases").string());
  }
  std::vector<std::string> secret = dkim_paths;
  if (!written.empty() && written[0] == (dom / "users").string()) secret.push_back(written[0]);
  const std::string shared = share_with_daemon_group(secret);

  // Certificates live in <config_dir>/certs, where the service can read
  // them: acme.sh's ~/.acme.sh is hidden from it (ProtectHome=yes) and
  // certbot's keys are root's only. What is found is copied there once;
  // the renewal command printed below keeps the copy fresh.
  const auto certs = find_certs(hostname == domain ? std::vector<std::string>{hostname}
                                                   : std::vector<std::string>{hostname, domain},
                                o.letsencrypt_dir);
  const fs::path certs_dir = config_dir / "certs";
  fs::create_directories(certs_dir, ec);
  if (ec) return fail("cannot create " + certs_dir.string() + ": " + ec.message());
  std::vector<std::string> cert_dirs{certs_dir.string()};
  std::vector<std::string> copied;
  for (const auto& c : certs) {
    const fs::path dest = certs_dir / (c.name + (c.ecc ? "_ecc" : ""));
    std::string chain, key;
    if (!read_file(c.chain, &chain) || !read_file(c.key, &key))
      return fail("cannot read the certificate in " + c.where);
    fs::create_directories(dest, ec);
    if (o.force) {  // a copy made before is replaced
      fs::remove(dest / "fullchain.pem", ec);
      fs::remove(dest / "privkey.pem", ec);
      ec.clear();
    }
    if (ec) return fail("cannot create " + dest.string() + ": " + ec.message());
    if (auto w = write_new((dest / "fullchain.pem").string(), chain, 0644); !w) {
      return fail(w.error());
    }
    if (auto w = write_new((dest / "privkey.pem").string(), key, 0600); !w) {
      return fail(w.error());
    }
    copied.push_back((dest / "privkey.pem").string());
  }
  share_with_daemon_group(copied);

  std::string t;
  t += "# ringmaild's configuration (docs/configuration.md), written by `ringmail init " + domain +
       "`.\n";
  t += "hostname = " + toml_str(hostname) + "\n";
  t += "data_dir = " + toml_str(data_dir.string()) +
       "  # spool and mail: <data_dir>/mail/<domain>/<user>/Maildir\n";
  t += "domains_dir = " + toml_str(domains_dir.string()) +
       "  # <domain>/users, aliases, dkim:<selector>.pem\n";
  t += "local_domains = [" + toml_str(domain) + "]\n";
  t += "# Programs on this machine (ringmail-sendmail, cron, a web application) may send to any\n"
       "# domain, DKIM-signed, as Postfix's mynetworks allows by default. Remove to make them "
       "AUTH.\n";
  t += "relay_networks = [\"127.0.0.0/8\", \"::1/128\"]\n";
  struct L {
    const char* port;
    const char* kind;
    const char* what;
  };
  for (const L& l : {L{"25", "smtp", "mail from other servers"},
                     L{"587", "submission", "your mail programs: STARTTLS, then AUTH"},
                     L{"465", "submissions", "your mail programs: TLS from the first byte"}}) {
    const bool off = certs.empty() && std::strcmp(l.kind, "submissions") == 0;
    if (off)
      t += "\n# No certificate yet: port 465 needs one. Uncomment these once [tls] cert_dirs has "
           "it.";
    for (const char* host : {"0.0.0.0", "[::]"}) {
      const char* c = off ? "#" : "";
      t += std::string("\n") + c + "[[listener]]  # " + l.what + "\n" + c +
           "address = " + toml_str(std::string(host) + ":" + l.port) + "\n" + c +
           "kind = " + toml_str(l.kind) + "\n";
    }
  }
  t += "\n[tls]\ncert_dirs = [";
  for (size_t i = 0; i < cert_dirs.size(); ++i) t += (i ? ", " : "") + toml_str(cert_dirs[i]);
  t += "]  # <name>/fullchain.pem + privkey.pem, installed by acme.sh or certbot (see init's "
       "output)\n";
  // systemd makes /run/ringmail (RuntimeDirectory=); members of the group
  // ringmail may use the socket (`ringmail status`, `ringmail queue`).
  t += "\n[admin]\nsocket = \"/run/ringmail/admin.sock\"  # the admin API, mode 0660\n";
  // The daemon's own parser: what init writes, ringmaild starts on.
  if (auto written = config::parse_config(t, toml_path.string()); !written) {
    return fail("internal error: the configuration written does not load: " + written.error());
  }
  if (o.force && path_exists(toml_path)) {
    fs::rename(toml_path, toml_path.string() + ".bak", ec);
    if (ec) return fail("cannot keep " + toml_path.string() + " as .bak: " + ec.message());
    std::printf("kept the previous configuration as %s.bak\n", toml_path.c_str());
  }
  if (auto w = write_new(toml_path.string(), t, 0644); !w) return fail(w.error());

  std::printf("wrote %s (hostname %s, domain %s)\n", toml_path.c_str(), hostname.c_str(),
              domain.c_str());
  const char* mode = shared == "ok" ? "mode 0640, group ringmail" : "mode 0600";
  if (written.size() == 2) {
    std::printf("wrote %s (no users yet, %s) and %s (examples only)\n", (dom / "users").c_str(),
                mode, (dom / "aliases").c_str());
  } else {
    std::printf("kept %s's users and aliases as they are\n", dom.c_str());
  }
  if (dkim_paths.size() == 2) {
    std::printf("wrote DKIM keys %s (rsa2048) and %s (ed25519), %s\n", dkim_paths[0].c_str(),
                dkim_paths[1].c_str(), mode);
  } else {
    std::printf("kept the DKIM keys in %s (their records are below)\n", dom.c_str());
  }
  if (!shared.empty() && shared != "ok") std::printf("warning: %s\n", shared.c_str());
  if (certs.empty()) {
    std::printf(
        "certificates: none found for %s in ~/.acme.sh (acme.sh) or %s/live (certbot); "
        "port 465 is left commented out and STARTTLS is not offered until there is one\n",
        hostname.c_str(), o.letsencrypt_dir.c_str());
  } else {
    for (const auto& c : certs) {
      std::printf("certificates: found %s (%s), copied to %s/%s%s\n", c.where.c_str(),
                  c.layout.c_str(), certs_dir.c_str(), c.name.c_str(), c.ecc ? "_ecc" : "");
    }
  }
  std::string alist;
  for (const auto& a : addrs) alist += (alist.empty() ? "" : ", ") + a.to_string();
  if (addrs.empty()) {
    std::printf(
        "addresses: no global address found on this host's interfaces (behind NAT? "
        "run again with --addresses)\n");
  } else {
    std::printf("addresses: %s (%s)\n", alist.c_str(),
                o.addresses.empty() ? "from the interfaces" : "from --addresses");
  }

  const std::string conf = toml_path.string();
  int step = 0;
  std::printf("\nNext steps:\n");
  std::printf(
      "  %d. Publish the DNS records below at your DNS provider; ask your hosting provider for the "
      "PTR records.\n",
      ++step);
  if (certs.empty()) {
    std::printf(
        "  %d. Get a certificate for %s (certbot certonly --standalone -d %s, or acme.sh --issue "
        "--standalone -d %s), install it as below and uncomment the 465 listeners.\n",
        ++step, hostname.c_str(), hostname.c_str(), hostname.c_str());
  }
  // Renewals: the CA client copies the new files where ringmaild reads
  // them and reloads it (the daemon also notices changed files by itself).
  const bool any_certbot = std::any_of(certs.begin(), certs.end(),
                                       [](const FoundCert& c) { return c.layout == "certbot"; });
  if (certs.empty() || !any_certbot) {
    const FoundCert* c = certs.empty() ? nullptr : &certs.front();
    const std::string name = c != nullptr ? c->name : hostname;
    const std::string dir = (certs_dir / (name + (c != nullptr && c->ecc ? "_ecc" : ""))).string();
    std::printf(
        "  %d. %s renewals with acme.sh: acme.sh --install-cert -d %s%s --fullchain-file "
        "%s/fullchain.pem "
        "--key-file %s/privkey.pem --reloadcmd \"systemctl reload ringmail\"\n",
        ++step, certs.empty() ? "Then install it and its" : "Install its", name.c_str(),
        c != nullptr && c->ecc ? " --ecc" : "", dir.c_str(), dir.c_str());
  }
  if (certs.empty() || any_certbot) {
    const std::string name = certs.empty() ? hostname : certs.front().name;
    std::printf(
        "  %d. With certbot instead: a deploy hook copies each renewal, e.g. "
        "%s/renewal-hooks/deploy/ringmail:\n"
        "       install -D -m 0640 -g ringmail \"$RENEWED_LINEAGE/fullchain.pem\" "
        "%s/%s/fullchain.pem &&\n"
        "       install -D -m 0640 -g ringmail \"$RENEWED_LINEAGE/privkey.pem\" %s/%s/privkey.pem "
        "&&\n"
        "       systemctl reload ringmail\n",
        ++step, o.letsencrypt_dir.c_str(), certs_dir.c_str(), name.c_str(), certs_dir.c_str(),
        name.c_str());
  }
  std::printf("  %d. Add a user: ringmail user-add you@%s --password-stdin --domains-dir %s\n",
              ++step, domain.c_str(), domains_dir.c_str());
  std::printf("  %d. Make postmaster@%s reach someone: edit %s\n", ++step, domain.c_str(),
              (dom / "aliases").c_str());
  std::printf(
      "  %d. Check the configuration and start: ringmaild --check-config --config %s; ringmaild "
      "--config %s\n",
      ++step, conf.c_str(), conf.c_str());
  std::printf("  %d. Once DNS has the records: ringmail dns-check %s --config %s\n", ++step,
              domain.c_str(), conf.c_str());

  std::printf("\n; DNS records for %s, in zone-file form.\n", domain.c_str());
  std::printf("; MX: mail for %s goes to %s.\n", domain.c_str(), hostname.c_str());
  std::printf("%s\n", rr(domain, "MX", "10 " + hostname + ".").c_str());
  std::printf(
      "; The mail host's addresses (other servers connect to them; PTR records must resolve "
      "back).\n");
  if (addrs.empty())
    std::printf("; (no global address known: publish an A and/or AAAA record for %s)\n",
                hostname.c_str());
  for (const auto& a : addrs)
    std::printf("%s\n", rr(hostname, a.v6 ? "AAAA" : "A", a.to_string()).c_str());
  std::printf(
      "; SPF: the servers that may send mail from @%s (its MX host%s); ~all: others soft-fail.\n",
      domain.c_str(), addrs.empty() ? "" : " and the addresses above");
  std::printf("%s\n", rr(domain, "TXT", quoted(spf_record(addrs))).c_str());
  std::printf(
      "; DKIM: the public keys of the signatures ringmaild adds (RSA for every receiver, Ed25519 "
      "for those that check it).\n");
  for (const auto& l : dkim_lines) std::printf("%s\n", l.c_str());
  std::printf(
      "; DMARC: what receivers do with mail that fails SPF and DKIM alignment. p=none: deliver it\n"
      "; anyway (start here; p=quarantine or p=reject once the reports look right); rua: where\n"
      "; daily aggregate reports go; ruf: where failure reports go (optional, few send them);\n"
      "; fo: when to send failure reports (0: all checks failed, 1: any failed).\n");
  std::printf("%s\n", rr("_dmarc." + domain, "TXT", quoted(dmarc_record(domain))).c_str());
  std::printf(
      "; PTR (reverse DNS): set by whoever owns the address, usually your hosting provider; ask\n"
      "; them for these. Many receivers refuse mail from addresses without a matching PTR.\n");
  if (addrs.empty())
    std::printf("; (no global address known: ask for a PTR record naming %s for each)\n",
                hostname.c_str());
  for (const auto& a : addrs)
    std::printf("%s\n", rr(reverse_name(a), "PTR", hostname + ".").c_str());
  return 0;
}

// ---------------------------------------------------------------- dns-check

namespace {

using proto::spf::Answer;
using proto::spf::DnsStatus;
using proto::spf::QueryType;

std::string strip_dot(std::string s) {
  if (!s.empty() && s.back() == '.') s.pop_back();
  return s;
}

const char* status_text(DnsStatus s) {
  switch (s) {
    case DnsStatus::kOk:
      return "records";
    case DnsStatus::kNoData:
      return "no record";
    case DnsStatus::kNxDomain:
      return "no such name (NXDOMAIN)";
    case DnsStatus::kTempFail:
      return "the DNS query failed (SERVFAIL or no answer in time)";
  }
  return "?";
}

bool temp(const Answer& a) { return a.status == DnsStatus::kTempFail; }

std::string join(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& x : v) s += (s.empty() ? "" : ", ") + x;
  return s;
}

bool starts_with_tag(const std::string& txt, const char* tag) {
  const size_t n = std::strlen(tag);
  return txt.size() >= n && proto::ascii_lower(txt.substr(0, n)) == proto::ascii_lower(tag) &&
         (txt.size() == n || txt[n] == ' ' || txt[n] == ';');
}

struct Report {
  int failures = 0;
  void line(const char* status, const std::string& what, const std::string& fix = "") {
    if (std::strcmp(status, "fail") == 0) ++failures;
    std::printf("%-4s  %s%s%s\n", status, what.c_str(), fix.empty() ? "" : "  ", fix.c_str());
  }
};

}  // namespace

int dns_check(const DnsCheckOptions& o) {
  const std::string domain = strip_dot(proto::ascii_lower(o.domain));
  if (!proto::is_valid_domain(domain) || domain.find('.') == std::string::npos) {
    return fail("'" + o.domain + "' is not a domain name");
  }
  std::string hostname = strip_dot(proto::ascii_lower(o.hostname));
  if (hostname.empty()) hostname = proto::ascii_lower(o.config_hostname);
  const std::string& domains_dir = o.domains_dir;
  if (hostname.empty()) hostname = "mail." + domain;
  if (!proto::is_valid_domain(hostname))
    return fail("--hostname: '" + hostname + "' is not a host name");
  const auto listed = server_addresses(o.addresses);
  if (!listed) return fail(listed.error());
  const std::vector<proto::IpAddress>& addrs = *listed;
  sockaddr_storage resolver{};
  socklen_t resolver_len = 0;
  if (!o.resolver.empty() && (!config::parse_listen_address(o.resolver, resolver, resolver_len) ||
                              resolver.ss_family != AF_INET)) {
    return fail("--resolver: '" + o.resolver + "' is not IPV4:PORT (e.g. 127.0.0.1:53)");
  }
  // The daemon's resolver (c-ares), driven until each answer is in.
  auto dns = engine::BlockingDns::create(o.resolver);
  if (!dns) return fail("cannot start a DNS resolver: " + dns.error());
  engine::BlockingDns& res = **dns;
  Report rep;
  const std::string mx_line = rr(domain, "MX", "10 " + hostname + ".");

  // MX
  {
    const Answer a = res.query(QueryType::kMx, domain);
    if (temp(a)) {
      rep.line("fail", "MX of " + domain + ": " + status_text(a.status),
               "check the domain's name servers (or --resolver)");
    } else if (a.records.empty()) {
      rep.line("fail", "MX of " + domain + ": none", "publish: " + mx_line);
    } else if (std::find(a.records.begin(), a.records.end(), hostname) == a.records.end()) {
      rep.line("fail", "MX of " + domain + ": " + join(a.records) + ", not " + hostname,
               "publish: " + mx_line + " (and remove the others unless they relay to this host)");
    } else if (a.records.front() != hostname) {
      rep.line(
          "warn",
          "MX of " + domain + ": " + join(a.records) + "; " + hostname + " is not the first choice",
          "give " + hostname + " the lowest preference number");
    } else {
      rep.line("pass", "MX of " + domain + ": " + join(a.records));
    }
  }

  // The host's A/AAAA records.
  if (addrs.empty()) {
    rep.line("warn",
             "addresses of " + hostname + ": this host has no global address to compare with",
             "run again with --addresses IP,IP (the addresses other servers reach this host at)");
  }
  for (bool v6 : {false, true}) {
    std::vector<std::string> want;
    for (const auto& a : addrs) {
      if (a.v6 == v6) want.push_back(a.to_string());
    }
    const char* type = v6 ? "AAAA" : "A";
    const Answer a = res.query(v6 ? QueryType::kAaaa : QueryType::kA, hostname);
    std::vector<std::string> have;
    for (const auto& r : a.records) {
      if (auto ip = proto::parse_ip(r)) have.push_back(ip->to_string());
    }
    const std::string what = std::string(type) + " of " + hostname + ": ";
    if (temp(a)) {
      rep.line("fail", what + status_text(a.status),
               "check the domain's name servers (or --resolver)");
      continue;
    }
    if (want.empty()) {
      if (!have.empty()) {
        rep.line("warn",
                 what + join(have) + ", but this host has no such " + (v6 ? "IPv6" : "IPv4") +
                     " address",
                 "remove the " + std::string(type) +
                     " record unless it reaches this host (NAT): then pass --addresses");
      }
      continue;
    }
    std::vector<std::string> missing, extra;
    for (const auto& w : want) {
      if (std::find(have.begin(), have.end(), w) == have.end()) missing.push_back(w);
    }
    for (const auto& h : have) {
      if (std::find(want.begin(), want.end(), h) == want.end()) extra.push_back(h);
    }
    if (!missing.empty()) {
      std::string fix = "publish:";
      for (const auto& m : missing) fix += " " + rr(hostname, type, m) + ";";
      fix.pop_back();
      if (!extra.empty()) fix += " and remove " + join(extra);
      rep.line("fail",
               what + (have.empty() ? std::string("none") : join(have)) + ", not " + join(missing),
               fix);
    } else if (!extra.empty()) {
      rep.line("warn", what + join(have) + ": " + join(extra) + " is not this host's",
               "remove " + join(extra) + " unless it reaches this host");
    } else {
      rep.line("pass", what + join(have));
    }
  }

  // PTR and forward confirmation.
  for (const auto& ip : addrs) {
    const std::string rev = reverse_name(ip);
    const std::string what = "PTR of " + ip.to_string() + ": ";
    const std::string fix = "ask your hosting provider to set the PTR of " + ip.to_string() +
                            " to " + hostname + " (" + rr(rev, "PTR", hostname + ".") + ")";
    const Answer a = res.query(QueryType::kPtr, rev);
    if (temp(a)) {
      rep.line("fail", what + status_text(a.status), fix);
      continue;
    }
    if (a.records.empty()) {
      rep.line("fail", what + "none", fix);
      continue;
    }
    std::vector<std::string> names;
    for (const auto& r : a.records) names.push_back(strip_dot(r));
    if (std::find(names.begin(), names.end(), hostname) == names.end()) {
      rep.line("fail", what + join(names) + ", not " + hostname, fix);
      continue;
    }
    const Answer f = res.query(ip.v6 ? QueryType::kAaaa : QueryType::kA, hostname);
    bool back = false;
    for (const auto& r : f.records) {
      if (auto x = proto::parse_ip(r); x && *x == ip) back = true;
    }
    if (!back) {
      rep.line(
          "fail",
          what + hostname + ", but " + hostname + " does not resolve back to " + ip.to_string(),
          "publish: " + rr(hostname, ip.v6 ? "AAAA" : "A", ip.to_string()));
    } else {
      rep.line("pass", what + hostname + " (and back)");
    }
  }

  // SPF
  {
    const Answer a = res.query(QueryType::kTxt, domain);
    std::vector<std::string> spf;
    for (const auto& r : a.records) {
      if (starts_with_tag(r, "v=spf1")) spf.push_back(r);
    }
    const std::string fix = "publish: " + rr(domain, "TXT", quoted(spf_record(addrs)));
    if (temp(a)) {
      rep.line("fail", "SPF of " + domain + ": " + status_text(a.status),
               "check the domain's name servers (or --resolver)");
    } else if (spf.empty()) {
      rep.line("fail", "SPF of " + domain + ": no v=spf1 record", fix);
    } else if (spf.size() > 1) {
      rep.line(
          "fail",
          "SPF of " + domain + ": " + std::to_string(spf.size()) + " v=spf1 records (a permerror)",
          "merge them into one: " + fix);
    } else if (addrs.empty()) {
      rep.line("warn", "SPF of " + domain + ": \"" + spf[0] + "\" (no address to check it with)",
               "run again with --addresses");
    } else {
      std::vector<std::string> bad;
      std::string problem;
      for (const auto& ip : addrs) {
        proto::spf::Request req;
        req.client_ip = ip.to_string();
        req.helo = hostname;
        req.mail_from = "postmaster@" + domain;
        req.receiver = "dns-check";
        req.now_s = std::time(nullptr);
        proto::spf::Dns known;
        std::optional<proto::spf::Verdict> v;
        for (int round = 0; round < 200; ++round) {
          proto::spf::Query missing;
          v = proto::spf::evaluate(req, known, &missing);
          if (v) break;
          known.add(missing, res.query(missing.type, missing.name));
        }
        if (!v) {
          bad.push_back(ip.to_string() + ": too many lookups");
        } else if (v->result == proto::spf::Result::kPermerror ||
                   v->result == proto::spf::Result::kTemperror) {
          problem = std::string(proto::spf::result_name(v->result)) + ": " + v->problem;
        } else if (v->result != proto::spf::Result::kPass) {
          bad.push_back(ip.to_string() + " gets " + proto::spf::result_name(v->result));
        }
      }
      if (!problem.empty()) {
        rep.line("fail", "SPF of " + domain + ": \"" + spf[0] + "\" is not valid (" + problem + ")",
                 fix);
      } else if (!bad.empty()) {
        std::string add;
        for (const auto& ip : addrs) add += (ip.v6 ? " ip6:" : " ip4:") + ip.to_string();
        rep.line("fail", "SPF of " + domain + ": \"" + spf[0] + "\": " + join(bad),
                 "add" + add + " (or mx) before the all: " + fix);
      } else {
        rep.line(
            "pass", "SPF of " + domain + ": \"" + spf[0] + "\" passes " + [&] {
              std::vector<std::string> s;
              for (auto& i : addrs) s.push_back(i.to_string());
              return join(s);
            }());
      }
    }
  }

  // DKIM
  {
    const auto files = tls::list_dkim_key_files(domains_dir, domain);
    if (files.empty()) {
      rep.line("warn", "DKIM of " + domain + ": no local key in " + domains_dir + "/" + domain,
               "make one: ringmail dkim-keygen " + domain + " --domains-dir " + domains_dir);
    }
    for (const auto& f : files) {
      const std::string name = f.selector + "._domainkey." + domain;
      auto loaded = tls::DkimKey::load(f.path);
      if (!loaded) {
        rep.line("fail",
                 "DKIM " + name + ": the local key " + f.path + " does not load (" +
                     loaded.error() + ")",
                 "make a new one: ringmail dkim-keygen " + domain);
        continue;
      }
      const auto& key = *loaded;
      const std::string fix =
          "publish: " + proto::dkim::zone_line(f.selector, domain, dkim_record(*key));
      const Answer a = res.query(QueryType::kTxt, name);
      if (temp(a)) {
        rep.line("fail", "DKIM " + name + ": " + status_text(a.status),
                 "check the domain's name servers (or --resolver)");
        continue;
      }
      std::vector<proto::dkim::KeyRecord> recs;
      std::string perr;
      for (const auto& r : a.records) {
        if (auto k = proto::dkim::parse_key_record(r)) {
          recs.push_back(std::move(*k));
        } else {
          perr = k.error();
        }
      }
      const bool ed = key->type() == tls::DkimKey::Type::kEd25519;
      if (a.records.empty()) {
        rep.line("fail", "DKIM " + name + ": no record", fix);
      } else if (recs.empty()) {
        rep.line("fail", "DKIM " + name + ": not a valid key record (" + perr + ")", fix);
      } else if (recs.size() > 1) {
        rep.line("fail", "DKIM " + name + ": " + std::to_string(recs.size()) + " key records",
                 "keep only one: " + fix);
      } else if (recs[0].ed25519 != ed || recs[0].public_key != key->public_key()) {
        rep.line("fail", "DKIM " + name + ": the published key is not " + f.path + "'s", fix);
      } else {
        rep.line("pass", "DKIM " + name + ": matches " + f.path +
                             (recs[0].testing ? " (t=y: testing)" : ""));
      }
    }
  }

  // DMARC
  {
    const std::string name = "_dmarc." + domain;
    const std::string fix = "publish: " + rr(name, "TXT", quoted(dmarc_record(domain)));
    const Answer a = res.query(QueryType::kTxt, name);
    std::vector<std::string> recs;
    for (const auto& r : a.records) {
      if (starts_with_tag(r, "v=DMARC1")) recs.push_back(r);
    }
    proto::dmarc::Record d;
    if (temp(a)) {
      rep.line("fail", "DMARC " + name + ": " + status_text(a.status),
               "check the domain's name servers (or --resolver)");
    } else if (recs.empty()) {
      rep.line("fail", "DMARC " + name + ": no v=DMARC1 record", fix);
    } else if (recs.size() > 1) {
      rep.line("fail",
               "DMARC " + name + ": " + std::to_string(recs.size()) +
                   " records (receivers ignore them all)",
               "keep only one: " + fix);
    } else if (proto::dmarc::parse_record(recs[0], &d) != proto::dmarc::ParseResult::kOk) {
      rep.line("fail", "DMARC " + name + ": \"" + recs[0] + "\" is not valid (p= missing or wrong)",
               fix);
    } else if (d.policy_defaulted) {
      // Receivers read it as p=none (RFC 7489 6.6.3), but it says
      // something else: a typo such as p=nnoe, or a bad sp.
      rep.line("fail",
               "DMARC " + name + ": \"" + recs[0] +
                   "\" has no valid p= (or a bad sp=); receivers treat it as p=none",
               fix);
    } else {
      rep.line("pass",
               "DMARC " + name + ": p=" + proto::dmarc::to_string(d.p) +
                   (d.rua.empty() ? ", no rua (no reports)" : ", reports to " + join(d.rua)));
    }
  }

  // MTA-STS and TLS-RPT: information only.
  for (const auto& [prefix, tag, what] :
       {std::tuple<const char*, const char*, const char*>{
            "_mta-sts.", "v=STSv1", "MTA-STS (senders require TLS to this domain)"},
        std::tuple<const char*, const char*, const char*>{
            "_smtp._tls.", "v=TLSRPTv1", "TLS-RPT (reports about TLS failures)"}}) {
    const std::string name = prefix + domain;
    const Answer a = res.query(QueryType::kTxt, name);
    std::string found;
    for (const auto& r : a.records) {
      if (starts_with_tag(r, tag)) found = r;
    }
    rep.line("info", std::string(what) + ": " +
                         (found.empty() ? "no " + std::string(tag) + " record at " + name
                                        : "\"" + found + "\" at " + name));
  }

  std::printf("%d check%s failed\n", rep.failures, rep.failures == 1 ? "" : "s");
  return rep.failures > 0 ? 1 : 0;
}

}  // namespace ringmail::tools
