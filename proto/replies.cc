#include "proto/replies.h"

namespace ringmail::proto::reply {

std::string early_talker(std::string_view hostname) {
  return "554 5.7.1 " + std::string(hostname) + " Talking before the greeting is not allowed";
}

std::string spf_fail(std::string_view domain, std::string_view explanation,
                     std::string_view client_ip) {
  std::string r = "550 5.7.23 SPF check failed for " + std::string(domain);
  if (explanation.empty())
    return r + ": the sending address is not allowed from " + std::string(client_ip);
  return r + ": " + std::string(explanation);
}

std::string dmarc_reject(std::string_view from_domain) {
  return "550 5.7.1 Message refused by the DMARC policy of " + std::string(from_domain);
}

std::string bad_srs_address(std::string_view why) {
  return "550 5.1.1 Not a valid SRS address (" + std::string(why) + ")";
}

std::string local_delivery_failed(std::string_view why) {
  return "550 5.3.0 Local delivery failed: " + std::string(why);
}

}  // namespace ringmail::proto::reply
