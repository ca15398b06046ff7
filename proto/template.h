// Mustache templates for injected mail (issue 24): the values a request
// substitutes, a scanner that checks a template's syntax and reports the
// byte offset of a mistake, and rendering through mstch (Debian's
// libmstch). Pure logic, no I/O.
//
// Rendering differs from plain mstch in three documented ways:
//   - Escaping is chosen per call: kHtml escapes `{{x}}` as mstch does
//     (`&<>"'`), `{{{x}}}` and `{{&x}}` stay raw; kNone (text bodies,
//     headers) rewrites every `{{x}}` to `{{&x}}` before mstch sees it, so
//     nothing is escaped. mstch's global mstch::config::escape is never
//     touched, which keeps rendering thread safe.
//   - Partials (`{{>name}}`) are refused: a request has nowhere to name them.
//   - Names that a variable tag or a section (`{{#x}}`, not `{{^x}}`) looks
//     up and does not find render empty and are reported to the caller.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "proto/result.h"

namespace ringmail::proto::tmpl {

// A substitution value as JSON carries it. The JSON layer fills it; the
// renderer converts it for mstch. Integers that fit an int stay numbers;
// other numbers render as their shortest decimal text (so `{{#n}}` on a
// fractional number is always true, and 0 is false only as an integer).
class Value {
 public:
  using Object = std::map<std::string, Value, std::less<>>;
  using Array = std::vector<Value>;

  Value() = default;  // null
  Value(std::nullptr_t) {}
  Value(bool b) : v_(b) {}
  Value(int i) : v_(int64_t{i}) {}
  Value(int64_t i) : v_(i) {}
  Value(double d) : v_(d) {}
  Value(std::string s) : v_(std::move(s)) {}
  Value(const char* s) : v_(std::string(s)) {}
  Value(Object o) : v_(std::move(o)) {}
  Value(Array a) : v_(std::move(a)) {}

  bool is_null() const { return std::holds_alternative<std::monostate>(v_); }
  const bool* as_bool() const { return std::get_if<bool>(&v_); }
  const int64_t* as_int() const { return std::get_if<int64_t>(&v_); }
  const double* as_double() const { return std::get_if<double>(&v_); }
  const std::string* as_string() const { return std::get_if<std::string>(&v_); }
  const Object* as_object() const { return std::get_if<Object>(&v_); }
  Object* as_object() { return std::get_if<Object>(&v_); }
  const Array* as_array() const { return std::get_if<Array>(&v_); }
  Array* as_array() { return std::get_if<Array>(&v_); }

 private:
  std::variant<std::monostate, bool, int64_t, double, std::string, Object, Array> v_;
};

// The substitutions of a request: names to values.
using Values = Value::Object;

// `template_dialect` of the request: mustache substitutes, static leaves
// every field as written.
enum class Dialect { kMustache, kStatic };

// How `{{x}}` is escaped: kHtml for HTML and AMP bodies, kNone for text
// bodies and header values.
enum class Escape { kHtml, kNone };

// Sections nest at most this deep; deeper is a syntax error (bounds the
// recursion of the checker and of mstch).
inline constexpr size_t kSectionDepthMax = 32;

// What one rendering may produce, in bytes, unless the Renderer is given
// another limit. Sections over arrays multiply their bodies (and nest), so
// a short template can ask for an exponential output; the renderer
// measures the expansion before mstch runs and refuses it past the limit.
inline constexpr size_t kOutputBytesMax = 16 << 20;

// One tag of a template, as the scanner found it.
struct Tag {
  enum class Kind { kVariable, kRaw, kSection, kInverted, kClose, kComment, kDelimiters };
  Kind kind;
  size_t offset;     // byte offset of the opening delimiter
  size_t body;       // byte offset just after the opening delimiter
  size_t end;        // byte offset just after the closing delimiter
  size_t partner;    // kSection, kInverted: index of the matching kClose tag
  std::string name;  // trimmed; empty for comments and delimiter changes
};

// Scans `text` and checks it: every tag closed, sections balanced and
// properly nested, names non-empty, delimiter changes well formed, no
// partials. The error reads "offset N: what" with N the 0-based byte
// offset of the offending tag.
Result<std::vector<Tag>> scan(std::string_view text);

// A renderer over one set of values (global substitutions with the
// recipient's on top, name by name). Build one per message; render each
// field with it. Not thread safe; cheap to build relative to rendering.
class Renderer {
 public:
  // `recipient` wins over `global` for a name both define. Each render()
  // may produce at most `output_bytes_max` bytes.
  Renderer(const Values& global, const Values& recipient,
           size_t output_bytes_max = kOutputBytesMax);
  ~Renderer();
  Renderer(const Renderer&) = delete;
  Renderer& operator=(const Renderer&) = delete;

  // Renders `text`. Each name looked up and not found is added to
  // `*missing`. The error is the scanner's, or "offset N: the template
  // expands to more than M bytes" naming the outermost section at fault.
  Result<std::string> render(std::string_view text, Escape escape,
                             std::set<std::string>* missing) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace ringmail::proto::tmpl
