// SRS with the real HMAC (tls/hmac.h) against the implementations mail
// systems run: postsrsd (libsrs2's code, through its TCP lookup tables)
// and Mail::SRS (Shevek's reference, Debian's `srs` command). Each must
// produce our forward addresses for the same secret and day, reverse ours,
// and be reversed by us. Golden values taken from postsrsd 1.10 keep the
// format checked where neither is installed.
#include "proto/srs.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cctype>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <thread>

#include "tls/hmac.h"

namespace ringmail::engine {
namespace {

namespace srs = proto::srs;

constexpr const char* kPostsrsd = "/usr/sbin/postsrsd";
constexpr const char* kMailSrs = "/usr/bin/srs";

srs::Config config(std::string domain, std::vector<std::string> secrets) {
  srs::Config c;
  c.domain = std::move(domain);
  c.secrets = std::move(secrets);
  c.hmac = tls::hmac_sha1;
  return c;
}

int64_t now_s() { return static_cast<int64_t>(time(nullptr)); }

std::string ours(const srs::Config& c, std::string_view sender, int64_t at) {
  std::string out;
  const srs::Error e = srs::forward(c, sender, at, &out);
  return e == srs::Error::kNone ? out : std::string("error: ") + srs::to_string(e);
}

std::string our_reverse(const srs::Config& c, std::string_view address) {
  std::string out;
  const srs::Error e = srs::reverse(c, address, now_s(), &out);
  return e == srs::Error::kNone ? out : std::string("error: ") + srs::to_string(e);
}

std::string lower(std::string s) {
  for (char& ch : s) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  return s;
}

// Senders of each kind: plain, mixed case, SRS0 from another forwarder,
// SRS1 from a chain, another separator.
const std::vector<std::string> kSenders = {
    "user@orig.example",
    "First.Last+tag@Sub.Orig.Example",
    "SRS0=abcd=TT=orig.example=user@fwd1.example",
    "SRS1=wxyz=fwd0.example==abcd=TT=orig.example=user@fwd1.example",
    "SRS0+abcd=TT=orig.example=user@fwd1.example",
};

// Values postsrsd 1.10 (Debian 12) gave for secret "tops3cr3t", domain
// fwd.example, on day 20780 (stamp "JM").
TEST(SrsGolden, Postsrsd110) {
  const srs::Config c = config("fwd.example", {"tops3cr3t"});
  const int64_t day = 20780 * int64_t{86400} + 3600;
  EXPECT_EQ(ours(c, "user@orig.example", day), "SRS0=WX0N=JM=orig.example=user@fwd.example");
  EXPECT_EQ(ours(c, "SRS0=abcd=TT=orig.example=user@fwd1.example", day),
            "SRS1=MeHq=fwd1.example==abcd=TT=orig.example=user@fwd.example");
  std::string out;
  ASSERT_EQ(srs::reverse(c, "srs0=wx0n=jm=orig.example=user@fwd.example", day + 21 * 86400, &out),
            srs::Error::kNone);
  EXPECT_EQ(out, "user@orig.example");
  EXPECT_EQ(srs::reverse(c, "SRS0=WX0N=JM=orig.example=user@fwd.example", day + 22 * 86400, &out),
            srs::Error::kExpired);
  EXPECT_EQ(srs::reverse(c, "SRS0=WX0M=JM=orig.example=user@fwd.example", day, &out),
            srs::Error::kBadHash);
}

// Compares ours with `theirs(sender)` for each sender; the day is read on
// both sides of their call so that midnight cannot make a false failure.
template <typename Theirs>
void expect_same_forward(const srs::Config& c, Theirs theirs) {
  for (const std::string& sender : kSenders) {
    const int64_t before = now_s();
    const std::string t = theirs(sender);
    const int64_t after = now_s();
    if (t == ours(c, sender, before)) continue;
    EXPECT_EQ(t, ours(c, sender, after)) << sender;
  }
}

std::string run(const std::string& cmd) {
  std::string out;
  FILE* p = popen(cmd.c_str(), "r");
  if (p == nullptr) return "error: popen";
  char buf[512];
  while (fgets(buf, sizeof buf, p) != nullptr) out += buf;
  pclose(p);
  while (!out.empty() && (out.back() == '\n' || out.back() == '\r')) out.pop_back();
  return out;
}

// Mail::SRS through Debian's `srs` command (the arguments hold no shell
// metacharacters but '+', '=' and '@').
std::string mail_srs(const std::string& args) {
  return run(std::string(kMailSrs) + " --secret=new --secret=old " + args + " 2>/dev/null");
}

TEST(SrsInterop, MailSrs) {
  if (access(kMailSrs, X_OK) != 0) GTEST_SKIP() << kMailSrs << " missing (Debian package srs)";
  const srs::Config c = config("fwd.example", {"new", "old"});
  expect_same_forward(
      c, [](const std::string& s) { return mail_srs("--alias=fwd.example --forward " + s); });
  for (const std::string& sender : kSenders) {
    const std::string a = ours(c, sender, now_s());
    if (sender.starts_with("SRS1")) continue;  // reverses to the first forwarder, not to `sender`
    EXPECT_EQ(mail_srs("--reverse " + a), sender);
    EXPECT_EQ(lower(our_reverse(c, lower(mail_srs("--alias=fwd.example --forward " + sender)))),
              lower(sender));
  }
  // Signed with the old secret: both still accept it.
  const std::string old = ours(config("fwd.example", {"old"}), "user@orig.example", now_s());
  EXPECT_EQ(mail_srs("--reverse " + old), "user@orig.example");
  EXPECT_EQ(our_reverse(c, old), "user@orig.example");
}

uint16_t free_port() {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  if (bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
      getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
    close(fd);
    return 0;
  }
  close(fd);
  return ntohs(a.sin_port);
}

// postsrsd on loopback ports of its own, stopped at the end of the test.
class Postsrsd {
 public:
  explicit Postsrsd(const std::string& secrets) {
    dir_ =
        std::filesystem::temp_directory_path() / ("ringmail-postsrsd-" + std::to_string(getpid()));
    std::filesystem::create_directories(dir_);
    std::ofstream(dir_ / "secret") << secrets;
    forward_port_ = free_port();
    reverse_port_ = free_port();
    const std::string secret = (dir_ / "secret").string(), f = "-f" + std::to_string(forward_port_),
                      r = "-r" + std::to_string(reverse_port_);
    pid_ = fork();
    if (pid_ == 0) {
      const int null = open("/dev/null", O_WRONLY);
      dup2(null, STDOUT_FILENO);
      dup2(null, STDERR_FILENO);
      execl(kPostsrsd, kPostsrsd, ("-s" + secret).c_str(), "-dfwd.example", "-l127.0.0.1", "-4",
            f.c_str(), r.c_str(), static_cast<char*>(nullptr));
      _exit(127);
    }
  }
  ~Postsrsd() {
    if (pid_ > 0) {
      kill(pid_, SIGTERM);
      waitpid(pid_, nullptr, 0);
    }
    std::filesystem::remove_all(dir_);
  }
  // The address of a "200 <address>" answer; other answers ("500 ...", ""
  // when it never answered) as they are.
  std::string forward(const std::string& a) { return query(forward_port_, a); }
  std::string reverse(const std::string& a) { return query(reverse_port_, a); }

 private:
  static std::string query(uint16_t port, const std::string& address) {
    for (int attempt = 0; attempt < 50; ++attempt) {  // until it listens, at most 5 s
      const int fd = socket(AF_INET, SOCK_STREAM, 0);
      sockaddr_in a{};
      a.sin_family = AF_INET;
      a.sin_port = htons(port);
      a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
        close(fd);
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
        continue;
      }
      const std::string req = "get " + address + "\n";
      std::string line;
      char c;
      if (write(fd, req.data(), req.size()) == static_cast<ssize_t>(req.size())) {
        while (read(fd, &c, 1) == 1 && c != '\n') line += c;
      }
      close(fd);
      return line.starts_with("200 ") ? line.substr(4) : line;
    }
    return "";
  }

  std::filesystem::path dir_;
  uint16_t forward_port_ = 0, reverse_port_ = 0;
  pid_t pid_ = -1;
};

TEST(SrsInterop, Postsrsd) {
  if (access(kPostsrsd, X_OK) != 0)
    GTEST_SKIP() << kPostsrsd << " missing (Debian package postsrsd)";
  Postsrsd p("new\nold\n");
  ASSERT_FALSE(p.forward("user@orig.example").empty()) << "postsrsd did not answer";
  const srs::Config c = config("fwd.example", {"new", "old"});
  expect_same_forward(c, [&](const std::string& s) { return p.forward(s); });
  for (const std::string& sender : kSenders) {
    if (sender.starts_with("SRS1")) continue;
    EXPECT_EQ(p.reverse(ours(c, sender, now_s())), sender);
    EXPECT_EQ(lower(our_reverse(c, lower(p.forward(sender)))), lower(sender));
  }
  const std::string old = ours(config("fwd.example", {"old"}), "user@orig.example", now_s());
  EXPECT_EQ(p.reverse(old), "user@orig.example");
  // Both refuse a forged hash.
  std::string forged = ours(c, "user@orig.example", now_s());
  forged[5] = forged[5] == 'A' || forged[5] == 'a' ? 'B' : 'A';
  EXPECT_TRUE(p.reverse(forged).starts_with("500")) << p.reverse(forged);
  EXPECT_EQ(our_reverse(c, forged), "error: bad SRS hash");
}

}  // namespace
}  // namespace ringmail::engine
