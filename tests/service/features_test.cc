// GetFeatures through a real server: window edges, empty windows, ties,
// filters, optional fields, overflow, reproducibility, errors.

#include <cmath>
#include <limits>

#include "google/protobuf/arena.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "server/common/time_util.h"
#include "tests/test_util.h"

namespace rawfeat {
namespace {

using testing::Feature;
using testing::Order;
using testing::TestServer;

constexpr int64_t kHour = 3600LL * 1000000;
constexpr int64_t kT = 1795478400LL * 1000000;  // as-of time used below

void ApplyView(TestServer& ts, const std::vector<v1::FeatureDef>& features,
               uint32_t version = 1, const std::string& name = "v") {
  v1::ApplyDefinitionsRequest req;
  auto* view = req.mutable_definitions()->add_views();
  view->set_name(name);
  view->set_version(version);
  view->set_stream("orders");
  for (const auto& f : features) *view->add_features() = f;
  auto r = ts.client().ApplyDefinitions(req);
  ASSERT_TRUE(r.ok()) << r.status();
}

void Ingest(TestServer& ts, std::vector<v1::Event> events) {
  v1::IngestRequest req;
  req.set_stream("orders");
  for (auto& e : events) *req.add_events() = std::move(e);
  auto r = ts.client().Ingest(req);
  ASSERT_TRUE(r.ok()) << r.status();
}

absl::StatusOr<v1::GetFeaturesResponse> Get(TestServer& ts,
                                            std::vector<std::string> entities,
                                            int64_t as_of,
                                            uint64_t watermark = 0,
                                            const std::string& view = "v",
                                            uint32_t version = 0) {
  v1::GetFeaturesRequest req;
  req.set_view(view);
  req.set_version(version);
  for (auto& e : entities) req.add_entities(e);
  *req.mutable_as_of() = MicrosToTimestamp(as_of);
  req.set_watermark(watermark);
  grpc::ClientContext ctx;
  auto channel =
      grpc::CreateChannel(ts.address(), grpc::InsecureChannelCredentials());
  auto stub = v1::FeatureStore::NewStub(channel);
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
  v1::GetFeaturesResponse resp;
  grpc::Status s = stub->GetFeatures(&ctx, req, &resp);
  if (!s.ok()) return FromGrpcStatus(s);
  return resp;
}

TEST(WindowEdgeTest, TableDriven) {
  // One event per case at T + offset; a 1h count and sum as of T.
  struct Case {
    const char* name;
    int64_t offset;
    int64_t want;  // count in [T - 1h, T)
  };
  const Case cases[] = {
      {"exactly at T is excluded", 0, 0},
      {"1us before T is included", -1, 1},
      {"1us after T is excluded", 1, 0},
      {"exactly at T-W is included", -kHour, 1},
      {"1us before T-W is excluded", -kHour - 1, 0},
      {"1us after T-W is included", -kHour + 1, 1},
  };
  TestServer ts;
  ApplyView(ts, {Feature("n", "count", "", "1h"),
                 Feature("s", "sum", "quantity", "1h"),
                 Feature("life", "count", "", "lifetime")});
  int i = 0;
  for (const auto& c : cases) {
    const std::string entity = "e" + std::to_string(i++);
    Ingest(ts, {Order("id-" + entity, entity, kT + c.offset, 1, 7)});
    auto r = Get(ts, {entity}, kT);
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_EQ(r->rows(0).values(0).int64_value(), c.want) << c.name;
    EXPECT_EQ(r->rows(0).values(1).int64_value(), 7 * c.want) << c.name;
    // lifetime covers event_time < T.
    EXPECT_EQ(r->rows(0).values(2).int64_value(), c.offset < 0 ? 1 : 0)
        << c.name;
  }
}

TEST(FeaturesTest, EmptyWindowPerAggregation) {
  TestServer ts;
  ApplyView(ts, {Feature("count", "count", "", "1h"),
                 Feature("sum_d", "sum", "amount", "1h"),
                 Feature("sum_i", "sum", "quantity", "1h"),
                 Feature("avg", "avg", "amount", "1h"),
                 Feature("min", "min", "amount", "1h"),
                 Feature("max", "max", "category", "1h"),
                 Feature("first", "first", "amount", "1h"),
                 Feature("last", "last", "amount", "1h"),
                 Feature("last_k", "last_k", "amount", "1h", 3),
                 Feature("distinct", "count_distinct", "category", "1h"),
                 Feature("stddev", "stddev", "amount", "1h")});
  // An event outside the window, and an entity with no events at all.
  Ingest(ts, {Order("old", "u1", kT - 2 * kHour, 5)});
  auto r = Get(ts, {"u1", "nobody"}, kT);
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_EQ(r->rows_size(), 2);
  EXPECT_EQ(r->rows(1).entity(), "nobody");
  for (const auto& row : r->rows()) {
    EXPECT_EQ(row.values(0).int64_value(), 0);
    EXPECT_EQ(row.values(1).kind_case(), v1::Value::kDoubleValue);
    EXPECT_EQ(row.values(1).double_value(), 0.0);
    EXPECT_EQ(row.values(2).kind_case(), v1::Value::kInt64Value);
    EXPECT_EQ(row.values(2).int64_value(), 0);
    for (int i = 3; i <= 8; ++i) {
      EXPECT_EQ(row.values(i).kind_case(), v1::Value::KIND_NOT_SET)
          << r->feature_names(i);
    }
    EXPECT_EQ(row.values(9).int64_value(), 0);
    EXPECT_EQ(row.values(10).kind_case(), v1::Value::KIND_NOT_SET);
  }
}

TEST(FeaturesTest, TiesInEventTimeBrokenBySeq) {
  TestServer ts;
  ApplyView(ts, {Feature("first", "first", "amount", "1h"),
                 Feature("last", "last", "amount", "1h"),
                 Feature("last2", "last_k", "amount", "1h", 2)});
  // Same event time; ingest order (seq) decides.
  Ingest(ts, {Order("a", "u", kT - 10, 1.0)});
  Ingest(ts, {Order("b", "u", kT - 10, 2.0)});
  Ingest(ts, {Order("c", "u", kT - 10, 3.0)});
  auto r = Get(ts, {"u"}, kT);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->rows(0).values(0).double_value(), 1.0);
  EXPECT_EQ(r->rows(0).values(1).double_value(), 3.0);
  const auto& list = r->rows(0).values(2).list_value();
  ASSERT_EQ(list.values_size(), 2);
  EXPECT_EQ(list.values(0).double_value(), 3.0);
  EXPECT_EQ(list.values(1).double_value(), 2.0);
}

TEST(FeaturesTest, FiltersAndMissingOptionalFields) {
  TestServer ts;
  auto coupon_count = Feature("with_coupon", "count", "", "1d");
  coupon_count.mutable_filter()->set_field("coupon");
  coupon_count.mutable_filter()->set_op("!=");
  coupon_count.mutable_filter()->add_values()->set_string_value("NONE");
  auto big = Feature("big", "count", "", "1d");
  big.mutable_filter()->set_field("amount");
  big.mutable_filter()->set_op(">=");
  big.mutable_filter()->add_values()->set_int64_value(100);  // widened
  auto cats = Feature("cats", "sum", "quantity", "1d");
  cats.mutable_filter()->set_field("category");
  cats.mutable_filter()->set_op("in");
  cats.mutable_filter()->add_values()->set_string_value("books");
  cats.mutable_filter()->add_values()->set_string_value("toys");
  ApplyView(ts, {coupon_count, big, cats,
                 Feature("coupons_seen", "count", "coupon", "1d"),
                 Feature("last_coupon", "last", "coupon", "1d")});
  Ingest(ts, {Order("1", "u", kT - 50, 100, 1, "books", "X"),
              Order("2", "u", kT - 40, 99.5, 2, "toys"),  // no coupon
              Order("3", "u", kT - 30, 150, 4, "food", "NONE"),
              Order("4", "u", kT - 20, 5, 8, "toys", "Y")});
  auto r = Get(ts, {"u"}, kT);
  ASSERT_TRUE(r.ok()) << r.status();
  const auto& v = r->rows(0).values();
  EXPECT_EQ(v[0].int64_value(), 2);  // X, Y: the missing coupon fails '!='
  EXPECT_EQ(v[1].int64_value(), 2);  // 100, 150
  EXPECT_EQ(v[2].int64_value(), 1 + 2 + 8);
  EXPECT_EQ(v[3].int64_value(), 3);  // count of events that have a coupon
  EXPECT_EQ(v[4].string_value(), "Y");
}

TEST(FeaturesTest, IntOverflowIsOutOfRangeNamingFeatureAndEntity) {
  TestServer ts;
  ApplyView(ts, {Feature("items", "sum", "quantity", "lifetime")});
  const int64_t big = std::numeric_limits<int64_t>::max();
  Ingest(ts, {Order("a", "whale", kT - 2, 1, big),
              Order("b", "whale", kT - 1, 1, big)});
  auto r = Get(ts, {"whale"}, kT);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kOutOfRange);
  EXPECT_NE(r.status().message().find("feature 'items' of entity 'whale'"),
            std::string::npos)
      << r.status().message();
}

TEST(FeaturesTest, ReproducibleAtAWatermark) {
  TestServer ts;
  ApplyView(
      ts, {Feature("n", "count", "", "1d"), Feature("s", "sum", "amount", "1d"),
           Feature("l", "last", "amount", "1d")});
  Ingest(ts, {Order("a", "u", kT - 100, 1.5), Order("b", "u", kT - 50, 2.5)});
  auto first = Get(ts, {"u"}, kT);
  ASSERT_TRUE(first.ok());
  const uint64_t w = first->watermark();
  EXPECT_EQ(w, 2u);
  // Late events inside the window arrive.
  Ingest(ts, {Order("late1", "u", kT - 75, 10.0),
              Order("late2", "u", kT - 1, 20.0)});
  auto again = Get(ts, {"u"}, kT, w);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(testing::Canonical(again->rows(0)),
            testing::Canonical(first->rows(0)));
  EXPECT_EQ(again->watermark(), w);
  auto latest = Get(ts, {"u"}, kT);
  ASSERT_TRUE(latest.ok());
  EXPECT_EQ(latest->rows(0).values(0).int64_value(), 4);
  EXPECT_EQ(latest->rows(0).values(1).double_value(), 34.0);
  EXPECT_EQ(latest->rows(0).values(2).double_value(), 20.0);
}

TEST(FeaturesTest, VersionsLiveSideBySide) {
  TestServer ts;
  ApplyView(ts, {Feature("n", "count", "", "1h")}, 1);
  ApplyView(ts, {Feature("n", "count", "", "1d")}, 2);
  Ingest(ts, {Order("a", "u", kT - 2 * kHour, 1)});
  auto v1r = Get(ts, {"u"}, kT, 0, "v", 1);
  auto v2r = Get(ts, {"u"}, kT, 0, "v", 0);  // latest
  ASSERT_TRUE(v1r.ok() && v2r.ok());
  EXPECT_EQ(v1r->rows(0).values(0).int64_value(), 0);
  EXPECT_EQ(v2r->rows(0).values(0).int64_value(), 1);
  EXPECT_EQ(v2r->version(), 2u);
}

TEST(FeaturesTest, Errors) {
  ServerOptions opts;
  opts.max_entities = 3;
  TestServer ts("", true, opts);
  ApplyView(ts, {Feature("n", "count", "", "1h")});
  auto r = Get(ts, {"u"}, kT, 0, "nope");
  EXPECT_EQ(r.status().code(), absl::StatusCode::kNotFound);
  EXPECT_NE(r.status().message().find("view 'nope'"), std::string::npos);
  r = Get(ts, {"u"}, kT, 0, "v", 9);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kNotFound);
  EXPECT_NE(r.status().message().find("version 9"), std::string::npos);
  r = Get(ts, {"a", "b", "c", "d"}, kT);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find("limit is 3"), std::string::npos);
  r = Get(ts, {}, kT);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  r = Get(ts, {"u"}, kT, 99);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find("above the latest"), std::string::npos);
  // Rows come back in request order, duplicates included.
  Ingest(ts, {Order("a", "b", kT - 1, 1)});
  r = Get(ts, {"c", "b", "c"}, kT);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->rows(0).entity(), "c");
  EXPECT_EQ(r->rows(1).entity(), "b");
  EXPECT_EQ(r->rows(1).values(0).int64_value(), 1);
  EXPECT_EQ(r->rows(2).entity(), "c");
}

TEST(FeaturesTest, ClientFillsAResponseOnAnArena) {
  TestServer ts;
  ApplyView(ts, {Feature("n", "count", "", "1h"),
                 Feature("s", "sum", "amount", "lifetime"),
                 Feature("c", "last", "category", "lifetime")});
  std::vector<v1::Event> events;
  for (int i = 0; i < 60; ++i) {
    events.push_back(Order("id" + std::to_string(i),
                           "u" + std::to_string(i % 7),
                           kT - (i + 1) * kHour / 10, 1.5 * i + 1, i % 4 + 1,
                           "c" + std::to_string(i % 3)));
  }
  Ingest(ts, std::move(events));
  v1::GetFeaturesRequest req;
  req.set_view("v");
  *req.mutable_as_of() = MicrosToTimestamp(kT);
  for (int i = 6; i >= 0; --i) req.add_entities("u" + std::to_string(i));
  req.add_entities("nobody");
  auto plain = ts.client().GetFeatures(req);
  ASSERT_TRUE(plain.ok()) << plain.status();
  ASSERT_EQ(plain->rows_size(), 8);

  google::protobuf::Arena arena;
  auto* on_arena =
      google::protobuf::Arena::CreateMessage<v1::GetFeaturesResponse>(&arena);
  // Filled twice: the second answer replaces the first, nothing is kept.
  ASSERT_TRUE(ts.client().GetFeatures(req, on_arena).ok());
  ASSERT_TRUE(ts.client().GetFeatures(req, on_arena).ok());
  EXPECT_EQ(on_arena->GetArena(), &arena);
  EXPECT_EQ(on_arena->SerializeAsString(), plain->SerializeAsString());
  EXPECT_EQ(on_arena->rows(0).entity(), "u6");
  EXPECT_GT(on_arena->rows(0).values(1).double_value(), 0);

  // An error leaves a status, not a stale answer to trust.
  v1::GetFeaturesRequest bad = req;
  bad.set_view("nope");
  const absl::Status s = ts.client().GetFeatures(bad, on_arena);
  EXPECT_EQ(s.code(), absl::StatusCode::kNotFound);
  EXPECT_NE(s.message().find("view 'nope'"), std::string::npos);
}

}  // namespace
}  // namespace rawfeat
