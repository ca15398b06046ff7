#include "proto/dns.h"

namespace ringmail::proto {

const char* to_string(DnsStatus s) {
  switch (s) {
    case DnsStatus::kOk:
      return "ok";
    case DnsStatus::kNoData:
      return "no such record";
    case DnsStatus::kNxDomain:
      return "no such domain";
    case DnsStatus::kTempFail:
      return "temporary DNS failure";
  }
  return "?";
}

}  // namespace ringmail::proto
