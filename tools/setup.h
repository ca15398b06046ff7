// ringmail's set-up helpers (tools/ringmail.cc): `init` writes a first
// configuration and prints the DNS records to publish; `dns-check` looks
// the records up and says, one line per check, what is right and what to fix.
#pragma once

#include <string>
#include <vector>

namespace ringmail::tools {

struct InitOptions {
  std::string domain;
  std::string hostname;  // "" = mail.<domain>
  std::string config_dir = "/etc/ringmail";
  std::string data_dir = "/var/spool/ringmail";
  std::string addresses;                             // "ip,ip"; "" = the interfaces' global ones
  std::string letsencrypt_dir = "/etc/letsencrypt";  // certbot's; acme.sh's is $HOME/.acme.sh
  bool force = false;  // write the configuration again (old as .bak), keep users, aliases and keys
};
int init(const InitOptions& o);

struct DnsCheckOptions {
  std::string domain;
  std::string hostname;   // "" = the configuration's, else mail.<domain>
  std::string addresses;  // "" = the interfaces' global ones
  std::string resolver;   // "HOST:PORT" (IPv4); "" = the system's (/etc/resolv.conf)
  // From the configuration when there is one (tools/tool_config.h).
  std::string config_hostname;
  std::string domains_dir = "/etc/ringmail/domains";
};
int dns_check(const DnsCheckOptions& o);

}  // namespace ringmail::tools
