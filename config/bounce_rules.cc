#include "config/bounce_rules.h"

#include <toml++/toml.h>

#include <cstdio>
#include <cstdlib>
#include <utility>
#include <vector>

#include "config/bounce_rules_default.h"  // kBounceRulesToml, generated

namespace ringmail::config {

namespace {

std::string rule_at(const std::string& source, size_t index, const toml::node& n) {
  return source + ": rule " + std::to_string(index + 1) + " (line " +
         std::to_string(n.source().begin.line) + "): ";
}

}  // namespace

Result<proto::BounceClassifier> parse_bounce_rules(std::string_view text,
                                                   const std::string& source) {
  toml::table t;
  try {
    t = toml::parse(text, source);
  } catch (const toml::parse_error& e) {
    return Error{source + ":" + std::to_string(e.source().begin.line) + ": " +
                 std::string(e.description())};
  }
  for (auto&& [k, v] : t) {
    if (k.str() != "rule") {
      return Error{source + ":" + std::to_string(v.source().begin.line) + ": " +
                   std::string(k.str()) + ": unknown key (only [[rule]] tables)"};
    }
  }
  std::vector<proto::BounceRule> rules;
  if (const toml::node* n = t.get("rule")) {
    const toml::array* arr = n->as_array();
    if (arr == nullptr || (!arr->empty() && !arr->is_array_of_tables())) {
      return Error{source + ":" + std::to_string(n->source().begin.line) +
                   ": rule: must be an array of tables ([[rule]])"};
    }
    for (size_t i = 0; i < arr->size(); ++i) {
      const toml::table& rt = *(*arr)[i].as_table();
      const std::string at = rule_at(source, i, rt);
      for (auto&& [k, v] : rt) {
        if (k.str() != "class" && k.str() != "patterns") {
          return Error{at + std::string(k.str()) + ": unknown key (class, patterns)"};
        }
      }
      proto::BounceRule rule;
      const toml::node* cn = rt.get("class");
      if (cn == nullptr) return Error{at + "class is missing"};
      if (!cn->is_string()) return Error{at + "class must be a string"};
      const std::string name = cn->value<std::string>().value();
      const auto cls = proto::bounce_class_from_name(name);
      if (!cls) return Error{at + "unknown class \"" + name + "\" (see docs/bounce-classes.md)"};
      rule.cls = *cls;
      const toml::node* pn = rt.get("patterns");
      if (pn == nullptr) return Error{at + "patterns is missing"};
      const toml::array* parr = pn->as_array();
      if (parr == nullptr) return Error{at + "patterns must be an array of strings"};
      if (parr->empty()) return Error{at + "patterns is empty (the rule would never match)"};
      for (size_t j = 0; j < parr->size(); ++j) {
        const toml::node& p = (*parr)[j];
        if (!p.is_string()) {
          return Error{at + "pattern " + std::to_string(j + 1) + " must be a string"};
        }
        std::string pattern = p.value<std::string>().value();
        if (Result<void> ok = proto::BounceClassifier::check_pattern(pattern); !ok) {
          return Error{at + "pattern " + std::to_string(j + 1) + " (line " +
                       std::to_string(p.source().begin.line) + "): " + ok.error()};
        }
        rule.patterns.push_back(std::move(pattern));
      }
      rules.push_back(std::move(rule));
    }
  }
  auto built = proto::BounceClassifier::build(std::move(rules));
  if (!built) {
    // Only a rule without patterns is left for build() to find; it counts
    // rules the same way.
    return Error{source + ": " + built.error()};
  }
  return std::move(*built);
}

std::string_view default_bounce_rules_text() { return kBounceRulesToml; }

const proto::BounceClassifier& default_bounce_classifier() {
  static const proto::BounceClassifier classifier = [] {
    auto c = parse_bounce_rules(kBounceRulesToml, "bounce_rules.toml (built in)");
    if (!c) {
      std::fprintf(stderr, "ringmail: %s\n", c.error().c_str());
      std::abort();
    }
    return std::move(*c);
  }();
  return classifier;
}

}  // namespace ringmail::config
