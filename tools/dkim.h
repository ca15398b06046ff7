// ringmail's DKIM commands (tools/ringmail.cc): signing keys under
// <domains_dir>/<domain>/dkim:<selector>.pem and the DNS records to publish.
#pragma once

#include <string>

#include "proto/result.h"

namespace ringmail::tls {
class DkimKey;
}

namespace ringmail::tools {

// algo: rsa2048 | rsa3072 | ed25519; selector "" = a date stamp (20261123,
// 20261123-ed25519 for Ed25519 keys).
int dkim_keygen(const std::string& domains_dir, const std::string& domain, std::string selector,
                const std::string& algo);
// The TXT record of a key: "v=DKIM1; k=rsa; p=<base64>" (or k=ed25519).
std::string dkim_record(const tls::DkimKey& k);
// The selector dkim-keygen picks without --selector: 20261123, or
// 20261123-ed25519.
std::string default_selector(bool ed25519);
// Makes a key and writes it to <domains_dir>/<domain>/dkim:<selector>.pem
// (mode 0600, never over an existing file; the folders are made). The
// domain must be valid and lower case. Its path and the zone-file line to
// publish come back, or a reason.
struct MadeKey {
  std::string path;
  std::string zone_line;
};
Result<MadeKey> dkim_make_key(const std::string& domains_dir, const std::string& domain,
                              std::string selector, const std::string& algo);
int dkim_dns(const std::string& domains_dir, const std::string& domain);

}  // namespace ringmail::tools
