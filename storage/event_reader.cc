#include "storage/event_reader.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "storage/event_log.h"

namespace ringmail::storage {
namespace {

// Bytes read at a time: a batch of ordinary events fits in a few reads.
constexpr size_t kChunkBytes = 256 * 1024;

}  // namespace

Result<std::map<uint32_t, std::vector<EventSegment>>> list_event_segments(const std::string& dir) {
  std::map<uint32_t, std::vector<EventSegment>> out;
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr) {
    if (errno == ENOENT) return out;
    return Error{dir + ": " + std::strerror(errno)};
  }
  while (const dirent* e = ::readdir(d)) {
    EventSegment s;
    s.name = e->d_name;
    if (!EventLog::parse_name(s.name, &s.us, &s.shard)) continue;
    s.path = dir + "/" + s.name;
    out[s.shard].push_back(std::move(s));
  }
  ::closedir(d);
  for (auto& [shard, v] : out) {
    std::sort(v.begin(), v.end(),
              [](const EventSegment& a, const EventSegment& b) { return a.name < b.name; });
  }
  return out;
}

Result<EventLines> read_event_lines(const std::string& path, uint64_t offset, size_t lines_max) {
  EventLines out;
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Error{path + ": " + std::strerror(errno)};
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    const int err = errno;
    ::close(fd);
    return Error{path + ": " + std::strerror(err)};
  }
  out.size = static_cast<uint64_t>(st.st_size);
  std::string buf;  // bytes read from `at` on, not yet made lines
  uint64_t at = offset;
  while (out.lines.size() < lines_max && at + buf.size() < out.size) {
    const size_t want =
        static_cast<size_t>(std::min<uint64_t>(kChunkBytes, out.size - at - buf.size()));
    const size_t old = buf.size();
    buf.resize(old + want);
    const ssize_t n = ::pread(fd, buf.data() + old, want, static_cast<off_t>(at + old));
    if (n < 0 && errno == EINTR) {
      buf.resize(old);
      continue;
    }
    if (n < 0) {
      const int err = errno;
      ::close(fd);
      return Error{path + ": " + std::strerror(err)};
    }
    buf.resize(old + static_cast<size_t>(n));
    if (n == 0) break;  // shorter than fstat said (truncated meanwhile)
    size_t from = 0;
    for (size_t nl; out.lines.size() < lines_max &&
                    (nl = buf.find('\n', std::max(from, old))) != std::string::npos;
         from = nl + 1) {
      out.lines.push_back(buf.substr(from, nl - from));
      out.ends.push_back(at + nl + 1);
    }
    buf.erase(0, from);
    at += from;
  }
  ::close(fd);
  return out;
}

namespace {

// The string value of `key` as the event log writes it (`"key":"value"`).
std::string_view string_member(std::string_view line, std::string_view key) {
  const size_t p = line.find(key);
  if (p == std::string_view::npos) return {};
  const size_t from = p + key.size();
  const size_t end = line.find('"', from);
  if (end == std::string_view::npos) return {};
  return line.substr(from, end - from);
}

}  // namespace

std::string_view event_line_type(std::string_view line) {
  return string_member(line, "\"type\":\"");
}

std::string_view event_line_id(std::string_view line) {
  // The first member of every line (storage/event_log.cc).
  if (line.rfind("{\"id\":\"", 0) != 0) return {};
  return string_member(line, "{\"id\":\"");
}

}  // namespace ringmail::storage
