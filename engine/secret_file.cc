#include "engine/secret_file.h"

#include <sys/random.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "proto/ascii.h"
#include "storage/durable_file.h"

namespace ringmail::engine {

namespace {

// 32 random bytes as hex, in a new file only we can read.
Result<void> make_secret_file(const std::string& path, std::string_view what) {
  unsigned char raw[32];
  if (::getrandom(raw, sizeof raw, 0) != static_cast<ssize_t>(sizeof raw)) {
    return Error{std::string("getrandom: ") + std::strerror(errno)};
  }
  const std::string text =
      "# " + std::string(what) +
      ": the first line signs, every line verifies (add a new one on top to rotate)\n" +
      proto::hex_lower(std::string_view(reinterpret_cast<char*>(raw), sizeof raw)) + "\n";
  if (const int r = storage::write_durable_file(path, text, 0600, storage::Existing::kRefuse);
      r < 0) {
    return Error{path + ": " + std::strerror(-r)};
  }
  return {};
}

}  // namespace

Result<std::vector<std::string>> load_secret_file(const std::string& path, std::string_view what) {
  if (::access(path.c_str(), F_OK) != 0) {
    std::error_code ec;
    std::filesystem::create_directories(std::filesystem::path(path).parent_path(),
                                        ec);  // a first start
    if (auto made = make_secret_file(path, what); !made) return Error{made.error()};
  }
  std::ifstream f(path);
  if (!f) return Error{path + ": cannot be read"};
  std::vector<std::string> secrets;
  for (std::string line; std::getline(f, line);) {
    while (!line.empty() && (line.back() == '\r' || line.back() == ' ' || line.back() == '\t'))
      line.pop_back();
    if (line.empty() || line[0] == '#') continue;
    secrets.push_back(line);
  }
  if (secrets.empty()) return Error{path + ": no secret in it"};
  return secrets;
}

}  // namespace ringmail::engine
