#include "proto/bounce_class.h"

#include <array>
#include <utility>

namespace ringmail::proto {

namespace {

constexpr std::array<std::string_view, kBounceClasses> kNames = {
    "InvalidRecipient", "BadDomain",      "InactiveMailbox", "QuotaIssues",
    "SpamBlock",        "SpamContent",    "PolicyRelated",   "AuthenticationFailed",
    "DNSFailure",       "MessageExpired", "RateLimited",     "Uncategorized",
};

Result<std::regex> compile(const std::string& pattern) {
  if (pattern.empty()) return Error{"empty regular expression (it would match all)"};
  try {
    return std::regex(pattern, std::regex::ECMAScript | std::regex::icase | std::regex::optimize);
  } catch (const std::regex_error& e) {
    return Error{"bad regular expression '" + pattern + "': " + e.what()};
  }
}

}  // namespace

std::string_view bounce_class_name(BounceClass c) {
  const size_t i = static_cast<size_t>(c);
  return i < kNames.size() ? kNames[i] : "Uncategorized";
}

std::optional<BounceClass> bounce_class_from_name(std::string_view name) {
  for (size_t i = 0; i < kNames.size(); ++i) {
    if (kNames[i] == name) return static_cast<BounceClass>(i);
  }
  return std::nullopt;
}

Result<void> BounceClassifier::check_pattern(const std::string& pattern) {
  Result<std::regex> re = compile(pattern);
  if (!re) return Error{re.error()};
  return {};
}

Result<BounceClassifier> BounceClassifier::build(std::vector<BounceRule> rules) {
  BounceClassifier c;
  c.rules_.reserve(rules.size());
  for (size_t r = 0; r < rules.size(); ++r) {
    if (rules[r].patterns.empty()) {
      return Error{"rule " + std::to_string(r + 1) + ": no patterns (it would never match)"};
    }
    Compiled compiled;
    compiled.regexes.reserve(rules[r].patterns.size());
    for (size_t p = 0; p < rules[r].patterns.size(); ++p) {
      const std::string& pattern = rules[r].patterns[p];
      Result<std::regex> re = compile(pattern);
      if (!re) {
        return Error{"rule " + std::to_string(r + 1) + ", pattern " + std::to_string(p + 1) + ": " +
                     re.error()};
      }
      compiled.regexes.push_back(std::move(*re));
    }
    compiled.source = std::move(rules[r]);
    c.rules_.push_back(std::move(compiled));
  }
  return c;
}

std::string BounceClassifier::line_of(int code, std::string_view enhanced, std::string_view text) {
  std::string line;
  if (code >= 200 && code <= 599) line = std::to_string(code);
  if (!enhanced.empty()) {
    if (!line.empty()) line += ' ';
    line += enhanced;
  }
  if (!text.empty()) {
    if (!line.empty()) line += ' ';
    line += text;
  }
  // One line: a multi-line reply's line breaks become spaces, so that `.`
  // and `$` mean the same whatever the reply's shape.
  for (char& ch : line) {
    if (ch == '\r' || ch == '\n') ch = ' ';
  }
  return line;
}

BounceClass BounceClassifier::classify(int code, std::string_view enhanced,
                                       std::string_view text) const {
  return classify_line(line_of(code, enhanced, text));
}

BounceClass BounceClassifier::classify_line(std::string_view line) const {
  const std::optional<Match> m = match_line(line);
  return m ? m->cls : BounceClass::Uncategorized;
}

std::optional<BounceClassifier::Match> BounceClassifier::match_line(std::string_view line) const {
  if (line.size() > kLineBytesMax) line = line.substr(0, kLineBytesMax);
  for (size_t r = 0; r < rules_.size(); ++r) {
    for (size_t p = 0; p < rules_[r].regexes.size(); ++p) {
      if (std::regex_search(line.begin(), line.end(), rules_[r].regexes[p])) {
        return Match{rules_[r].source.cls, r, p};
      }
    }
  }
  return std::nullopt;
}

}  // namespace ringmail::proto
