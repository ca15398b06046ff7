#include "storage/event_cursor.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstring>

#include "storage/durable_file.h"
#include "storage/event_log.h"

namespace ringmail::storage {
namespace {

constexpr std::string_view kMagic = "ringmail-event-cursor 1";
// A cursor names one segment per shard: a bound on what is read.
constexpr size_t kFileBytesMax = 1 << 20;

}  // namespace

std::string format_event_cursor(const EventCursor& c) {
  std::string out(kMagic);
  out += '\n';
  for (const auto& [shard, p] : c) {
    out += std::to_string(shard) + " " + p.segment + " " + std::to_string(p.offset) + "\n";
  }
  return out;
}

Result<EventCursor> parse_event_cursor(std::string_view text) {
  EventCursor c;
  if (text.substr(0, kMagic.size() + 1) != std::string(kMagic) + "\n") {
    return Error{"line 1: not a ringmail event cursor (no '" + std::string(kMagic) + "')"};
  }
  if (text.back() != '\n') return Error{"the last line has no newline (torn)"};
  size_t from = kMagic.size() + 1;
  for (size_t line = 2; from < text.size(); ++line) {
    const size_t nl = text.find('\n', from);
    const std::string_view l = text.substr(from, nl - from);
    from = nl + 1;
    const auto bad = [&](const char* what) {
      return Error{"line " + std::to_string(line) + ": " + what};
    };
    const size_t s1 = l.find(' ');
    const size_t s2 = s1 == std::string_view::npos ? s1 : l.find(' ', s1 + 1);
    if (s2 == std::string_view::npos) return bad("not '<shard> <segment> <offset>'");
    uint32_t shard = 0;
    const std::string_view a = l.substr(0, s1);
    if (auto r = std::from_chars(a.data(), a.data() + a.size(), shard);
        r.ec != std::errc() || r.ptr != a.data() + a.size() || a.empty()) {
      return bad("the shard is not a number");
    }
    EventPosition p;
    p.segment = std::string(l.substr(s1 + 1, s2 - s1 - 1));
    uint64_t us = 0;
    uint32_t seg_shard = 0;
    if (!EventLog::parse_name(p.segment, &us, &seg_shard) || seg_shard != shard) {
      return bad("not a segment name of that shard");
    }
    const std::string_view o = l.substr(s2 + 1);
    if (auto r = std::from_chars(o.data(), o.data() + o.size(), p.offset);
        r.ec != std::errc() || r.ptr != o.data() + o.size() || o.empty()) {
      return bad("the offset is not a number");
    }
    if (!c.emplace(shard, std::move(p)).second) return bad("a shard named twice");
  }
  return c;
}

Result<std::optional<EventCursor>> read_event_cursor(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) return std::optional<EventCursor>();
    return Error{path + ": " + std::strerror(errno)};
  }
  std::string text(kFileBytesMax + 1, '\0');
  size_t got = 0;
  while (got < text.size()) {
    const ssize_t n = ::read(fd, text.data() + got, text.size() - got);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const int err = errno;
      ::close(fd);
      return Error{path + ": " + std::strerror(err)};
    }
    if (n == 0) break;
    got += static_cast<size_t>(n);
  }
  ::close(fd);
  text.resize(got);
  if (text.size() > kFileBytesMax) return Error{path + ": larger than a cursor can be"};
  auto c = parse_event_cursor(text);
  if (!c) return Error{path + ": " + c.error()};
  return std::optional<EventCursor>(std::move(*c));
}

Result<void> write_event_cursor(const std::string& path, const EventCursor& c) {
  const int r = write_durable_file(path, format_event_cursor(c), 0600, Existing::kReplace);
  if (r < 0) return Error{path + ": " + std::strerror(-r)};
  return {};
}

}  // namespace ringmail::storage
