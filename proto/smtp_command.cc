#include "proto/smtp_command.h"

namespace ringmail::proto {
namespace {

struct VerbName {
  std::string_view name;
  Verb verb;
};
constexpr VerbName kVerbs[] = {
    {"HELO", Verb::kHelo},
    {"EHLO", Verb::kEhlo},
    {"MAIL", Verb::kMail},
    {"RCPT", Verb::kRcpt},
    {"DATA", Verb::kData},
    {"BDAT", Verb::kBdat},
    {"RSET", Verb::kRset},
    {"NOOP", Verb::kNoop},
    {"QUIT", Verb::kQuit},
    {"HELP", Verb::kHelp},
    {"VRFY", Verb::kVrfy},
    {"EXPN", Verb::kExpn},
    {"STARTTLS", Verb::kStarttls},
    {"AUTH", Verb::kAuth},
    // HTTP methods: someone pointed a browser or an HTTP tool at an SMTP port
    // (or a cross-protocol attack); answered with an error and closed.
    {"GET", Verb::kHttp},
    {"POST", Verb::kHttp},
    {"HEAD", Verb::kHttp},
    {"PUT", Verb::kHttp},
    {"OPTIONS", Verb::kHttp},
    {"CONNECT", Verb::kHttp},
    {"DELETE", Verb::kHttp},
    {"PATCH", Verb::kHttp},
};

std::string_view trim_right(std::string_view s) {
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

}  // namespace

Command parse_command(std::string_view line) {
  Command cmd;
  size_t sp = line.find(' ');
  std::string_view verb = line.substr(0, sp);
  for (const auto& v : kVerbs) {
    if (iequals(verb, v.name)) {
      cmd.verb = v.verb;
      break;
    }
  }
  if (sp != std::string_view::npos) cmd.args = trim_right(line.substr(sp + 1));
  return cmd;
}

PathError parse_path_args(std::string_view args, std::string_view prefix, bool is_mail,
                          PathArgs& out) {
  out.params.clear();
  if (args.size() < prefix.size() || !iequals(args.substr(0, prefix.size()), prefix)) {
    return PathError::kNoPrefix;
  }
  args.remove_prefix(prefix.size());
  if (!args.empty() && args[0] == ' ') args.remove_prefix(1);
  // A path must be in angle brackets (RFC 5321 4.1.2); a bare address is a
  // syntax error of the command, not of the address.
  if (args.empty() || args[0] != '<') return PathError::kNoPrefix;
  size_t consumed = 0;
  switch (parse_path(args, is_mail, !is_mail, out.address, consumed)) {
    case AddressError::kNone:
      break;
    case AddressError::kTooLong:
      return PathError::kTooLong;
    case AddressError::kSyntax:
      return PathError::kBadAddress;
  }
  args.remove_prefix(consumed);
  // esmtp-param = esmtp-keyword ["=" esmtp-value], separated by spaces.
  while (!args.empty()) {
    if (args[0] != ' ') return PathError::kBadParams;
    while (!args.empty() && args[0] == ' ') args.remove_prefix(1);
    if (args.empty()) break;
    size_t end = args.find(' ');
    std::string_view param = args.substr(0, end);
    args.remove_prefix(param.size());
    size_t eq = param.find('=');
    std::string_view key = param.substr(0, eq);
    std::string_view value =
        eq == std::string_view::npos ? std::string_view() : param.substr(eq + 1);
    if (key.empty()) return PathError::kBadParams;
    for (char c : key) {
      if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
            c == '-')) {
        return PathError::kBadParams;
      }
    }
    for (char c : value) {
      if (static_cast<unsigned char>(c) < 33 || c == '=') return PathError::kBadParams;
    }
    out.params.emplace_back(key, value);
  }
  return PathError::kNone;
}

bool parse_bdat_args(std::string_view args, BdatArgs& out) {
  out = BdatArgs{};
  size_t i = 0;
  if (args.empty()) return false;
  while (i < args.size() && args[i] >= '0' && args[i] <= '9') {
    if (i >= 18) return false;  // far beyond any size limit; avoids overflow
    out.size = out.size * 10 + static_cast<uint64_t>(args[i] - '0');
    ++i;
  }
  if (i == 0) return false;
  std::string_view rest = args.substr(i);
  if (rest.empty()) return true;
  if (rest[0] != ' ') return false;
  while (!rest.empty() && rest[0] == ' ') rest.remove_prefix(1);
  if (!iequals(rest, "LAST")) return false;
  out.last = true;
  return true;
}

bool is_valid_helo(std::string_view name) {
  if (name.empty() || name.size() > 255) return false;
  for (char ch : name) {
    const auto c = static_cast<unsigned char>(ch);
    if (c <= 32 || c == 127) return false;
  }
  return true;
}

}  // namespace ringmail::proto
