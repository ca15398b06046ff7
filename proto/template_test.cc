#include "proto/template.h"

#include <gtest/gtest.h>

#include <mstch/mstch.hpp>

namespace ringmail::proto::tmpl {
namespace {

std::string render_ok(const Renderer& r, std::string_view text, Escape escape,
                      std::set<std::string>* missing = nullptr) {
  std::set<std::string> ignored;
  auto out = r.render(text, escape, missing ? missing : &ignored);
  EXPECT_TRUE(out.ok()) << (out.ok() ? "" : out.error());
  return out.ok() ? *out : "";
}

std::string scan_error(std::string_view text) {
  auto tags = scan(text);
  EXPECT_FALSE(tags.ok()) << text;
  return tags.ok() ? "" : tags.error();
}

TEST(TemplateScan, FindsTagsAndTheirKinds) {
  auto tags = scan("a {{x}} {{{y}}} {{& z}} {{#s}}{{/s}} {{^i}}{{/i}} {{! note }}");
  ASSERT_TRUE(tags.ok()) << tags.error();
  ASSERT_EQ(tags->size(), 8u);
  EXPECT_EQ((*tags)[0].kind, Tag::Kind::kVariable);
  EXPECT_EQ((*tags)[0].offset, 2u);
  EXPECT_EQ((*tags)[0].name, "x");
  EXPECT_EQ((*tags)[1].kind, Tag::Kind::kRaw);
  EXPECT_EQ((*tags)[1].name, "y");
  EXPECT_EQ((*tags)[2].kind, Tag::Kind::kRaw);
  EXPECT_EQ((*tags)[2].name, "z");
  EXPECT_EQ((*tags)[3].kind, Tag::Kind::kSection);
  EXPECT_EQ((*tags)[3].partner, 4u);
  EXPECT_EQ((*tags)[5].kind, Tag::Kind::kInverted);
  EXPECT_EQ((*tags)[7].kind, Tag::Kind::kComment);
}

TEST(TemplateScan, UnclosedTagNamesItsOffset) {
  EXPECT_EQ(scan_error("Hello {{name"), "offset 6: tag is not closed");
  EXPECT_EQ(scan_error("{{{raw}}"), "offset 0: tag is not closed");
}

TEST(TemplateScan, UnbalancedSectionsNameTheirOffsets) {
  EXPECT_EQ(scan_error("ab{{#list}}x"), "offset 2: section 'list' is never closed");
  EXPECT_EQ(scan_error("x{{/list}}"), "offset 1: {{/list}} closes no section");
  EXPECT_EQ(scan_error("{{#a}}{{#b}}{{/a}}{{/b}}"),
            "offset 12: {{/a}} does not close the section 'b' opened at offset 6");
}

TEST(TemplateScan, RefusesEmptyNamesSpacesAndPartials) {
  EXPECT_EQ(scan_error("x {{ }}"), "offset 2: tag has no name");
  EXPECT_EQ(scan_error("{{a b}}"), "offset 0: a name may not contain white space");
  EXPECT_EQ(scan_error("{{> header}}"), "offset 0: partials ({{>name}}) are not supported");
}

TEST(TemplateScan, DelimiterChanges) {
  auto tags = scan("{{=<% %>=}}<%x%> {{y}}");
  ASSERT_TRUE(tags.ok()) << tags.error();
  ASSERT_EQ(tags->size(), 2u);
  EXPECT_EQ((*tags)[1].name, "x");
  EXPECT_EQ((*tags)[1].offset, 11u);
  EXPECT_EQ(scan_error("{{=<%=}}"), "offset 0: a delimiter change must be {{=OPEN CLOSE=}}");
}

TEST(TemplateScan, BoundsSectionDepth) {
  std::string deep;
  for (size_t i = 0; i <= kSectionDepthMax; ++i) deep += "{{#a}}";
  EXPECT_EQ(scan_error(deep),
            "offset " + std::to_string(6 * kSectionDepthMax) + ": sections nest too deep");
}

TEST(TemplateRender, HtmlEscapesDoubleButNotTripleMustache) {
  Renderer r({{"x", "<b>&\"'"}}, {});
  EXPECT_EQ(render_ok(r, "{{x}}|{{{x}}}|{{&x}}", Escape::kHtml),
            "&lt;b&gt;&amp;&quot;&#39;|<b>&\"'|<b>&\"'");
}

TEST(TemplateRender, TextDoesNotEscape) {
  Renderer r({{"x", "<b>&"}}, {});
  EXPECT_EQ(render_ok(r, "{{x}} {{ x }} {{{x}}}", Escape::kNone), "<b>& <b>& <b>&");
  // Also under changed delimiters.
  EXPECT_EQ(render_ok(r, "{{=<% %>=}}<%x%>", Escape::kNone), "<b>&");
}

TEST(TemplateRender, RecipientValuesWinOverGlobalOnes) {
  Renderer r({{"name", "global"}, {"shop", "Acme"}}, {{"name", "Ann"}});
  EXPECT_EQ(render_ok(r, "{{name}} at {{shop}}", Escape::kNone), "Ann at Acme");
}

TEST(TemplateRender, ValueKinds) {
  Value::Object order{{"id", int64_t{42}}, {"total", 12.5}};
  Value::Array items{Value(Value::Object{{"n", "pen"}}), Value(Value::Object{{"n", "ink"}})};
  Renderer r({{"order", order},
              {"items", items},
              {"vip", true},
              {"none", nullptr},
              {"big", int64_t{1} << 40}},
             {});
  EXPECT_EQ(render_ok(r, "{{order.id}} {{order.total}} {{big}}", Escape::kNone),
            "42 12.5 1099511627776");
  EXPECT_EQ(render_ok(r, "{{#items}}[{{n}}]{{/items}}", Escape::kNone), "[pen][ink]");
  EXPECT_EQ(
      render_ok(r, "{{#vip}}VIP{{/vip}}{{^vip}}no{{/vip}}{{^none}}empty{{/none}}", Escape::kNone),
      "VIPempty");
  EXPECT_EQ(render_ok(r, "{{#order}}{{id}}{{/order}}", Escape::kNone), "42");
}

TEST(TemplateRender, ReportsMissingNamesOnce) {
  Renderer r(
      {{"items", Value::Array{Value(Value::Object{{"n", "a"}}), Value(Value::Object{{"n", "b"}})}}},
      {});
  std::set<std::string> missing;
  EXPECT_EQ(
      render_ok(
          r, "Hi {{first}} {{first}} {{#items}}{{n}}{{price}}{{/items}}{{^gone}}x{{/gone}}{{a.b}}",
          Escape::kNone, &missing),
      "Hi   abx");
  EXPECT_EQ(missing, (std::set<std::string>{"a.b", "first", "price"}));
}

TEST(TemplateRender, SectionsNotRenderedReportNothing) {
  Renderer r({{"off", false}}, {});
  std::set<std::string> missing;
  EXPECT_EQ(render_ok(r, "{{#off}}{{inside}}{{/off}}", Escape::kNone, &missing), "");
  EXPECT_TRUE(missing.empty());
}

TEST(TemplateRender, SyntaxErrorIsReturned) {
  Renderer r({}, {});
  std::set<std::string> missing;
  auto out = r.render("{{#a}}", Escape::kHtml, &missing);
  ASSERT_FALSE(out.ok());
  EXPECT_EQ(out.error(), "offset 0: section 'a' is never closed");
}

// Only the lines holding tags go to mstch: what comes out must be what
// mstch makes of the whole text, standalone lines and all.
TEST(TemplateRender, RenderingTheTaggedLinesAloneChangesNothing) {
  const Values values{{"name", "Zoë"}, {"yes", true}, {"no", false}, {"tag", "<b>"}};
  Renderer r(values, {});
  mstch::map node{
      {"name", std::string("Zoë")}, {"yes", true}, {"no", false}, {"tag", std::string("<b>")}};
  const char* templates[] = {
      "no tags at all\nsecond line\n",
      "{{name}} first\nplain\n",
      "plain\nlast {{name}}",
      "head\n  {{#yes}}\n  inside {{name}}\n  {{/yes}}\ntail\n",
      "head\n\t{{! a comment }}\t\nmid\n{{^no}}\nshown\n{{/no}}\ntail",
      "a\r\n  {{#yes}}  \r\nb {{tag}}\r\n  {{/yes}}\r\nc\r\n",
      "x\n{{#no}}\nhidden\n{{/no}}",
      "{{#yes}}\n{{name}}\n{{/yes}}\n",
      "lead {{=<% %>=}} <% name %>\nafter <%tag%>\n",
  };
  for (const char* t : templates) {
    EXPECT_EQ(render_ok(r, t, Escape::kHtml), mstch::render(t, node)) << t;
  }
  // A long body with one tag in the middle.
  const std::string filler(5000, 'x');
  const std::string body = filler + "\n  Dear {{name}},\n" + filler + "\n";
  EXPECT_EQ(render_ok(r, body, Escape::kHtml), mstch::render(body, node));
}

TEST(TemplateRender, RefusesExponentialExpansion) {
  // Each nested section over the same two-element array doubles the output.
  Renderer r({{"a", Value::Array{Value(1), Value(2)}}}, {}, 4096);
  std::string nested;
  for (int i = 0; i < 20; ++i) nested += "{{#a}}";
  nested += "x";
  for (int i = 0; i < 20; ++i) nested += "{{/a}}";
  std::set<std::string> missing;
  auto out = r.render("head " + nested, Escape::kHtml, &missing);
  ASSERT_FALSE(out.ok());
  EXPECT_EQ(out.error(), "offset 5: the template expands to more than 4096 bytes");
  // The same shape five deep fits.
  EXPECT_EQ(
      render_ok(r, "{{#a}}{{#a}}{{#a}}{{#a}}{{#a}}x{{/a}}{{/a}}{{/a}}{{/a}}{{/a}}", Escape::kNone),
      std::string(32, 'x'));
  // Long values count too.
  Renderer big({{"v", std::string(1000, 'q')}}, {}, 4096);
  EXPECT_FALSE(
      big.render("{{#a}}{{/a}}{{{v}}}{{{v}}}{{{v}}}{{{v}}}{{{v}}}", Escape::kNone, &missing).ok());
  EXPECT_TRUE(big.render("{{{v}}}{{{v}}}{{{v}}}", Escape::kNone, &missing).ok());
}

}  // namespace
}  // namespace ringmail::proto::tmpl
