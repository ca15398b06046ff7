#include "proto/template.h"

#include <algorithm>
#include <charconv>
#include <climits>
#include <exception>
#include <mstch/mstch.hpp>

namespace ringmail::proto::tmpl {
namespace {

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }

std::string_view trim(std::string_view s) {
  while (!s.empty() && is_space(s.front())) s.remove_prefix(1);
  while (!s.empty() && is_space(s.back())) s.remove_suffix(1);
  return s;
}

Error at(size_t offset, std::string_view what) {
  return Error{"offset " + std::to_string(offset) + ": " + std::string(what)};
}

// The mstch node for a value; see Value for how numbers convert.
mstch::node to_node(const Value& v) {
  if (const bool* b = v.as_bool()) return *b;
  if (const int64_t* i = v.as_int()) {
    if (*i >= INT_MIN && *i <= INT_MAX) return static_cast<int>(*i);
    return std::to_string(*i);
  }
  if (const double* d = v.as_double()) {
    char buf[64];
    auto r = std::to_chars(buf, buf + sizeof buf, *d);
    return std::string(buf, r.ptr);
  }
  if (const std::string* s = v.as_string()) return *s;
  if (const Value::Object* o = v.as_object()) {
    mstch::map m;
    for (const auto& [k, e] : *o) m.emplace(k, to_node(e));
    return m;
  }
  if (const Value::Array* a = v.as_array()) {
    mstch::array arr;
    arr.reserve(a->size());
    for (const auto& e : *a) arr.push_back(to_node(e));
    return arr;
  }
  return nullptr;
}

// Whether mstch renders a section over the converted value (its
// is_node_empty, applied after to_node).
bool truthy(const Value& v) {
  if (v.is_null()) return false;
  if (const bool* b = v.as_bool()) return *b;
  if (const int64_t* i = v.as_int()) return *i != 0 || *i < INT_MIN || *i > INT_MAX;
  if (const std::string* s = v.as_string()) return !s->empty();
  if (const Value::Array* a = v.as_array()) return !a->empty();
  return true;  // objects, fractional numbers (rendered as text)
}

// Mustache name resolution: "." is the current context; "a.b.c" finds "a"
// in the innermost context that has it, then descends.
const Value* lookup(std::string_view name, const std::vector<const Value*>& stack) {
  if (name == ".") return stack.back();
  size_t dot = name.find('.');
  std::string_view first = name.substr(0, dot);
  const Value* found = nullptr;
  for (auto it = stack.rbegin(); it != stack.rend() && found == nullptr; ++it) {
    if (const Value::Object* o = (*it)->as_object()) {
      auto e = o->find(first);
      if (e != o->end()) found = &e->second;
    }
  }
  while (found != nullptr && dot != std::string_view::npos) {
    size_t next = name.find('.', dot + 1);
    std::string_view part =
        name.substr(dot + 1, next == std::string_view::npos ? next : next - dot - 1);
    dot = next;
    const Value::Object* o = found->as_object();
    if (o == nullptr) return nullptr;
    auto e = o->find(part);
    found = e == o->end() ? nullptr : &e->second;
  }
  return found;
}

// Walks tags [begin, end) as mstch renders them, records the names that
// are looked up and missing, and charges what the rendering writes (the
// text of each section body per pass, the text of each variable) to
// `*budget`. False when the budget runs out.
struct Walk {
  const std::vector<Tag>& tags;
  std::vector<const Value*> stack;
  std::set<std::string>* missing;
  size_t budget;
  size_t depth = 0;
  size_t outermost = 0;  // offset of the top-level section being expanded

  bool charge(size_t bytes) {
    if (bytes > budget) return false;
    budget -= bytes;
    return true;
  }

  bool section_body(size_t i) {
    const Tag& tag = tags[i];
    if (depth == 0) outermost = tag.offset;
    ++depth;
    bool ok = charge(tags[tag.partner].offset - tag.end) && run(i + 1, tag.partner);
    --depth;
    return ok;
  }

  bool run(size_t begin, size_t end) {
    for (size_t i = begin; i < end; ++i) {
      const Tag& tag = tags[i];
      switch (tag.kind) {
        case Tag::Kind::kVariable:
        case Tag::Kind::kRaw: {
          const Value* v = lookup(tag.name, stack);
          if (v == nullptr) {
            missing->insert(tag.name);
          } else if (const std::string* s = v->as_string()) {
            // Escaping at most sextuples a byte ("&quot;").
            if (!charge(s->size() * (tag.kind == Tag::Kind::kVariable ? 6 : 1))) return false;
          } else if (!charge(32)) {
            return false;
          }
          break;
        }
        case Tag::Kind::kSection: {
          const Value* v = lookup(tag.name, stack);
          if (v == nullptr) {
            missing->insert(tag.name);
          } else if (const Value::Array* a = v->as_array()) {
            for (const Value& e : *a) {
              stack.push_back(&e);
              bool ok = section_body(i);
              stack.pop_back();
              if (!ok) return false;
            }
          } else if (truthy(*v)) {
            stack.push_back(v);
            bool ok = section_body(i);
            stack.pop_back();
            if (!ok) return false;
          }
          i = tag.partner;
          break;
        }
        case Tag::Kind::kInverted: {
          const Value* v = lookup(tag.name, stack);
          if ((v == nullptr || !truthy(*v)) && !section_body(i)) return false;
          i = tag.partner;
          break;
        }
        case Tag::Kind::kClose:
        case Tag::Kind::kComment:
        case Tag::Kind::kDelimiters:
          break;
      }
    }
    return true;
  }
};

}  // namespace

Result<std::vector<Tag>> scan(std::string_view text) {
  std::string open = "{{";
  std::string close = "}}";
  std::vector<Tag> tags;
  std::vector<size_t> sections;  // indexes of the open sections in `tags`
  size_t pos = 0;
  for (;;) {
    size_t start = text.find(open, pos);
    if (start == std::string_view::npos) break;
    size_t body = start + open.size();
    Tag tag{Tag::Kind::kVariable, start, body, 0, 0, {}};
    std::string end_marker = close;
    size_t name_at = body;
    char type = body < text.size() ? text[body] : '\0';
    switch (type) {
      case '{':
        tag.kind = Tag::Kind::kRaw;
        end_marker = "}" + close;
        ++name_at;
        break;
      case '&':
        tag.kind = Tag::Kind::kRaw, ++name_at;
        break;
      case '#':
        tag.kind = Tag::Kind::kSection, ++name_at;
        break;
      case '^':
        tag.kind = Tag::Kind::kInverted, ++name_at;
        break;
      case '/':
        tag.kind = Tag::Kind::kClose, ++name_at;
        break;
      case '!':
        tag.kind = Tag::Kind::kComment, ++name_at;
        break;
      case '=':
        tag.kind = Tag::Kind::kDelimiters;
        end_marker = "=" + close;
        ++name_at;
        break;
      case '>':
        return at(start, "partials ({{>name}}) are not supported");
      default:
        break;
    }
    size_t end = text.find(end_marker, name_at);
    if (end == std::string_view::npos) return at(start, "tag is not closed");
    std::string_view inside = trim(text.substr(name_at, end - name_at));
    pos = end + end_marker.size();
    tag.end = pos;
    if (tag.kind == Tag::Kind::kComment) {
      tags.push_back(std::move(tag));
      continue;
    }
    if (tag.kind == Tag::Kind::kDelimiters) {
      size_t gap = 0;
      while (gap < inside.size() && !is_space(inside[gap])) ++gap;
      std::string_view a = inside.substr(0, gap);
      std::string_view b = trim(inside.substr(gap));
      bool ok = !a.empty() && !b.empty() && a.find('=') == std::string_view::npos &&
                b.find('=') == std::string_view::npos;
      for (char c : b) ok = ok && !is_space(c);
      if (!ok) return at(start, "a delimiter change must be {{=OPEN CLOSE=}}");
      open = a;
      close = b;
      tags.push_back(std::move(tag));
      continue;
    }
    if (inside.empty()) return at(start, "tag has no name");
    for (char c : inside) {
      if (is_space(c)) return at(start, "a name may not contain white space");
    }
    tag.name = inside;
    if (tag.kind == Tag::Kind::kSection || tag.kind == Tag::Kind::kInverted) {
      if (sections.size() == kSectionDepthMax) return at(start, "sections nest too deep");
      sections.push_back(tags.size());
    } else if (tag.kind == Tag::Kind::kClose) {
      if (sections.empty()) return at(start, "{{/" + tag.name + "}} closes no section");
      Tag& opener = tags[sections.back()];
      if (opener.name != tag.name) {
        return at(start, "{{/" + tag.name + "}} does not close the section '" + opener.name +
                             "' opened at offset " + std::to_string(opener.offset));
      }
      opener.partner = tags.size();
      sections.pop_back();
    }
    tags.push_back(std::move(tag));
  }
  if (!sections.empty()) {
    const Tag& opener = tags[sections.back()];
    return at(opener.offset, "section '" + opener.name + "' is never closed");
  }
  return tags;
}

struct Renderer::Impl {
  Value root;
  mstch::node node;
  size_t output_bytes_max;
};

Renderer::Renderer(const Values& global, const Values& recipient, size_t output_bytes_max)
    : impl_(std::make_unique<Impl>()) {
  impl_->output_bytes_max = output_bytes_max;
  Values merged = global;
  for (const auto& [k, v] : recipient) merged.insert_or_assign(k, v);
  impl_->root = Value(std::move(merged));
  impl_->node = to_node(impl_->root);
}

Renderer::~Renderer() = default;

Result<std::string> Renderer::render(std::string_view text, Escape escape,
                                     std::set<std::string>* missing) const {
  auto tags = scan(text);
  if (!tags) return Error{tags.error()};
  // The template's own text is charged once up front (an upper bound on
  // what is written outside sections); the walk charges the rest.
  std::string too_big =
      "the template expands to more than " + std::to_string(impl_->output_bytes_max) + " bytes";
  if (text.size() > impl_->output_bytes_max) return at(0, too_big);
  Walk walk{*tags, {&impl_->root}, missing, impl_->output_bytes_max - text.size()};
  if (!walk.run(0, tags->size())) return at(walk.outermost, too_big);
  // Only the lines that hold tags go through mstch, which tokenizes all it
  // is given on every call: the lines before the first tag and after the
  // last one come out as they are anyway (a 10 KiB body with one {{name}}
  // is a few lines for mstch, not 10 KiB). Whole lines, so mstch still
  // sees standalone tags as standalone. A delimiter change makes the
  // tags' extent unknown to this cut: then mstch gets everything.
  size_t from = 0, to = text.size();
  const bool delimiters = std::any_of(
      tags->begin(), tags->end(), [](const Tag& t) { return t.kind == Tag::Kind::kDelimiters; });
  if (!delimiters) {
    if (tags->empty()) return std::string(text);
    const size_t nl = tags->front().offset == 0 ? std::string_view::npos
                                                : text.rfind('\n', tags->front().offset - 1);
    from = nl == std::string_view::npos ? 0 : nl + 1;
    const size_t end = text.find('\n', tags->back().end);
    to = end == std::string_view::npos ? text.size() : end + 1;
  }
  const std::string_view span = text.substr(from, to - from);
  std::string source;
  if (escape == Escape::kNone) {
    // `{{x}}` becomes `{{&x}}` (raw) under the delimiters in force there.
    source.reserve(span.size() + 16);
    size_t copied = 0;
    for (const Tag& tag : *tags) {
      if (tag.kind != Tag::Kind::kVariable) continue;
      source.append(span.substr(copied, tag.body - from - copied));
      source.push_back('&');
      copied = tag.body - from;
    }
    source.append(span.substr(copied));
  } else {
    source = span;
  }
  try {
    std::string out;
    out.reserve(text.size() + 64);
    out.append(text.substr(0, from));
    out += mstch::render(source, impl_->node);
    out.append(text.substr(to));
    return out;
  } catch (const std::exception& e) {
    return Error{std::string("template rendering failed: ") + e.what()};
  }
}

}  // namespace ringmail::proto::tmpl
