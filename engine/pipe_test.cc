// run_pipe: exit codes, the environment, input larger than a pipe's
// buffer (read or not), output captured for the reason, the timeout.
#include "engine/pipe.h"

#include <gtest/gtest.h>
#include <signal.h>

namespace ringmail::engine {
namespace {

using K = proto::Outcome;

TEST(Pipe, ExitCodesAndInput) {
  ::signal(SIGPIPE, SIG_IGN);  // as ringmaild does
  const std::string big(1 << 20, 'x');
  auto r = run_pipe("test \"$(wc -c)\" = 1048576", big, {}, 10);
  EXPECT_EQ(r.outcome, K::kOk) << r.reply;
  r = run_pipe("exit 0", big, {}, 10);  // never reads its input
  EXPECT_EQ(r.outcome, K::kOk) << r.reply;
  r = run_pipe("test \"$RECIPIENT\" = a@b.test", "", {{"RECIPIENT", "a@b.test"}}, 10);
  EXPECT_EQ(r.outcome, K::kOk) << r.reply;
  r = run_pipe("echo busy, later; exit 75", "m", {}, 10);
  EXPECT_EQ(r.outcome, K::kTemp);
  EXPECT_EQ(r.reply, "exit 75: busy, later");
  r = run_pipe("echo no such list >&2; exit 1", "m", {}, 10);
  EXPECT_EQ(r.outcome, K::kPerm);
  EXPECT_EQ(r.reply, "exit 1: no such list");
  r = run_pipe("kill -TERM $$", "m", {}, 10);
  EXPECT_EQ(r.outcome, K::kPerm);
  EXPECT_EQ(r.reply, "killed by signal 15");
}

TEST(Pipe, TimeoutIsTemporary) {
  auto r = run_pipe("sleep 30 & sleep 30", "m", {}, 1);
  EXPECT_EQ(r.outcome, K::kTemp);
  EXPECT_EQ(r.reply, "timed out after 1 s");
}

}  // namespace
}  // namespace ringmail::engine
