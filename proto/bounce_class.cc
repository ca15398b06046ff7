#include "proto/bounce_class.h"

#include <array>
#include <string>
#include <utility>

#include "proto/dsn.h"  // is_enhanced_status

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

bool is_blank(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }
bool is_digit(char c) { return c >= '0' && c <= '9'; }

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
  return normalize(line);
}

std::string BounceClassifier::normalize(std::string_view reply) {
  if (reply.size() > kLineBytesMax) reply = reply.substr(0, kLineBytesMax);
  // The words, split at blanks and line breaks.
  std::vector<std::string_view> words;
  size_t i = 0;
  while (i < reply.size()) {
    while (i < reply.size() && is_blank(reply[i])) ++i;
    const size_t start = i;
    while (i < reply.size() && !is_blank(reply[i])) ++i;
    if (i > start) words.push_back(reply.substr(start, i - start));
  }
  std::string code, enhanced;
  size_t first = 0;  // the first word of the text proper
  if (!words.empty() && words[0].size() >= 3 && is_digit(words[0][0]) && is_digit(words[0][1]) &&
      is_digit(words[0][2]) && (words[0].size() == 3 || words[0][3] == '-')) {
    code = std::string(words[0].substr(0, 3));
    if (words[0].size() > 4) {
      // "550-5.1.1" in one word: the code and the enhanced code.
      words[0].remove_prefix(4);
    } else {
      first = 1;
    }
  }
  if (first < words.size() && is_enhanced_status(words[first])) {
    enhanced = std::string(words[first++]);
  }
  std::string out = code;
  if (!enhanced.empty()) out += (out.empty() ? "" : " ") + enhanced;
  for (size_t w = first; w < words.size(); ++w) {
    std::string_view word = words[w];
    // Continuation prefixes: "550-5.1.1", "550-", "550", then the
    // enhanced code alone.
    if (!code.empty() && word.substr(0, 3) == code && (word.size() == 3 || word[3] == '-')) {
      if (word.size() <= 4) continue;
      word.remove_prefix(4);
    }
    if (!enhanced.empty() && word == enhanced) continue;
    if (!out.empty()) out += ' ';
    out += word;
  }
  return out;
}

BounceClass BounceClassifier::classify(int code, std::string_view enhanced,
                                       std::string_view text) const {
  const std::optional<Match> m = match_line(line_of(code, enhanced, text));
  return m ? m->cls : BounceClass::Uncategorized;
}

BounceClass BounceClassifier::classify_line(std::string_view line) const {
  const std::optional<Match> m = match_line(line);
  return m ? m->cls : BounceClass::Uncategorized;
}

std::optional<BounceClassifier::Match> BounceClassifier::match_line(std::string_view reply) const {
  const std::string line = normalize(reply);
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
