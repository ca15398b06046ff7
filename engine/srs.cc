#include "engine/srs.h"

#include "engine/secret_file.h"
#include "tls/hmac.h"

namespace ringmail::engine {

Result<std::shared_ptr<const proto::srs::Config>> load_srs(const config::Config& cfg) {
  if (!cfg.srs_enabled) return nullptr;
  const std::string path =
      cfg.srs_secret_file.empty() ? cfg.data_dir + "/srs.secret" : cfg.srs_secret_file;
  auto secrets = load_secret_file(path, "SRS secrets");
  if (!secrets) return Error{secrets.error()};
  auto c = std::make_shared<proto::srs::Config>();
  c->secrets = std::move(*secrets);
  c->domain = cfg.srs_domain.empty() ? cfg.primary_domain : cfg.srs_domain;
  c->max_age_days = static_cast<int>(cfg.srs_max_age_days);
  c->hmac = [](std::string_view key, std::string_view data) { return tls::hmac_sha1(key, data); };
  return c;
}

}  // namespace ringmail::engine
