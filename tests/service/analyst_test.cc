// Snapshot and JoinFeatures through a real server, checked against
// GetFeatures at the same (entity, time, watermark) on random data: the
// three read paths must agree bit for bit.

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <map>
#include <mutex>
#include <random>
#include <set>

#include "gtest/gtest.h"
#include "server/common/hash.h"
#include "server/common/time_util.h"
#include "tests/test_util.h"

namespace rawfeat {
namespace {

using testing::Canonical;
using testing::Feature;
using testing::Order;
using testing::TestServer;

constexpr int64_t kHour = 3600LL * 1000000;
constexpr int64_t kDay = 24 * kHour;
constexpr int64_t kT0 = 1795478400LL * 1000000;  // a UTC midnight

// Every aggregation, several windows, a filter and an optional field.
void ApplyView(TestServer& ts, const std::string& name = "v") {
  v1::ApplyDefinitionsRequest req;
  auto* view = req.mutable_definitions()->add_views();
  view->set_name(name);
  view->set_version(1);
  view->set_stream("orders");
  std::vector<v1::FeatureDef> fs = {
      Feature("n_1h", "count", "", "1h"),
      Feature("n_life", "count", "", "lifetime"),
      Feature("amount_1d", "sum", "amount", "1d"),
      Feature("qty_7d", "sum", "quantity", "7d"),
      Feature("avg_1d", "avg", "amount", "1d"),
      Feature("min_1d", "min", "amount", "1d"),
      Feature("max_cat_7d", "max", "category", "7d"),
      Feature("first_3d", "first", "amount", "3d"),
      Feature("last_1h", "last", "category", "1h"),
      Feature("last3_1d", "last_k", "quantity", "1d", 3),
      Feature("cats_7d", "count_distinct", "category", "7d"),
      Feature("sd_3d", "stddev", "amount", "3d"),
      Feature("coupon_last_life", "last", "coupon", "lifetime"),
      Feature("max_life", "max", "amount", "lifetime"),
  };
  v1::FeatureDef books = Feature("books_amount_1d", "sum", "amount", "1d");
  books.mutable_filter()->set_field("category");
  books.mutable_filter()->set_op("=");
  books.mutable_filter()->add_values()->set_string_value("books");
  fs.push_back(books);
  for (const auto& f : fs) *view->add_features() = f;
  auto r = ts.client().ApplyDefinitions(req);
  ASSERT_TRUE(r.ok()) << r.status();
}

// Random orders: a few heavy entities, many light ones, times over ~10
// days with many repeats (ties), values with adversarial magnitudes.
std::vector<v1::Event> RandomOrders(std::mt19937_64& rng, int n,
                                    const std::string& id_prefix,
                                    int light_users = 40) {
  const char* cats[] = {"books", "toys", "food", "garden"};
  std::vector<v1::Event> out;
  for (int i = 0; i < n; ++i) {
    const int r = static_cast<int>(rng() % 100);
    const std::string user = r < 40 ? "heavy" + std::to_string(r % 2)
                                    : "u" + std::to_string(rng() % light_users);
    const int64_t t = kT0 + static_cast<int64_t>(rng() % (10 * 48)) * kHour / 2;
    const int kind = static_cast<int>(rng() % 10);
    const double amount = kind == 0   ? std::ldexp(1.0, 60)
                          : kind == 1 ? -std::ldexp(1.0, 60)
                                      : static_cast<double>(rng() % 1000) / 7;
    out.push_back(Order(id_prefix + std::to_string(i), user, t, amount,
                        static_cast<int64_t>(rng() % 9) - 2, cats[rng() % 4],
                        rng() % 3 == 0 ? "C" + std::to_string(rng() % 5) : ""));
  }
  return out;
}

uint64_t IngestAll(TestServer& ts, std::vector<v1::Event> events) {
  uint64_t watermark = 0;
  for (size_t at = 0; at < events.size(); at += 500) {
    v1::IngestRequest req;
    req.set_stream("orders");
    for (size_t i = at; i < std::min(events.size(), at + 500); ++i) {
      *req.add_events() = events[i];
    }
    auto r = ts.client().Ingest(req);
    EXPECT_TRUE(r.ok()) << r.status();
    if (r.ok()) watermark = r->watermark();
  }
  return watermark;
}

v1::GetFeaturesResponse Get(TestServer& ts, const std::string& entity,
                            int64_t as_of, uint64_t watermark) {
  v1::GetFeaturesRequest req;
  req.set_view("v");
  req.add_entities(entity);
  *req.mutable_as_of() = MicrosToTimestamp(as_of);
  req.set_watermark(watermark);
  auto r = ts.client().GetFeatures(req);
  EXPECT_TRUE(r.ok()) << r.status();
  return r.ok() ? *r : v1::GetFeaturesResponse();
}

std::string Values(const google::protobuf::RepeatedPtrField<v1::Value>& vs) {
  std::string out;
  for (const auto& v : vs) out += Canonical(v) + ";";
  return out;
}

struct SnapshotResult {
  std::vector<std::string> names;
  std::vector<v1::FeatureRow> rows;
  uint64_t watermark = 0;
  int chunks = 0;
};

absl::StatusOr<SnapshotResult> Snap(TestServer& ts, int64_t as_of,
                                    uint64_t watermark, uint32_t pindex = 0,
                                    uint32_t pcount = 0,
                                    const std::string& view = "v") {
  v1::SnapshotRequest req;
  req.set_view(view);
  *req.mutable_as_of() = MicrosToTimestamp(as_of);
  req.set_watermark(watermark);
  req.mutable_partition()->set_index(pindex);
  req.mutable_partition()->set_count(pcount);
  SnapshotResult result;
  absl::Status s = ts.client().Snapshot(req, [&](const v1::SnapshotChunk& c) {
    if (result.chunks++ == 0) {
      result.names.assign(c.feature_names().begin(), c.feature_names().end());
    }
    result.watermark = c.watermark();
    for (const auto& row : c.rows()) result.rows.push_back(row);
    return true;
  });
  if (!s.ok()) return s;
  return result;
}

struct Label {
  std::string entity;
  int64_t t;
};

absl::StatusOr<std::vector<v1::JoinedRow>> Join(
    TestServer& ts, const std::vector<Label>& labels, uint64_t watermark,
    size_t per_message = 37, uint64_t* used = nullptr) {
  v1::JoinFeaturesRequest first;
  first.set_view("v");
  first.set_watermark(watermark);
  size_t at = 0;
  std::vector<v1::JoinedRow> rows;
  absl::Status s = ts.client().JoinFeatures(
      first,
      [&](v1::JoinFeaturesRequest* m) -> absl::StatusOr<bool> {
        if (at == labels.size()) return false;
        for (size_t i = 0; i < per_message && at < labels.size(); ++i, ++at) {
          auto* row = m->add_rows();
          row->set_entity(labels[at].entity);
          *row->mutable_time() = MicrosToTimestamp(labels[at].t);
          row->add_passthrough("p" + std::to_string(at));
          row->add_passthrough(labels[at].entity);
        }
        return true;
      },
      [&](const v1::JoinFeaturesResponse& r) {
        if (used != nullptr) *used = r.watermark();
        for (const auto& row : r.rows()) rows.push_back(row);
        return true;
      });
  if (!s.ok()) return s;
  return rows;
}

class AnalystTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ApplyView(ts_);
    std::mt19937_64 rng(20261126);
    w1_ = IngestAll(ts_, RandomOrders(rng, 3000, "a"));
    // Late events (also inside earlier windows) arrive after w1_.
    w2_ = IngestAll(ts_, RandomOrders(rng, 600, "b"));
    ASSERT_GT(w2_, w1_);
  }
  // A join of no rows: one response, with the names and the watermark.
  void ExpectOnlyTheHeader(const v1::JoinFeaturesRequest& first) {
    int responses = 0;
    absl::Status s = ts_.client().JoinFeatures(
        first, [](v1::JoinFeaturesRequest*) { return false; },
        [&](const v1::JoinFeaturesResponse& r) {
          ++responses;
          EXPECT_EQ(r.feature_names_size(), 15);
          EXPECT_EQ(r.watermark(), w2_);
          EXPECT_EQ(r.rows_size(), 0);
          return true;
        });
    EXPECT_TRUE(s.ok()) << s;
    EXPECT_EQ(responses, 1);
  }

  TestServer ts_;
  uint64_t w1_ = 0;
  uint64_t w2_ = 0;
};

TEST_F(AnalystTest, SnapshotEqualsGetFeaturesForEveryEntity) {
  for (uint64_t w : {w1_, w2_}) {
    for (int64_t as_of : {kT0 + 5 * kDay + 7 * kHour + 3, kT0 + 11 * kDay,
                          kT0 + kHour / 2, kT0}) {
      auto snap = Snap(ts_, as_of, w);
      ASSERT_TRUE(snap.ok()) << snap.status();
      EXPECT_EQ(snap->watermark, w);
      EXPECT_EQ(snap->names.size(), 15u);
      // The entities with a visible event before as_of, in byte order.
      std::set<std::string> want;
      v1::ReadEventsRequest read;
      read.set_stream("orders");
      read.set_watermark(w);
      read.mutable_to_time()->CopyFrom(MicrosToTimestamp(as_of));
      ASSERT_TRUE(ts_.client()
                      .ReadEvents(read,
                                  [&](const v1::ReadEventsResponse& c) {
                                    for (const auto& e : c.events()) {
                                      want.insert(e.entity());
                                    }
                                    return true;
                                  })
                      .ok());
      std::vector<std::string> got;
      for (const auto& row : snap->rows) got.push_back(row.entity());
      EXPECT_EQ(got, std::vector<std::string>(want.begin(), want.end()))
          << "as_of " << FormatMicros(as_of);
      for (const auto& row : snap->rows) {
        auto g = Get(ts_, row.entity(), as_of, w);
        ASSERT_EQ(g.rows_size(), 1);
        EXPECT_EQ(Values(row.values()), Values(g.rows(0).values()))
            << row.entity() << " as of " << FormatMicros(as_of) << " at " << w;
      }
    }
  }
}

TEST_F(AnalystTest, SnapshotPartitionsAreDisjointAndComplete) {
  const int64_t as_of = kT0 + 6 * kDay;
  auto whole = Snap(ts_, as_of, w2_);
  ASSERT_TRUE(whole.ok());
  std::map<std::string, std::string> seen;
  for (uint32_t k = 0; k < 3; ++k) {
    auto part = Snap(ts_, as_of, w2_, k, 3);
    ASSERT_TRUE(part.ok()) << part.status();
    for (const auto& row : part->rows) {
      EXPECT_TRUE(InPartition(row.entity(), k, 3));
      EXPECT_TRUE(seen.emplace(row.entity(), Values(row.values())).second)
          << row.entity() << " in two partitions";
    }
  }
  ASSERT_EQ(seen.size(), whole->rows.size());
  for (const auto& row : whole->rows) {
    EXPECT_EQ(seen[row.entity()], Values(row.values()));
  }
  auto bad = Snap(ts_, as_of, w2_, 3, 3);
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
}

// Several as-of times in one pass: each time's rows equal a snapshot of
// that time alone, and a time before every event still gets its chunk.
TEST_F(AnalystTest, SnapshotOfSeveralTimesEqualsSeparateSnapshots) {
  const std::vector<int64_t> times = {kT0 + 3 * kDay, kT0 - kDay,
                                      kT0 + 5 * kDay + 7 * kHour + 3,
                                      kT0 + 11 * kDay};
  v1::SnapshotRequest req;
  req.set_view("v");
  req.set_watermark(w1_);
  for (int64_t t : times) *req.add_as_of_times() = MicrosToTimestamp(t);
  std::map<int64_t, std::vector<v1::FeatureRow>> got;
  std::map<int64_t, int> chunks;
  ASSERT_TRUE(ts_.client()
                  .Snapshot(req,
                            [&](const v1::SnapshotChunk& c) {
                              const int64_t t = *TimestampToMicros(c.as_of());
                              ++chunks[t];
                              EXPECT_EQ(c.watermark(), w1_);
                              for (const auto& r : c.rows()) {
                                got[t].push_back(r);
                              }
                              return true;
                            })
                  .ok());
  for (int64_t t : times) {
    EXPECT_GE(chunks[t], 1) << FormatMicros(t);
    auto one = Snap(ts_, t, w1_);
    ASSERT_TRUE(one.ok());
    ASSERT_EQ(got[t].size(), one->rows.size()) << FormatMicros(t);
    for (size_t i = 0; i < one->rows.size(); ++i) {
      EXPECT_EQ(Canonical(got[t][i]), Canonical(one->rows[i]))
          << FormatMicros(t) << " row " << i;
    }
  }
  EXPECT_TRUE(got[kT0 - kDay].empty());
  req.mutable_as_of()->set_seconds(1);
  EXPECT_EQ(ts_.client().Snapshot(req, [](const auto&) { return true; }).code(),
            absl::StatusCode::kInvalidArgument);
}

// A columnar snapshot (entities + ColumnChunks) equals the row snapshot,
// chunk for chunk, for one as-of time and for several.
TEST_F(AnalystTest, ColumnarSnapshotEqualsTheRowSnapshot) {
  for (const bool several : {false, true}) {
    v1::SnapshotRequest req;
    req.set_view("v");
    req.set_watermark(w2_);
    if (several) {
      for (int d : {2, 5, 9})
        *req.add_as_of_times() = MicrosToTimestamp(kT0 + d * kDay);
    } else {
      *req.mutable_as_of() = MicrosToTimestamp(kT0 + 6 * kDay);
    }
    std::vector<std::string> want;  // per row: as_of, entity, values
    absl::Status s =
        ts_.client().Snapshot(req, [&](const v1::SnapshotChunk& c) {
          for (const auto& row : c.rows()) {
            want.push_back(absl::StrCat(c.as_of().seconds(), " ", row.entity(),
                                        " ", Values(row.values())));
          }
          return true;
        });
    ASSERT_TRUE(s.ok()) << s;
    req.set_columnar(true);
    std::vector<std::string> got;
    s = ts_.client().Snapshot(req, [&](const v1::SnapshotChunk& c) {
      EXPECT_EQ(c.rows_size(), 0);
      std::map<uint64_t, v1::JoinedRow> rows;
      testing::DecodeColumns(c.columns(), &rows);
      EXPECT_EQ(rows.size(), static_cast<size_t>(c.entities_size()));
      for (const auto& [i, row] : rows) {
        got.push_back(absl::StrCat(c.as_of().seconds(), " ",
                                   c.entities(static_cast<int>(i)), " ",
                                   Values(row.values())));
      }
      return true;
    });
    ASSERT_TRUE(s.ok()) << s;
    EXPECT_GT(want.size(), 40u);
    EXPECT_EQ(got, want);
  }
}

TEST_F(AnalystTest, SnapshotErrorsAndEmptyResult) {
  auto unknown = Snap(ts_, kT0, 0, 0, 0, "nope");
  EXPECT_EQ(unknown.status().code(), absl::StatusCode::kNotFound);
  auto too_high = Snap(ts_, kT0, w2_ + 1000);
  EXPECT_EQ(too_high.status().code(), absl::StatusCode::kInvalidArgument);
  // Before every event: no entity, but the names and watermark arrive.
  auto empty = Snap(ts_, kT0 - kDay, w2_);
  ASSERT_TRUE(empty.ok());
  EXPECT_TRUE(empty->rows.empty());
  EXPECT_EQ(empty->chunks, 1);
  EXPECT_EQ(empty->names.size(), 15u);
  EXPECT_EQ(empty->watermark, w2_);
}

std::vector<Label> RandomLabels(std::mt19937_64& rng, int n) {
  std::vector<Label> labels;
  for (int i = 0; i < n; ++i) {
    const int r = static_cast<int>(rng() % 100);
    Label l;
    l.entity = r < 30   ? "heavy" + std::to_string(r % 2)
               : r < 35 ? "nobody" + std::to_string(r)  // no events
                        : "u" + std::to_string(rng() % 40);
    // Half-hour grid: labels land exactly on event times, before the
    // first event, and after the last.
    l.t = kT0 + (static_cast<int64_t>(rng() % (12 * 48)) - 24) * kHour / 2 +
          (rng() % 4 == 0 ? 1 : 0);
    labels.push_back(l);
    if (rng() % 10 == 0) labels.push_back(l);  // a duplicate label
  }
  return labels;
}

void ExpectJoinMatchesGetFeatures(TestServer& ts,
                                  const std::vector<Label>& labels,
                                  const std::vector<v1::JoinedRow>& rows,
                                  uint64_t w) {
  ASSERT_EQ(rows.size(), labels.size());
  for (size_t i = 0; i < rows.size(); ++i) {
    const auto& row = rows[i];
    ASSERT_EQ(row.row_index(), i);
    EXPECT_EQ(row.entity(), labels[i].entity);
    EXPECT_EQ(*TimestampToMicros(row.time()), labels[i].t);
    ASSERT_EQ(row.passthrough_size(), 2);
    EXPECT_EQ(row.passthrough(0), "p" + std::to_string(i));
    EXPECT_EQ(row.passthrough(1), labels[i].entity);
    auto g = Get(ts, labels[i].entity, labels[i].t, w);
    ASSERT_EQ(g.rows_size(), 1);
    EXPECT_EQ(Values(row.values()), Values(g.rows(0).values()))
        << "row " << i << " " << labels[i].entity << " as of "
        << FormatMicros(labels[i].t);
  }
}

TEST_F(AnalystTest, JoinEqualsGetFeaturesPerRowInInputOrder) {
  std::mt19937_64 rng(7);
  auto labels = RandomLabels(rng, 700);
  uint64_t used = 0;
  auto rows = Join(ts_, labels, w1_, 37, &used);
  ASSERT_TRUE(rows.ok()) << rows.status();
  EXPECT_EQ(used, w1_);
  ExpectJoinMatchesGetFeatures(ts_, labels, *rows, w1_);

  // Grouped by entity and sorted by time (the streaming shape).
  std::stable_sort(labels.begin(), labels.end(),
                   [](const Label& a, const Label& b) {
                     return std::tie(a.entity, a.t) < std::tie(b.entity, b.t);
                   });
  rows = Join(ts_, labels, w2_, 1000);
  ASSERT_TRUE(rows.ok()) << rows.status();
  ExpectJoinMatchesGetFeatures(ts_, labels, *rows, w2_);
}

TEST_F(AnalystTest, JoinIsReproducibleAtItsWatermark) {
  std::mt19937_64 rng(11);
  auto labels = RandomLabels(rng, 300);
  auto before = Join(ts_, labels, w2_);
  ASSERT_TRUE(before.ok());
  IngestAll(ts_, RandomOrders(rng, 400, "late"));
  auto again = Join(ts_, labels, w2_);
  ASSERT_TRUE(again.ok());
  ASSERT_EQ(before->size(), again->size());
  for (size_t i = 0; i < before->size(); ++i) {
    EXPECT_EQ(Canonical((*before)[i]), Canonical((*again)[i])) << i;
  }
  auto latest = Join(ts_, labels, 0);
  ASSERT_TRUE(latest.ok());
  int changed = 0;
  for (size_t i = 0; i < before->size(); ++i) {
    changed += Canonical((*before)[i]) != Canonical((*latest)[i]);
  }
  EXPECT_GT(changed, 0);
}

TEST_F(AnalystTest, JoinErrors) {
  std::vector<Label> labels = {{"u1", kT0 + kDay}, {"", kT0}};
  auto rows = Join(ts_, labels, 0);
  EXPECT_EQ(rows.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(rows.status().message().find("label row 1"), std::string::npos)
      << rows.status();

  v1::JoinFeaturesRequest first;
  first.set_view("nope");
  auto s = ts_.client().JoinFeatures(
      first, [](v1::JoinFeaturesRequest*) { return false; },
      [](const v1::JoinFeaturesResponse&) { return true; });
  EXPECT_EQ(s.code(), absl::StatusCode::kNotFound);
  EXPECT_NE(s.message().find("nope"), std::string::npos) << s;

  first.set_view("v");
  first.add_rows()->set_entity("u1");  // no time
  s = ts_.client().JoinFeatures(
      first, [](v1::JoinFeaturesRequest*) { return false; },
      [](const v1::JoinFeaturesResponse&) { return true; });
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("time is missing"), std::string::npos) << s;

  // No rows at all: one response with the names and the watermark.
  first.clear_rows();
  ExpectOnlyTheHeader(first);
}

// A join with its labels sent as LabelColumns and its answer asked as
// ColumnChunks, decoded back into rows by row index.
absl::StatusOr<std::map<uint64_t, v1::JoinedRow>> ColumnarJoin(
    TestServer& ts, const std::vector<Label>& labels, uint64_t watermark,
    size_t per_message) {
  v1::JoinFeaturesRequest first;
  first.set_view("v");
  first.set_watermark(watermark);
  first.set_columnar(true);
  size_t at = 0;
  std::map<uint64_t, v1::JoinedRow> rows;
  absl::Status s = ts.client().JoinFeatures(
      first,
      [&](v1::JoinFeaturesRequest* m) -> absl::StatusOr<bool> {
        if (at == labels.size()) return false;
        auto* columns = m->mutable_labels();
        for (size_t i = 0; i < per_message && at < labels.size(); ++i, ++at) {
          columns->add_times_us(labels[at].t);
          columns->add_entities(labels[at].entity);
        }
        return true;
      },
      [&](const v1::JoinFeaturesResponse& r) {
        EXPECT_EQ(r.rows_size(), 0);
        testing::DecodeColumns(r.columns(), &rows);
        return true;
      });
  if (!s.ok()) return s;
  return rows;
}

// Every value of a columnar join (labels as columns, answer as columns)
// equals the row join's, bit for bit. Label messages of `per_message` rows.
void ExpectColumnarJoinEqualsRowJoin(TestServer& ts,
                                     const std::vector<Label>& labels,
                                     uint64_t watermark, size_t per_message) {
  auto rows = Join(ts, labels, watermark, per_message);
  ASSERT_TRUE(rows.ok()) << rows.status();
  auto columnar = ColumnarJoin(ts, labels, watermark, per_message / 3 + 1);
  ASSERT_TRUE(columnar.ok()) << columnar.status();
  ASSERT_EQ(columnar->size(), labels.size());
  for (size_t i = 0; i < labels.size(); ++i) {
    EXPECT_EQ(Values((*columnar)[i].values()), Values((*rows)[i].values()))
        << "row " << i;
  }
}

// Every aggregation, nulls, lists, ±2^60 sums.
TEST_F(AnalystTest, ColumnarJoinEqualsTheRowJoin) {
  std::mt19937_64 rng(17);
  ExpectColumnarJoinEqualsRowJoin(ts_, RandomLabels(rng, 2500), w2_, 1000);
}

TEST(AnalystRunsTest, ColumnarJoinInSmallRunsAndSmallMessages) {
  ServerOptions options;
  options.join_run_rows = 50;
  options.max_message_bytes = 64 << 10;  // chunks of ~4 KB
  TestServer ts("", true, options);
  ApplyView(ts);
  std::mt19937_64 rng(23);
  const uint64_t w = IngestAll(ts, RandomOrders(rng, 800, "r"));
  // Chunks cut by rows and by bytes, over several runs.
  ExpectColumnarJoinEqualsRowJoin(ts, RandomLabels(rng, 400), w, 50);
}

TEST(AnalystRunsTest, SnapshotOfManyBatchesKeepsEntityOrder) {
  ServerOptions options;
  options.analyst_threads = 3;
  // Chunks of ~60 KB: batches of a few hundred entities, several swept at
  // once while two heavy entities hold a worker each.
  options.max_message_bytes = 64 << 10;
  TestServer ts("", true, options);
  ApplyView(ts);
  std::mt19937_64 rng(29);
  const std::vector<v1::Event> events = RandomOrders(rng, 8000, "m", 6000);
  const uint64_t w = IngestAll(ts, events);
  std::set<std::string> want;
  for (const auto& e : events) want.insert(e.entity());
  const int64_t as_of = kT0 + 11 * kDay;  // after every event
  auto snap = Snap(ts, as_of, w);
  ASSERT_TRUE(snap.ok()) << snap.status();
  EXPECT_GT(snap->chunks, 5);
  std::vector<std::string> got;
  for (const auto& row : snap->rows) got.push_back(row.entity());
  EXPECT_EQ(got, std::vector<std::string>(want.begin(), want.end()));
  for (size_t i = 0; i < snap->rows.size(); i += 13) {
    const v1::FeatureRow& row = snap->rows[i];
    auto g = Get(ts, row.entity(), as_of, w);
    ASSERT_EQ(g.rows_size(), 1);
    EXPECT_EQ(Values(row.values()), Values(g.rows(0).values())) << row.entity();
  }
}

TEST_F(AnalystTest, BadLabelColumnsAreRefusedNamingTheProblem) {
  auto run = [&](const v1::JoinFeaturesRequest& first) {
    return ts_.client().JoinFeatures(
        first, [](v1::JoinFeaturesRequest*) { return false; },
        [](const v1::JoinFeaturesResponse&) { return true; });
  };
  v1::JoinFeaturesRequest first;
  first.set_view("v");
  first.mutable_labels()->add_times_us(kT0);
  first.mutable_labels()->add_times_us(kT0);
  first.mutable_labels()->add_entities("u1");
  absl::Status s = run(first);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("1 entities for 2 times"), std::string::npos) << s;

  first.mutable_labels()->add_entities("");
  s = run(first);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("label row 1: entity is empty"), std::string::npos)
      << s;

  first.mutable_labels()->set_entities(1, "u2");
  first.mutable_labels()->set_times_us(1, kMaxMicros + 1);
  s = run(first);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("label row 1: time"), std::string::npos) << s;

  first.mutable_labels()->set_times_us(1, kT0);
  auto* row = first.add_rows();
  row->set_entity("u1");
  *row->mutable_time() = MicrosToTimestamp(kT0);
  s = run(first);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("both rows and labels"), std::string::npos) << s;

  // A columnar join does not echo passthrough: refused, not dropped.
  first.clear_labels();
  first.set_columnar(true);
  row->add_passthrough("p");
  s = run(first);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("passthrough"), std::string::npos) << s;

  // Columnar and no rows: one response with the names and the watermark.
  first.clear_rows();
  ExpectOnlyTheHeader(first);
}

// A client that gives up -- while sending labels, or after the first
// answer -- ends only its own call: the next join is answered in full.
TEST_F(AnalystTest, AbandonedJoinsLeaveTheServerServing) {
  v1::JoinFeaturesRequest first;
  first.set_view("v");
  int sent = 0;
  auto s = ts_.client().JoinFeatures(
      first,
      [&](v1::JoinFeaturesRequest* m) -> absl::StatusOr<bool> {
        if (sent++ == 3) return absl::DataLossError("label file went away");
        for (int i = 0; i < 1000; ++i) {
          auto* r = m->add_rows();
          r->set_entity(i % 2 ? "u1" : "heavy0");
          *r->mutable_time() = MicrosToTimestamp(kT0 + i);
        }
        return true;
      },
      [](const v1::JoinFeaturesResponse&) { return true; });
  EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss) << s;

  int responses = 0;
  sent = 0;
  s = ts_.client().JoinFeatures(
      first,
      [&](v1::JoinFeaturesRequest* m) -> absl::StatusOr<bool> {
        if (sent++ == 5) return false;
        for (int i = 0; i < 1000; ++i) {
          auto* r = m->add_rows();
          r->set_entity(i % 2 ? "u1" : "heavy0");
          *r->mutable_time() = MicrosToTimestamp(kT0 + i);
        }
        return true;
      },
      [&](const v1::JoinFeaturesResponse&) {
        ++responses;
        return false;  // stop after the first answer
      });
  EXPECT_TRUE(s.ok()) << s;
  EXPECT_EQ(responses, 1);

  std::mt19937_64 rng(8);
  auto labels = RandomLabels(rng, 300);
  auto rows = Join(ts_, labels, w2_);
  ASSERT_TRUE(rows.ok()) << rows.status();
  ExpectJoinMatchesGetFeatures(ts_, labels, *rows, w2_);
}

// Unsorted input bigger than one run is answered run by run, still in
// input order and with the same values.
TEST(AnalystRunsTest, SmallRunsGiveTheSameRows) {
  ServerOptions options;
  options.join_run_rows = 7;
  TestServer ts("", true, options);
  ApplyView(ts);
  std::mt19937_64 rng(5);
  const uint64_t w = IngestAll(ts, RandomOrders(rng, 800, "r"));
  auto labels = RandomLabels(rng, 200);
  auto rows = Join(ts, labels, w, 13);
  ASSERT_TRUE(rows.ok()) << rows.status();
  ExpectJoinMatchesGetFeatures(ts, labels, *rows, w);
}

// Labels sent grouped by entity come back while the input is still being
// sent: the writer waits for the first answer before sending the rest.
TEST_F(AnalystTest, GroupedJoinStreamsBackBeforeTheInputEnds) {
  v1::JoinFeaturesRequest first;
  first.set_view("v");
  std::mutex mu;
  std::condition_variable cv;
  bool answered = false;
  int step = 0;
  bool streamed = false;
  size_t rows = 0;
  auto s = ts_.client().JoinFeatures(
      first,
      [&](v1::JoinFeaturesRequest* m) -> absl::StatusOr<bool> {
        if (step == 0) {  // 5,000 rows of one entity, then another entity
          for (int i = 0; i < 5000; ++i) {
            auto* r = m->add_rows();
            r->set_entity("heavy0");
            *r->mutable_time() = MicrosToTimestamp(kT0 + i * 60000000LL);
          }
          auto* r = m->add_rows();
          r->set_entity("u1");
          *r->mutable_time() = MicrosToTimestamp(kT0 + kDay);
        } else if (step == 1) {
          std::unique_lock<std::mutex> l(mu);
          // Bounded: without streaming this gives up and the test fails.
          streamed = cv.wait_for(l, std::chrono::seconds(60),
                                 [&] { return answered; });
          auto* r = m->add_rows();
          r->set_entity("u2");
          *r->mutable_time() = MicrosToTimestamp(kT0 + kDay);
        } else {
          return false;
        }
        ++step;
        return true;
      },
      [&](const v1::JoinFeaturesResponse& r) {
        std::lock_guard<std::mutex> l(mu);
        rows += r.rows_size();
        if (rows > 0) answered = true;
        cv.notify_all();
        return true;
      });
  ASSERT_TRUE(s.ok()) << s;
  EXPECT_TRUE(streamed);
  EXPECT_EQ(rows, 5002u);
}

}  // namespace
}  // namespace rawfeat
