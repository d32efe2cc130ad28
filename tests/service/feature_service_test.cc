// Issue 15, feature services: each part looked up by its own key, at one
// watermark. Lookups, joins and snapshots equal, value for value, the
// single-view reads of their parts; a missing key nulls only its part.

#include <map>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "server/common/time_util.h"
#include "tests/test_util.h"

namespace rawfeat {
namespace {

using testing::Feature;
using testing::Order;
using testing::TestServer;

constexpr int64_t kDay = 86400LL * 1000000;
constexpr int64_t kT = 1795478400LL * 1000000;

class FeatureServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    // Two streams (orders keyed by user, payments keyed by merchant), a
    // view over each, and a service: the user as buyer and as seller, and
    // the merchant.
    v1::ApplyDefinitionsRequest req;
    v1::StreamDef payments = testing::OrdersStream();
    payments.set_name("payments");
    payments.set_entity_field("merchant_id");
    *req.mutable_definitions()->add_streams() = payments;
    auto* users = req.mutable_definitions()->add_views();
    users->set_name("users");
    users->set_version(1);
    users->set_stream("orders");
    *users->add_features() = Feature("n_7d", "count", "", "7d");
    *users->add_features() = Feature("spend_7d", "sum", "amount", "7d");
    *users->add_features() =
        Feature("last_cat", "last", "category", "lifetime");
    auto* merchants = req.mutable_definitions()->add_views();
    merchants->set_name("merchants");
    merchants->set_version(1);
    merchants->set_stream("payments");
    *merchants->add_features() = Feature("n_1d", "count", "", "1d");
    *merchants->add_features() = Feature("max_30d", "max", "amount", "30d");
    auto* service = req.mutable_definitions()->add_services();
    service->set_name("fraud");
    service->set_version(1);
    auto add_part = [&](const char* view, const char* key, const char* prefix,
                        std::vector<std::string> features) {
      auto* p = service->add_parts();
      p->set_view(view);
      p->set_view_version(1);
      p->set_key(key);
      p->set_prefix(prefix);
      for (auto& f : features) p->add_features(f);
    };
    add_part("users", "buyer_id", "buyer_", {});
    add_part("users", "seller_id", "seller_", {"spend_7d", "n_7d"});
    add_part("merchants", "merchant_id", "m_", {});
    auto r = ts_.client().ApplyDefinitions(req);
    ASSERT_TRUE(r.ok()) << r.status();

    std::mt19937_64 rng(15);
    for (const char* stream : {"orders", "payments"}) {
      v1::IngestRequest batch;
      batch.set_stream(stream);
      for (int i = 0; i < 400; ++i) {
        // Large, tiny and whole amounts; times around the as-of edges.
        const double amount =
            (rng() % 3 == 0) ? 1e15 + (rng() % 7) : (rng() % 1000) / 8.0;
        const int64_t t = kT - static_cast<int64_t>(rng() % (10 * kDay));
        *batch.add_events() =
            Order(absl::StrCat(stream, i), absl::StrCat("k", rng() % 12), t,
                  amount, 1, absl::StrCat("c", rng() % 3));
      }
      auto ing = ts_.client().Ingest(batch);
      ASSERT_TRUE(ing.ok()) << ing.status();
      watermarks_.push_back(ing->watermark());
    }
  }

  v1::GetFeaturesResponse View(const std::string& view,
                               const std::string& entity, int64_t as_of,
                               uint64_t watermark) {
    v1::GetFeaturesRequest req;
    req.set_view(view);
    req.add_entities(entity);
    *req.mutable_as_of() = MicrosToTimestamp(as_of);
    req.set_watermark(watermark);
    auto r = ts_.client().GetFeatures(req);
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? *r : v1::GetFeaturesResponse();
  }

  static ServerOptions Options() {
    ServerOptions options;
    options.lookup_threads = 3;  // a lookup of 17 rows or more: 3 threads
    return options;
  }

  TestServer ts_{"", true, Options()};
  std::vector<uint64_t> watermarks_;
};

TEST_F(FeatureServiceTest, PartsEqualTheirViewsAtOneWatermark) {
  std::vector<std::vector<std::pair<std::string, std::string>>> rows = {
      {{"buyer_id", "k1"}, {"seller_id", "k2"}, {"merchant_id", "k3"}},
      {{"buyer_id", "k4"}, {"merchant_id", "nobody"}},  // no seller
      {{"seller_id", "k5"}, {"merchant_id", "k5"}},     // no buyer
      {{"buyer_id", "k6"}, {"seller_id", "k6"}, {"merchant_id", "k0"}},
  };
  // And 36 random rows: the call's rows are computed by several threads.
  std::mt19937_64 rng(16);
  for (int r = 0; r < 36; ++r) {
    std::vector<std::pair<std::string, std::string>> row;
    for (const char* key : {"buyer_id", "seller_id", "merchant_id"}) {
      if (rng() % 4 != 0) row.emplace_back(key, absl::StrCat("k", rng() % 13));
    }
    rows.push_back(std::move(row));
  }
  // At the first stream's watermark the payments are not visible yet.
  for (const uint64_t watermark : {watermarks_[0], watermarks_[1]}) {
    for (const int64_t as_of : {kT, kT - 3 * kDay, kT - 7 * kDay}) {
      v1::GetFeaturesRequest req;
      req.set_service("fraud");
      *req.mutable_as_of() = MicrosToTimestamp(as_of);
      req.set_watermark(watermark);
      for (const auto& row : rows) {
        auto* keys = req.add_key_rows()->mutable_keys();
        for (const auto& [k, v] : row) (*keys)[k] = v;
      }
      auto got = ts_.client().GetFeatures(req);
      ASSERT_TRUE(got.ok()) << got.status();
      EXPECT_EQ(got->watermark(), watermark);
      ASSERT_EQ(got->feature_names_size(), 3 + 2 + 2);
      EXPECT_EQ(got->feature_names(3), "seller_spend_7d");
      EXPECT_EQ(got->feature_names(5), "m_n_1d");
      ASSERT_EQ(got->rows_size(), static_cast<int>(rows.size()));
      for (size_t r = 0; r < rows.size(); ++r) {
        std::map<std::string, std::string> keys(rows[r].begin(), rows[r].end());
        // The expected row: each part's view looked up on its own.
        std::vector<v1::Value> want;
        auto take = [&](const char* view, const char* key,
                        std::vector<int> indices) {
          if (!keys.count(key)) {
            for (size_t i = 0; i < indices.size(); ++i) want.emplace_back();
            return;
          }
          auto v = View(view, keys[key], as_of, watermark);
          ASSERT_EQ(v.rows_size(), 1);
          for (int i : indices) want.push_back(v.rows(0).values(i));
        };
        take("users", "buyer_id", {0, 1, 2});
        take("users", "seller_id", {1, 0});
        take("merchants", "merchant_id", {0, 1});
        const auto& row = got->rows(r);
        ASSERT_EQ(row.values_size(), static_cast<int>(want.size()));
        for (size_t i = 0; i < want.size(); ++i) {
          EXPECT_EQ(testing::Canonical(row.values(i)),
                    testing::Canonical(want[i]))
              << "row " << r << " feature " << got->feature_names(i)
              << " watermark " << watermark << " as of " << as_of;
        }
      }
    }
  }
}

// All rows of one JoinFeatures call, by row index.
std::map<uint64_t, v1::JoinedRow> Join(Client& client,
                                       const v1::JoinFeaturesRequest& first,
                                       std::vector<std::string>* names,
                                       uint64_t* watermark) {
  std::map<uint64_t, v1::JoinedRow> rows;
  absl::Status s = client.JoinFeatures(
      first,
      [](v1::JoinFeaturesRequest*) -> absl::StatusOr<bool> { return false; },
      [&](const v1::JoinFeaturesResponse& r) {
        if (r.feature_names_size() > 0) {
          names->assign(r.feature_names().begin(), r.feature_names().end());
        }
        *watermark = r.watermark();
        for (const auto& row : r.rows()) rows[row.row_index()] = row;
        if (r.has_columns()) testing::DecodeColumns(r.columns(), &rows);
        return true;
      });
  EXPECT_TRUE(s.ok()) << s;
  return rows;
}

// A service's join equals, row by row and value for value, the single-view
// joins of its parts merged by row index.
TEST_F(FeatureServiceTest, JoinEqualsItsPartsJoinedOneByOne) {
  std::mt19937_64 rng(99);
  struct Label {
    std::map<std::string, std::string> keys;
    int64_t time;
  };
  std::vector<Label> labels;
  for (int i = 0; i < 300; ++i) {
    Label l;
    for (const char* key : {"buyer_id", "seller_id", "merchant_id"}) {
      if (rng() % 5 != 0) {  // a fifth of the keys missing
        l.keys[key] = absl::StrCat("k", rng() % 14);  // k12, k13 unknown
      }
    }
    // Window edges: exactly 1 day / 7 days after an as-of grid point.
    l.time = kT - static_cast<int64_t>(rng() % 10) * kDay +
             (rng() % 2 == 0 ? 0 : static_cast<int64_t>(rng() % kDay));
    labels.push_back(l);
  }
  for (const uint64_t watermark : {watermarks_[0], watermarks_[1]}) {
    v1::JoinFeaturesRequest service;
    service.set_service("fraud");
    service.set_watermark(watermark);
    for (const Label& l : labels) {
      auto* row = service.add_rows();
      *row->mutable_time() = MicrosToTimestamp(l.time);
      for (const auto& [k, v] : l.keys) (*row->mutable_keys())[k] = v;
      row->add_passthrough("p");
    }
    std::vector<std::string> names;
    uint64_t used = 0;
    auto got = Join(ts_.client(), service, &names, &used);
    EXPECT_EQ(used, watermark);
    ASSERT_EQ(got.size(), labels.size());
    // The same keys by position (key_columns in another order): the same
    // rows, byte for byte.
    v1::JoinFeaturesRequest positional = service;
    for (const char* column : {"merchant_id", "buyer_id", "seller_id"}) {
      positional.add_key_columns(column);
    }
    for (size_t i = 0; i < labels.size(); ++i) {
      auto* row = positional.mutable_rows(static_cast<int>(i));
      row->clear_keys();
      for (const std::string& column : positional.key_columns()) {
        auto it = labels[i].keys.find(column);
        row->add_key_values(it == labels[i].keys.end() ? "" : it->second);
      }
    }
    std::vector<std::string> positional_names;
    auto by_position = Join(ts_.client(), positional, &positional_names, &used);
    EXPECT_EQ(positional_names, names);
    ASSERT_EQ(by_position.size(), got.size());
    for (auto& [i, row] : got) {
      EXPECT_EQ(by_position[i].SerializeAsString(), row.SerializeAsString())
          << "row " << i;
    }
    // The same keys as LabelColumns, answered as columns: the same values.
    v1::JoinFeaturesRequest columnar;
    columnar.set_service("fraud");
    columnar.set_watermark(watermark);
    columnar.set_columnar(true);
    *columnar.mutable_key_columns() = positional.key_columns();
    for (size_t i = 0; i < labels.size(); ++i) {
      columnar.mutable_labels()->add_times_us(labels[i].time);
      for (const std::string& value :
           positional.rows(static_cast<int>(i)).key_values()) {
        columnar.mutable_labels()->add_key_values(value);
      }
    }
    std::vector<std::string> columnar_names;
    auto by_columns = Join(ts_.client(), columnar, &columnar_names, &used);
    EXPECT_EQ(columnar_names, names);
    ASSERT_EQ(by_columns.size(), got.size());
    for (auto& [i, row] : got) {
      v1::JoinedRow values_only;
      *values_only.mutable_values() = row.values();
      values_only.set_row_index(i);
      EXPECT_EQ(by_columns[i].SerializeAsString(),
                values_only.SerializeAsString())
          << "row " << i;
    }
    ASSERT_EQ(names.size(), 7u);
    EXPECT_EQ(names[3], "seller_spend_7d");
    // Each part alone: a view join of the rows that have its key.
    struct PartCheck {
      const char* view;
      const char* key;
      std::vector<int> take;
      int offset;
    };
    for (const PartCheck& part :
         {PartCheck{"users", "buyer_id", {0, 1, 2}, 0},
          PartCheck{"users", "seller_id", {1, 0}, 3},
          PartCheck{"merchants", "merchant_id", {0, 1}, 5}}) {
      v1::JoinFeaturesRequest single;
      single.set_view(part.view);
      single.set_watermark(watermark);
      std::vector<uint64_t> index;  // single row -> service row
      for (size_t i = 0; i < labels.size(); ++i) {
        auto it = labels[i].keys.find(part.key);
        if (it == labels[i].keys.end()) continue;
        auto* row = single.add_rows();
        row->set_entity(it->second);
        *row->mutable_time() = MicrosToTimestamp(labels[i].time);
        index.push_back(i);
      }
      std::vector<std::string> single_names;
      uint64_t single_used = 0;
      auto want = Join(ts_.client(), single, &single_names, &single_used);
      ASSERT_EQ(want.size(), index.size());
      std::vector<bool> has(labels.size(), false);
      for (const auto& [j, row] : want) {
        const v1::JoinedRow& g = got[index[j]];
        has[index[j]] = true;
        for (size_t t = 0; t < part.take.size(); ++t) {
          EXPECT_EQ(testing::Canonical(g.values(part.offset + t)),
                    testing::Canonical(row.values(part.take[t])))
              << part.key << " row " << index[j] << " watermark " << watermark;
        }
      }
      for (size_t i = 0; i < labels.size(); ++i) {
        if (has[i]) continue;
        for (size_t t = 0; t < part.take.size(); ++t) {
          EXPECT_EQ(got[i].values(part.offset + t).kind_case(),
                    v1::Value::KIND_NOT_SET)
              << "row " << i << " has no " << part.key;
        }
      }
    }
    EXPECT_EQ(got[5].passthrough(0), "p");
  }
}

// Every chunk of one Snapshot call; rows by (as-of, entity).
std::map<std::pair<int64_t, std::string>, v1::FeatureRow> Snap(
    Client& client, const v1::SnapshotRequest& req,
    std::vector<std::string>* names, absl::Status* status) {
  std::map<std::pair<int64_t, std::string>, v1::FeatureRow> rows;
  *status = client.Snapshot(req, [&](const v1::SnapshotChunk& chunk) {
    if (chunk.feature_names_size() > 0) {
      names->assign(chunk.feature_names().begin(), chunk.feature_names().end());
    }
    for (const auto& row : chunk.rows()) {
      rows[{*TimestampToMicros(chunk.as_of()), row.entity()}] = row;
    }
    return true;
  });
  return rows;
}

// A snapshot of a service keyed by one column: the entities of every part's
// stream, each row equal to the service's lookup of that entity.
TEST_F(FeatureServiceTest, SnapshotOfOneKeyServiceIsItsLookupPerEntity) {
  v1::ApplyDefinitionsRequest apply;
  auto* service = apply.mutable_definitions()->add_services();
  service->set_name("combined");
  service->set_version(1);
  for (const char* view : {"users", "merchants", "users"}) {
    auto* p = service->add_parts();
    p->set_view(view);
    p->set_view_version(1);
    p->set_key("id");
    p->set_prefix(absl::StrCat(view, service->parts_size(), "_"));
  }
  // Part 3 reads part 1's stream by its key: swept with it.
  service->mutable_parts(2)->add_features("spend_7d");
  ASSERT_TRUE(ts_.client().ApplyDefinitions(apply).ok());
  // An entity only in each stream.
  for (const char* stream : {"orders", "payments"}) {
    v1::IngestRequest batch;
    batch.set_stream(stream);
    *batch.add_events() =
        Order(absl::StrCat("only_", stream), absl::StrCat("only_", stream),
              kT - kDay, 5.0, 1, "c");
    ASSERT_TRUE(ts_.client().Ingest(batch).ok());
  }
  const std::vector<int64_t> times = {kT - 5 * kDay, kT};
  for (const uint64_t watermark : {watermarks_[0], uint64_t{0}}) {
    // Whole and in two partitions: the same rows.
    std::map<std::pair<int64_t, std::string>, v1::FeatureRow> whole, parts;
    std::vector<std::string> names;
    for (uint32_t count : {0u, 2u}) {
      for (uint32_t index = 0; index < std::max(count, 1u); ++index) {
        v1::SnapshotRequest req;
        req.set_service("combined");
        req.set_watermark(watermark);
        for (int64_t t : times) *req.add_as_of_times() = MicrosToTimestamp(t);
        if (count > 0) {
          req.mutable_partition()->set_index(index);
          req.mutable_partition()->set_count(count);
        }
        absl::Status status;
        auto got = Snap(ts_.client(), req, &names, &status);
        ASSERT_TRUE(status.ok()) << status;
        (count == 0 ? whole : parts).insert(got.begin(), got.end());
      }
    }
    EXPECT_EQ(whole.size(), parts.size());
    ASSERT_EQ(names.size(), 6u);
    EXPECT_EQ(names[3], "merchants2_n_1d");
    EXPECT_EQ(names[5], "users3_spend_7d");
    // The entities: those of either view's snapshot at the same times.
    std::set<std::pair<int64_t, std::string>> want_keys;
    for (const char* view : {"users", "merchants"}) {
      v1::SnapshotRequest req;
      req.set_view(view);
      req.set_watermark(watermark);
      for (int64_t t : times) *req.add_as_of_times() = MicrosToTimestamp(t);
      std::vector<std::string> view_names;
      absl::Status status;
      for (const auto& [key, row] :
           Snap(ts_.client(), req, &view_names, &status)) {
        want_keys.insert(key);
      }
      ASSERT_TRUE(status.ok()) << status;
    }
    ASSERT_EQ(whole.size(), want_keys.size()) << "watermark " << watermark;
    EXPECT_EQ(whole.count({kT, "only_orders"}), watermark == 0 ? 1u : 0u);
    EXPECT_EQ(whole.count({kT, "only_payments"}), watermark == 0 ? 1u : 0u);
    for (const auto& [key, row] : whole) {
      EXPECT_TRUE(want_keys.count(key)) << key.second;
      EXPECT_TRUE(parts.count(key)) << key.second;
      v1::GetFeaturesRequest lookup;
      lookup.set_service("combined");
      (*lookup.add_key_rows()->mutable_keys())["id"] = key.second;
      *lookup.mutable_as_of() = MicrosToTimestamp(key.first);
      lookup.set_watermark(watermark);
      auto want = ts_.client().GetFeatures(lookup);
      ASSERT_TRUE(want.ok()) << want.status();
      ASSERT_EQ(row.values_size(), want->rows(0).values_size());
      for (int i = 0; i < row.values_size(); ++i) {
        EXPECT_EQ(testing::Canonical(row.values(i)),
                  testing::Canonical(want->rows(0).values(i)))
            << key.second << " " << names[i];
        EXPECT_EQ(testing::Canonical(parts[key].values(i)),
                  testing::Canonical(row.values(i)));
      }
    }
  }
  // A service keyed by several columns has no one entity list.
  v1::SnapshotRequest mixed;
  mixed.set_service("fraud");
  std::vector<std::string> names;
  absl::Status status;
  Snap(ts_.client(), mixed, &names, &status);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(status.message().find("part 2 (view 'users') by 'seller_id'"),
            std::string::npos)
      << status;
  mixed.set_view("users");
  Snap(ts_.client(), mixed, &names, &status);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
}

// The status of one JoinFeatures call.
absl::Status JoinStatus(Client& client, const v1::JoinFeaturesRequest& first) {
  return client.JoinFeatures(
      first,
      [](v1::JoinFeaturesRequest*) -> absl::StatusOr<bool> { return false; },
      [](const v1::JoinFeaturesResponse&) { return true; });
}

TEST_F(FeatureServiceTest, KeyColumnsMustBeTheServicesAndRowsMustFitThem) {
  v1::JoinFeaturesRequest first;
  first.set_service("fraud");
  first.add_key_columns("buyer_id");
  first.add_key_columns("seller_id");
  absl::Status s = JoinStatus(ts_.client(), first);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
  EXPECT_NE(s.message().find("buyer_id, seller_id, merchant_id"),
            std::string::npos)
      << s;
  first.add_key_columns("merchant");
  s = JoinStatus(ts_.client(), first);
  EXPECT_NE(s.message().find("key_columns lacks 'merchant_id'"),
            std::string::npos)
      << s;
  first.set_key_columns(2, "merchant_id");
  for (int n : {3, 2}) {
    auto* row = first.add_rows();
    *row->mutable_time() = MicrosToTimestamp(kT);
    for (int i = 0; i < n; ++i) row->add_key_values("k1");
  }
  s = JoinStatus(ts_.client(), first);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
  EXPECT_NE(s.message().find("label row 1: has 2 key_values for 3"),
            std::string::npos)
      << s;
  // key_values without key_columns.
  first.clear_key_columns();
  first.mutable_rows()->DeleteSubrange(1, 1);
  s = JoinStatus(ts_.client(), first);
  EXPECT_NE(s.message().find("key_values need key_columns"), std::string::npos)
      << s;
  // LabelColumns: key_values need key_columns, k per time, no entities.
  first.clear_rows();
  first.mutable_labels()->add_times_us(kT);
  first.mutable_labels()->add_key_values("k1");
  s = JoinStatus(ts_.client(), first);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
  EXPECT_NE(s.message().find("need key_columns"), std::string::npos) << s;
  for (const char* c : {"buyer_id", "seller_id", "merchant_id"}) {
    first.add_key_columns(c);
  }
  s = JoinStatus(ts_.client(), first);
  EXPECT_NE(s.message().find("1 key_values for 1 times and 3 key_columns"),
            std::string::npos)
      << s;
  first.mutable_labels()->add_key_values("k2");
  first.mutable_labels()->add_key_values(std::string("k\0", 2));
  s = JoinStatus(ts_.client(), first);
  EXPECT_NE(s.message().find("label row 0: key 'merchant_id' contains NUL"),
            std::string::npos)
      << s;
}

TEST_F(FeatureServiceTest, BadRequestsAreClear) {
  v1::GetFeaturesRequest req;
  req.set_service("nope");
  req.add_key_rows();
  EXPECT_EQ(ts_.client().GetFeatures(req).status().code(),
            absl::StatusCode::kNotFound);
  req.set_service("fraud");
  req.set_view("users");
  EXPECT_EQ(ts_.client().GetFeatures(req).status().code(),
            absl::StatusCode::kInvalidArgument);
  req.clear_view();
  req.clear_key_rows();
  EXPECT_EQ(ts_.client().GetFeatures(req).status().code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace rawfeat
