// libFuzzer target: command line parsing (verbs, MAIL/RCPT paths and
// parameters, BDAT arguments, HELO names).
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "proto/smtp_command.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view line(reinterpret_cast<const char*>(data), size);
  using namespace ringmail::proto;
  Command cmd = parse_command(line);
  if (cmd.args.size() > line.size()) __builtin_trap();
  PathArgs p;
  for (bool mail : {true, false}) {
    if (parse_path_args(cmd.args, mail ? "FROM:" : "TO:", mail, p) == PathError::kNone) {
      // A parsed address must survive its own serialization.
      std::string s = "<" + p.address.to_string() + ">";
      Address again;
      size_t consumed = 0;
      if (!p.address.is_null() && !p.address.domain.empty() &&
          parse_path(s, false, false, again, consumed) != AddressError::kNone) {
        __builtin_trap();
      }
      if (!p.address.domain.empty() &&
          (again.local != p.address.local || again.domain != p.address.domain)) {
        __builtin_trap();
      }
    }
  }
  BdatArgs b;
  (void)parse_bdat_args(cmd.args, b);
  (void)is_valid_helo(cmd.args);
  return 0;
}
