// POST /api/inject/v1 bodies: what is read, and the JSON pointer and
// reason of each refusal.
#include "proto/inject_request.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace ringmail::proto {
namespace {

using ::testing::HasSubstr;

InjectRequest ok(std::string_view body) {
  auto r = parse_inject_request(body);
  if (auto* e = std::get_if<FieldError>(&r)) {
    ADD_FAILURE() << e->pointer << ": " << e->reason;
    return {};
  }
  return std::get<InjectRequest>(std::move(r));
}

FieldError bad(std::string_view body) {
  auto r = parse_inject_request(body);
  if (auto* e = std::get_if<FieldError>(&r)) return *e;
  ADD_FAILURE() << "accepted: " << body;
  return {};
}

TEST(InjectRequest, StructuredContentRecipientsAndSubstitutions) {
  const auto r = ok(R"({
    "envelope_sender": "bounce@shop.example",
    "template_dialect": "mustache",
    "substitutions": {"shop": "Shop", "n": 3, "pi": 3.5, "on": true, "none": null,
                      "items": [{"sku": "a"}, {"sku": "b"}]},
    "content": {
      "from": {"email": "news@shop.example", "name": "Shop \u00e9"},
      "reply_to": {"email": "help@shop.example"},
      "subject": "Hi {{name}}",
      "text_body": "t", "html_body": "<p>h</p>", "amp_html_body": "a",
      "headers": {"X-Campaign": "c1", "List-Unsubscribe": "<https://u.example/x>"},
      "attachments": [{"data": "aGk=", "base64": true, "content_type": "text/plain",
                       "file_name": "hi.txt", "content_id": "c1"}]
    },
    "recipients": [
      {"email": "ann@example.net", "name": "Ann", "substitutions": {"name": "Ann"},
       "metadata": {"order": 17}},
      {"email": "bob@example.net"}
    ]
  })");
  EXPECT_EQ(r.envelope_sender, "bounce@shop.example");
  EXPECT_EQ(r.dialect, tmpl::Dialect::kMustache);
  const auto& sc = std::get<StructuredContent>(r.content);
  EXPECT_EQ(sc.from.email, "news@shop.example");
  EXPECT_EQ(sc.from.name, "Shop \xc3\xa9");
  ASSERT_TRUE(sc.reply_to.has_value());
  EXPECT_EQ(sc.reply_to->email, "help@shop.example");
  EXPECT_EQ(sc.subject, "Hi {{name}}");
  EXPECT_EQ(*sc.text_body, "t");
  EXPECT_EQ(*sc.html_body, "<p>h</p>");
  EXPECT_EQ(*sc.amp_html_body, "a");
  ASSERT_EQ(sc.headers.size(), 2u);
  EXPECT_EQ(sc.headers[0].name, "X-Campaign");  // request order
  EXPECT_EQ(sc.headers[1].value, "<https://u.example/x>");
  ASSERT_EQ(sc.attachments.size(), 1u);
  EXPECT_TRUE(sc.attachments[0].base64);
  EXPECT_EQ(sc.attachments[0].content_id, "c1");
  ASSERT_EQ(r.recipients.size(), 2u);
  EXPECT_EQ(r.recipients[0].recipient.name, "Ann");
  EXPECT_EQ(*r.recipients[0].recipient.substitutions.at("name").as_string(), "Ann");
  EXPECT_EQ(*r.recipients[0].metadata.at("order").as_int(), 17);
  EXPECT_EQ(r.recipients[1].index, 1u);
  EXPECT_EQ(*r.substitutions.at("n").as_int(), 3);
  EXPECT_EQ(*r.substitutions.at("pi").as_double(), 3.5);
  EXPECT_TRUE(*r.substitutions.at("on").as_bool());
  EXPECT_TRUE(r.substitutions.at("none").is_null());
  EXPECT_EQ(r.substitutions.at("items").as_array()->size(), 2u);
}

TEST(InjectRequest, WholeMessageAndStaticDialect) {
  const auto r = ok(R"({"envelope_sender": "a@b.example", "template_dialect": "static",
    "content": "From: a@b.example\r\nSubject: x\r\n\r\nbody\r\n",
    "recipients": [{"email": "c@d.example"}]}
  )");  // whitespace after the object is fine
  EXPECT_EQ(r.dialect, tmpl::Dialect::kStatic);
  EXPECT_EQ(std::get<std::string>(r.content), "From: a@b.example\r\nSubject: x\r\n\r\nbody\r\n");
}

TEST(InjectRequest, ABadRecipientIsRejectedAloneUnlessItIsTheOnlyOne) {
  const auto r = ok(R"({"envelope_sender": "a@b.example", "content": "From: a@b.example\r\n\r\nx",
    "recipients": [{"email": "not an address"}, {"email": "c@d.example"}]})");
  ASSERT_EQ(r.recipients.size(), 1u);
  EXPECT_EQ(r.recipients[0].index, 1u);
  ASSERT_EQ(r.rejected.size(), 1u);
  EXPECT_EQ(r.rejected[0].index, 0u);
  EXPECT_EQ(r.rejected[0].email, "not an address");
  const auto e = bad(R"({"envelope_sender": "a@b.example", "content": "From: a@b.example\r\n\r\nx",
    "recipients": [{"email": "nope"}]})");
  EXPECT_EQ(e.pointer, "/recipients/0/email");
}

TEST(InjectRequest, EachRefusalNamesItsField) {
  const std::string head =
      R"({"envelope_sender": "a@b.example", "recipients": [{"email": "c@d.example"}], )";
  struct Case {
    std::string body;
    std::string pointer;
    std::string reason;
  } cases[] = {
      {"[1]", "", "the body must be a JSON object"},
      {"{\"envelope_sender\": ", "", "invalid JSON"},
      {R"({"content": "x", "recipients": [{"email": "c@d.example"}]})", "/envelope_sender",
       "required"},
      {R"({"envelope_sender": "a@b.example", "content": "x"})", "/recipients", "required"},
      {R"({"envelope_sender": "a@b.example", "content": "x", "recipients": []})", "/recipients",
       "is empty"},
      {R"({"envelope_sender": "x", "content": "x", "recipients": [{"email": "c@d.example"}]})",
       "/envelope_sender", "not a valid address"},
      {head + R"("content": 5})", "/content", "must be a string (a whole message) or an object"},
      {head + R"("content": {"subject": "s", "text_body": "t"}})", "/content/from", "required"},
      {head + R"("content": {"from": {"email": "a@b.example"}}})", "/content", "has no text_body"},
      {head + R"("content": {"from": {"email": "bad"}, "text_body": "t"}})", "/content/from/email",
       "not a valid address"},
      {head + R"("content": {"from": {"email": "a@b.example"}, "text_body": 7}})",
       "/content/text_body", "must be a string, not a number"},
      {head +
           R"("content": {"from": {"email": "a@b.example"}, "text_body": "t", "headers": {"X-A": 1}}})",
       "/content/headers/X-A", "must be a string"},
      {head +
           R"("content": {"from": {"email": "a@b.example"}, "text_body": "t", "attachments": [{"base64": true}]}})",
       "/content/attachments/0/data", "required"},
      {head +
           R"("content": {"from": {"email": "a@b.example"}, "text_body": "t", "colour": "red"}})",
       "/content/colour", "unknown field"},
      {head + R"("content": "x", "template_dialect": "jinja"})", "/template_dialect",
       "must be \"mustache\" or \"static\""},
      {head + R"("content": "x", "a/b~c": 1})", "/a~1b~0c", "unknown field"},
      {head + R"("content": "x", "substitutions": [1]})", "/substitutions", "must be an object"},
      {R"({"envelope_sender": "a@b.example", "content": "x", "recipients": [{"email": "c@d.example", "metadata": 3}]})",
       "/recipients/0/metadata", "must be an object"},
      {head + R"("content": "x"} trailing)", "", "invalid JSON"},
  };
  for (const auto& c : cases) {
    const FieldError e = bad(c.body);
    EXPECT_EQ(e.pointer, c.pointer) << c.body;
    EXPECT_THAT(e.reason, HasSubstr(c.reason)) << c.body;
  }
}

TEST(InjectRequest, NestingIsBounded) {
  std::string deep = "1";
  for (size_t i = 0; i < kInjectDepthMax + 2; ++i) deep = "[" + deep + "]";
  const auto e =
      bad(R"({"envelope_sender": "a@b.example", "content": "x", "substitutions": {"d": )" + deep +
          "}, \"recipients\": [{\"email\": \"c@d.example\"}]}");
  EXPECT_THAT(e.pointer, HasSubstr("/substitutions/d/0/0"));
  EXPECT_THAT(e.reason, HasSubstr("nested deeper than"));
}

TEST(InjectRequest, ReadsInPlaceWhenTheBufferHasPadding) {
  std::string body =
      R"({"envelope_sender": "a@b.example", "content": "x", "recipients": [{"email": "c@d.example"}]})";
  const size_t size = body.size();
  body.resize(size + 64, ' ');
  auto r = parse_inject_request(std::string_view(body.data(), size), body.size());
  ASSERT_TRUE(std::holds_alternative<InjectRequest>(r));
  EXPECT_EQ(std::get<InjectRequest>(r).recipients.size(), 1u);
}

}  // namespace
}  // namespace ringmail::proto
