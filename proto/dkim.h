// DKIM (RFC 6376) text handling: relaxed canonicalization of headers and
// (streaming) of the body, the choice of header fields to sign, and the
// DKIM-Signature field's text. Pure: hashing and signing are the caller's
// (tls/sha256.h, tls/dkim_key.h); this file produces the exact bytes they
// run over.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "proto/result.h"

namespace ringmail::proto::dkim {

// One header field as it appears in a message: name, and the raw text after
// the colon up to (not including) the CRLF that ends the field; folding
// CRLFs inside are kept.
struct HeaderField {
  std::string_view name;
  std::string_view value;
};

// The header fields of `message` (CRLF line endings) in order, and the
// offset where the body starts (after the empty line; message.size() when
// there is none). Lines that are not fields (no colon) end the header.
std::vector<HeaderField> split_header(std::string_view message, size_t* body_offset);

// split_header()'s body offset found as the message arrives: scan() is
// given the message so far (it only grows) and reads only what is new.
class BodyStart {
 public:
  // True once the offset is known (offset() then holds it).
  bool scan(std::string_view message_so_far);
  // The whole message is there: the offset in any case.
  size_t finish(std::string_view message);
  bool found() const { return found_; }
  size_t offset() const { return offset_; }

 private:
  size_t line_ = 0;                        // start of the field being read
  size_t next_ = 0;                        // where to look for its next CRLF
  size_t colon_ = std::string_view::npos;  // its first colon
  bool found_ = false;
  size_t offset_ = 0;
};

// Relaxed header canonicalization (RFC 6376 3.4.2): "name:value\r\n" with
// the name lower-cased, the value unfolded, runs of WSP as one SP, and no
// WSP around the value.
std::string relaxed_header(const HeaderField& f);
void append_relaxed_header(const HeaderField& f, std::string* out);

// Relaxed body canonicalization (RFC 6376 3.4.4), fed in chunks of any
// size: WSP runs become one SP, WSP at line ends goes, empty lines at the
// end go, a last line without CRLF gets one (WSP at its end goes too); the
// empty body stays empty. The canonical form canonicalizes to itself.
// Canonical bytes go to `out` as they are known (empty lines are held back
// until something follows them).
class RelaxedBody {
 public:
  using Sink = std::function<void(std::string_view)>;
  explicit RelaxedBody(Sink out) : out_(std::move(out)) {}
  void feed(std::string_view chunk);
  void finish();
  uint64_t canonical_bytes() const { return emitted_; }

 private:
  void emit(std::string_view s);
  void content(char c);

  Sink out_;
  std::string buf_;  // canonical bytes not yet handed to out_
  uint64_t emitted_ = 0;
  size_t empty_lines_ = 0;  // CRLFs held back
  bool wsp_ = false;        // WSP seen in the current line, not yet written
  bool in_line_ = false;    // the current line has content
  bool cr_ = false;         // the last byte was a CR
};

// The header fields a signature covers (RFC 6376 5.4): names from `wanted`
// that occur in the message, each as many times as it occurs, plus From
// once more than it occurs (over-signing: a From added later breaks the
// signature). Lower case, in `wanted` order.
std::vector<std::string> choose_signed_headers(const std::vector<HeaderField>& fields,
                                               const std::vector<std::string>& wanted);
// The usual list: From, To, Cc, Subject, Date, Message-ID, Reply-To,
// In-Reply-To, References, MIME-Version, Content-Type,
// Content-Transfer-Encoding.
const std::vector<std::string>& default_signed_headers();

// The canonical header data a signature is computed over (RFC 6376 3.7):
// the fields named in `h` (instances taken from the bottom up; a name with
// no instance left adds nothing) followed by the DKIM-Signature field
// `sig_field` ("DKIM-Signature: ...", b= empty) without its final CRLF.
// `relaxed` false: simple header canonicalization (the fields as they are).
std::string signed_header_data(const std::vector<HeaderField>& fields,
                               const std::vector<std::string>& h, std::string_view sig_field,
                               bool relaxed = true);

enum class Algorithm : uint8_t { kRsaSha256, kEd25519Sha256 };
const char* algorithm_name(Algorithm a);  // "rsa-sha256", "ed25519-sha256"

struct SignatureParams {
  Algorithm algorithm = Algorithm::kRsaSha256;
  std::string domain;                // d=
  std::string selector;              // s=
  int64_t timestamp = 0;             // t=
  std::vector<std::string> headers;  // h=
  std::string body_hash_b64;         // bh=
};
// "DKIM-Signature: v=1; a=...; c=relaxed/relaxed; d=...; s=...; t=...;\r\n
// \th=...;\r\n\tbh=...;\r\n\tb=" : the field with an empty b= at the end
// (no CRLF); the caller signs it and appends the base64 signature (folded
// with fold_b64()) and CRLF.
std::string signature_field(const SignatureParams& p);
// Base64 text folded into lines of at most 72 characters ("\r\n\t" between).
std::string fold_b64(std::string_view b64, size_t first_line_room);

// --- Verification (RFC 6376 3.5, 6) ---

// Simple body canonicalization (3.4.3), streaming: the body as it is,
// without empty lines at its end; an empty body is one CRLF.
class SimpleBody {
 public:
  using Sink = std::function<void(std::string_view)>;
  explicit SimpleBody(Sink out) : out_(std::move(out)) {}
  void feed(std::string_view chunk);
  void finish();

 private:
  Sink out_;
  size_t held_crlf_ = 0;  // CRLFs not yet known to be followed by content
  bool cr_ = false;
  bool any_ = false;  // something was written
};

// A DKIM-Signature field's tags, checked (RFC 6376 3.5 and 6.1.1).
struct Signature {
  Algorithm algorithm = Algorithm::kRsaSha256;
  bool header_relaxed = false;       // c= header part (default simple)
  bool body_relaxed = false;         // c= body part (default simple)
  std::string domain;                // d=, lower case
  std::string selector;              // s=
  std::vector<std::string> headers;  // h=, lower case
  std::string body_hash;             // bh=, decoded
  std::string signature;             // b=, decoded
  std::string b_tag;                 // b= as written, whitespace removed (for the AR header.b)
  std::string identity;              // i= (default "@" + d)
  int64_t length = -1;               // l=, -1 when absent
  int64_t timestamp = -1;            // t=
  int64_t expires = -1;              // x=
};
// Parses the value of a DKIM-Signature field. An error is a "permerror":
// the signature cannot be checked at all.
Result<Signature> parse_signature(std::string_view value);
// The field with the value of its b= tag removed (what the signer hashed).
std::string without_b_value(const HeaderField& f);

// A key record (3.6.1): "v=DKIM1; k=rsa; p=...".
struct KeyRecord {
  bool ed25519 = false;          // k=ed25519, else rsa
  std::string public_key;        // p=, decoded; empty: revoked
  bool sha256_allowed = true;    // h= (when present, must list sha256)
  bool testing = false;          // t=y
  bool strict_identity = false;  // t=s
};
Result<KeyRecord> parse_key_record(std::string_view txt);

// The DNS TXT record for a public key: "v=DKIM1; k=rsa; p=<base64>" (or
// k=ed25519), and the zone-file line that publishes it at
// <selector>._domainkey.<domain>, in strings of at most 255 bytes.
std::string dns_record(Algorithm a, std::string_view public_key_b64);
std::string zone_line(const std::string& selector, const std::string& domain,
                      std::string_view record);

}  // namespace ringmail::proto::dkim
