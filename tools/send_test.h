// ringmail send-test (tools/ringmail.cc): the user story's last step. A test
// message submitted over STARTTLS (or implicit TLS) with AUTH, the session
// shown as it goes, failures explained in plain words.
#pragma once

#include <string>

namespace ringmail::tools {

struct SendTest {
  std::string to;
  std::string user;
  std::string password;
  std::string server = "localhost:587";
  std::string ca_file;   // trust this CA instead of the system's
  std::string tls_name;  // the name the certificate must be for (SNI too); "" = the server's host
  bool implicit_tls = false;  // port 465 (also when the port is 465)
  bool insecure = false;      // go on with a certificate that does not check out
};

int send_test(const SendTest& t);

}  // namespace ringmail::tools
