#include "engine/srs.h"

#include <fcntl.h>
#include <sys/random.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "proto/ascii.h"
#include "storage/durable_file.h"
#include "tls/hmac.h"

namespace ringmail::engine {

namespace {

// 32 random bytes as hex, in a new file only we can read.
Result<void> make_secret_file(const std::string& path) {
  unsigned char raw[32];
  if (::getrandom(raw, sizeof raw, 0) != static_cast<ssize_t>(sizeof raw)) {
    return Error{std::string("getrandom: ") + std::strerror(errno)};
  }
  std::string line = proto::hex_lower(std::string_view(reinterpret_cast<char*>(raw), sizeof raw));
  line =
      "# SRS secrets: the first line signs, every line verifies (add a new one on top to "
      "rotate)\n" +
      line + "\n";
  if (const int r = storage::write_durable_file(path, line, 0600, storage::Existing::kRefuse);
      r < 0) {
    return Error{path + ": " + std::strerror(-r)};
  }
  return {};
}

}  // namespace

Result<std::shared_ptr<const proto::srs::Config>> load_srs(const config::Config& cfg) {
  if (!cfg.srs_enabled) return nullptr;
  const std::string path =
      cfg.srs_secret_file.empty() ? cfg.data_dir + "/srs.secret" : cfg.srs_secret_file;
  if (::access(path.c_str(), F_OK) != 0) {
    std::error_code ec;
    std::filesystem::create_directories(std::filesystem::path(path).parent_path(),
                                        ec);  // a first start
    if (auto made = make_secret_file(path); !made) return Error{made.error()};
  }
  std::ifstream f(path);
  if (!f) return Error{path + ": cannot be read"};
  auto c = std::make_shared<proto::srs::Config>();
  for (std::string line; std::getline(f, line);) {
    while (!line.empty() && (line.back() == '\r' || line.back() == ' ' || line.back() == '\t'))
      line.pop_back();
    if (line.empty() || line[0] == '#') continue;
    c->secrets.push_back(line);
  }
  if (c->secrets.empty()) return Error{path + ": no secret in it"};
  c->domain = cfg.srs_domain.empty() ? cfg.primary_domain : cfg.srs_domain;
  c->max_age_days = static_cast<int>(cfg.srs_max_age_days);
  c->hmac = [](std::string_view key, std::string_view data) { return tls::hmac_sha1(key, data); };
  return c;
}

}  // namespace ringmail::engine
