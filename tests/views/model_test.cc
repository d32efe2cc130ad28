// The core, in process and against an in-memory model: a random event
// history (late events, duplicates, conflicts, two streams sharing entity
// names, a schema evolution, entities that are byte prefixes of one
// another) goes through Ingester into a real EventStore; then every read
// path -- Replayer (stream and entity), ViewEngine::GetFeatures (with day
// tiles), ViewEngine::Snapshot (several as-of times: SweepEntity) and
// JoinSession -- is compared at several watermarks with what the written
// semantics give, computed from the model's own list of events, after one
// entity is erased. Three seeds.
//
// The oracle computes the definitions, never the implementation's
// formulas: windows [t - W, t) with seq <= watermark, (time, seq) order for
// first/last/last_k, exact integer sums, and DOUBLE values that are
// multiples of 2^-10 below 2^40, whose sums are exact in doubles in any
// order (so RN(sum) and RN(sum / n) are plain double arithmetic).

#include <algorithm>
#include <cmath>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "server/common/definitions_text.h"
#include "server/common/time_util.h"
#include "server/events/ingester.h"
#include "server/events/replayer.h"
#include "server/schema/registry.h"
#include "server/storage/event_store.h"
#include "server/views/join.h"
#include "server/views/view_engine.h"
#include "tests/test_util.h"

namespace rawfeat {
namespace {

constexpr int64_t kT0 = 1767225600LL * 1000000;  // 2026-01-01T00:00:00Z
constexpr int64_t kHour = 3600LL * 1000000;
constexpr int64_t kDay = 24 * kHour;
constexpr size_t kMaxReplayChunk = 450;

constexpr char kDefinitions[] = R"(
streams {
  name: "s1" entity_field: "user" time_field: "at"
  fields { name: "d" type: DOUBLE required: true }
  fields { name: "x" type: INT64 required: false }
  fields { name: "c" type: STRING required: false }
}
streams {
  name: "s2" entity_field: "user" time_field: "at"
  fields { name: "d" type: DOUBLE required: true }
}
views {
  name: "v" version: 1 stream: "s1"
  features { name: "n_2h" aggregation: "count" window: "2h" }
  features { name: "n_c_x_3d" aggregation: "count" window: "3d"
             filter { field: "c" op: "=" values { string_value: "x" } } }
  features { name: "sum_x_7d" aggregation: "sum" field: "x" window: "7d" }
  features { name: "sum_d_3d" aggregation: "sum" field: "d" window: "3d" }
  features { name: "avg_d_1d" aggregation: "avg" field: "d" window: "1d" }
  features { name: "min_d_2d" aggregation: "min" field: "d" window: "2d" }
  features { name: "max_d_30d" aggregation: "max" field: "d" window: "30d" }
  features { name: "first_c" aggregation: "first" field: "c" window: "lifetime" }
  features { name: "last_c_2d" aggregation: "last" field: "c" window: "2d" }
  features { name: "last3_x_5d" aggregation: "last_k" field: "x" window: "5d" k: 3 }
  features { name: "distinct_c_10d" aggregation: "count_distinct" field: "c" window: "10d" }
}
)";
// s1's second schema version adds `flag`, and view v2 counts flagged events.
constexpr char kEvolved[] = R"(
streams {
  name: "s1" entity_field: "user" time_field: "at"
  fields { name: "d" type: DOUBLE required: true }
  fields { name: "x" type: INT64 required: false }
  fields { name: "c" type: STRING required: false }
  fields { name: "flag" type: BOOL required: false }
}
)";

struct ModelEvent {
  int stream = 1;
  std::string id;
  std::string entity;
  int64_t time_us = 0;
  uint64_t seq = 0;
  double d = 0;
  std::optional<int64_t> x;
  std::optional<std::string> c;
  std::optional<bool> flag;

  v1::Event ToProto() const {
    v1::Event e;
    e.set_event_id(id);
    e.set_entity(entity);
    *e.mutable_event_time() = MicrosToTimestamp(time_us);
    auto& f = *e.mutable_fields();
    f["d"].set_double_value(d);
    if (x) f["x"].set_int64_value(*x);
    if (c) f["c"].set_string_value(*c);
    if (flag) f["flag"].set_bool_value(*flag);
    return e;
  }
  bool SameContent(const ModelEvent& o) const {
    return entity == o.entity && time_us == o.time_us && d == o.d && x == o.x &&
           c == o.c && flag == o.flag;
  }
};

using testing::Double;
using testing::Int;
using testing::Str;

// The view's features for `entity` as of `t` at `watermark`, from the
// definitions. `events` are one stream's, in seq order.
std::vector<v1::Value> Oracle(const std::vector<ModelEvent>& events,
                              const std::string& entity, int64_t t,
                              uint64_t watermark) {
  std::vector<const ModelEvent*> in;  // (time, seq) order
  for (const auto& e : events) {
    if (e.entity == entity && e.seq <= watermark && e.time_us < t) {
      in.push_back(&e);
    }
  }
  std::sort(in.begin(), in.end(), [](const auto* a, const auto* b) {
    return a->time_us != b->time_us ? a->time_us < b->time_us : a->seq < b->seq;
  });
  auto window = [&](int64_t w) {
    std::vector<const ModelEvent*> out;
    for (const auto* e : in) {
      if (e->time_us >= t - w) out.push_back(e);
    }
    return out;
  };
  std::vector<v1::Value> v;
  v.push_back(Int(static_cast<int64_t>(window(2 * kHour).size())));
  int64_t n = 0;
  for (const auto* e : window(3 * kDay)) n += e->c == std::string("x");
  v.push_back(Int(n));
  int64_t sx = 0;
  for (const auto* e : window(7 * kDay)) sx += e->x.value_or(0);
  v.push_back(Int(sx));
  double sd = 0;
  for (const auto* e : window(3 * kDay)) sd += e->d;  // exact: see above
  v.push_back(Double(sd));
  const auto day = window(kDay);
  if (day.empty()) {
    v.emplace_back();
  } else {
    double s = 0;
    for (const auto* e : day) s += e->d;
    v.push_back(Double(s / static_cast<double>(day.size())));
  }
  const auto two = window(2 * kDay);
  if (two.empty()) {
    v.emplace_back();
  } else {
    double m = two[0]->d;
    for (const auto* e : two) m = std::min(m, e->d);
    v.push_back(Double(m));
  }
  const auto month = window(30 * kDay);
  if (month.empty()) {
    v.emplace_back();
  } else {
    double m = month[0]->d;
    for (const auto* e : month) m = std::max(m, e->d);
    v.push_back(Double(m));
  }
  v.emplace_back();  // first c, lifetime
  for (const auto* e : in) {
    if (e->c) {
      v.back() = Str(*e->c);
      break;
    }
  }
  v.emplace_back();  // last c, 2d
  for (const auto* e : two) {
    if (e->c) v.back() = Str(*e->c);
  }
  std::vector<int64_t> last3;  // most recent first
  const auto five = window(5 * kDay);
  for (auto it = five.rbegin(); it != five.rend() && last3.size() < 3; ++it) {
    if ((*it)->x) last3.push_back(*(*it)->x);
  }
  v.emplace_back();
  if (!last3.empty()) {
    for (int64_t x : last3) {
      *v.back().mutable_list_value()->add_values() = Int(x);
    }
  }
  std::set<std::string> distinct;
  for (const auto* e : window(10 * kDay)) {
    if (e->c) distinct.insert(*e->c);
  }
  v.push_back(Int(static_cast<int64_t>(distinct.size())));
  return v;
}

class ModelTest : public ::testing::TestWithParam<uint64_t> {
 protected:
  void SetUp() override {
    EventStoreOptions store_options;
    store_options.seal_min_events = 0;  // sealed by the test, at random
    auto store = EventStore::Open(dir_.Sub("db"), store_options);
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = std::move(*store);
    registry_ = std::make_unique<Registry>(store_.get());
    ASSERT_TRUE(registry_->Load().ok());
    Apply(kDefinitions);
    ingester_ = std::make_unique<Ingester>(store_.get(), registry_.get(),
                                           IngestLimits());
    ViewEngine::Options options;
    options.tile_min_events = 3;
    options.analyst_threads = 2;
    // Lookups of 32 or more entities are computed by three threads.
    options.lookup_threads = 3;
    // Snapshot batches of one or two entities: several are in flight at
    // once, and chunks are cut small.
    options.snapshot_chunk_bytes = 512;
    engine_ =
        std::make_unique<ViewEngine>(store_.get(), registry_.get(), options);
    // Chunks of up to 7 events, cut short by bytes now and then.
    replayer_ = std::make_unique<Replayer>(
        store_.get(), registry_.get(),
        Replayer::Options{7, 1 << 20, kMaxReplayChunk});
  }

  void Apply(const char* text) {
    auto defs = ParseDefinitionsText(text, "model");
    ASSERT_TRUE(defs.ok()) << defs.status();
    auto applied = registry_->Apply(*defs, false, "");
    ASSERT_TRUE(applied.ok()) << applied.status();
  }

  // Every event of `stream` (entity: only its) at `watermark`, by replay.
  std::vector<v1::Event> Replay(const std::string& stream, uint64_t watermark,
                                const std::string& entity = "") {
    v1::ReadEventsRequest req;
    req.set_stream(stream);
    req.set_watermark(watermark);
    req.set_entity(entity);
    std::vector<v1::Event> out;
    absl::Status s = replayer_->ReadEvents(req, [&](ChunkBuffer* chunk) {
      EXPECT_LE(chunk->size(), kMaxReplayChunk);
      v1::ReadEventsResponse r;
      EXPECT_TRUE(r.ParseFromArray(chunk->data(), chunk->size()));
      EXPECT_EQ(r.watermark(), watermark);
      for (const auto& e : r.events()) out.push_back(e);
      return true;
    });
    EXPECT_TRUE(s.ok()) << s;
    return out;
  }

  testing::TempDir dir_;
  std::unique_ptr<EventStore> store_;
  std::unique_ptr<Registry> registry_;
  std::unique_ptr<Ingester> ingester_;
  std::unique_ptr<ViewEngine> engine_;
  std::unique_ptr<Replayer> replayer_;
};

TEST_P(ModelTest, EveryReadPathAgreesWithTheModelAtEveryWatermark) {
  std::mt19937_64 rng(GetParam());
  auto pick = [&](uint64_t n) { return rng() % n; };
  // Byte prefixes of one another, and names both streams use.
  const std::vector<std::string> entities = {"a",  "ab", "a\x01", "b",
                                             "e1", "e2", "e3"};
  std::vector<ModelEvent> model[3];            // by stream (1, 2)
  std::map<std::string, ModelEvent> by_id[3];  // accepted, by id
  std::vector<uint64_t> watermarks;
  uint64_t watermark = 0;
  int next_id = 0;
  for (int batch = 0; batch < 40; ++batch) {
    if (batch == 20) Apply(kEvolved);
    const int stream = batch % 5 == 4 ? 2 : 1;
    const bool skip_rows = pick(2) == 0;
    v1::IngestRequest req;
    req.set_stream(absl::StrCat("s", stream));
    req.set_on_invalid(skip_rows ? v1::SKIP_ROW : v1::REJECT_BATCH);
    std::vector<ModelEvent> rows;
    const int n = 1 + static_cast<int>(pick(60));
    for (int i = 0; i < n; ++i) {
      ModelEvent e;
      e.stream = stream;
      const uint64_t kind = pick(10);
      if (kind == 0 && !by_id[stream].empty()) {
        // A re-send of an accepted event: a duplicate.
        auto it = by_id[stream].begin();
        std::advance(it, pick(by_id[stream].size()));
        e = it->second;
      } else {
        e.id = absl::StrCat("id", next_id++);
        // Skewed: "a" is heavy; times on a coarse grid so that events
        // share times and fall exactly on window edges; any may be late.
        e.entity = pick(3) == 0 ? "a" : entities[pick(entities.size())];
        e.time_us = kT0 + static_cast<int64_t>(pick(20 * 24)) * kHour +
                    (pick(4) == 0 ? static_cast<int64_t>(pick(3)) : 0);
        e.d = static_cast<double>(static_cast<int64_t>(pick(1ULL << 40)) -
                                  (1LL << 39)) /
              1024.0;
        if (pick(4) != 0) {
          e.x = static_cast<int64_t>(pick(2000000000001ULL)) - 1000000000000LL;
        }
        if (pick(3) != 0) {
          e.c = std::vector<std::string>{"x", "y", "zz", ""}[pick(4)];
        }
        if (stream == 1 && batch >= 20 && pick(2) == 0) e.flag = pick(2) == 0;
        if (stream == 2) e.x.reset(), e.c.reset();
        if (kind == 1 && !by_id[stream].empty()) {
          // Another content under an accepted id: a conflict.
          auto it = by_id[stream].begin();
          std::advance(it, pick(by_id[stream].size()));
          e.id = it->first;
          e.time_us += kHour;
          --next_id;
        }
      }
      rows.push_back(e);
      *req.add_events() = e.ToProto();
    }
    // The model's verdict per row.
    int64_t accepted = 0, duplicates = 0, conflicts = 0;
    std::vector<ModelEvent> taken;
    std::map<std::string, ModelEvent> in_batch;
    for (const ModelEvent& e : rows) {
      auto stored = by_id[stream].find(e.id);
      auto earlier = in_batch.find(e.id);
      const ModelEvent* known = stored != by_id[stream].end() ? &stored->second
                                : earlier != in_batch.end()   ? &earlier->second
                                                              : nullptr;
      if (known == nullptr) {
        in_batch[e.id] = e;
        taken.push_back(e);
        ++accepted;
      } else if (known->SameContent(e)) {
        ++duplicates;
      } else {
        ++conflicts;
      }
    }
    auto got = ingester_->Ingest(req, 0);
    if (conflicts > 0 && !skip_rows) {
      ASSERT_FALSE(got.ok()) << "batch " << batch;
      continue;  // all or nothing: nothing written
    }
    ASSERT_TRUE(got.ok()) << "batch " << batch << ": " << got.status();
    EXPECT_EQ(got->accepted(), accepted) << "batch " << batch;
    EXPECT_EQ(got->duplicates(), duplicates) << "batch " << batch;
    EXPECT_EQ(got->rejected_size(), conflicts) << "batch " << batch;
    // Written events take the next seqs in row order.
    for (ModelEvent& e : taken) {
      e.seq = ++watermark;
      by_id[stream][e.id] = e;
      model[stream].push_back(e);
    }
    ASSERT_EQ(got->watermark(), watermark) << "batch " << batch;
    watermarks.push_back(watermark);
    // Events are sealed into blocks now and then (all of them, or those of
    // entities with a few unsealed), so reads meet blocks, unsealed events
    // and late events inside sealed blocks.
    if (pick(3) == 0) {
      ASSERT_TRUE(store_->Seal(pick(2) == 0 ? 1 : 8).ok());
    }
    // A lookup of the heavy entity now and then builds day tiles, beside
    // which later batches' late events are read until sealing folds them in.
    if (batch % 3 == 0) {
      v1::GetFeaturesRequest get;
      get.set_view("v");
      get.add_entities("a");
      *get.mutable_as_of() = MicrosToTimestamp(kT0 + 21 * kDay);
      ASSERT_TRUE(engine_->GetFeatures(get).ok());
    }
  }
  ASSERT_GT(engine_->tiles_built(), 0u);

  // One entity of s1 is erased: it leaves every read, at every watermark
  // (earlier ones included), and its tiles go with it.
  {
    const auto s1 = registry_->FindStream("s1");
    ASSERT_NE(s1, nullptr);
    size_t n = 0;
    for (const auto& e : model[1]) n += e.entity == "ab";
    auto erased = store_->Erase(s1->stream_id, "ab", v1::Erasure());
    ASSERT_TRUE(erased.ok()) << erased.status();
    EXPECT_EQ(erased->events, n);
    model[1].erase(
        std::remove_if(model[1].begin(), model[1].end(),
                       [](const ModelEvent& e) { return e.entity == "ab"; }),
        model[1].end());
  }

  std::vector<int64_t> times = {kT0,
                                kT0 + 5 * kHour,
                                kT0 + 3 * kDay + 7,
                                kT0 + 9 * kDay + 2 * kHour,
                                kT0 + 20 * kDay + 1,
                                kT0 + 40 * kDay};
  // Event times themselves: the exclusive end and window starts on events.
  for (int i = 0; i < 6; ++i) {
    times.push_back(model[1][pick(model[1].size())].time_us);
    times.push_back(model[1][pick(model[1].size())].time_us + 2 * kHour);
  }
  std::sort(times.begin(), times.end());
  times.erase(std::unique(times.begin(), times.end()), times.end());

  for (uint64_t w :
       {watermarks[3], watermarks[watermarks.size() / 2], watermarks.back()}) {
    SCOPED_TRACE(absl::StrCat("watermark ", w));
    // Replay: exactly the model's events up to w, in seq order, with their
    // seqs; per entity too, and never the other stream's.
    for (int stream : {1, 2}) {
      std::vector<const ModelEvent*> want;
      for (const auto& e : model[stream]) {
        if (e.seq <= w) want.push_back(&e);
      }
      const auto got = Replay(absl::StrCat("s", stream), w);
      ASSERT_EQ(got.size(), want.size());
      for (size_t i = 0; i < got.size(); ++i) {
        v1::Event e = want[i]->ToProto();
        e.set_seq(want[i]->seq);
        ASSERT_EQ(testing::Canonical(got[i]), testing::Canonical(e)) << i;
      }
      for (const std::string& entity : entities) {
        size_t n = 0;
        for (const auto* e : want) n += e->entity == entity;
        const auto one = Replay(absl::StrCat("s", stream), w, entity);
        EXPECT_EQ(one.size(), n) << entity;
        for (size_t i = 1; i < one.size(); ++i) {
          EXPECT_LT(one[i - 1].seq(), one[i].seq());
        }
      }
    }

    // Lookups (tiles on), one snapshot of every time (SweepEntity) and one
    // join of every (entity, time) agree with the oracle.
    std::map<std::pair<std::string, int64_t>, std::string> want;
    for (const std::string& entity : entities) {
      for (int64_t t : times) {
        v1::FeatureRow row;
        row.set_entity(entity);
        for (auto& v : Oracle(model[1], entity, t, w)) {
          *row.add_values() = std::move(v);
        }
        want[{entity, t}] = testing::Canonical(row);
      }
    }
    for (int64_t t : times) {
      v1::GetFeaturesRequest get;
      get.set_view("v");
      get.set_watermark(w);
      *get.mutable_as_of() = MicrosToTimestamp(t);
      // Each entity asked for several times, shuffled: groups of entities
      // computed on several threads; rows in request order.
      std::vector<std::string> asked;
      for (int copy = 0; copy < 6; ++copy) {
        asked.insert(asked.end(), entities.begin(), entities.end());
      }
      std::shuffle(asked.begin(), asked.end(), rng);
      for (const std::string& entity : asked) get.add_entities(entity);
      auto got = engine_->GetFeatures(get);
      ASSERT_TRUE(got.ok()) << got.status();
      ASSERT_EQ(got->rows_size(), static_cast<int>(asked.size()));
      for (size_t i = 0; i < asked.size(); ++i) {
        ASSERT_EQ(got->rows(static_cast<int>(i)).entity(), asked[i]);
      }
      for (const auto& row : got->rows()) {
        EXPECT_EQ(testing::Canonical(row), want.at({row.entity(), t}))
            << "GetFeatures " << row.entity() << " as of " << FormatMicros(t)
            << "\n"
            << row.DebugString();
      }
    }
    v1::SnapshotRequest snap;
    snap.set_view("v");
    snap.set_watermark(w);
    for (int64_t t : times) *snap.add_as_of_times() = MicrosToTimestamp(t);
    size_t rows = 0;
    std::map<int64_t, std::string> last_entity;  // per time: entity order
    ASSERT_TRUE(engine_
                    ->Snapshot(snap,
                               [&](v1::SnapshotChunk* chunk) {
                                 const int64_t t =
                                     *TimestampToMicros(chunk->as_of());
                                 for (const auto& row : chunk->rows()) {
                                   ++rows;
                                   auto [at, first] =
                                       last_entity.emplace(t, row.entity());
                                   if (!first) {
                                     EXPECT_LT(at->second, row.entity());
                                     at->second = row.entity();
                                   }
                                   EXPECT_EQ(testing::Canonical(row),
                                             want.at({row.entity(), t}))
                                       << "Snapshot " << row.entity()
                                       << " as of " << FormatMicros(t);
                                 }
                                 return absl::OkStatus();
                               })
                    .ok());
    EXPECT_GT(rows, 0u);
    // A consumer failing midway ends the snapshot with its error, while
    // batches are still being swept.
    int chunks = 0;
    absl::Status stopped = engine_->Snapshot(snap, [&](v1::SnapshotChunk*) {
      return ++chunks == 2 ? absl::UnavailableError("consumer gone")
                           : absl::OkStatus();
    });
    EXPECT_EQ(stopped.code(), absl::StatusCode::kUnavailable) << stopped;
    EXPECT_EQ(chunks, 2);

    v1::JoinFeaturesRequest first;
    first.set_view("v");
    first.set_watermark(w);
    std::vector<std::pair<std::string, int64_t>> labels;
    for (int i = 0; i < 300; ++i) {
      labels.emplace_back(entities[pick(entities.size())],
                          times[pick(times.size())]);
      auto* row = first.add_rows();
      row->set_entity(labels.back().first);
      *row->mutable_time() = MicrosToTimestamp(labels.back().second);
    }
    JoinSession::Options join_options;
    join_options.max_run_rows = 64;  // several runs
    join_options.threads = 2;
    auto session = JoinSession::Start(engine_.get(), first, join_options);
    ASSERT_TRUE(session.ok()) << session.status();
    size_t answered = 0;
    auto emit = [&](std::string* bytes) {
      v1::JoinFeaturesResponse r;
      EXPECT_TRUE(r.ParseFromString(*bytes));
      EXPECT_EQ(r.watermark(), w);
      for (const auto& row : r.rows()) {
        EXPECT_EQ(row.row_index(), answered);
        ++answered;
        v1::FeatureRow as_row;
        as_row.set_entity(row.entity());
        *as_row.mutable_values() = row.values();
        EXPECT_EQ(testing::Canonical(as_row),
                  want.at(labels.at(row.row_index())))
            << "join row " << row.row_index();
      }
      return absl::OkStatus();
    };
    ASSERT_TRUE((*session)->Add(&first, emit).ok());
    ASSERT_TRUE((*session)->Finish(emit).ok());
    EXPECT_EQ(answered, labels.size());
  }
}

// Snapshots, joins and replays read every entity once: the blocks they
// load stay out of the block cache, which keeps what lookups read.
TEST_P(ModelTest, BulkReadsLeaveTheBlockCacheToLookups) {
  std::mt19937_64 rng(GetParam());
  std::vector<std::string> entities;
  for (int i = 0; i < 200; ++i) entities.push_back(absl::StrCat("u", i));
  for (int batch = 0; batch < 20; ++batch) {
    v1::IngestRequest req;
    req.set_stream("s1");
    for (int i = 0; i < 1000; ++i) {
      ModelEvent e;
      e.stream = 1;
      e.id = absl::StrCat("b", batch, "-", i);
      e.entity = entities[rng() % entities.size()];
      e.time_us = kT0 + static_cast<int64_t>(rng() % (20 * kDay));
      e.d = static_cast<double>(rng() % 1000);
      e.c = "x";
      *req.add_events() = e.ToProto();
    }
    auto got = ingester_->Ingest(req, 0);
    ASSERT_TRUE(got.ok()) << got.status();
  }
  ASSERT_TRUE(store_->Seal(1).ok());
  ASSERT_TRUE(store_->CompactAll().ok());  // sealed blocks in table files
  const uint64_t before = store_->Stats().block_cache_bytes;

  EXPECT_EQ(Replay("s1", store_->watermark()).size(), 20000u);
  EXPECT_EQ(store_->Stats().block_cache_bytes, before) << "after a replay";

  v1::SnapshotRequest snap;
  snap.set_view("v");
  *snap.add_as_of_times() = MicrosToTimestamp(kT0 + 21 * kDay);
  size_t rows = 0;
  ASSERT_TRUE(engine_
                  ->Snapshot(snap,
                             [&](v1::SnapshotChunk* chunk) {
                               rows += chunk->rows_size();
                               return absl::OkStatus();
                             })
                  .ok());
  EXPECT_EQ(rows, entities.size());
  EXPECT_EQ(store_->Stats().block_cache_bytes, before) << "after a snapshot";

  v1::JoinFeaturesRequest first;
  first.set_view("v");
  for (const std::string& entity : entities) {
    auto* row = first.add_rows();
    row->set_entity(entity);
    *row->mutable_time() = MicrosToTimestamp(kT0 + 10 * kDay);
  }
  auto session =
      JoinSession::Start(engine_.get(), first, JoinSession::Options());
  ASSERT_TRUE(session.ok()) << session.status();
  size_t answered = 0;
  auto emit = [&](std::string* bytes) {
    v1::JoinFeaturesResponse r;
    EXPECT_TRUE(r.ParseFromString(*bytes));
    answered += r.rows_size();
    return absl::OkStatus();
  };
  ASSERT_TRUE((*session)->Add(&first, emit).ok());
  ASSERT_TRUE((*session)->Finish(emit).ok());
  EXPECT_EQ(answered, entities.size());
  EXPECT_EQ(store_->Stats().block_cache_bytes, before) << "after a join";

  // A lookup's reads stay in the cache.
  v1::GetFeaturesRequest get;
  get.set_view("v");
  for (const std::string& entity : entities) get.add_entities(entity);
  ASSERT_TRUE(engine_->GetFeatures(get).ok());
  EXPECT_GT(store_->Stats().block_cache_bytes, before + 16 * 1024);
}

INSTANTIATE_TEST_SUITE_P(Seeds, ModelTest,
                         ::testing::Values(20261202u, 7u, 4242u));

}  // namespace
}  // namespace rawfeat
