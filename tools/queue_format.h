// The queue admin API (docs/admin-api.md) on the command line's side, as
// pure functions: JSON text in, text out, no I/O and no clock, so that
// `ringmail queue`, mailq and their tests share them. Human output gives
// times in UTC, as `ringmail status` does; the mailq layout gives local
// time, as Postfix's does. Strings that come from outside (replies of
// remote servers, addresses) are printed with control characters as '?'.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "proto/result.h"

namespace ringmail::tools {

// A duration for --for and --older-than: "90s", "30m", "2h", "1d", plain
// seconds ("3600"), or a sum of units ("1h30m"). Seconds, or one line
// saying what is wrong.
Result<int64_t> parse_duration(std::string_view text);

// A unix time as "2026-12-06 17:45:44 UTC"; seconds as "45s", "12m 05s",
// "2h 00m", "3d 04h".
std::string utc_text(int64_t t);
std::string span_text(int64_t s);

// Which messages flush, hold, release, delete and bounce work on: message
// ids, --domain, --sender or --all, one kind only.
struct QueueSelector {
  std::vector<std::string> ids;
  std::optional<std::string> domain;
  std::optional<std::string> sender;
  bool all = false;
};

// The request body for a selector: {"ids": [...]}, {"domain": "D"},
// {"sender": "A"} or {"all": true}. No selector at all is {"all": true}
// when `nothing_means_all`, else an error asking for one (delete and
// bounce); two kinds at once are an error.
Result<std::string> selector_body(const QueueSelector& s, bool nothing_means_all);

// The filters of GET /api/queue/messages ("" and nullopt: not given).
struct ListFilter {
  std::string domain;
  std::optional<std::string> sender;  // "" or "<>": the null sender
  std::string rcpt;
  std::optional<int64_t> older_than_s;
  std::string state;  // waiting, in_flight or held
};

// Percent-encodes all but RFC 3986's unreserved characters.
std::string url_encode(std::string_view s);

// "/api/queue/messages" with the filters as its query (limit= and
// cursor= are the pager's, tools/admin_client.h).
std::string list_target(const ListFilter& f);

// The one line of an answer that is not a success: its "error" text, else
// "ringmaild answered STATUS".
std::string answer_error(int status, std::string_view body);

// A page of GET /api/queue/messages: how many messages it holds and its
// next_cursor (nullopt when null: the last page).
struct PageInfo {
  size_t messages = 0;
  std::optional<std::string> next_cursor;
};
Result<PageInfo> page_info(std::string_view page_json);

// `ringmail queue summary`: GET /api/queue as a qshape-like table (one
// line per domain, a TOTAL line first: recipients, the age buckets, held,
// in flight, the last error shortened) and the suspended destinations.
Result<std::string> format_summary(std::string_view json);

// `ringmail queue list`: the messages of one page as blocks of text (id,
// size, arrival, sender; each recipient with its state, attempts, next
// attempt and last reply), each followed by a blank line.
Result<std::string> format_list_page(std::string_view page_json);

// `ringmail queue show`: GET /api/queue/messages/ID as the list's block,
// client and helo, then the header section, or with `content` in the
// answer (?body=1) the whole message as stored.
Result<std::string> format_message(std::string_view json);

// `ringmail queue list --json` streams one document, {"messages":[...]}:
// the messages of one page, compact, separated by commas; `*first` says
// whether none has been written yet (no comma before the first).
Result<std::string> json_page_messages(std::string_view page_json, bool* first);

// mailq, `ringmail-sendmail -bp`: Postfix's `postqueue -p` layout, one page
// at a time. The header comes before the first message; `totals` adds up
// what the trailer says.
struct MailqTotals {
  uint64_t messages = 0;
  uint64_t bytes = 0;
};
Result<std::string> format_mailq_page(std::string_view page_json, MailqTotals* totals);
// "-- N Kbytes in M Requests." or "Mail queue is empty".
std::string format_mailq_end(const MailqTotals& totals);

// The answer of POST /api/queue/ACTION (flush, hold, release, delete,
// bounce) as one line, "held 3 messages", and the ids that were not in
// the queue.
struct ActionOutcome {
  std::string line;
  std::vector<std::string> unknown;
};
Result<ActionOutcome> format_action(std::string_view action, std::string_view json);

// The answers of POST /api/destinations/DOMAIN/suspend and /resume as one
// line.
Result<std::string> format_suspended(std::string_view json);
Result<std::string> format_resumed(std::string_view json);

}  // namespace ringmail::tools
