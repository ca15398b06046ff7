#include "proto/inject_request.h"

#include <simdjson.h>

#include <optional>
#include <utility>

namespace ringmail::proto {
namespace {

namespace od = simdjson::ondemand;

std::string invalid(simdjson::error_code e) {
  return std::string("invalid JSON: ") + simdjson::error_message(e);
}

const char* type_name(od::json_type t) {
  switch (t) {
    case od::json_type::array:
      return "an array";
    case od::json_type::object:
      return "an object";
    case od::json_type::number:
      return "a number";
    case od::json_type::string:
      return "a string";
    case od::json_type::boolean:
      return "a boolean";
    case od::json_type::null:
      return "null";
  }
  return "?";
}

// The parse's state: the first error wins; every reader returns false
// once there is one.
class Reader {
 public:
  std::optional<FieldError> error;

  bool fail(std::string pointer, std::string reason) {
    if (!error) error = FieldError{std::move(pointer), std::move(reason)};
    return false;
  }

  bool type_of(od::value& v, const std::string& at, od::json_type* t) {
    if (auto e = v.type().get(*t)) return fail(at, invalid(e));
    return true;
  }

  bool expect(od::value& v, const std::string& at, od::json_type want, const char* what) {
    od::json_type t;
    if (!type_of(v, at, &t)) return false;
    if (t != want) return fail(at, std::string("must be ") + what + ", not " + type_name(t));
    return true;
  }

  bool string(od::value& v, const std::string& at, std::string* out) {
    if (!expect(v, at, od::json_type::string, "a string")) return false;
    std::string_view s;
    if (auto e = v.get_string().get(s)) return fail(at, invalid(e));
    out->assign(s);
    return true;
  }

  bool boolean(od::value& v, const std::string& at, bool* out) {
    if (!expect(v, at, od::json_type::boolean, "true or false")) return false;
    if (auto e = v.get_bool().get(*out)) return fail(at, invalid(e));
    return true;
  }

  // Any JSON value, for substitutions and metadata.
  bool value(od::value& v, const std::string& at, size_t depth, tmpl::Value* out) {
    if (depth > kInjectDepthMax) {
      return fail(at, "nested deeper than " + std::to_string(kInjectDepthMax) + " levels");
    }
    od::json_type t;
    if (!type_of(v, at, &t)) return false;
    switch (t) {
      case od::json_type::object: {
        tmpl::Values o;
        if (!object(v, at, depth + 1, &o)) return false;
        *out = tmpl::Value(std::move(o));
        return true;
      }
      case od::json_type::array: {
        od::array a;
        if (auto e = v.get_array().get(a)) return fail(at, invalid(e));
        tmpl::Value::Array items;
        size_t i = 0;
        for (auto item : a) {
          od::value iv;
          const std::string here = at + "/" + std::to_string(i++);
          if (auto e = item.get(iv)) return fail(here, invalid(e));
          tmpl::Value x;
          if (!value(iv, here, depth + 1, &x)) return false;
          items.push_back(std::move(x));
        }
        *out = tmpl::Value(std::move(items));
        return true;
      }
      case od::json_type::string: {
        std::string s;
        if (!string(v, at, &s)) return false;
        *out = tmpl::Value(std::move(s));
        return true;
      }
      case od::json_type::number: {
        od::number_type nt;
        if (auto e = v.get_number_type().get(nt)) return fail(at, invalid(e));
        if (nt == od::number_type::signed_integer) {
          int64_t i;
          if (auto e = v.get_int64().get(i)) return fail(at, invalid(e));
          *out = tmpl::Value(i);
        } else {
          double d;
          if (auto e = v.get_double().get(d)) return fail(at, invalid(e));
          *out = tmpl::Value(d);
        }
        return true;
      }
      case od::json_type::boolean: {
        bool b;
        if (!boolean(v, at, &b)) return false;
        *out = tmpl::Value(b);
        return true;
      }
      case od::json_type::null: {
        bool is_null = false;
        if (auto e = v.is_null().get(is_null)) return fail(at, invalid(e));
        *out = tmpl::Value();
        return true;
      }
    }
    return fail(at, "unexpected JSON value");
  }

  bool object(od::value& v, const std::string& at, size_t depth, tmpl::Values* out) {
    if (!expect(v, at, od::json_type::object, "an object")) return false;
    return fields(v, at, [&](std::string_view key, od::value& fv, const std::string& here) {
      tmpl::Value x;
      if (!value(fv, here, depth, &x)) return false;
      (*out)[std::string(key)] = std::move(x);
      return true;
    });
  }

  // Calls fn(key, value, pointer) for each field of the object `v`.
  template <class Fn>
  bool fields(od::value& v, const std::string& at, Fn fn) {
    od::object o;
    if (auto e = v.get_object().get(o)) return fail(at, invalid(e));
    for (auto field : o) {
      std::string_view key;
      if (auto e = field.unescaped_key().get(key)) return fail(at, invalid(e));
      const std::string here = at + "/" + json_pointer_token(key);
      od::value fv;
      if (auto e = field.value().get(fv)) return fail(here, invalid(e));
      if (!fn(key, fv, here)) return false;
    }
    return true;
  }

  bool mailbox(od::value& v, const std::string& at, Mailbox* out) {
    if (!expect(v, at, od::json_type::object, "an object {\"email\", \"name\"}")) return false;
    bool email = false;
    const bool ok =
        fields(v, at, [&](std::string_view key, od::value& fv, const std::string& here) {
          if (key == "email") return email = string(fv, here, &out->email);
          if (key == "name") return string(fv, here, &out->name);
          return fail(here, "unknown field (email, name)");
        });
    if (!ok) return false;
    if (!email) return fail(at + "/email", "required");
    if (!is_valid_email(out->email)) return fail(at + "/email", "not a valid address");
    return true;
  }

  bool attachment(od::value& v, const std::string& at, Attachment* out) {
    if (!expect(v, at, od::json_type::object, "an object")) return false;
    bool data = false;
    const bool ok =
        fields(v, at, [&](std::string_view key, od::value& fv, const std::string& here) {
          if (key == "data") return data = string(fv, here, &out->data);
          if (key == "base64") return boolean(fv, here, &out->base64);
          if (key == "content_type") return string(fv, here, &out->content_type);
          if (key == "file_name") return string(fv, here, &out->file_name);
          if (key == "content_id") return string(fv, here, &out->content_id);
          return fail(here, "unknown field (data, base64, content_type, file_name, content_id)");
        });
    if (!ok) return false;
    if (!data) return fail(at + "/data", "required");
    return true;
  }

  bool structured(od::value& v, const std::string& at, StructuredContent* out) {
    bool from = false;
    const bool ok =
        fields(v, at, [&](std::string_view key, od::value& fv, const std::string& here) {
          if (key == "from") return from = mailbox(fv, here, &out->from);
          if (key == "reply_to") {
            out->reply_to.emplace();
            return mailbox(fv, here, &*out->reply_to);
          }
          if (key == "subject") return string(fv, here, &out->subject);
          if (key == "text_body") return string(fv, here, &out->text_body.emplace());
          if (key == "html_body") return string(fv, here, &out->html_body.emplace());
          if (key == "amp_html_body") return string(fv, here, &out->amp_html_body.emplace());
          if (key == "headers") {
            if (!expect(fv, here, od::json_type::object, "an object of header names and values")) {
              return false;
            }
            return fields(fv, here,
                          [&](std::string_view name, od::value& hv, const std::string& h) {
                            Header hdr{std::string(name), {}};
                            if (!string(hv, h, &hdr.value)) return false;
                            out->headers.push_back(std::move(hdr));
                            return true;
                          });
          }
          if (key == "attachments") {
            if (!expect(fv, here, od::json_type::array, "an array")) return false;
            od::array a;
            if (auto e = fv.get_array().get(a)) return fail(here, invalid(e));
            size_t i = 0;
            for (auto item : a) {
              const std::string h = here + "/" + std::to_string(i++);
              od::value iv;
              if (auto e = item.get(iv)) return fail(h, invalid(e));
              if (!attachment(iv, h, &out->attachments.emplace_back())) return false;
            }
            return true;
          }
          return fail(here,
                      "unknown field (from, reply_to, subject, text_body, html_body, "
                      "amp_html_body, headers, attachments)");
        });
    if (!ok) return false;
    if (!from) return fail(at + "/from", "required");
    if (!out->text_body && !out->html_body && !out->amp_html_body && out->attachments.empty()) {
      return fail(at, "has no text_body, html_body, amp_html_body or attachments");
    }
    return true;
  }

  bool recipient(od::value& v, const std::string& at, size_t index, InjectRequest* req) {
    if (!expect(v, at, od::json_type::object, "an object {\"email\", ...}")) return false;
    InjectRecipient r;
    r.index = index;
    bool email = false;
    const bool ok =
        fields(v, at, [&](std::string_view key, od::value& fv, const std::string& here) {
          if (key == "email") return email = string(fv, here, &r.recipient.email);
          if (key == "name") return string(fv, here, &r.recipient.name);
          if (key == "substitutions") return object(fv, here, 1, &r.recipient.substitutions);
          if (key == "metadata") return object(fv, here, 1, &r.metadata);
          return fail(here, "unknown field (email, name, substitutions, metadata)");
        });
    if (!ok) return false;
    if (!email) return fail(at + "/email", "required");
    // A bad address is the recipient's failure, not the request's.
    if (!is_valid_email(r.recipient.email)) {
      req->rejected.push_back({index, r.recipient.email, "not a valid address"});
      return true;
    }
    req->recipients.push_back(std::move(r));
    return true;
  }
};

}  // namespace

std::variant<InjectRequest, FieldError> parse_inject_request(std::string_view body,
                                                             size_t capacity) {
  simdjson::padded_string copy;
  simdjson::padded_string_view view;
  if (capacity >= body.size() + simdjson::SIMDJSON_PADDING) {
    view = simdjson::padded_string_view(body.data(), body.size(), capacity);
  } else {
    copy = simdjson::padded_string(body);
    view = copy;
  }
  od::parser parser;
  od::document doc;
  if (auto e = parser.iterate(view).get(doc)) return FieldError{"", invalid(e)};
  Reader rd;
  InjectRequest req;
  od::object top;
  if (auto e = doc.get_object().get(top)) {
    return FieldError{
        "", e == simdjson::INCORRECT_TYPE ? "the body must be a JSON object" : invalid(e)};
  }
  bool sender = false, content = false, recipients = false;
  for (auto field : top) {
    std::string_view key;
    if (auto e = field.unescaped_key().get(key)) return FieldError{"", invalid(e)};
    const std::string at = "/" + json_pointer_token(key);
    od::value v;
    if (auto e = field.value().get(v)) return FieldError{at, invalid(e)};
    bool ok = true;
    if (key == "envelope_sender") {
      ok = sender = rd.string(v, at, &req.envelope_sender);
      if (ok && !is_valid_email(req.envelope_sender)) ok = rd.fail(at, "not a valid address");
    } else if (key == "content") {
      od::json_type t;
      ok = rd.type_of(v, at, &t);
      if (ok && t == od::json_type::string) {
        std::string whole;
        ok = rd.string(v, at, &whole);
        req.content = std::move(whole);
      } else if (ok && t == od::json_type::object) {
        StructuredContent sc;
        ok = rd.structured(v, at, &sc);
        req.content = std::move(sc);
      } else if (ok) {
        ok = rd.fail(at, std::string("must be a string (a whole message) or an object, not ") +
                             type_name(t));
      }
      content = ok;
    } else if (key == "recipients") {
      ok = rd.expect(v, at, od::json_type::array, "an array");
      od::array a;
      if (ok) {
        if (auto e = v.get_array().get(a)) ok = rd.fail(at, invalid(e));
      }
      size_t i = 0;
      if (ok) {
        for (auto item : a) {
          const std::string here = at + "/" + std::to_string(i);
          if (i >= kInjectRecipientsMax) {
            ok = rd.fail(here, "more than " + std::to_string(kInjectRecipientsMax) +
                                   " recipients in one request");
            break;
          }
          od::value iv;
          if (auto e = item.get(iv)) {
            ok = rd.fail(here, invalid(e));
            break;
          }
          ok = rd.recipient(iv, here, i++, &req);
          if (!ok) break;
        }
      }
      recipients = ok;
      if (ok && i == 0) ok = rd.fail(at, "is empty");
    } else if (key == "substitutions") {
      ok = rd.object(v, at, 1, &req.substitutions);
    } else if (key == "template_dialect") {
      std::string d;
      ok = rd.string(v, at, &d);
      if (ok && d == "mustache") {
        req.dialect = tmpl::Dialect::kMustache;
      } else if (ok && d == "static") {
        req.dialect = tmpl::Dialect::kStatic;
      } else if (ok) {
        ok = rd.fail(at, "must be \"mustache\" or \"static\"");
      }
    } else {
      ok = rd.fail(at,
                   "unknown field (envelope_sender, content, recipients, substitutions, "
                   "template_dialect)");
    }
    if (!ok) return *rd.error;
  }
  // Past the object only whitespace (the document's end is out of bounds).
  const char* after = nullptr;
  if (doc.current_location().get(after) == simdjson::SUCCESS) {
    return FieldError{"", "invalid JSON: content after the object"};
  }
  if (!sender) return FieldError{"/envelope_sender", "required"};
  if (!content) return FieldError{"/content", "required"};
  if (!recipients) return FieldError{"/recipients", "required"};
  if (req.recipients.empty()) {
    return FieldError{"/recipients/" + std::to_string(req.rejected.front().index) + "/email",
                      "not a valid address (and no other recipient is)"};
  }
  return req;
}

}  // namespace ringmail::proto
