#include "proto/aliases.h"

#include <algorithm>

#include "proto/address.h"
#include "proto/ascii.h"

namespace ringmail::proto {

namespace {

std::string without(std::string_view s, std::string_view drop) {
  std::string out;
  for (char c : s) {
    if (drop.find(c) == std::string_view::npos) out += c;
  }
  return out;
}

}  // namespace

Result<AliasTable> AliasTable::parse(std::string_view text, std::string_view drop_chars) {
  AliasTable t;
  size_t lineno = 0;
  while (!text.empty()) {
    ++lineno;
    const size_t nl = text.find('\n');
    const std::string_view line = trim_space(text.substr(0, nl));
    text.remove_prefix(nl == std::string_view::npos ? text.size() : nl + 1);
    if (line.empty() || line.front() == '#') continue;
    auto fail = [&](const std::string& why) {
      return Error{"line " + std::to_string(lineno) + ": " + why};
    };
    const size_t colon = line.find(':');
    if (colon == std::string_view::npos) return fail("no ':' (expected \"user: target, ...\")");
    const std::string_view user = trim_space(line.substr(0, colon));
    if (user.empty() || user.find_first_of(" \t,@") != std::string_view::npos) {
      return fail("bad alias name \"" + std::string(user) + "\"");
    }
    const std::string_view value = trim_space(line.substr(colon + 1));
    if (value.empty()) return fail("alias \"" + std::string(user) + "\" has no target");
    const std::string key = user == "*" ? "*" : without(ascii_lower(user), drop_chars);
    std::vector<AliasTarget>& targets = t.rules_[key];  // a repeated alias adds its targets
    if (value.front() == '|') {
      const std::string_view cmd = trim_space(value.substr(1));
      if (cmd.empty()) return fail("empty pipe command");
      targets.push_back(AliasTarget{AliasTarget::Kind::kPipe, std::string(cmd)});
      continue;
    }
    for (std::string_view rest = value; !rest.empty();) {
      const size_t comma = rest.find(',');
      const std::string_view target = trim_space(rest.substr(0, comma));
      rest.remove_prefix(comma == std::string_view::npos ? rest.size() : comma + 1);
      if (target.empty()) return fail("empty target");
      if (target.find_first_of(" \t") != std::string_view::npos) {
        return fail("bad target \"" + std::string(target) + "\"");
      }
      targets.push_back(AliasTarget{AliasTarget::Kind::kAddress, std::string(target)});
    }
  }
  return t;
}

const std::vector<AliasTarget>* AliasTable::find(const std::string& key) const {
  auto it = rules_.find(key);
  return it == rules_.end() ? nullptr : &it->second;
}

std::string normalize_local(std::string_view local, const AliasOptions& opt, bool strip_suffix) {
  if (strip_suffix) {
    const size_t sep = local.find_first_of(opt.suffix_separators);
    if (sep != std::string_view::npos && sep > 0) local = local.substr(0, sep);
  }
  return without(ascii_lower(local), opt.drop_chars);
}

namespace {

class Resolver {
 public:
  Resolver(const AliasDirectory& dir, const AliasOptions& opt) : dir_(dir), opt_(opt) {}

  Resolution run(const std::string& local, const std::string& domain) {
    expand(local, domain, 0);
    return std::move(r_);
  }

 private:
  void add(Destination d) {
    if (std::find(r_.destinations.begin(), r_.destinations.end(), d) == r_.destinations.end()) {
      r_.destinations.push_back(std::move(d));
    }
  }
  bool failed(Resolution::Status s, std::string detail) {
    if (r_.status == Resolution::Status::kOk) {
      r_.status = s;
      r_.detail = std::move(detail);
      r_.destinations.clear();
    }
    return false;
  }

  // The targets of one rule; `local` (as given) replaces '*' in theirs.
  bool follow(const std::vector<AliasTarget>& targets, const std::string& key,
              const std::string& local, const std::string& domain, size_t depth) {
    path_.push_back(key);
    for (const auto& t : targets) {
      if (t.kind == AliasTarget::Kind::kPipe) {
        add(Destination{Destination::Kind::kPipe, key, t.text});
        continue;
      }
      const size_t at = t.text.rfind('@');
      std::string l = at == std::string::npos ? t.text : t.text.substr(0, at);
      const std::string d = at == std::string::npos ? domain : ascii_lower(t.text.substr(at + 1));
      for (size_t star = 0; (star = l.find('*', star)) != std::string::npos; star += local.size()) {
        l.replace(star, 1, local);  // `local` may hold a '*' itself
      }
      if (!expand(l, d, depth + 1)) break;
    }
    path_.pop_back();
    return r_.status == Resolution::Status::kOk;
  }

  bool expand(const std::string& local, const std::string& domain, size_t depth) {
    if (r_.status != Resolution::Status::kOk) return false;
    if (!dir_.is_local_domain(domain)) {
      add(Destination{Destination::Kind::kRemote, local + "@" + domain, ""});
      return true;
    }
    const std::string full = normalize_local(local, opt_, false);
    const std::string base = normalize_local(local, opt_, true);
    const std::string key = full + "@" + domain;
    const std::string* user = dir_.find_user(domain, base);
    if (std::find(path_.begin(), path_.end(), key) != path_.end() ||
        std::find(path_.begin(), path_.end(), base + "@" + domain) != path_.end()) {
      // Back at an alias on the way here: its user's own mailbox ("alice:
      // alice, alice@elsewhere" keeps a copy), or a loop.
      if (user == nullptr) return failed(Resolution::Status::kLoop, local + "@" + domain);
      add(Destination{Destination::Kind::kMailbox, *user + "@" + domain, ""});
      return true;
    }
    if (depth > opt_.max_depth) return failed(Resolution::Status::kTooDeep, local + "@" + domain);
    const AliasTable* table = dir_.aliases(domain);
    if (table != nullptr) {
      if (const auto* t = table->find(full)) return follow(*t, key, local, domain, depth);
      if (const auto* t = table->find(base))
        return follow(*t, base + "@" + domain, local, domain, depth);
    }
    if (user != nullptr) {
      add(Destination{Destination::Kind::kMailbox, *user + "@" + domain, ""});
      return true;
    }
    if (table != nullptr) {
      if (const auto* t = table->find("*")) {
        const std::string any = "*@" + domain;
        if (std::find(path_.begin(), path_.end(), any) != path_.end()) {
          return failed(Resolution::Status::kLoop,
                        local + "@" + domain);  // the catch-all to itself
        }
        return follow(*t, any, local, domain, depth);
      }
    }
    // RFC 5321 4.5.1: postmaster is always taken. A domain without files
    // takes any mailbox name, as it is (the foundation's behaviour).
    if (base == "postmaster") {
      add(Destination{Destination::Kind::kMailbox, "postmaster@" + domain, ""});
      return true;
    }
    if (dir_.accepts_any_mailbox(domain)) {
      add(Destination{Destination::Kind::kMailbox, ascii_lower(local) + "@" + domain, ""});
      return true;
    }
    return failed(Resolution::Status::kUnknown, local + "@" + domain);
  }

  const AliasDirectory& dir_;
  const AliasOptions& opt_;
  Resolution r_;
  std::vector<std::string> path_;
};

}  // namespace

Resolution resolve_alias(const std::string& local, const std::string& domain,
                         const AliasDirectory& dir, const AliasOptions& opt) {
  return Resolver(dir, opt).run(local, domain);
}

}  // namespace ringmail::proto
