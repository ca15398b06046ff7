#include "tools/tool_config.h"

#include <unistd.h>

#include <cstdlib>
#include <fstream>

namespace ringmail::tools {

std::string default_config_path() {
  const char* env = std::getenv("RINGMAIL_CONFIG");
  return env != nullptr && *env != '\0' ? env : "/etc/ringmail/ringmail.toml";
}

bool is_checkout(const std::string& dir) {
  std::ifstream f(dir + "/meson.build");
  std::string first;
  std::getline(f, first);
  return first.rfind("project('ringmail'", 0) == 0 &&
         ::access((dir + "/tools/dev").c_str(), X_OK) == 0;
}

Result<ToolConfig> load_tool_config(const std::string& given, bool dev_fallback) {
  ToolConfig out;
  const std::string path = given.empty() ? default_config_path() : given;
  if (given.empty() && ::access(path.c_str(), F_OK) != 0) {
    if (!dev_fallback || !is_checkout(".")) return out;
    auto dev = config::parse_config(config::kDevConfig, "<embedded dev configuration>");
    if (!dev) return Error{dev.error()};
    out.cfg = std::move(*dev);
    out.note = "no " + path + ": using the embedded dev configuration of this checkout (data_dir " +
               out.cfg->data_dir + ", domains_dir " + out.cfg->domains_dir +
               "), as tools/dev run does; --config FILE for another";
    return out;
  }
  auto loaded = config::load_config_file(path);
  if (!loaded) return Error{loaded.error()};
  out.cfg = std::move(*loaded);
  out.path = path;
  return out;
}

}  // namespace ringmail::tools
