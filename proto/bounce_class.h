// Bounce classification: which of a small closed set of reasons an SMTP
// response (or ringmail's own failure text) stands for, so that a sender
// can tell a mistyped address from a full mailbox, a spam block or a rate
// limit without reading each receiver's prose.
//
// A classifier is an ordered list of rules, each a class and regular
// expressions. The input is one line, "CODE ENHANCED TEXT" ("550 5.1.1
// The email account that you tried to reach does not exist"), with the
// code left out when there was no SMTP reply (a DNS failure, an expiry)
// and the enhanced code left out when the server gave none. Rules are
// tried in order; the first rule with a pattern that matches somewhere in
// the line (ECMAScript, case-insensitive, a search rather than a full
// match) gives the class; nothing matching gives Uncategorized.
//
// Pure: the rules come from the caller (config/bounce_rules.h reads them
// from TOML and holds the shipped default set, docs/bounce-classes.md).
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <regex>
#include <string>
#include <string_view>
#include <vector>

#include "proto/result.h"

namespace ringmail::proto {

enum class BounceClass : uint8_t {
  InvalidRecipient,      // the mailbox does not exist
  BadDomain,             // the recipient's domain does not exist or takes no mail
  InactiveMailbox,       // the mailbox exists but is disabled or inactive
  QuotaIssues,           // the mailbox is full
  SpamBlock,             // the sending IP or domain is blocked (block list, reputation)
  SpamContent,           // this message was taken for spam or malware
  PolicyRelated,         // refused by the receiver's policy (size, relay, content rules)
  AuthenticationFailed,  // SPF, DKIM, DMARC or reverse DNS did not pass
  DNSFailure,            // the receiver's DNS could not be resolved for now
  MessageExpired,        // ringmail (or the receiver) gave up after its queue lifetime
  RateLimited,           // too much mail, too fast: try again more slowly
  Uncategorized,         // no rule matched
};
inline constexpr size_t kBounceClasses = 12;

// The class's name as written above ("InvalidRecipient"): in rule files,
// logs and events.
std::string_view bounce_class_name(BounceClass c);
// The class named `name` (exactly, case-sensitive); nullopt if none is.
std::optional<BounceClass> bounce_class_from_name(std::string_view name);

// One rule: `cls` when any of `patterns` matches.
struct BounceRule {
  BounceClass cls = BounceClass::Uncategorized;
  std::vector<std::string> patterns;
};

// Immutable once built: its const members may be called from every shard
// at once (the default set is one process-wide instance).
class BounceClassifier {
 public:
  // Texts longer than this are classified by their first
  // kLineBytesMax bytes: std::regex recurses per input character, so an
  // unbounded reply could exhaust the stack. SMTP reply lines are at most
  // 512 bytes (RFC 5321 4.5.3.1.5); this leaves room for a few of them.
  static constexpr size_t kLineBytesMax = 2048;

  // Which rule (and which of its patterns) matched, both counted from 0
  // in the order given to build().
  struct Match {
    BounceClass cls;
    size_t rule;
    size_t pattern;
  };

  // No rules: everything is Uncategorized.
  BounceClassifier() = default;

  // Compiles every pattern once. An error names the rule and the pattern,
  // counted from 1 ("rule 3, pattern 2: bad regular expression '(': ...").
  static Result<BounceClassifier> build(std::vector<BounceRule> rules);

  // Whether `pattern` compiles (and is not empty), with the reason if
  // not: for a loader that wants to name the line of a bad pattern.
  static Result<void> check_pattern(const std::string& pattern);

  // The line "CODE ENHANCED TEXT" that classify() matches: the code when
  // it is a reply code (200..599), the enhanced code when not empty, and
  // the text, put through normalize().
  static std::string line_of(int code, std::string_view enhanced, std::string_view text);

  // A reply as one line, so a phrase a server wrapped over several lines
  // still matches: line breaks become spaces, runs of blanks one space,
  // "550-" at the start "550 ", and the continuation prefixes of a
  // multi-line reply that repeat the first line's codes ("550-5.7.1",
  // "550-", and the words "550" and "5.7.1") are dropped. Gmail's
  //   421-4.7.28 ... an unusual rate of\r\n421-4.7.28 unsolicited mail ...
  // becomes "421 4.7.28 ... an unusual rate of unsolicited mail ...".
  // Applying it twice changes nothing.
  static std::string normalize(std::string_view reply);

  BounceClass classify(int code, std::string_view enhanced, std::string_view text) const;
  // The same for a reply in one string: a line as above, the raw lines of
  // a reply, or proto::Reply::summary() ("550 5.1.1 text 5.1.1 more").
  BounceClass classify_line(std::string_view line) const;
  // The first rule and pattern that match normalize(line); nullopt for
  // none.
  std::optional<Match> match_line(std::string_view line) const;

  size_t rule_count() const { return rules_.size(); }
  const BounceRule& rule(size_t i) const { return rules_[i].source; }

 private:
  struct Compiled {
    BounceRule source;
    std::vector<std::regex> regexes;
  };
  std::vector<Compiled> rules_;
};

}  // namespace ringmail::proto
