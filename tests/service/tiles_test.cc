// Day tiles: a server with tiles must answer bit-identically to a server
// without, however late events arrive, at any watermark, across restarts.

#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "server/common/definitions_text.h"
#include "server/common/time_util.h"
#include "server/server.h"
#include "server/views/view_engine.h"
#include "tests/test_util.h"

namespace rawfeat {
namespace {

using testing::TestServer;

constexpr int64_t kDay = 86400LL * 1000000;
constexpr int64_t kHour = 3600LL * 1000000;
// 2026-10-01T00:00:00Z: old enough to be tiled.
constexpr int64_t kStart = 1790812800LL * 1000000;

constexpr char kView[] = R"(
views {
  name: "tv" version: 1 stream: "orders"
  features { name: "n_1h"   aggregation: "count" window: "1h" }
  features { name: "s_1d"   aggregation: "sum" field: "amount" window: "1d" }
  features { name: "q_7d"   aggregation: "sum" field: "quantity" window: "7d" }
  features { name: "avg_7d" aggregation: "avg" field: "amount" window: "7d" }
  features { name: "min_30d" aggregation: "min" field: "amount" window: "30d" }
  features { name: "max_life" aggregation: "max" field: "category" window: "lifetime" }
  features { name: "first_life" aggregation: "first" field: "amount" window: "lifetime" }
  features { name: "last_life" aggregation: "last" field: "coupon" window: "lifetime" }
  features { name: "last3" aggregation: "last_k" field: "amount" window: "30d" k: 3 }
  features { name: "cats" aggregation: "count_distinct" field: "category" window: "lifetime" }
  features { name: "sd" aggregation: "stddev" field: "amount" window: "lifetime" }
  features {
    name: "big" aggregation: "count" window: "lifetime"
    filter { field: "amount" op: ">=" values { double_value: 50 } }
  }
}
)";

// Applies the definitions `text` (kView by default), named `name` in
// errors.
void Apply(TestServer& s, const char* text = kView, const char* name = "tv") {
  auto defs = ParseDefinitionsText(text, name);
  ASSERT_TRUE(defs.ok());
  v1::ApplyDefinitionsRequest req;
  *req.mutable_definitions() = *defs;
  ASSERT_TRUE(s.client().ApplyDefinitions(req).ok());
}

// One tileable day of "u": 50 events a quarter hour apart from kStart,
// amounts 1e9 + (i mod 3).
void IngestOneDayOfU(TestServer& s) {
  v1::IngestRequest req;
  req.set_stream("orders");
  for (int i = 0; i < 50; ++i) {
    *req.add_events() = testing::Order(absl::StrCat("e", i), "u",
                                       kStart + i * kHour / 4, 1e9 + i % 3);
  }
  ASSERT_TRUE(s.client().Ingest(req).ok());
}

class TilesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ServerOptions with;
    with.tile_min_events = 20;
    // Tiles from lookups only, so the tests know which exist
    // (SealedHeavyDaysAreTiledBeforeAnyLookup tests the sealer's).
    with.tile_sealed_days = false;
    tiled_ = std::make_unique<TestServer>(dir_.Sub("tiled"), true, with);
    ServerOptions without;
    without.tiles = false;
    plain_ = std::make_unique<TestServer>(dir_.Sub("plain"), true, without);
    for (auto* s : {tiled_.get(), plain_.get()}) Apply(*s);
  }

  // The same batch to both servers: n events of `users` (default: "heavy"
  // three times in four, else "light").
  void Ingest(int n, int64_t from, int64_t span,
              const std::vector<std::string>& users = {}) {
    v1::IngestRequest req;
    req.set_stream("orders");
    for (int i = 0; i < n; ++i) {
      const std::string user = !users.empty()    ? users[rng_() % users.size()]
                               : rng_() % 4 == 0 ? "light"
                                                 : "heavy";
      *req.add_events() = testing::Order(
          "", user, from + static_cast<int64_t>(rng_() % span),
          static_cast<double>(rng_() % 10000) / 7, rng_() % 9,
          "c" + std::to_string(rng_() % 6), rng_() % 3 ? "" : "K");
    }
    for (auto* s : {tiled_.get(), plain_.get()}) {
      auto r = s->client().Ingest(req);
      ASSERT_TRUE(r.ok()) << r.status();
    }
  }

  // Compares both servers at `as_of` / `watermark` for `entities`.
  void Compare(int64_t as_of, uint64_t watermark,
               const std::vector<std::string>& entities = {"heavy", "light"}) {
    v1::GetFeaturesRequest req;
    req.set_view("tv");
    for (const auto& e : entities) req.add_entities(e);
    *req.mutable_as_of() = MicrosToTimestamp(as_of);
    req.set_watermark(watermark);
    auto a = tiled_->client().GetFeatures(req);
    auto b = plain_->client().GetFeatures(req);
    ASSERT_TRUE(a.ok()) << a.status();
    ASSERT_TRUE(b.ok()) << b.status();
    EXPECT_EQ(testing::Canonical(*a), testing::Canonical(*b))
        << "as_of " << FormatMicros(as_of) << " watermark " << watermark;
    ++compared_;
  }

  uint64_t Tiles() { return tiled_->SettledTiles(); }
  uint64_t Watermark() { return tiled_->client().GetStatus()->watermark(); }

  int64_t RandomAsOf() {
    // Day boundaries, window boundaries and arbitrary times.
    const int64_t day = kStart + static_cast<int64_t>(rng_() % 40) * kDay;
    switch (rng_() % 4) {
      case 0:
        return day;
      case 1:
        return day + 1;
      case 2:
        return day - 1;
      default:
        return day + static_cast<int64_t>(rng_() % kDay);
    }
  }

  testing::TempDir dir_;
  std::unique_ptr<TestServer> tiled_;
  std::unique_ptr<TestServer> plain_;
  std::mt19937_64 rng_{99};
  int compared_ = 0;
};

TEST_F(TilesTest, BitIdenticalToPlainScans) {
  Ingest(4000, kStart, 30 * kDay);
  for (int i = 0; i < 40; ++i) Compare(RandomAsOf(), 0);
  ASSERT_GT(Tiles(), 0u) << "lookups should have built tiles";
  const uint64_t before_late = Watermark();

  // Late events into tiled days, and new ones: read beside the tiles, then
  // folded into them by sealing.
  Ingest(600, kStart, 30 * kDay);
  for (int i = 0; i < 40; ++i) Compare(RandomAsOf(), 0);
  // Reads at the older watermark see neither the late events nor tiles
  // built after it.
  for (int i = 0; i < 30; ++i) Compare(RandomAsOf(), before_late);
  for (int i = 0; i < 10; ++i) Compare(RandomAsOf(), 1 + rng_() % before_late);

  // Tiles survive a restart, and late events still reach them afterwards.
  const uint64_t tiles = Tiles();
  tiled_->Restart();
  EXPECT_EQ(Tiles(), tiles);
  Ingest(300, kStart, 30 * kDay);
  for (int i = 0; i < 40; ++i) Compare(RandomAsOf(), 0);
  EXPECT_GT(compared_, 150);
}

// A snapshot at one as-of time takes heavy entities' whole days from their
// tiles, as lookups do; at several as-of times it sweeps raw events. Every
// answer matches a server without tiles, at the latest watermark and an
// older one (tiles built after it are not used).
TEST_F(TilesTest, SnapshotsUseTilesAndAgreeWithPlainScans) {
  Ingest(4000, kStart, 30 * kDay, {"heavy", "heavy", "light", "a", "ab"});
  for (int i = 0; i < 20; ++i) Compare(RandomAsOf(), 0, {"heavy", "light"});
  ASSERT_GT(Tiles(), 0u) << "lookups should have built tiles";
  const uint64_t before_late = Watermark();
  Ingest(400, kStart, 30 * kDay, {"heavy", "a"});
  ASSERT_GT(Tiles(), 0u);
  auto snapshot = [&](TestServer& s, std::vector<int64_t> times,
                      uint64_t watermark) {
    v1::SnapshotRequest req;
    req.set_view("tv");
    if (times.size() == 1) {
      *req.mutable_as_of() = MicrosToTimestamp(times[0]);
    } else {
      for (int64_t t : times) *req.add_as_of_times() = MicrosToTimestamp(t);
    }
    req.set_watermark(watermark);
    std::string out;
    absl::Status st = s.client().Snapshot(req, [&](const v1::SnapshotChunk& c) {
      out += testing::Canonical(c);
      return true;
    });
    EXPECT_TRUE(st.ok()) << st;
    return out;
  };
  const uint64_t used_before = tiled_->server().views().tiles_used();
  for (int i = 0; i < 12; ++i) {
    const int64_t as_of = RandomAsOf() + 5 * kDay;
    for (uint64_t watermark : {uint64_t{0}, before_late}) {
      EXPECT_EQ(snapshot(*tiled_, {as_of}, watermark),
                snapshot(*plain_, {as_of}, watermark))
          << "as_of " << FormatMicros(as_of) << " watermark " << watermark;
    }
  }
  EXPECT_GT(tiled_->server().views().tiles_used(), used_before)
      << "one-time snapshots should read tiles";
  const std::vector<int64_t> times = {kStart + 10 * kDay, kStart + 20 * kDay,
                                      kStart + 31 * kDay};
  EXPECT_EQ(snapshot(*tiled_, times, 0), snapshot(*plain_, times, 0));
}

// Tiles are built in the background while late events keep arriving in
// the days being built: a tile that missed one of them is never stored or
// used, at any watermark.
TEST_F(TilesTest, TilesBuiltWhileLateEventsArriveAreNeverStale) {
  Ingest(3000, kStart, 20 * kDay);
  // Late batches made up front (the sender thread draws nothing).
  std::vector<v1::IngestRequest> late;
  for (int b = 0; b < 12; ++b) {
    v1::IngestRequest req;
    req.set_stream("orders");
    for (int i = 0; i < 40; ++i) {
      *req.add_events() = testing::Order(
          "", i % 4 ? "heavy" : "light",
          kStart + static_cast<int64_t>(rng_() % (20 * kDay)),
          static_cast<double>(rng_() % 10000) / 7, rng_() % 9,
          "c" + std::to_string(rng_() % 6), rng_() % 3 ? "" : "K");
    }
    late.push_back(std::move(req));
  }
  std::vector<uint64_t> watermarks;
  std::thread sender([&] {
    for (const auto& req : late) {
      uint64_t w = 0;
      for (auto* s : {tiled_.get(), plain_.get()}) {
        auto r = s->client().Ingest(req);
        EXPECT_TRUE(r.ok()) << r.status();
        if (r.ok()) w = r->watermark();
      }
      watermarks.push_back(w);
    }
  });
  // Lookups at the latest watermark meanwhile: each asks for the tiles of
  // the heavy days it scanned.
  for (int i = 0; i < 60; ++i) {
    v1::GetFeaturesRequest req;
    req.set_view("tv");
    req.add_entities("heavy");
    req.add_entities("light");
    *req.mutable_as_of() = MicrosToTimestamp(RandomAsOf());
    EXPECT_TRUE(tiled_->client().GetFeatures(req).ok());
  }
  sender.join();
  ASSERT_EQ(watermarks.size(), late.size());
  Tiles();  // every build done
  for (uint64_t w : watermarks) {
    for (int i = 0; i < 4; ++i) Compare(RandomAsOf(), w);
  }
  for (int i = 0; i < 20; ++i) Compare(RandomAsOf(), 0);
  EXPECT_GT(Tiles(), 0u);
}

// A late event into a tiled day leaves the tile: lookups read the event
// beside it until sealing folds it in.
TEST_F(TilesTest, ALateEventIsReadBesideItsTileUntilSealingFoldsItIn) {
  Ingest(3000, kStart, 10 * kDay);
  Compare(kStart + 20 * kDay, 0);
  const uint64_t tiles = Tiles();
  ASSERT_GT(tiles, 0u);
  const uint64_t before = Watermark();
  EventStore* store = tiled_->server().store();
  ASSERT_TRUE(store->Seal().ok());
  EXPECT_EQ(store->Stats().tiles_folded, 0u) << "nothing new in tiled days";
  v1::IngestRequest req;
  req.set_stream("orders");
  *req.add_events() = testing::Order("late", "heavy", kStart + kHour, 1e6);
  for (auto* s : {tiled_.get(), plain_.get()}) {
    ASSERT_TRUE(s->client().Ingest(req).ok());
  }
  EXPECT_EQ(Tiles(), tiles);
  const ViewEngine& views = tiled_->server().views();
  uint64_t used = views.tiles_used();
  Compare(kStart + 20 * kDay, 0);
  Compare(kStart + 20 * kDay, before);
  EXPECT_GT(views.tiles_used(), used);
  ASSERT_TRUE(store->Seal().ok());
  EXPECT_EQ(store->Stats().tiles_folded, 1u);
  EXPECT_EQ(store->Stats().tiles_invalidated, 0u);
  EXPECT_EQ(Tiles(), tiles);
  used = views.tiles_used();
  Compare(kStart + 20 * kDay, 0);
  Compare(kStart + 20 * kDay, before);
  EXPECT_GT(views.tiles_used(), used);
}

TEST_F(TilesTest, WindowStartsInsideATiledDay) {
  // As of 00:30 on day 8: the 1h, 1d and 7d windows start inside days 7, 7
  // and 1, which are tiled; those features take the tile's day only if
  // their window covers it entirely, and raw events from their start on.
  const int64_t as_of = kStart + 8 * kDay + 30 * 60 * 1000000LL;
  Ingest(3000, kStart, 8 * kDay);
  v1::IngestRequest edges;
  edges.set_stream("orders");
  int n = 0;
  for (int64_t w : {kHour, kDay, 7 * kDay}) {
    for (int64_t d : {-1, 0, 1}) {
      *edges.add_events() = testing::Order(
          absl::StrCat("edge", n), "heavy", as_of - w + d, 1000 + n, n % 9,
          absl::StrCat("e", n), n % 2 ? "K" : "");
      ++n;
    }
  }
  for (auto* s : {tiled_.get(), plain_.get()}) {
    ASSERT_TRUE(s->client().Ingest(edges).ok());
  }
  Compare(as_of, 0);  // builds the tiles
  ASSERT_GT(Tiles(), 0u);
  Compare(as_of, 0);  // reads them
  Compare(as_of + 1, 0);
  Compare(as_of - 1, 0);
}

// Entities that are byte prefixes of one another, or share long prefixes:
// each reads its own tiles (found through the tiles' prefix blooms) and
// nobody else's.
TEST_F(TilesTest, EntitiesSharingPrefixesReadOnlyTheirOwnTiles) {
  const std::string long_prefix(200, 'p');
  const std::vector<std::string> users = {"a",
                                          "ab",
                                          std::string("a\x01"),
                                          "b",
                                          long_prefix + "1",
                                          long_prefix + "12",
                                          long_prefix};
  Ingest(6000, kStart, 20 * kDay, users);
  for (int i = 0; i < 10; ++i) Compare(RandomAsOf(), 0, users);
  ASSERT_GT(Tiles(), 0u);
  // Late events for some of them only: their tiles go, the others' stay.
  Ingest(200, kStart, 20 * kDay, {"a", long_prefix + "1"});
  for (int i = 0; i < 10; ++i) Compare(RandomAsOf(), 0, users);
  // Entities with no events at all, next to the tiled ones.
  Compare(kStart + 25 * kDay, 0, {"aa", "a\x02", long_prefix + "0", "c"});
}

// What the sealer seals into a day before yesterday is tiled in the
// background before any lookup asks: exactly the days with at least
// tile_min_events events, one tile each; answers stay bit-identical; a late
// event's day loses its tile at once and is tiled again once it is sealed.
TEST_F(TilesTest, SealedHeavyDaysAreTiledBeforeAnyLookup) {
  ServerOptions with;
  with.tile_min_events = 20;
  tiled_ = std::make_unique<TestServer>(dir_.Sub("sealed"), true, with);
  Apply(*tiled_);
  const int64_t today = DayStart(NowMicros());
  v1::IngestRequest req;
  req.set_stream("orders");
  int n = 0;
  auto add = [&](const std::string& user, int64_t day, int count) {
    for (int i = 0; i < count; ++i, ++n) {
      *req.add_events() =
          testing::Order(absl::StrCat("e", n), user, day + i * kDay / count,
                         n % 97 * 1.25, n % 9, absl::StrCat("c", n % 6),
                         n % 3 ? "" : "K");
    }
  };
  for (int d = 0; d < 5; ++d) {
    add("heavy", kStart + d * kDay, 25);  // tiled
    add("light", kStart + d * kDay, 10);  // too few
  }
  add("edge", kStart + 6 * kDay, 20);  // exactly enough
  add("edge", kStart + 7 * kDay, 19);
  add("recent", today - kDay, 40);  // yesterday and today: late events
  add("recent", today, 40);         // may still come
  for (auto* s : {tiled_.get(), plain_.get()}) {
    ASSERT_TRUE(s->client().Ingest(req).ok());
  }
  // Sealed once ingest pauses, tiled once sealing is quiet.
  auto tiles_reach = [&](uint64_t want) {
    for (int i = 0; i < 600; ++i) {
      auto st = tiled_->client().GetStatus();
      if (st.ok() && st->tiles() >= want && st->tile_builds_pending() == 0) {
        return;
      }
      absl::SleepFor(absl::Milliseconds(100));
    }
  };
  tiles_reach(6);
  ASSERT_EQ(Tiles(), 6u);
  const std::vector<std::string> users = {"heavy", "light", "edge", "recent"};
  for (int64_t as_of : {kStart + 3 * kDay + 1, kStart + 8 * kDay,
                        kStart + 5 * kDay - 1, today + kHour}) {
    Compare(as_of, 0, users);
  }

  v1::IngestRequest late;
  late.set_stream("orders");
  *late.add_events() =
      testing::Order("late", "heavy", kStart + 2 * kDay + kHour, 1e6);
  for (auto* s : {tiled_.get(), plain_.get()}) {
    ASSERT_TRUE(s->client().Ingest(late).ok());
  }
  // The tile stays (its day's new event is read beside it, then folded
  // in by sealing).
  EXPECT_EQ(tiled_->client().GetStatus()->tiles(), 6u);
  Compare(kStart + 8 * kDay, 0, users);
  ASSERT_TRUE(tiled_->server().store()->Seal().ok());
  EXPECT_EQ(tiled_->server().store()->Stats().tiles_folded, 1u);
  ASSERT_EQ(Tiles(), 6u);
  Compare(kStart + 8 * kDay, 0, users);
  Compare(kStart + 3 * kDay, 0, users);
}

// Tiles hold serialized aggregator states. A data dir whose tiles were
// written in an older state format (before issue 11: stddev from rounded
// sums) must never have them merged with this server's states: they are
// dropped when the store opens and rebuilt on demand.
TEST(TileFormatTest, TilesOfAnOlderFormatAreDroppedAtOpen) {
  testing::TempDir dir;
  const std::string data = dir.Sub("data");
  constexpr char kStddevView[] = R"(
views {
  name: "sv" version: 1 stream: "orders"
  features { name: "sd" aggregation: "stddev" field: "amount" window: "lifetime" }
}
)";
  v1::GetFeaturesRequest get;
  get.set_view("sv");
  get.add_entities("u");
  *get.mutable_as_of() = MicrosToTimestamp(kStart + 3 * kDay);
  std::string want;
  ServerOptions old_format;
  old_format.tile_min_events = 20;
  old_format.tile_sealed_days = false;  // the lookup's tile only
  old_format.store.tile_format = 1;
  {
    TestServer s(data, true, old_format);
    Apply(s, kStddevView, "sv");
    IngestOneDayOfU(s);
    auto first = s.client().GetFeatures(get);  // scans, asks for the tile
    ASSERT_TRUE(first.ok()) << first.status();
    want = testing::Canonical(*first);
    ASSERT_EQ(s.SettledTiles(), 1u);
  }
  {
    // Rewrite the tile as a format-1 server left it: the old stddev state
    // (n, then two sums as slot counts and slots from 0; here n = 50 and
    // empty sums), which this server's decoder must never see.
    auto store = EventStore::Open(data, old_format.store);
    ASSERT_TRUE(store.ok()) << store.status();
    ASSERT_EQ((*store)->TileCount(), 1u);
    // "orders" is the data dir's first stream: id 1.
    const TileScope scope{1, "u", "sv", 1};
    auto it = (*store)->ScanTiles(scope, kMinEventTime, kMaxEventTime, nullptr);
    ASSERT_TRUE(it->Valid());
    const int64_t day = it->day();
    const std::string payload("\x01\x03\x32\x00\x00", 5);  // 1 state, 3 bytes
    it.reset();
    ASSERT_TRUE((*store)
                    ->WriteTiles(scope, {day},
                                 [&](uint64_t, const ReadView*, auto* tiles) {
                                   tiles->emplace_back(day, payload);
                                   return absl::OkStatus();
                                 })
                    .ok());
    ASSERT_EQ((*store)->TileCount(), 1u);
  }
  {
    // Control: a server that still takes format 1 merges the old bytes.
    TestServer s(data, false, old_format);
    EXPECT_EQ(s.client().GetStatus()->tiles(), 1u);
    auto got = s.client().GetFeatures(get);
    EXPECT_FALSE(got.ok() && testing::Canonical(*got) == want);
  }
  // This format's server, with no background tiling of sealed days (it
  // could rebuild the tile before the count below is read).
  ServerOptions current;
  current.tile_sealed_days = false;
  TestServer s(data, false, current);
  EXPECT_EQ(s.client().GetStatus()->tiles(), 0u);
  auto got = s.client().GetFeatures(get);
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(testing::Canonical(*got), want);
  // The exact sample stddev of 50 values 1e9 + (i mod 3).
  EXPECT_EQ(got->rows(0).values(0).double_value(), 0.8204030865920703);
  EXPECT_EQ(s.SettledTiles(), 1u) << "rebuilt on demand";
}

// Format 3 changed when a tile changes (its day's new events are read
// beside it and folded in by sealing, where format 2 deleted it), not what
// it holds: an upgraded server keeps format-2 tiles and reads them right
// with events that arrive afterwards. A format-2 server (a downgrade)
// drops format-3 tiles, which it would read without those events.
TEST(TileFormatTest, FormatTwoTilesAreKeptAndFormatThreeDroppedByFormatTwo) {
  testing::TempDir dir;
  const std::string data = dir.Sub("data");
  ServerOptions format2;
  format2.tile_min_events = 20;
  format2.tile_sealed_days = false;  // the lookup's tile only
  format2.store.tile_format = 2;
  ServerOptions format3 = format2;
  format3.store.tile_format = 3;
  ServerOptions plain;
  plain.tiles = false;
  TestServer without(dir.Sub("plain"), true, plain);
  v1::GetFeaturesRequest get;
  get.set_view("tv");
  get.add_entities("u");
  *get.mutable_as_of() = MicrosToTimestamp(kStart + 3 * kDay);
  auto ingest = [&](TestServer& s, int from, int n) {
    v1::IngestRequest req;
    req.set_stream("orders");
    for (int i = from; i < from + n; ++i) {
      *req.add_events() = testing::Order(absl::StrCat("e", i), "u",
                                         kStart + i * 7919LL % kDay, i * 0.5);
    }
    ASSERT_TRUE(s.client().Ingest(req).ok());
  };
  auto same = [&](TestServer& s) {
    auto a = s.client().GetFeatures(get);
    auto b = without.client().GetFeatures(get);
    ASSERT_TRUE(a.ok() && b.ok());
    EXPECT_EQ(testing::Canonical(*a), testing::Canonical(*b));
  };
  Apply(without);
  ingest(without, 0, 50);
  {
    TestServer s(data, true, format2);
    Apply(s);
    ingest(s, 0, 50);
    same(s);  // asks for the tile
    ASSERT_EQ(s.SettledTiles(), 1u);
  }
  {
    TestServer s(data, false, format3);
    EXPECT_EQ(s.client().GetStatus()->tiles(), 1u) << "kept";
    ingest(s, 50, 10);
    ingest(without, 50, 10);
    const uint64_t used = s.server().views().tiles_used();
    same(s);
    EXPECT_GT(s.server().views().tiles_used(), used);
    EXPECT_EQ(s.client().GetStatus()->tiles(), 1u);
  }
  TestServer s(data, false, format2);
  EXPECT_EQ(s.client().GetStatus()->tiles(), 0u) << "dropped";
  same(s);
}

// A stored tile whose bytes are damaged (a state cut short, a payload
// cut short, bytes after the last state) makes the lookup that reads it
// fail with DATA_LOSS, never answer from part of it. The damaged states
// belong to features that take the day, and to one that does not (a 1h
// window: its state is skipped undecoded, but the payload's framing is
// still checked).
TEST(TileFormatTest, ADamagedTileFailsTheLookupWithDataLoss) {
  constexpr char kView[] = R"(
views {
  name: "dv" version: 1 stream: "orders"
  features { name: "sd" aggregation: "stddev" field: "amount" window: "lifetime" }
  features { name: "n1" aggregation: "count" window: "1h" }
}
)";
  v1::GetFeaturesRequest get;
  get.set_view("dv");
  get.add_entities("u");
  *get.mutable_as_of() = MicrosToTimestamp(kStart + 3 * kDay);
  ServerOptions options;
  options.tile_min_events = 20;
  options.tile_sealed_days = false;  // the lookup's tile only
  testing::TempDir dir;
  const std::string data = dir.Sub("data");
  std::string good;  // the tile as built
  int64_t day = 0;
  {
    TestServer s(data, true, options);
    Apply(s, kView, "dv");
    IngestOneDayOfU(s);
    ASSERT_TRUE(s.client().GetFeatures(get).ok());  // asks for the tile
    ASSERT_EQ(s.SettledTiles(), 1u);
  }
  const TileScope scope{1, "u", "dv", 1};
  {
    auto store = EventStore::Open(data, options.store);
    ASSERT_TRUE(store.ok()) << store.status();
    auto it = (*store)->ScanTiles(scope, kMinEventTime, kMaxEventTime, nullptr);
    ASSERT_TRUE(it->Valid());
    day = it->day();
    good = std::string(it->payload());
  }
  ASSERT_GT(good.size(), 4u);
  // The payload: 2 states, each length-prefixed (the stddev's first).
  const std::string stddev_cut =
      std::string("\x02\x01\x32", 3) + good.substr(good.size() - 2);
  const std::vector<std::pair<std::string, std::string>> damaged = {
      {"a state cut short", stddev_cut},
      {"a payload cut short", good.substr(0, good.size() - 1)},
      {"bytes after the last state", good + "x"},
  };
  for (const auto& [what, payload] : damaged) {
    SCOPED_TRACE(what);
    {
      auto store = EventStore::Open(data, options.store);
      ASSERT_TRUE(store.ok()) << store.status();
      ASSERT_TRUE((*store)
                      ->WriteTiles(scope, {day},
                                   [&](uint64_t, const ReadView*, auto* tiles) {
                                     tiles->emplace_back(day, payload);
                                     return absl::OkStatus();
                                   })
                      .ok());
    }
    TestServer s(data, false, options);
    auto got = s.client().GetFeatures(get);
    EXPECT_EQ(got.status().code(), absl::StatusCode::kDataLoss)
        << got.status();
  }
}

}  // namespace
}  // namespace rawfeat
