#include "server/schema/registry.h"

#include <fstream>
#include <functional>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "tests/test_util.h"

namespace rawfeat {
namespace {

v1::FeatureViewDef CountView(uint32_t version, const std::string& window) {
  v1::FeatureViewDef v;
  v.set_name("user_orders");
  v.set_version(version);
  v.set_stream("orders");
  auto* f = v.add_features();
  f->set_name("n");
  f->set_aggregation("count");
  f->set_window(window);
  return v;
}

class RegistryTest : public ::testing::Test {
 protected:
  void SetUp() override { Reopen(); }
  void Reopen() {
    registry_.reset();
    store_.reset();
    auto s = EventStore::Open(dir_.Sub("db"), {});
    ASSERT_TRUE(s.ok());
    store_ = std::move(*s);
    registry_ = std::make_unique<Registry>(store_.get());
    ASSERT_TRUE(registry_->Load().ok());
  }
  testing::TempDir dir_;
  std::unique_ptr<EventStore> store_;
  std::unique_ptr<Registry> registry_;
};

TEST_F(RegistryTest, ApplyPersistsAndReapplyIsNoOp) {
  v1::Definitions d = testing::OrdersDefinitions();
  *d.add_views() = CountView(1, "7d");
  auto r = registry_->Apply(d, false, "f");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->changes.size(), 2u);
  Reopen();
  ASSERT_NE(registry_->FindStream("orders"), nullptr);
  EXPECT_TRUE(registry_->FindView("user_orders", 1).ok());
  auto again = registry_->Apply(d, false, "f");
  ASSERT_TRUE(again.ok());
  EXPECT_TRUE(again->changes.empty());
}

TEST_F(RegistryTest, ViewVersionsAreImmutableAndCoexist) {
  v1::Definitions d = testing::OrdersDefinitions();
  *d.add_views() = CountView(1, "7d");
  ASSERT_TRUE(registry_->Apply(d, false, "").ok());
  v1::Definitions changed;
  *changed.add_views() = CountView(1, "30d");
  auto r = registry_->Apply(changed, false, "views.textproto");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(r.status().message().find("views.textproto: view 'user_orders' "
                                      "version 1: already exists"),
            std::string::npos)
      << r.status().message();
  *changed.mutable_views(0) = CountView(2, "30d");
  ASSERT_TRUE(registry_->Apply(changed, false, "").ok());
  EXPECT_EQ((*registry_->FindView("user_orders", 0))->version(), 2u);
  EXPECT_EQ((*registry_->FindView("user_orders", 1))->features(0).window(),
            "7d");
  auto missing = registry_->FindView("user_orders", 3);
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  EXPECT_NE(missing.status().message().find("version 3"), std::string::npos);
}

TEST_F(RegistryTest, DryRunWritesNothingAndReportsProblems) {
  v1::Definitions d = testing::OrdersDefinitions();
  *d.add_views() = CountView(1, "7q");
  auto r = registry_->Apply(d, true, "");
  ASSERT_TRUE(r.ok());
  EXPECT_FALSE(r->problems.empty());
  EXPECT_EQ(registry_->FindStream("orders"), nullptr);
  d.mutable_views(0)->mutable_features(0)->set_window("7d");
  r = registry_->Apply(d, true, "");
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(r->problems.empty());
  EXPECT_EQ(r->changes.size(), 2u);
  Reopen();
  EXPECT_EQ(registry_->FindStream("orders"), nullptr);
}

TEST_F(RegistryTest, ApplyIsAllOrNothing) {
  v1::Definitions d = testing::OrdersDefinitions();
  *d.add_views() = CountView(1, "bad");
  EXPECT_FALSE(registry_->Apply(d, false, "").ok());
  EXPECT_EQ(registry_->FindStream("orders"), nullptr);
}

TEST_F(RegistryTest, EvolutionKeepsSchemaVersions) {
  ASSERT_TRUE(registry_->Apply(testing::OrdersDefinitions(), false, "").ok());
  v1::Definitions d = testing::OrdersDefinitions();
  auto* f = d.mutable_streams(0)->add_fields();
  f->set_name("channel");
  f->set_type(v1::STRING);
  ASSERT_TRUE(registry_->Apply(d, false, "").ok());
  Reopen();
  auto s = registry_->FindStream("orders");
  ASSERT_NE(s, nullptr);
  EXPECT_EQ(s->versions.size(), 2u);
  EXPECT_EQ(s->schema_version(), 1u);
  EXPECT_EQ(s->types.size(), 6u);
}

TEST_F(RegistryTest, CorruptStoredDefinitionIsReportedNotFatal) {
  ASSERT_TRUE(registry_->Apply(testing::OrdersDefinitions(), false, "").ok());
  ASSERT_TRUE(store_
                  ->PutDefinitions(
                      {{EventStore::DefinitionKind::kStream, "clicks", 0,
                        "\xff\xff garbage"},
                       {EventStore::DefinitionKind::kView, "ghost", 1, "\x01"}},
                      {})
                  .ok());
  Reopen();
  EXPECT_NE(registry_->FindStream("orders"), nullptr);
  EXPECT_EQ(registry_->FindStream("clicks"), nullptr);
  const auto problems = registry_->problems();
  ASSERT_EQ(problems.size(), 2u);
  EXPECT_NE(problems[0].find("stream/clicks"), std::string::npos)
      << problems[0];
}

TEST_F(RegistryTest, SchemasDirAppliesGoodFilesAndReportsBadOnes) {
  testing::TempDir schemas;
  std::ofstream(schemas.Sub("a_stream.textproto"))
      << "streams { name: 'orders' entity_field: 'user_id' time_field: 't' "
         "fields { name: 'amount' type: DOUBLE required: true } }";
  std::ofstream(schemas.Sub("b_view.textproto"))
      << "views { name: 'v' version: 1 stream: 'orders' features { name: 'n' "
         "aggregation: 'count' window: '1d' } }";
  // A service in a file sorted before its view's: applied after every view.
  std::ofstream(schemas.Sub("a_service.textproto"))
      << "services { name: 's' version: 1 parts { view: 'v' view_version: 1 "
         "key: 'user_id' } }";
  std::ofstream(schemas.Sub("c_broken.textproto")) << "streams { nme: 'x' }";
  std::ofstream(schemas.Sub("d_invalid.textproto"))
      << "views { name: 'w' version: 1 stream: 'orders' features { name: 'n' "
         "aggregation: 'sum' field: 'nope' window: '1d' } }";
  auto problems = ApplySchemasDir(schemas.path(), registry_.get());
  EXPECT_NE(registry_->FindStream("orders"), nullptr);
  EXPECT_TRUE(registry_->FindView("v", 1).ok());
  EXPECT_TRUE(registry_->FindService("s", 1).ok());
  ASSERT_EQ(problems.size(), 2u);
  EXPECT_NE(problems[0].find("c_broken.textproto:1:"), std::string::npos)
      << problems[0];
  EXPECT_NE(problems[1].find("d_invalid.textproto"), std::string::npos);
  EXPECT_NE(problems[1].find("field 'nope'"), std::string::npos);
  EXPECT_EQ(registry_->problems().size(), 2u);
}

// Issue 15, definitions: a service of two parts over the same view with
// two keys (a user as buyer and as seller), validated, immutable, stored.
v1::FeatureServiceDef TwoKeyService(uint32_t version,
                                    const std::string& seller_prefix) {
  v1::FeatureServiceDef s;
  s.set_name("trades");
  s.set_version(version);
  auto* buyer = s.add_parts();
  buyer->set_view("user_orders");
  buyer->set_view_version(1);
  buyer->set_key("buyer_id");
  buyer->set_prefix("buyer_");
  auto* seller = s.add_parts();
  seller->set_view("user_orders");
  seller->set_view_version(1);
  seller->set_key("seller_id");
  seller->set_prefix(seller_prefix);
  seller->add_features("n");
  return s;
}

TEST_F(RegistryTest, ServicesAreValidatedImmutableAndStored) {
  v1::Definitions d = testing::OrdersDefinitions();
  *d.add_views() = CountView(1, "7d");
  *d.add_services() = TwoKeyService(1, "seller_");
  auto dry = registry_->Apply(d, true, "");
  ASSERT_TRUE(dry.ok()) << dry.status();
  ASSERT_EQ(dry->changes.size(), 3u);
  EXPECT_EQ(dry->changes[2],
            "add service 'trades' version 1 (2 parts, 2 features)");
  EXPECT_FALSE(registry_->FindService("trades", 0).ok());  // dry run
  ASSERT_TRUE(registry_->Apply(d, false, "").ok());
  Reopen();
  auto found = registry_->FindService("trades", 0);
  ASSERT_TRUE(found.ok()) << found.status();
  EXPECT_EQ(registry_->ServiceFeatureNames(**found),
            (std::vector<std::string>{"buyer_n", "seller_n"}));
  auto again = registry_->Apply(d, false, "");
  ASSERT_TRUE(again.ok());
  EXPECT_TRUE(again->changes.empty());
  v1::Definitions changed;
  *changed.add_services() = TwoKeyService(1, "s_");
  auto refused = registry_->Apply(changed, false, "");
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(refused.status().message().find("immutable"), std::string::npos);
  *changed.mutable_services(0) = TwoKeyService(2, "s_");
  ASSERT_TRUE(registry_->Apply(changed, false, "").ok());
  EXPECT_EQ((*registry_->FindService("trades", 0))->version(), 2u);
  EXPECT_EQ((*registry_->FindService("trades", 1))->parts(1).prefix(),
            "seller_");
  EXPECT_EQ(registry_->Services().size(), 2u);
}

TEST_F(RegistryTest, ServiceErrorsNameThePart) {
  v1::Definitions base = testing::OrdersDefinitions();
  *base.add_views() = CountView(1, "7d");
  ASSERT_TRUE(registry_->Apply(base, false, "").ok());
  struct Case {
    std::function<void(v1::FeatureServiceDef*)> change;
    const char* problem;
  };
  const Case cases[] = {
      {[](v1::FeatureServiceDef* s) {
         s->mutable_parts(1)->set_view_version(7);
       },
       "part 2 (view 'user_orders' v7): no such view version"},
      {[](v1::FeatureServiceDef* s) { s->mutable_parts(1)->set_view("nope"); },
       "part 2 (view 'nope' v1): no such view version"},
      {[](v1::FeatureServiceDef* s) {
         s->mutable_parts(0)->set_view_version(0);
       },
       "part 1 (view 'user_orders' v0): view_version must be given"},
      {[](v1::FeatureServiceDef* s) { s->mutable_parts(1)->clear_key(); },
       "part 2 (view 'user_orders' v1): key must name the label column"},
      {[](v1::FeatureServiceDef* s) { s->mutable_parts(1)->add_features("x"); },
       "part 2 (view 'user_orders' v1): feature 'x' is not in the view"},
      {[](v1::FeatureServiceDef* s) {
         s->mutable_parts(1)->set_prefix("buyer_");
       },
       "part 2 (view 'user_orders' v1): output feature 'buyer_n' clashes with "
       "part 1's: give one of them a prefix"},
      {[](v1::FeatureServiceDef* s) { s->clear_parts(); }, "has no parts"},
  };
  for (const Case& c : cases) {
    v1::FeatureServiceDef service = TwoKeyService(1, "seller_");
    c.change(&service);
    v1::Definitions d;
    *d.add_services() = service;
    auto r = registry_->Apply(d, false, "fraud.textproto");
    ASSERT_FALSE(r.ok()) << c.problem;
    EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_NE(r.status().message().find(absl::StrCat(
                  "fraud.textproto: service 'trades' version 1: ", c.problem)),
              std::string::npos)
        << r.status();
  }
  EXPECT_TRUE(registry_->Services().empty());
}

}  // namespace
}  // namespace rawfeat
