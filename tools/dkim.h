// ringmail's DKIM commands (tools/ringmail.cc): signing keys under
// <domains_dir>/<domain>/dkim:<selector>.pem and the DNS records to publish.
#pragma once

#include <string>

namespace ringmail::tools {

// algo: rsa2048 | rsa3072 | ed25519; selector "" = a date stamp (20261123,
// 20261123-ed25519 for Ed25519 keys).
int dkim_keygen(const std::string& domains_dir, const std::string& domain, std::string selector,
                const std::string& algo);
int dkim_dns(const std::string& domains_dir, const std::string& domain);

}  // namespace ringmail::tools
