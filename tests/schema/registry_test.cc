#include "server/schema/registry.h"

#include <fstream>

#include "gtest/gtest.h"
#include "server/storage/keys.h"
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
                  ->PutMeta({{MetaStreamKey("clicks"), "\xff\xff garbage"},
                             {MetaViewKey("ghost", 1), "\x01"}})
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
  std::ofstream(schemas.Sub("c_broken.textproto")) << "streams { nme: 'x' }";
  std::ofstream(schemas.Sub("d_invalid.textproto"))
      << "views { name: 'w' version: 1 stream: 'orders' features { name: 'n' "
         "aggregation: 'sum' field: 'nope' window: '1d' } }";
  auto problems = ApplySchemasDir(schemas.path(), registry_.get());
  EXPECT_NE(registry_->FindStream("orders"), nullptr);
  EXPECT_TRUE(registry_->FindView("v", 1).ok());
  ASSERT_EQ(problems.size(), 2u);
  EXPECT_NE(problems[0].find("c_broken.textproto:1:"), std::string::npos)
      << problems[0];
  EXPECT_NE(problems[1].find("d_invalid.textproto"), std::string::npos);
  EXPECT_NE(problems[1].find("field 'nope'"), std::string::npos);
  EXPECT_EQ(registry_->problems().size(), 2u);
}

}  // namespace
}  // namespace rawfeat
