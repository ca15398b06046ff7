// Result<T>: a value, or an Error saying why there is none. The return type
// of a function that can fail with a reason meant for a person (a log line,
// a tool's one line naming the file, the line and what is wrong), in place
// of a `std::string* error` out-parameter. Result<void> is for a function
// that only succeeds or fails. A failure the caller must act on by kind (an
// SMTP reply, srs::Error, a DNS status) keeps its own enum instead.
//
//   Result<Table> parse(std::string_view text) {
//     if (bad) return Error{"line 3: missing ':'"};
//     return table;
//   }
//   auto table = parse(text);
//   if (!table) return Error{path + ": " + table.error()};
//   use(*table);
//
// Success costs what T costs: no allocation beyond T's own. Header only, no
// I/O: every layer may include it (tools/check_layering.py).
#pragma once

#include <optional>
#include <string>
#include <type_traits>
#include <utility>
#include <variant>

namespace ringmail {

// What went wrong, in one line.
struct Error {
  std::string message;
};

template <class T>
class [[nodiscard]] Result {
 public:
  // From a T, or anything that converts to one (a string literal for
  // Result<std::string>, unique_ptr<Derived> for unique_ptr<Base>).
  template <class U = T>
  requires(std::is_convertible_v<U&&, T> && !std::is_same_v<std::remove_cvref_t<U>, Result> &&
           !std::is_same_v<std::remove_cvref_t<U>, Error>) Result(U&& value)
      : v_(std::in_place_index<0>, std::forward<U>(value)) {}
  Result(Error e) : v_(std::in_place_index<1>, std::move(e)) {}

  bool ok() const { return v_.index() == 0; }
  explicit operator bool() const { return ok(); }

  // The value; only when ok().
  T& value() & { return std::get<0>(v_); }
  const T& value() const& { return std::get<0>(v_); }
  T&& value() && { return std::get<0>(std::move(v_)); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T&& operator*() && { return std::move(*this).value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

  // The reason; only when !ok().
  const std::string& error() const { return std::get<1>(v_).message; }

 private:
  std::variant<T, Error> v_;
};

// Success (`return {};`) or an Error.
template <>
class [[nodiscard]] Result<void> {
 public:
  Result() = default;
  Result(Error e) : error_(std::move(e)) {}

  bool ok() const { return !error_.has_value(); }
  explicit operator bool() const { return ok(); }
  // The reason; only when !ok().
  const std::string& error() const { return error_.value().message; }

 private:
  std::optional<Error> error_;
};

}  // namespace ringmail
