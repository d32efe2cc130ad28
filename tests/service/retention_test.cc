// Retention and erasure against a real server on 127.0.0.1:0: what the
// reads answer, and what is left in each column family afterwards (read
// with RocksDB itself once the server has stopped).

#include <algorithm>
#include <atomic>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "rocksdb/db.h"
#include "server/common/coding.h"
#include "server/common/hash.h"
#include "server/common/time_util.h"
#include "server/storage/event_block.h"
#include "server/storage/event_store.h"
#include "server/storage/keys.h"
#include "server/storage/log_record.h"
#include "tests/test_util.h"

namespace rawfeat {
namespace {

using testing::Feature;
using testing::Order;
using testing::OrdersBatch;
using testing::OrdersStream;
using testing::TempDir;
using testing::TestServer;

constexpr int64_t kDay = 86400LL * 1000000;
constexpr int64_t kMinute = 60LL * 1000000;

int64_t Now() { return absl::ToUnixMicros(absl::Now()); }

// The orders stream with `retention`, and view "spend" (7-day count and
// sum) when `with_view`.
v1::ApplyDefinitionsRequest Definitions(const std::string& retention,
                                        bool with_view = true) {
  v1::ApplyDefinitionsRequest req;
  v1::StreamDef stream = OrdersStream();
  stream.set_retention(retention);
  *req.mutable_definitions()->add_streams() = stream;
  if (with_view) {
    auto* view = req.mutable_definitions()->add_views();
    view->set_name("spend");
    view->set_version(1);
    view->set_stream("orders");
    *view->add_features() = Feature("n_7d", "count", "", "7d");
    *view->add_features() = Feature("sum_7d", "sum", "amount", "7d");
  }
  return req;
}

// Every key and value of each column family of a stopped store.
using Families =
    std::map<std::string, std::vector<std::pair<std::string, std::string>>>;
Families ReadFamilies(const std::string& dir) {
  Families out;
  testing::RawStore raw(dir, /*read_only=*/true);
  if (!raw.ok()) return out;
  for (const std::string& name : raw.families()) {
    auto& rows = out[name];
    std::unique_ptr<rocksdb::Iterator> it(
        raw.db()->NewIterator(rocksdb::ReadOptions(), raw.family(name)));
    for (it->SeekToFirst(); it->Valid(); it->Next()) {
      rows.emplace_back(it->key().ToString(), it->value().ToString());
    }
    EXPECT_TRUE(it->status().ok());
  }
  return out;
}

// What a stopped store's log holds: the highest seq its entries cover, and
// the (seq, entity) of every event still in them.
struct LogContents {
  uint64_t last_seq = 0;
  std::vector<std::pair<uint64_t, std::string>> events;
};
LogContents ReadLogContents(const Families& f) {
  LogContents out;
  auto it = f.find(kLogColumnFamily);
  if (it == f.end()) return out;
  LogEntryReader reader;
  for (const auto& [key, value] : it->second) {
    EXPECT_EQ(key.size(), 8u);
    out.last_seq = std::max(out.last_seq, ParseLogKey(key));
    EXPECT_TRUE(reader.Reset(ParseLogKey(key), value));
    StoredEvent e;
    while (reader.Next(&e)) out.events.emplace_back(e.seq, e.entity);
    EXPECT_TRUE(reader.ok());
  }
  return out;
}

std::vector<v1::Event> ReadAll(Client& client, const std::string& entity = "",
                               uint64_t watermark = 0,
                               absl::Status* status = nullptr,
                               int64_t from_us = 0) {
  v1::ReadEventsRequest req;
  req.set_stream("orders");
  req.set_entity(entity);
  req.set_watermark(watermark);
  if (from_us != 0) *req.mutable_from_time() = MicrosToTimestamp(from_us);
  std::vector<v1::Event> out;
  absl::Status s = client.ReadEvents(req, [&](const auto& chunk) {
    for (const auto& e : chunk.events()) out.push_back(e);
    return true;
  });
  if (status != nullptr) {
    *status = s;
  } else {
    EXPECT_TRUE(s.ok()) << s;
  }
  return out;
}

absl::StatusOr<v1::GetFeaturesResponse> Lookup(
    Client& client, const std::vector<std::string>& entities, int64_t as_of) {
  v1::GetFeaturesRequest get;
  get.set_view("spend");
  for (const auto& e : entities) get.add_entities(e);
  *get.mutable_as_of() = MicrosToTimestamp(as_of);
  return client.GetFeatures(get);
}

const v1::StreamStatus* OrdersStatus(const v1::GetStatusResponse& st) {
  for (const auto& s : st.streams()) {
    if (s.name() == "orders") return &s;
  }
  return nullptr;
}

int64_t HorizonNow(Client& client) {
  auto st = client.GetStatus();
  EXPECT_TRUE(st.ok());
  const v1::StreamStatus* s = OrdersStatus(*st);
  if (s == nullptr || !s->has_horizon()) return 0;
  return *TimestampToMicros(s->horizon());
}

// Snapshot rows (entity -> canonical row) as of `as_of`.
absl::Status SnapshotRows(Client& client, int64_t as_of,
                          std::map<std::string, std::string>* rows) {
  v1::SnapshotRequest snap;
  snap.set_view("spend");
  *snap.mutable_as_of() = MicrosToTimestamp(as_of);
  return client.Snapshot(snap, [&](const v1::SnapshotChunk& chunk) {
    for (const auto& r : chunk.rows())
      (*rows)[r.entity()] = testing::Canonical(r);
    return true;
  });
}

// Join of one label per (entity, time): row index -> canonical values.
absl::Status Join(Client& client,
                  const std::vector<std::pair<std::string, int64_t>>& labels,
                  std::map<uint64_t, std::string>* rows) {
  v1::JoinFeaturesRequest first;
  first.set_view("spend");
  for (const auto& [entity, t] : labels) {
    auto* row = first.add_rows();
    row->set_entity(entity);
    *row->mutable_time() = MicrosToTimestamp(t);
  }
  return client.JoinFeatures(
      first, [](v1::JoinFeaturesRequest*) { return false; },
      [&](const v1::JoinFeaturesResponse& r) {
        for (const auto& row : r.rows()) {
          v1::JoinedRow values;
          *values.mutable_values() = row.values();
          (*rows)[row.row_index()] = testing::Canonical(values);
        }
        return true;
      });
}

TEST(RetentionTest, OldEventsLeaveEveryFamilyAndReadsBelowTheHorizonFail) {
  TempDir dir;
  const std::string data = dir.Sub("data");
  const int64_t old_day = DayStart(Now() - 400 * kDay);
  const int64_t old = old_day + 3600LL * 1000000;
  const int64_t recent = Now() - 3600LL * 1000000;
  uint64_t watermark = 0;
  {
    TestServer ts(data, /*apply_orders=*/false);
    ASSERT_TRUE(ts.client().ApplyDefinitions(Definitions("")).ok());
    std::vector<v1::Event> events;
    for (int i = 0; i < 40; ++i) {
      events.push_back(
          Order("old-u1-" + std::to_string(i), "u1", old + i * 1000000, 1));
    }
    for (int i = 0; i < 5; ++i) {
      events.push_back(Order("", "u2", old + i, 10 + i));  // derived ids
    }
    for (int i = 0; i < 3; ++i) {
      events.push_back(
          Order("new-u1-" + std::to_string(i), "u1", recent + i, 100));
    }
    events.push_back(Order("new-u3-0", "u3", recent, 7));
    events.push_back(Order("", "u3", recent + 1, 8));
    ASSERT_TRUE(ts.client().Ingest(OrdersBatch(events)).ok());
    // A lookup in the old days builds a tile of u1's heavy old day.
    ASSERT_TRUE(Lookup(ts.client(), {"u1"}, old_day + 2 * kDay).ok());
    ASSERT_GT(ts.SettledTiles(), 0u);

    auto applied = ts.client().ApplyDefinitions(Definitions("30d"));
    ASSERT_TRUE(applied.ok()) << applied.status();
    EXPECT_TRUE(
        std::any_of(applied->changes().begin(), applied->changes().end(),
                    [](const std::string& c) {
                      return absl::StrContains(c, "retention forever -> 30d");
                    }))
        << applied->DebugString();
    auto st = ts.client().GetStatus();
    ASSERT_TRUE(st.ok());
    ASSERT_NE(OrdersStatus(*st), nullptr);
    EXPECT_EQ(OrdersStatus(*st)->retention(), "30d");
    const int64_t horizon = HorizonNow(ts.client());
    EXPECT_NEAR(static_cast<double>(horizon),
                static_cast<double>(Now() - 30 * kDay),
                static_cast<double>(kMinute));

    // Reads inside the retention answer from the recent events alone.
    auto now_row = Lookup(ts.client(), {"u1"}, Now());
    ASSERT_TRUE(now_row.ok()) << now_row.status();
    EXPECT_EQ(now_row->rows(0).values(0).int64_value(), 3);
    // Reads reaching below the horizon are refused, naming it.
    auto below = Lookup(ts.client(), {"u1"}, old_day + 2 * kDay);
    EXPECT_EQ(below.status().code(), absl::StatusCode::kFailedPrecondition);
    EXPECT_TRUE(absl::StrContains(
        below.status().message(),
        "the retention horizon of stream 'orders' (retention 30d)"))
        << below.status();
    // Lookups whose 7-day window crosses the horizon are refused too.
    EXPECT_EQ(Lookup(ts.client(), {"u1"}, horizon + 6 * kDay).status().code(),
              absl::StatusCode::kFailedPrecondition);
    EXPECT_TRUE(Lookup(ts.client(), {"u1"}, horizon + 7 * kDay + kMinute).ok());
    std::map<std::string, std::string> snap;
    EXPECT_EQ(SnapshotRows(ts.client(), old_day + 2 * kDay, &snap).code(),
              absl::StatusCode::kFailedPrecondition);
    std::map<uint64_t, std::string> joined;
    absl::Status join =
        Join(ts.client(), {{"u1", Now()}, {"u1", old + kDay}}, &joined);
    EXPECT_EQ(join.code(), absl::StatusCode::kFailedPrecondition);
    EXPECT_TRUE(absl::StrContains(join.message(), "label row 1:")) << join;
    // Replay starts at the horizon, before any compaction ran.
    EXPECT_EQ(ReadAll(ts.client()).size(), 5u);
    EXPECT_EQ(ReadAll(ts.client(), "u1").size(), 3u);
    absl::Status from_old;
    ReadAll(ts.client(), "", 0, &from_old, old);
    EXPECT_EQ(from_old.code(), absl::StatusCode::kFailedPrecondition);
    // An event older than the horizon is acknowledged and not stored.
    auto late = ts.client().Ingest(OrdersBatch({Order("late", "u9", old, 1)}));
    ASSERT_TRUE(late.ok());
    EXPECT_EQ(late->accepted(), 0);
    EXPECT_EQ(late->expired(), 1);

    ASSERT_TRUE(ts.server().store()->CompactAll().ok());
    EXPECT_EQ(ts.SettledTiles(), 0u);
    watermark = ts.client().GetStatus()->watermark();
    EXPECT_EQ(watermark, 50u);
  }
  // What is left on disk: the recent events, their ids, a log that holds
  // them and still ends at seq 50, no tile.
  Families f = ReadFamilies(data);
  // CompactAll sealed them: the events family holds only blocks (and the
  // sealer's marker).
  size_t sealed = 0;
  for (const auto& [key, value] : f[kEventsColumnFamily]) {
    if (key == kUnsealedFromKey) {
      EXPECT_EQ(value.size(), 8u);
      continue;
    }
    ASSERT_GE(key.size(), 4u);
    EXPECT_NE(DecodeBigEndian32(key.data()) & kBlockStreamBit, 0u);
    std::vector<BlockEvent> block;
    ASSERT_TRUE(DecodeBlock(value, &block));
    sealed += block.size();
  }
  EXPECT_EQ(sealed, 5u);
  EXPECT_EQ(f[kIdsColumnFamily].size(), 5u);
  EXPECT_EQ(f[kTilesColumnFamily].size(), 0u);
  const LogContents log = ReadLogContents(f);
  EXPECT_EQ(log.last_seq, 50u);
  EXPECT_EQ(log.events.size(), 5u);

  // A restart keeps the watermark and goes on from the next seq.
  TestServer ts(data, /*apply_orders=*/false);
  EXPECT_EQ(ts.client().GetStatus()->watermark(), watermark);
  ASSERT_TRUE(
      ts.client().Ingest(OrdersBatch({Order("after", "u1", Now(), 1)})).ok());
  const auto all = ReadAll(ts.client());
  ASSERT_EQ(all.size(), 6u);
  EXPECT_EQ(all.back().seq(), watermark + 1);
}

TEST(RetentionTest, ALongerRetentionNeverBringsTheHorizonBack) {
  TempDir dir;
  const std::string data = dir.Sub("data");
  int64_t floor = 0;
  {
    TestServer ts(data, /*apply_orders=*/false);
    ASSERT_TRUE(ts.client().ApplyDefinitions(Definitions("30d")).ok());
    floor = HorizonNow(ts.client());
    // Longer, then none: events under the old horizon may be gone.
    ASSERT_TRUE(ts.client().ApplyDefinitions(Definitions("400d")).ok());
    EXPECT_NEAR(static_cast<double>(HorizonNow(ts.client())),
                static_cast<double>(floor), static_cast<double>(kMinute));
    ASSERT_TRUE(ts.client().ApplyDefinitions(Definitions("")).ok());
    EXPECT_NEAR(static_cast<double>(HorizonNow(ts.client())),
                static_cast<double>(floor), static_cast<double>(kMinute));
  }
  TestServer ts(data, /*apply_orders=*/false);
  EXPECT_NEAR(static_cast<double>(HorizonNow(ts.client())),
              static_cast<double>(floor), static_cast<double>(kMinute));
  EXPECT_EQ(Lookup(ts.client(), {"u1"}, Now() - 100 * kDay).status().code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(Lookup(ts.client(), {"u1"}, Now()).ok());
}

TEST(RetentionTest, BadRetentionAndViewsThatCouldNeverBeReadAreRefused) {
  TestServer ts("", /*apply_orders=*/false);
  auto bad = ts.client().ApplyDefinitions(Definitions("30x", false));
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(absl::StrContains(bad.status().message(), "bad retention '30x'"))
      << bad.status();
  ASSERT_TRUE(ts.client().ApplyDefinitions(Definitions("30d", false)).ok());
  for (const char* window : {"60d", "lifetime"}) {
    v1::ApplyDefinitionsRequest req = Definitions("30d");
    req.mutable_definitions()
        ->mutable_views(0)
        ->mutable_features(1)
        ->set_window(window);
    auto r = ts.client().ApplyDefinitions(req);
    EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument) << window;
    EXPECT_TRUE(absl::StrContains(r.status().message(),
                                  "reaches below the retention of stream "
                                  "'orders' (30d)"))
        << r.status();
  }
  EXPECT_TRUE(ts.client().ApplyDefinitions(Definitions("30d")).ok());
}

TEST(ErasureTest, TheEntityLeavesEveryReadAndOthersStayBitIdentical) {
  TempDir dir;
  const std::string data = dir.Sub("data");
  const int64_t now = Now();
  std::mt19937_64 rng(7);
  std::vector<v1::Event> events, erased;
  for (int u = 1; u <= 5; ++u) {
    const int n = u == 1 ? 300 : 50;
    for (int i = 0; i < n; ++i) {
      const std::string user = "u" + std::to_string(u);
      const int64_t t =
          now - 3 * kDay + static_cast<int64_t>(rng() % (3 * kDay));
      // Half with ids, half with content-derived ids.
      events.push_back(Order(i % 2 ? absl::StrCat(user, "-", i) : "", user, t,
                             static_cast<double>(rng() % 1000) / 8));
      if (u == 1) erased.push_back(events.back());
    }
  }
  std::shuffle(events.begin(), events.end(), rng);
  const std::vector<std::string> others = {"u2", "u3", "u4", "u5"};
  std::vector<std::pair<std::string, int64_t>> labels;
  for (int u = 1; u <= 5; ++u) {
    for (int64_t back : {int64_t{0}, kDay, 2 * kDay}) {
      labels.push_back({"u" + std::to_string(u), now - back});
    }
  }
  uint64_t n_erased = 0;
  {
    // u1's days (about 100 events each) get tiles, the others' (about
    // 17) do not: after the erasure no tile is left.
    ServerOptions options;
    options.tile_min_events = 32;
    TestServer ts(data, /*apply_orders=*/false, options);
    ASSERT_TRUE(ts.client().ApplyDefinitions(Definitions("")).ok());
    for (size_t i = 0; i < events.size(); i += 100) {
      std::vector<v1::Event> batch(
          events.begin() + i,
          events.begin() + std::min(events.size(), i + 100));
      ASSERT_TRUE(ts.client().Ingest(OrdersBatch(batch)).ok());
    }
    ASSERT_TRUE(Lookup(ts.client(), {"u1"}, now).ok());  // tiles of u1
    ASSERT_GT(ts.SettledTiles(), 0u);
    const uint64_t w0 = ts.client().GetStatus()->watermark();
    auto before = Lookup(ts.client(), others, now);
    ASSERT_TRUE(before.ok());
    std::map<std::string, std::string> snap_before;
    ASSERT_TRUE(SnapshotRows(ts.client(), now, &snap_before).ok());
    std::map<uint64_t, std::string> join_before;
    ASSERT_TRUE(Join(ts.client(), labels, &join_before).ok());
    std::vector<std::string> replay_before;
    for (const auto& e : ReadAll(ts.client())) {
      if (e.entity() != "u1") replay_before.push_back(testing::Canonical(e));
    }

    auto r = ts.client().Erase("orders", "u1");
    ASSERT_TRUE(r.ok()) << r.status();
    n_erased = r->events();
    EXPECT_EQ(n_erased, erased.size());
    const Sha256Digest digest = Sha256("u1");
    const std::string hash = HexEncode(absl::string_view(
        reinterpret_cast<const char*>(digest.data()), digest.size()));
    EXPECT_EQ(r->entity_sha256(), hash);

    // GetFeatures: u1 has nothing; the others answer as before.
    auto gone = Lookup(ts.client(), {"u1"}, now);
    ASSERT_TRUE(gone.ok());
    EXPECT_EQ(gone->rows(0).values(0).int64_value(), 0);
    auto after = Lookup(ts.client(), others, now);
    ASSERT_TRUE(after.ok());
    ASSERT_EQ(after->rows_size(), before->rows_size());
    for (int i = 0; i < after->rows_size(); ++i) {
      EXPECT_EQ(testing::Canonical(after->rows(i)),
                testing::Canonical(before->rows(i)));
    }
    // Snapshot: no u1 row, the others bit-identical.
    std::map<std::string, std::string> snap_after;
    ASSERT_TRUE(SnapshotRows(ts.client(), now, &snap_after).ok());
    snap_before.erase("u1");
    EXPECT_EQ(snap_after, snap_before);
    // Join: u1's labels get count 0, every other row as before.
    std::map<uint64_t, std::string> join_after;
    ASSERT_TRUE(Join(ts.client(), labels, &join_after).ok());
    ASSERT_EQ(join_after.size(), join_before.size());
    for (size_t i = 0; i < labels.size(); ++i) {
      if (labels[i].first == "u1") {
        EXPECT_NE(join_after[i], join_before[i]);
      } else {
        EXPECT_EQ(join_after[i], join_before[i]) << i;
      }
    }
    // Replay: the same events with the same seqs, minus u1's -- at the
    // latest watermark and at the one before the erasure.
    for (uint64_t w : {uint64_t{0}, w0}) {
      std::vector<std::string> replay_after;
      for (const auto& e : ReadAll(ts.client(), "", w)) {
        replay_after.push_back(testing::Canonical(e));
      }
      EXPECT_EQ(replay_after, replay_before) << "watermark " << w;
      EXPECT_TRUE(ReadAll(ts.client(), "u1", w).empty());
    }
    auto st = ts.client().GetStatus();
    EXPECT_EQ(ts.SettledTiles(), 0u);
    EXPECT_EQ(OrdersStatus(*st)->events(), events.size() - n_erased);

    // Idempotent: a second erasure deletes nothing and is logged too.
    auto again = ts.client().Erase("orders", "u1");
    ASSERT_TRUE(again.ok());
    EXPECT_EQ(again->events(), 0u);
    auto log = ts.client().ListErasures();
    ASSERT_TRUE(log.ok());
    ASSERT_EQ(log->erasures_size(), 2);
    EXPECT_EQ(log->erasures(0).events(), n_erased);
    EXPECT_EQ(log->erasures(1).events(), 0u);
    for (const auto& e : log->erasures()) {
      EXPECT_EQ(e.stream(), "orders");
      EXPECT_EQ(e.entity_sha256(), hash);
      EXPECT_TRUE(e.has_at());
    }
    EXPECT_EQ(ts.client().Erase("nope", "u1").status().code(),
              absl::StatusCode::kNotFound);
    EXPECT_EQ(ts.client().Erase("orders", "").status().code(),
              absl::StatusCode::kInvalidArgument);
    ASSERT_TRUE(ts.server().store()->CompactAll().ok());
  }
  // On disk: no key of u1 in events or tiles, none of its ids, and none of
  // its events in the log (which still ends at the highest seq).
  Families f = ReadFamilies(data);
  const std::string prefix = EntityPrefix(1, "u1");
  for (const char* cf : {kEventsColumnFamily, kTilesColumnFamily}) {
    for (const auto& [key, value] : f[cf]) {
      EXPECT_FALSE(absl::StartsWith(key, prefix)) << cf;
    }
  }
  EXPECT_EQ(f[kIdsColumnFamily].size(), events.size() - n_erased);
  const LogContents log = ReadLogContents(f);
  EXPECT_GE(log.last_seq, events.size());
  EXPECT_EQ(log.events.size(), events.size() - n_erased);
  for (const auto& [seq, entity] : log.events) EXPECT_NE(entity, "u1") << seq;

  // The ids are gone: the same events are new again.
  TestServer ts(data, /*apply_orders=*/false);
  auto again = ts.client().Ingest(OrdersBatch(erased));
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->accepted(), static_cast<int64_t>(erased.size()));
  EXPECT_EQ(again->duplicates(), 0);
}

// Erasures racing each other and a writer re-sending the erased events:
// each event is erased once, and afterwards the ids agree with the events
// (re-sending everything adds exactly the missing ones) and the stream's
// count with its replay.
TEST(ErasureTest, RacingErasuresAndReIngestLeaveIdsAndEventsInAgreement) {
  TestServer ts("", /*apply_orders=*/false);
  ASSERT_TRUE(ts.client().ApplyDefinitions(Definitions("", false)).ok());
  const int64_t now = Now();
  std::vector<v1::IngestRequest> batches;
  for (int b = 0; b < 10; ++b) {
    std::vector<v1::Event> events;
    for (int i = 0; i < 2000; ++i) {
      const int n = b * 2000 + i;
      events.push_back(
          Order(n % 3 ? absl::StrCat("h", n) : "", "h", now - kDay + n, n));
    }
    batches.push_back(OrdersBatch(events));
  }
  for (const auto& b : batches) ASSERT_TRUE(ts.client().Ingest(b).ok());
  std::atomic<uint64_t> erased{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 2; ++t) {
    threads.emplace_back([&] {
      Client client(ts.address());
      auto r = client.Erase("orders", "h");
      EXPECT_TRUE(r.ok()) << r.status();
      if (r.ok()) erased += r->events();
    });
  }
  threads.emplace_back([&] {
    Client client(ts.address());
    for (const auto& b : batches) EXPECT_TRUE(client.Ingest(b).ok());
  });
  for (auto& t : threads) t.join();
  const size_t left = ReadAll(ts.client(), "h").size();
  EXPECT_EQ(ReadAll(ts.client()).size(), left);
  // Every event was stored once before; what the erasures took plus what
  // is left is that, plus what the writer added again.
  EXPECT_GE(erased + left, 20000u);
  auto st = ts.client().GetStatus();
  EXPECT_EQ(OrdersStatus(*st)->events(), left);
  int64_t accepted = 0, duplicates = 0;
  for (const auto& b : batches) {
    auto r = ts.client().Ingest(b);
    ASSERT_TRUE(r.ok());
    accepted += r->accepted();
    duplicates += r->duplicates();
  }
  EXPECT_EQ(duplicates, static_cast<int64_t>(left));
  EXPECT_EQ(accepted, static_cast<int64_t>(20000 - left));
  EXPECT_EQ(ReadAll(ts.client(), "h").size(), 20000u);
}

}  // namespace
}  // namespace rawfeat
