#include "tools/events_cli.h"

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <map>
#include <nlohmann/json.hpp>
#include <thread>

#include "config/version_text.h"
#include "proto/event_type.h"
#include "storage/event_reader.h"

namespace ringmail::tools {
namespace {

// The complete lines of `path` from `*offset` on; `*offset` moves past
// them (a line still being written, or torn, has no newline yet).
std::vector<std::string> read_lines(const std::string& path, uint64_t* offset) {
  auto r = storage::read_event_lines(path, *offset);
  if (!r || r->lines.empty()) return {};
  *offset = r->ends.back();
  return std::move(r->lines);
}

// Every segment of the directory, by shard, oldest first.
std::map<uint32_t, std::vector<storage::EventSegment>> segments(const std::string& dir,
                                                                std::string* error) {
  auto all = storage::list_event_segments(dir);
  if (!all) {
    *error = all.error();
    return {};
  }
  return std::move(*all);
}

struct Line {
  int64_t timestamp = 0;
  std::string type;
  std::string text;
};

Line parse(std::string text) {
  Line l;
  auto j = nlohmann::json::parse(text, nullptr, false);
  if (j.is_object()) {
    if (auto t = j.find("timestamp"); t != j.end() && t->is_number_integer()) {
      l.timestamp = t->get<int64_t>();
    }
    if (auto t = j.find("type"); t != j.end() && t->is_string()) l.type = t->get<std::string>();
  }
  l.text = std::move(text);
  return l;
}

}  // namespace

std::string event_line(const std::string& text) {
  auto j = nlohmann::json::parse(text, nullptr, false);
  if (!j.is_object() || !j.contains("type")) return text;
  auto str = [&](const char* key) {
    auto it = j.find(key);
    return it != j.end() && it->is_string() ? it->get<std::string>() : std::string();
  };
  std::string out;
  if (auto t = j.find("timestamp"); t != j.end() && t->is_number_integer()) {
    const time_t ts = t->get<int64_t>();
    tm utc{};
    gmtime_r(&ts, &utc);
    char b[32];
    std::strftime(b, sizeof b, "%Y-%m-%dT%H:%M:%SZ", &utc);
    out = b;
  }
  out += " " + str("type") + " " + str("queue_id") + " <" + str("sender") + "> -> <" +
         str("recipient") + ">";
  if (auto r = j.find("response"); r != j.end() && r->is_object()) {
    const int code = r->value("code", 0);
    if (code != 0) out += " " + std::to_string(code);
    const std::string enhanced = r->value("enhanced_code", "");
    if (!enhanced.empty()) out += " " + enhanced;
    out += " " + r->value("text", "");
  }
  if (auto p = j.find("peer"); p != j.end() && p->is_object()) {
    out += " (" + p->value("name", "") + ")";
  }
  if (auto c = j.find("bounce_classification"); c != j.end() && c->is_string()) {
    out += " [" + c->get<std::string>() + "]";
  }
  if (auto m = j.find("metadata"); m != j.end()) out += " meta=" + m->dump();
  return out;
}

EventsCli::EventsCli(CLI::App& app) {
  events_ = app.add_subcommand("events", "the event log: what happened to each recipient");
  events_->require_subcommand(1);
  tail_ = events_->add_subcommand("tail", "the last events, oldest first; --follow for new ones");
  tail_->add_option("--lines,-n", lines_, "how many (default 10)");
  tail_->add_option("--type", types_,
                    "only this type (repeatable): Reception, Delivery, TransientFailure, Bounce, "
                    "Expiration, AdminBounce, ...");
  tail_->add_flag("--follow,-f", follow_, "then print new events as they come, until interrupted");
  tail_->add_flag("--json", json_, "the log's JSON lines as they are");
  tail_->add_option("--dir", dir_, "the event log's directory (default: the configuration's)");
}

bool EventsCli::parsed() const { return events_->parsed(); }

int EventsCli::run(const config::Config& cfg) const {
  for (const std::string& t : types_) {
    if (!proto::is_event_type_name(t)) {
      std::fprintf(stderr, "ringmail: events tail: unknown type '%s'\n", t.c_str());
      return config::kUsageExit;
    }
  }
  const std::string dir = dir_.empty() ? config::events_dir(cfg) : dir_;
  auto wanted = [&](const Line& l) {
    return types_.empty() || std::find(types_.begin(), types_.end(), l.type) != types_.end();
  };
  auto print = [&](std::vector<Line>& lines) {
    std::stable_sort(lines.begin(), lines.end(),
                     [](const Line& a, const Line& b) { return a.timestamp < b.timestamp; });
    for (const Line& l : lines) {
      std::printf("%s\n", json_ ? l.text.c_str() : event_line(l.text).c_str());
    }
    std::fflush(stdout);
  };
  std::string error;
  auto all = segments(dir, &error);
  if (!error.empty()) {
    std::fprintf(stderr, "ringmail: events tail: %s\n", error.c_str());
    return 1;
  }
  // The last N of each shard (newest segments first), then the last N
  // of them all by time.
  std::vector<Line> lines;
  std::map<uint32_t, std::pair<std::string, uint64_t>> ends;  // shard: newest segment, offset
  for (auto& [shard, segs] : all) {
    // --follow goes on after the complete lines there are now.
    uint64_t end = 0;
    (void)read_lines(segs.back().path, &end);
    ends[shard] = {segs.back().path, end};
    std::vector<Line> mine;
    for (size_t i = segs.size(); i-- > 0 && mine.size() < lines_;) {
      uint64_t offset = 0;
      std::vector<Line> these;
      for (auto& t : read_lines(segs[i].path, &offset)) {
        Line l = parse(std::move(t));
        if (wanted(l)) these.push_back(std::move(l));
      }
      mine.insert(mine.begin(), std::make_move_iterator(these.begin()),
                  std::make_move_iterator(these.end()));
    }
    if (mine.size() > lines_) mine.erase(mine.begin(), mine.end() - lines_);
    lines.insert(lines.end(), std::make_move_iterator(mine.begin()),
                 std::make_move_iterator(mine.end()));
  }
  std::stable_sort(lines.begin(), lines.end(),
                   [](const Line& a, const Line& b) { return a.timestamp < b.timestamp; });
  if (lines.size() > lines_) lines.erase(lines.begin(), lines.end() - lines_);
  print(lines);
  if (!follow_) return 0;
  for (;;) {
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    std::vector<Line> fresh;
    auto now = segments(dir, &error);
    for (auto& [shard, segs] : now) {
      auto& [path, offset] = ends[shard];
      // The rest of the segment being read, then any newer ones.
      size_t i = 0;
      while (i < segs.size() && !path.empty() && segs[i].path != path) ++i;
      if (i == segs.size()) {
        i = 0;  // a shard seen for the first time, or its segment expired
        offset = 0;
        path = segs.front().path;
      }
      for (; i < segs.size(); ++i) {
        if (segs[i].path != path) {
          path = segs[i].path;
          offset = 0;
        }
        for (auto& t : read_lines(path, &offset)) {
          Line l = parse(std::move(t));
          if (wanted(l)) fresh.push_back(std::move(l));
        }
      }
    }
    print(fresh);
  }
}

}  // namespace ringmail::tools
