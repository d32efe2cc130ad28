#include "server/schema/validation.h"

#include "gtest/gtest.h"
#include "server/common/definitions_text.h"
#include "tests/test_util.h"

namespace rawfeat {
namespace {

using testing::OrdersStream;

bool Mentions(const std::vector<std::string>& problems, const std::string& s) {
  for (const auto& p : problems) {
    if (p.find(s) != std::string::npos) return true;
  }
  return false;
}

TEST(WindowTest, ParsesDurationsAndLifetime) {
  EXPECT_EQ(ParseWindow("30m")->micros, 30LL * 60 * 1000000);
  EXPECT_EQ(ParseWindow("1h")->micros, 3600LL * 1000000);
  EXPECT_EQ(ParseWindow("7d")->micros, 7LL * 86400 * 1000000);
  EXPECT_EQ(ParseWindow("2w")->micros, 14LL * 86400 * 1000000);
  EXPECT_TRUE(ParseWindow("lifetime")->lifetime);
  for (const char* bad : {"", "d", "0d", "-1d", "1y", "1.5h", "h1", "1 d",
                          "999999999999d", "Lifetime"}) {
    EXPECT_FALSE(ParseWindow(bad).ok()) << bad;
  }
}

TEST(ValidateStreamTest, AcceptsTheExample) {
  EXPECT_TRUE(ValidateStream(OrdersStream()).empty());
}

TEST(ValidateStreamTest, NamesEachProblem) {
  v1::StreamDef s = OrdersStream();
  s.set_name("bad name");
  s.mutable_fields(0)->set_type(v1::FIELD_TYPE_UNSPECIFIED);
  *s.add_fields() = s.fields(1);  // quantity twice
  auto* f = s.add_fields();
  f->set_name("user_id");
  f->set_type(v1::STRING);
  auto p = ValidateStream(s);
  EXPECT_TRUE(Mentions(p, "name must match")) << p[0];
  EXPECT_TRUE(Mentions(p, "field 'amount': type"));
  EXPECT_TRUE(Mentions(p, "field 'quantity': defined twice"));
  EXPECT_TRUE(Mentions(p, "field 'user_id': is the entity or time column"));

  v1::StreamDef no_time = OrdersStream();
  no_time.clear_time_field();
  EXPECT_TRUE(Mentions(ValidateStream(no_time), "time_field must be set"));
}

v1::FeatureViewDef View(const std::string& agg, const std::string& field,
                        const std::string& window) {
  v1::FeatureViewDef v;
  v.set_name("v");
  v.set_version(1);
  v.set_stream("orders");
  auto* f = v.add_features();
  f->set_name("f");
  f->set_aggregation(agg);
  f->set_field(field);
  f->set_window(window);
  return v;
}

TEST(ValidateViewTest, AggregationTypeFit) {
  EXPECT_TRUE(
      ValidateView(View("sum", "amount", "7d"), OrdersStream()).empty());
  EXPECT_TRUE(ValidateView(View("count", "", "1h"), OrdersStream()).empty());
  EXPECT_TRUE(
      ValidateView(View("max", "category", "1h"), OrdersStream()).empty());
  EXPECT_TRUE(
      Mentions(ValidateView(View("sum", "category", "7d"), OrdersStream()),
               "feature 'f': sum needs a numeric field"));
  EXPECT_TRUE(
      Mentions(ValidateView(View("stddev", "is_gift", "7d"), OrdersStream()),
               "numeric"));
  EXPECT_TRUE(
      Mentions(ValidateView(View("median", "amount", "7d"), OrdersStream()),
               "unknown aggregation 'median'"));
  EXPECT_TRUE(Mentions(ValidateView(View("sum", "price", "7d"), OrdersStream()),
                       "field 'price' is not in stream"));
  EXPECT_TRUE(
      Mentions(ValidateView(View("sum", "amount", "7x"), OrdersStream()),
               "bad window '7x'"));
  EXPECT_TRUE(Mentions(ValidateView(View("last", "", "7d"), OrdersStream()),
                       "needs a source field"));
  auto lk = View("last_k", "amount", "7d");
  EXPECT_TRUE(Mentions(ValidateView(lk, OrdersStream()), "needs k"));
  lk.mutable_features(0)->set_k(3);
  EXPECT_TRUE(ValidateView(lk, OrdersStream()).empty());
  auto k_on_sum = View("sum", "amount", "7d");
  k_on_sum.mutable_features(0)->set_k(3);
  EXPECT_TRUE(Mentions(ValidateView(k_on_sum, OrdersStream()), "takes no k"));
}

TEST(ValidateViewTest, Filters) {
  auto v = View("count", "", "7d");
  auto* filter = v.mutable_features(0)->mutable_filter();
  filter->set_field("amount");
  filter->set_op(">=");
  filter->add_values()->set_int64_value(100);  // INT64 literal widens
  EXPECT_TRUE(ValidateView(v, OrdersStream()).empty());
  filter->set_op("~");
  EXPECT_TRUE(Mentions(ValidateView(v, OrdersStream()), "filter op '~'"));
  filter->set_op("in");
  filter->clear_values();
  EXPECT_TRUE(Mentions(ValidateView(v, OrdersStream()), "1 to 1000 values"));
  filter->add_values()->set_string_value("x");
  EXPECT_TRUE(Mentions(ValidateView(v, OrdersStream()), "does not fit"));
  filter->set_field("nope");
  EXPECT_TRUE(Mentions(ValidateView(v, OrdersStream()), "filter field 'nope'"));
}

TEST(EvolveStreamTest, AddsOptionalFieldsAtTheEnd) {
  v1::StreamDef next = OrdersStream();
  auto* f = next.mutable_fields()->Add();
  f->set_name("channel");
  f->set_type(v1::STRING);
  // Also reorder existing fields: positions must not move.
  next.mutable_fields()->SwapElements(0, 2);
  auto ev = EvolveStream(OrdersStream(), next);
  ASSERT_TRUE(ev.ok()) << ev.status();
  EXPECT_TRUE(ev->changed);
  EXPECT_TRUE(ev->new_schema_version);
  ASSERT_EQ(ev->merged.fields_size(), 6);
  EXPECT_EQ(ev->merged.fields(0).name(), "amount");
  EXPECT_EQ(ev->merged.fields(5).name(), "channel");
}

TEST(EvolveStreamTest, IdenticalIsNoChange) {
  auto ev = EvolveStream(OrdersStream(), OrdersStream());
  ASSERT_TRUE(ev.ok());
  EXPECT_FALSE(ev->changed);
}

TEST(EvolveStreamTest, RefusesIncompatibleChanges) {
  struct Case {
    const char* want;
    std::function<void(v1::StreamDef*)> change;
  };
  const std::vector<Case> cases = {
      {"field 'coupon' cannot be removed",
       [](v1::StreamDef* s) {
         s->mutable_fields()->RemoveLast();
         s->mutable_fields()->RemoveLast();
         *s->add_fields() = OrdersStream().fields(4);
       }},
      {"field 'quantity' cannot change type from INT64 to DOUBLE",
       [](v1::StreamDef* s) { s->mutable_fields(1)->set_type(v1::DOUBLE); }},
      {"field 'coupon' cannot change from optional to required",
       [](v1::StreamDef* s) { s->mutable_fields(3)->set_required(true); }},
      {"entity_field cannot change",
       [](v1::StreamDef* s) { s->set_entity_field("customer"); }},
      {"time_field cannot change",
       [](v1::StreamDef* s) { s->set_time_field("ts"); }},
      {"new field 'x' must be optional",
       [](v1::StreamDef* s) {
         auto* f = s->add_fields();
         f->set_name("x");
         f->set_type(v1::INT64);
         f->set_required(true);
       }},
  };
  for (const auto& c : cases) {
    v1::StreamDef next = OrdersStream();
    c.change(&next);
    auto ev = EvolveStream(OrdersStream(), next);
    ASSERT_FALSE(ev.ok()) << c.want;
    EXPECT_EQ(ev.status().code(), absl::StatusCode::kFailedPrecondition);
    EXPECT_NE(ev.status().message().find(c.want), std::string::npos)
        << ev.status().message();
  }
}

TEST(DefinitionsTextTest, ReportsLineAndColumn) {
  auto d = ParseDefinitionsText("streams {\n  name: \"x\"\n  bogus: 1\n}\n",
                                "a.textproto");
  ASSERT_FALSE(d.ok());
  EXPECT_NE(d.status().message().find("a.textproto:3:"), std::string::npos)
      << d.status().message();
}

}  // namespace
}  // namespace rawfeat
