// Event blocks (event_block.h): the codec, and a store whose events are
// sealed into blocks at random moments reads exactly like the model of
// what was appended -- through every cursor, at old read views, across
// block and day edges, with late events into sealed blocks, erasure and
// reopening.

#include "server/storage/event_block.h"

#include <algorithm>
#include <map>
#include <random>
#include <string>
#include <tuple>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "rocksdb/db.h"
#include "server/common/time_util.h"
#include "server/storage/event_codec.h"
#include "server/storage/event_store.h"
#include "server/storage/keys.h"
#include "server/storage/retention.h"
#include "tests/test_util.h"

namespace rawfeat {
namespace {

TEST(EventBlockTest, RoundTripsAndRefusesDamage) {
  std::vector<std::string> values = {"\x01one", "\x01two", "\x01three"};
  std::vector<BlockEvent> events = {
      {-5, 90, values[0]}, {-5, 91, values[1]}, {1000, 7, values[2]}};
  const std::string block = EncodeBlock(events);
  EXPECT_TRUE(IsBlockValue(block));
  uint64_t n = 0;
  int64_t first = 0, last = 0;
  ASSERT_TRUE(ReadBlockHeader(block, &n, &first, &last));
  EXPECT_EQ(n, 3u);
  EXPECT_EQ(first, -5);
  EXPECT_EQ(last, 1000);
  std::vector<BlockEvent> got;
  ASSERT_TRUE(DecodeBlock(block, &got));
  ASSERT_EQ(got.size(), 3u);
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(got[i].time_us, events[i].time_us);
    EXPECT_EQ(got[i].seq, events[i].seq);
    EXPECT_EQ(got[i].value, events[i].value);
  }
  // Every cut, and trailing bytes, are malformed.
  for (size_t cut = 0; cut < block.size(); ++cut) {
    EXPECT_FALSE(DecodeBlock(block.substr(0, cut), &got)) << cut;
  }
  EXPECT_FALSE(DecodeBlock(block + "x", &got));
  // Events out of (time, seq) order are malformed.
  EXPECT_FALSE(DecodeBlock(EncodeBlock({events[1], events[0]}), &got));
  // In two steps: the keys alone, then the values, as DecodeBlock.
  absl::string_view column;
  ASSERT_TRUE(DecodeBlockKeys(block, &got, &column));
  EXPECT_EQ(got[2].seq, 7u);
  EXPECT_TRUE(got[2].value.empty());
  ASSERT_TRUE(DecodeBlockValues(column, &got));
  EXPECT_EQ(got[2].value, events[2].value);
  // Damage in the value column passes the keys and fails the values.
  const std::string damaged = block + "x";
  ASSERT_TRUE(DecodeBlockKeys(damaged, &got, &column));
  EXPECT_FALSE(DecodeBlockValues(column, &got));
  // A stored event value is not a block.
  EXPECT_FALSE(IsBlockValue("\x01rest"));
  // Tail blocks say whether other blocks precede them; full blocks (and
  // tails of format 5) do not.
  bool others = false;
  EXPECT_FALSE(TailSaysOthers(block, &others));
  EXPECT_FALSE(IsSoleTail(block));
  for (const char format : {kSoleTailFormat, kTailFormat}) {
    const std::string tail = EncodeBlock(events, format);
    EXPECT_TRUE(IsBlockValue(tail));
    ASSERT_TRUE(DecodeBlock(tail, &got));
    EXPECT_EQ(got[2].value, events[2].value);
    ASSERT_TRUE(TailSaysOthers(tail, &others));
    EXPECT_EQ(others, format == kTailFormat);
    EXPECT_EQ(IsSoleTail(tail), format == kSoleTailFormat);
  }
  std::string other = block;
  other[0] = static_cast<char>(kTailFormat + 1);
  EXPECT_FALSE(IsBlockValue(other));
  EXPECT_FALSE(DecodeBlock(other, &got));
  // Extreme times and seqs.
  const std::vector<BlockEvent> extremes = {
      {kMinEventTime, UINT64_MAX, "\x01a"}, {kMaxEventTime, 1, "\x01b"}};
  ASSERT_TRUE(DecodeBlock(EncodeBlock(extremes), &got));
  EXPECT_EQ(got[0].time_us, kMinEventTime);
  EXPECT_EQ(got[0].seq, UINT64_MAX);
  EXPECT_EQ(got[1].time_us, kMaxEventTime);
  EXPECT_EQ(got[1].seq, 1u);
}

constexpr int64_t kDay = kDayMicros;
constexpr int64_t kT0 = 1767225600LL * 1000000;  // 2026-01-01T00:00:00Z

struct ModelEvent {
  int64_t time;
  uint64_t seq;
  std::string value;
  bool operator<(const ModelEvent& o) const {
    return std::tie(time, seq) < std::tie(o.time, o.seq);
  }
  bool operator==(const ModelEvent& o) const {
    return time == o.time && seq == o.seq && value == o.value;
  }
};
using Model = std::map<std::string, std::vector<ModelEvent>>;  // sorted

std::string Describe(const std::vector<ModelEvent>& events) {
  std::string out;
  for (const auto& e : events) absl::StrAppend(&out, e.time, "/", e.seq, " ");
  return out;
}

class SealedStoreTest : public ::testing::Test {
 protected:
  void Open() {
    store_.reset();
    EventStoreOptions options;
    options.seal_min_events = 0;  // the test seals
    options.head_max_bytes = head_max_bytes_;
    auto s = EventStore::Open(dir_.Sub("db"), options);
    ASSERT_TRUE(s.ok()) << s.status();
    store_ = std::move(*s);
  }
  void SetUp() override { Open(); }

  // Appends (entity, time) events to stream 1 and to the model.
  void Append(const std::vector<std::pair<std::string, int64_t>>& events) {
    AppendRequest req;
    req.stream_id = 1;
    for (const auto& [entity, time] : events) {
      PendingEvent p;
      p.row = static_cast<int>(req.events.size());
      p.event_id = absl::StrCat("id", next_id_++);
      p.entity = entity;
      p.time_us = time;
      p.content_hash.fill(1);
      FieldValue f;
      f.type = v1::STRING;
      f.s = p.event_id;
      EncodeEventValue(0, p.event_id, nullptr, {f}, &p.value);
      req.events.push_back(p);
    }
    auto r = store_->Append(&req);
    ASSERT_TRUE(r.ok()) << r.status();
    ASSERT_EQ(r->accepted, static_cast<int64_t>(events.size()));
    uint64_t seq = r->watermark - events.size() + 1;
    for (const PendingEvent& p : req.events) {
      auto& v = model_[p.entity];
      v.push_back({p.time_us, seq++, p.value});
      std::sort(v.begin(), v.end());
    }
  }

  static std::vector<ModelEvent> Collect(EventCursor* c, size_t limit = -1) {
    std::vector<ModelEvent> out;
    for (; c->Valid() && out.size() < limit; c->Next()) {
      out.push_back({c->time_us(), c->seq(), std::string(c->value())});
    }
    EXPECT_TRUE(c->status().ok()) << c->status();
    return out;
  }

  static std::vector<ModelEvent> Range(const std::vector<ModelEvent>& all,
                                       int64_t from, int64_t to) {
    std::vector<ModelEvent> out;
    for (const auto& e : all) {
      if (e.time >= from && e.time < to) out.push_back(e);
    }
    return out;
  }

  // Every read path against `model` as of `view`.
  void Check(const Model& model, const ReadView* view,
             const std::vector<int64_t>& edges, const std::string& where) {
    SCOPED_TRACE(where);
    // A lookup cursor reads each entity's tail block by a point read
    // first (a sole tail is all it reads), and seeks when told the entity
    // is large; others seek. Every way, at `view` (the latest: a new one).
    std::unique_ptr<ReadView> latest;
    if (view == nullptr) latest = store_->NewReadView();
    const ReadView* at = view != nullptr ? view : latest.get();
    std::vector<std::unique_ptr<EventCursor>> cursors;
    cursors.push_back(store_->NewEventCursor(1, view));
    cursors.push_back(store_->NewEventCursor(1, at, /*lookups=*/true));
    cursors.push_back(store_->NewEventCursor(1, at, /*lookups=*/true));
    for (const auto& [entity, all] : model) {
      for (int64_t from : edges) {
        for (int64_t to : edges) {
          if (to < from) continue;
          const auto want = Range(all, from, to);
          for (size_t c = 0; c < cursors.size(); ++c) {
            cursors[c]->Seek(entity, from, to, /*many_blocks=*/c == 2);
            EXPECT_EQ(Describe(Collect(cursors[c].get())), Describe(want))
                << entity << " [" << from << ", " << to << ") cursor " << c;
          }
          auto range = store_->ScanEntity(1, entity, from, to, view);
          EXPECT_EQ(Collect(range.get()), want)
              << entity << " [" << from << ", " << to << ")";
        }
        // SeekTime forward from the entity's start.
        for (size_t c = 0; c < cursors.size(); ++c) {
          cursors[c]->Seek(entity, kMinEventTime, kMaxEventTime,
                           /*many_blocks=*/c == 2);
          if (cursors[c]->Valid()) {
            cursors[c]->SeekTime(from);
            EXPECT_EQ(Collect(cursors[c].get()),
                      Range(all, from, kMaxEventTime))
                << entity << " SeekTime " << from << " cursor " << c;
          }
        }
      }
      // A walk forward as lookups skip tiled days: SeekTime to each edge
      // past where the walk stands, read two events, within a range that
      // ends early. The model walks alongside.
      const int64_t end = edges.empty() ? kMaxEventTime : edges.back();
      const auto in_range = Range(all, kMinEventTime, end);
      for (size_t c = 0; c < cursors.size(); ++c) {
        cursors[c]->Seek(entity, kMinEventTime, end, /*many_blocks=*/c == 2);
        std::vector<ModelEvent> got, want;
        size_t pos = 0;  // the model's position
        for (int64_t edge : edges) {
          if (pos >= in_range.size()) break;
          if (edge <= in_range[pos].time) continue;  // forward only
          while (pos < in_range.size() && in_range[pos].time < edge) ++pos;
          cursors[c]->SeekTime(edge);
          for (int k = 0; k < 2 && pos < in_range.size(); ++k) {
            want.push_back(in_range[pos++]);
          }
          for (int k = 0; k < 2 && cursors[c]->Valid(); ++k) {
            got.push_back({cursors[c]->time_us(), cursors[c]->seq(),
                           std::string(cursors[c]->value())});
            cursors[c]->Next();
          }
        }
        EXPECT_TRUE(cursors[c]->status().ok()) << cursors[c]->status();
        EXPECT_EQ(Describe(got), Describe(want))
            << entity << " SeekTime walk, cursor " << c;
      }
    }
    // The whole stream, entity by entity, and NextEntity from the middle
    // of each entity.
    std::vector<ModelEvent> want_all;
    std::vector<std::string> want_entities;
    for (const auto& [entity, all] : model) {
      if (all.empty()) continue;
      want_entities.push_back(entity);
      want_all.insert(want_all.end(), all.begin(), all.end());
    }
    auto stream = store_->ScanStream(1, view);
    std::vector<ModelEvent> got_all;
    std::vector<std::string> got_entities;
    for (; stream->Valid(); stream->Next()) {
      if (got_entities.empty() || got_entities.back() != stream->entity()) {
        got_entities.emplace_back(stream->entity());
      }
      got_all.push_back(
          {stream->time_us(), stream->seq(), std::string(stream->value())});
    }
    EXPECT_TRUE(stream->status().ok()) << stream->status();
    EXPECT_EQ(got_entities, want_entities);
    EXPECT_EQ(got_all, want_all);
    stream = store_->ScanStream(1, view);
    std::vector<std::string> firsts;
    while (stream->Valid()) {
      firsts.emplace_back(stream->entity());
      stream->Next();  // one step in, then to the next entity
      if (stream->Valid() && stream->entity() == firsts.back()) {
        stream->NextEntity();
      }
    }
    EXPECT_EQ(firsts, want_entities);
  }

  testing::TempDir dir_;
  size_t head_max_bytes_ = size_t{256} << 20;
  std::unique_ptr<EventStore> store_;
  Model model_;
  int next_id_ = 0;
};

TEST_F(SealedStoreTest, RandomHistoriesReadTheSameSealedOrNot) {
  std::mt19937_64 rng(20261202);
  // Byte-prefix entities, and a heavy one whose days hold many blocks.
  const std::vector<std::string> entities = {"a", "ab", std::string("a\x01"),
                                             "heavy", "z"};
  // Times on a coarse grid (collisions, day edges), over three days.
  auto time = [&]() {
    return kT0 + static_cast<int64_t>(rng() % (3 * 24 * 6)) * 600 * 1000000 +
           (rng() % 4 == 0 ? 0 : static_cast<int64_t>(rng() % 3));
  };
  std::vector<int64_t> edges = {kMinEventTime, kT0, kT0 + kDay - 1,
                                kT0 + kDay, kT0 + 2 * kDay + 1,
                                kT0 + 3 * kDay, kMaxEventTime};
  std::vector<std::pair<Model, std::unique_ptr<ReadView>>> pinned;
  for (int round = 0; round < 30; ++round) {
    std::vector<std::pair<std::string, int64_t>> batch;
    const int n = static_cast<int>(rng() % 200) + 1;
    for (int i = 0; i < n; ++i) {
      const std::string& e =
          rng() % 2 ? entities[3] : entities[rng() % entities.size()];
      batch.emplace_back(e, time());
    }
    Append(batch);
    if (rng() % 3 == 0) edges.push_back(batch[rng() % batch.size()].second);
    switch (rng() % 4) {
      case 0:
        ASSERT_TRUE(store_->Seal(1).ok());
        EXPECT_EQ(store_->UnsealedEvents(), 0u);
        break;
      case 1:
        ASSERT_TRUE(store_->Seal(64).ok());
        break;
      default:
        break;  // left unsealed for now
    }
    if (round % 10 == 9) {
      pinned.emplace_back(model_, store_->NewReadView());
    }
  }
  ASSERT_TRUE(store_->Seal(1).ok());
  Check(model_, nullptr, edges, "latest, all sealed");
  // Views pinned before later appends and seals still read their past.
  for (size_t i = 0; i < pinned.size(); ++i) {
    Check(pinned[i].first, pinned[i].second.get(), edges,
          absl::StrCat("pinned view ", i));
  }
  pinned.clear();
  // Late events into sealed blocks, at block and day edges.
  std::vector<std::pair<std::string, int64_t>> late;
  for (const auto& e : model_["heavy"]) {
    if (rng() % 40 == 0) late.emplace_back("heavy", e.time);
  }
  late.emplace_back("a", kT0 + kDay);
  late.emplace_back("ab", kT0 + kDay - 1);
  Append(late);
  Check(model_, nullptr, edges, "late events unsealed");
  ASSERT_TRUE(store_->Seal(1).ok());
  Check(model_, nullptr, edges, "late events sealed");
  // Reopened: the same, and what is unsealed is found again.
  Append({{"z", kT0 + 5}, {"z", kT0 + 2 * kDay}});
  Open();
  EXPECT_GE(store_->UnsealedEvents(), 2u);
  Check(model_, nullptr, edges, "reopened");
  ASSERT_TRUE(store_->Seal(1).ok());
  EXPECT_EQ(store_->UnsealedEvents(), 0u);
  Check(model_, nullptr, edges, "reopened, sealed");
  // An entity with unsealed events only, between sealed ones: a stream
  // cursor on it has the next entity's block read ahead.
  Append({{"aa", kT0 + 1}, {"aa", kT0 + 2}, {"aa", kT0 + kDay}});
  Check(model_, nullptr, edges, "unsealed entity between sealed ones");
  // Erasing an entity (sealed blocks and unsealed events) leaves the
  // others as they were; a view taken before still reads it.
  Append({{"heavy", kT0 + 7}, {"heavy", kT0 + kDay + 3}});
  auto before = store_->NewReadView();
  const Model before_model = model_;
  auto erased = store_->Erase(1, "heavy", v1::Erasure());
  ASSERT_TRUE(erased.ok()) << erased.status();
  EXPECT_EQ(erased->events, model_["heavy"].size());
  model_.erase("heavy");
  Check(model_, nullptr, edges, "after erasure");
  Check(before_model, before.get(), edges, "a view from before the erasure");
  before.reset();
  ASSERT_TRUE(store_->Seal(1).ok());
  Check(model_, nullptr, edges, "after erasure, sealed");
}

// Each sealed tail block says whether its entity has other blocks, so a
// lookup that finds a sole tail by a point read reads nothing more
// (event_cursor.cc). Checked on the stored bytes through every kind of
// seal: a first one, one that cuts full blocks, one after a block that
// ended full (no tail), a late event, and tails of format 5 (which do not
// say) sealed again. Every step is also read back through both kinds of
// entity cursor (Check).
TEST_F(SealedStoreTest, TailBlocksSayWhetherTheirEntityHasOtherBlocks) {
  // The formats of an entity's blocks in key order, tails last ('T' sole
  // tail, 't' tail after others, 'F' full block, '5' a tail of format 5).
  auto formats = [&](const std::string& entity) {
    store_.reset();
    std::string out;
    {
      testing::RawStore raw(dir_.Sub("db"), /*read_only=*/true);
      EXPECT_TRUE(raw.ok());
      const std::string prefix = BlockPrefix(1, entity);
      std::unique_ptr<rocksdb::Iterator> it(raw.db()->NewIterator(
          rocksdb::ReadOptions(), raw.family(kEventsColumnFamily)));
      for (it->Seek(prefix); it->Valid() && it->key().starts_with(prefix);
           it->Next()) {
        const std::string key = it->key().ToString();
        const char f = it->value()[0];
        if (!IsTailBlockKey(key)) {
          out += f == kBlockFormat ? 'F' : '?';
        } else {
          out += f == kSoleTailFormat ? 'T' : f == kTailFormat ? 't'
                 : f == kBlockFormat  ? '5'
                                      : '?';
        }
      }
    }
    Open();
    return out;
  };
  // Rewrites the entity's tail as a format-5 server wrote it.
  auto make_format5_tail = [&](const std::string& entity) {
    store_.reset();
    {
      testing::RawStore raw(dir_.Sub("db"));
      ASSERT_TRUE(raw.ok());
      rocksdb::ColumnFamilyHandle* events = raw.family(kEventsColumnFamily);
      const std::string key = TailBlockKey(1, entity);
      std::string value;
      ASSERT_TRUE(
          raw.db()->Get(rocksdb::ReadOptions(), events, key, &value).ok());
      value[0] = kBlockFormat;
      rocksdb::WriteOptions wo;
      wo.sync = true;
      ASSERT_TRUE(raw.db()->Put(wo, events, key, value).ok());
    }
    Open();
  };
  auto many = [](const std::string& entity, int64_t start, int n) {
    std::vector<std::pair<std::string, int64_t>> out;
    for (int i = 0; i < n; ++i) out.emplace_back(entity, start + i * 1000);
    return out;
  };
  const std::vector<int64_t> edges = {kMinEventTime, kT0, kT0 + 300 * 1000,
                                      kT0 + kDay, kMaxEventTime};
  auto seal_and_check = [&](const std::string& where) {
    ASSERT_TRUE(store_->Seal(1).ok());
    Check(model_, nullptr, edges, where);
  };

  Append(many("s", kT0, 3));
  seal_and_check("a first seal");
  EXPECT_EQ(formats("s"), "T");
  Append({{"s", kT0 + 1500}});  // late, into the sole tail
  seal_and_check("a late event into a sole tail");
  EXPECT_EQ(formats("s"), "T");
  Append(many("s", kT0 + kDay, 300));
  seal_and_check("a seal that cuts a full block");
  EXPECT_EQ(formats("s"), "Ft");
  Append({{"s", kT0 + 2 * kDay}});
  seal_and_check("a tail after a full block, again");
  EXPECT_EQ(formats("s"), "Ft");

  Append(many("x", kT0, 256));
  seal_and_check("a block that ends full");
  EXPECT_EQ(formats("x"), "F");
  Append(many("x", kT0 + kDay, 2));
  seal_and_check("a new tail after a full block");
  EXPECT_EQ(formats("x"), "Ft");

  Append(many("l", kT0, 3));
  Append(many("m", kT0, 300));
  seal_and_check("tails to turn into format 5");
  make_format5_tail("l");
  make_format5_tail("m");
  EXPECT_EQ(formats("l"), "5");
  EXPECT_EQ(formats("m"), "F5");
  Check(model_, nullptr, edges, "tails of format 5");
  Append({{"l", kT0 + kDay}, {"m", kT0 + kDay}});
  seal_and_check("tails of format 5 sealed again");
  EXPECT_EQ(formats("l"), "T");
  EXPECT_EQ(formats("m"), "Ft");
}

// An erased entity's sole tail, read by key from a table file before the
// erasure (so RocksDB's row cache holds it), is gone for reads after it:
// the range deletion that erases it sits in the memtable, above the file.
TEST_F(SealedStoreTest, AnErasedSoleTailIsNotReadFromTheRowCache) {
  Append({{"e", kT0}, {"e", kT0 + 1}, {"f", kT0 + 2}});
  ASSERT_TRUE(store_->Seal(1).ok());
  Open();  // a clean stop flushes the blocks into a table file
  auto read = [&](const std::string& entity) {
    auto view = store_->NewReadView();
    auto c = store_->NewEventCursor(1, view.get(), /*lookups=*/true);
    c->Seek(entity);
    return Collect(c.get()).size();
  };
  EXPECT_EQ(read("e"), 2u);
  EXPECT_EQ(read("e"), 2u);  // from the row cache
  auto erased = store_->Erase(1, "e", v1::Erasure());
  ASSERT_TRUE(erased.ok()) << erased.status();
  EXPECT_EQ(erased->events, 2u);
  EXPECT_EQ(read("e"), 0u);
  EXPECT_EQ(read("f"), 1u);

  // The same when the tail and the range deletion end up in one table
  // file: a view from before the erasure keeps the tail through the merge,
  // and RocksDB's row cache does not apply a range deletion of the file
  // its entry came from (the erasure also deletes the tail key itself).
  Append({{"g", kT0}, {"g", kT0 + 1}});
  ASSERT_TRUE(store_->Seal(1).ok());
  Open();
  EXPECT_EQ(read("g"), 2u);
  auto before = store_->NewReadView();
  erased = store_->Erase(1, "g", v1::Erasure());
  ASSERT_TRUE(erased.ok()) << erased.status();
  ASSERT_TRUE(store_->CompactAll().ok());
  for (int i = 0; i < 3; ++i) EXPECT_EQ(read("g"), 0u) << i;
  auto c = store_->NewEventCursor(1, before.get(), /*lookups=*/true);
  c->Seek("g");
  EXPECT_EQ(Collect(c.get()).size(), 2u);  // the view from before
}

// A stream cursor on an entity with unsealed events only has the next
// entity's block read ahead: moving to the next entity keeps it.
TEST_F(SealedStoreTest, NextEntityKeepsABlockReadAhead) {
  Append({{"p", kT0}, {"p", kT0 + 1}, {"r", kT0}, {"r", kT0 + 1}});
  ASSERT_TRUE(store_->Seal(1).ok());
  Append({{"q", kT0}, {"q", kT0 + 1}});
  auto c = store_->ScanStream(1, nullptr);
  std::vector<std::string> entities;
  while (c->Valid()) {
    entities.emplace_back(c->entity());
    c->Next();  // still the same entity: each has two events
    ASSERT_TRUE(c->Valid());
    ASSERT_EQ(c->entity(), entities.back());
    c->NextEntity();
  }
  EXPECT_TRUE(c->status().ok()) << c->status();
  EXPECT_EQ(entities, (std::vector<std::string>{"p", "q", "r"}));
}

// One entity whose day is many full blocks: windows that start and end
// exactly at block edges (every kBlockMaxEvents-th event).
TEST_F(SealedStoreTest, WindowsAtBlockEdgesOfOneHugeDay) {
  constexpr int kEvents = 5 * static_cast<int>(kBlockMaxEvents) + 17;
  std::vector<std::pair<std::string, int64_t>> events;
  for (int i = 0; i < kEvents; ++i) {
    events.emplace_back("big", kT0 + static_cast<int64_t>(i) * 1000);
  }
  Append(events);
  ASSERT_TRUE(store_->Seal(1).ok());
  std::vector<int64_t> edges = {kMinEventTime, kMaxEventTime};
  for (int b = 0; b <= 5; ++b) {
    const int64_t edge = kT0 + static_cast<int64_t>(b * kBlockMaxEvents) * 1000;
    edges.push_back(edge - 1);
    edges.push_back(edge);
    edges.push_back(edge + 1);
  }
  Check(model_, nullptr, edges, "one huge day");
  // A late event exactly at a block edge, and one before everything.
  Append({{"big", kT0 + static_cast<int64_t>(kBlockMaxEvents) * 1000},
          {"big", kT0 - 1}});
  ASSERT_TRUE(store_->Seal(1).ok());
  Check(model_, nullptr, edges, "late at an edge");
}

// Retention drops blocks whose events all expired, rewrites the block
// that straddles the cutoff, and drops expired unsealed events; what is
// left reads exactly as the model's events from the cutoff on.
TEST_F(SealedStoreTest, RetentionTrimsBlocksAtTheCutoff) {
  constexpr int64_t kHour = 3600LL * 1000000;
  const int64_t now = absl::ToUnixMicros(absl::Now());
  // Hourly events from 35 to 25 days ago, half an hour off the cutoff
  // (31 days ago: the horizon less a day of grace).
  const int64_t base = now - 35 * kDay + kHour / 2;
  std::vector<std::pair<std::string, int64_t>> events;
  for (int64_t t = base; t < now - 25 * kDay; t += kHour) {
    events.emplace_back("r", t);
  }
  Append(events);
  ASSERT_TRUE(store_->Seal(1).ok());
  Append({{"r", now - 40 * kDay}, {"r", now - 26 * kDay + 7}});  // unsealed
  const int64_t cutoff = now - 30 * kDay - kRetentionGrace;
  store_->LoadRetention(1, 30 * kDay);
  ASSERT_TRUE(store_->CompactAll().ok());
  Model kept;
  for (const auto& e : model_["r"]) {
    if (e.time >= cutoff) kept["r"].push_back(e);
  }
  ASSERT_LT(kept["r"].size(), model_["r"].size());
  ASSERT_GT(kept["r"].size(), 100u);
  // Read from below everything: only what retention kept is left.
  auto c = store_->ScanEntity(1, "r", kMinEventTime, kMaxEventTime, nullptr);
  EXPECT_EQ(Collect(c.get()), kept["r"]);
  Check(kept, nullptr, {kMinEventTime, cutoff, now - 28 * kDay, kMaxEventTime},
        "after retention");
}

// A full head: each append first seals (no background sealer here), so
// memory stays near --head_max_mb while every event stays readable; a
// view held meanwhile keeps reading its past (the head keeps what it may
// still see); reopening with a small head seals while loading the log.
TEST_F(SealedStoreTest, AFullHeadSealsBeforeAppendsAndEveryReadStays) {
  head_max_bytes_ = 64 << 10;
  Open();
  std::mt19937_64 rng(20261203);
  const std::vector<std::string> entities = {"a", "ab", "heavy", "z"};
  const std::vector<int64_t> edges = {kMinEventTime, kT0 + kDay,
                                      kMaxEventTime};
  // 50 events of random entities at random times over two days.
  auto append_random = [&] {
    std::vector<std::pair<std::string, int64_t>> batch;
    for (int i = 0; i < 50; ++i) {
      batch.emplace_back(entities[rng() % entities.size()],
                         kT0 + static_cast<int64_t>(rng() % (2 * kDay)));
    }
    Append(batch);
  };
  std::unique_ptr<ReadView> view;
  Model at_view;
  uint64_t most_unsealed = 0;
  for (int round = 0; round < 60; ++round) {
    append_random();
    most_unsealed = std::max(most_unsealed, store_->UnsealedEvents());
    if (round == 20) {
      view = store_->NewReadView();
      at_view = model_;
    }
  }
  // 3,000 events appended; the head never held more than a little over
  // its 64 KiB (an event's value and bookkeeping are ~100 bytes).
  EXPECT_LT(most_unsealed, 1200u);
  EXPECT_GT(store_->HeadBytes(), 0u);
  Check(model_, nullptr, edges, "latest");
  Check(at_view, view.get(), edges, "a view held through the seals");
  view.reset();
  ASSERT_TRUE(store_->Seal(1).ok());
  // Nothing reads the sealed events any more: they left memory.
  EXPECT_EQ(store_->UnsealedEvents(), 0u);
  EXPECT_LT(store_->HeadBytes(), 1024u);

  // Unsealed events of a bigger head, then a reopen with a small one.
  head_max_bytes_ = 256 << 20;
  Open();
  for (int round = 0; round < 30; ++round) append_random();
  EXPECT_EQ(store_->UnsealedEvents(), 1500u);
  head_max_bytes_ = 32 << 10;
  Open();
  EXPECT_LT(store_->UnsealedEvents(), 1500u);
  Check(model_, nullptr, edges, "reopened with a small head");
}

// A block whose value column is damaged: a scan that reads only times and
// seqs (finding entities) passes it; reading a value fails with DATA_LOSS
// naming the entity, while the event's time and seq stay readable.
TEST_F(SealedStoreTest, ADamagedValueColumnFailsTheReadOfAValue) {
  Append({{"u", kT0}, {"u", kT0 + 1}, {"v", kT0 + 2}});
  ASSERT_TRUE(store_->Seal(1).ok());
  store_.reset();
  {
    testing::RawStore raw(dir_.Sub("db"));
    ASSERT_TRUE(raw.ok());
    rocksdb::ColumnFamilyHandle* events = raw.family(kEventsColumnFamily);
    ASSERT_NE(events, nullptr);
    const std::string prefix = BlockPrefix(1, "u");
    int damaged = 0;
    std::unique_ptr<rocksdb::Iterator> it(
        raw.db()->NewIterator(rocksdb::ReadOptions(), events));
    for (it->SeekToFirst(); it->Valid(); it->Next()) {
      if (!it->key().starts_with(prefix)) continue;
      ASSERT_TRUE(IsBlockValue(it->value().ToString()));
      rocksdb::WriteOptions wo;
      wo.sync = true;
      ASSERT_TRUE(raw.db()
                      ->Put(wo, events, it->key(), it->value().ToString() + "x")
                      .ok());
      ++damaged;
    }
    EXPECT_EQ(damaged, 1);
  }
  Open();
  auto scan = store_->ScanStream(1, nullptr);
  ASSERT_TRUE(scan->Valid());
  EXPECT_EQ(scan->entity(), "u");
  scan->NextEntity();
  ASSERT_TRUE(scan->Valid());
  EXPECT_EQ(scan->entity(), "v");
  EXPECT_FALSE(scan->value().empty());
  auto c = store_->NewEventCursor(1, nullptr);
  c->Seek("u");
  ASSERT_TRUE(c->Valid());
  EXPECT_EQ(c->time_us(), kT0);
  EXPECT_EQ(c->Decode({v1::STRING}), nullptr);
  EXPECT_FALSE(c->Valid());
  EXPECT_EQ(c->time_us(), kT0);
  EXPECT_EQ(c->status().code(), absl::StatusCode::kDataLoss);
  EXPECT_NE(c->status().message().find("corrupt event block of entity 'u'"),
            std::string::npos)
      << c->status();
  c->Next();
  EXPECT_FALSE(c->Valid());
  // "v" is unharmed.
  c->Seek("v");
  ASSERT_TRUE(c->Valid());
  EXPECT_NE(c->Decode({v1::STRING}), nullptr);
  // The same through a cursor with a view, which reads "u"'s tail (its
  // only block) by a point read.
  auto view = store_->NewReadView();
  auto p = store_->NewEventCursor(1, view.get(), /*lookups=*/true);
  p->Seek("u");
  ASSERT_TRUE(p->Valid());
  EXPECT_EQ(p->Decode({v1::STRING}), nullptr);
  EXPECT_EQ(p->status().code(), absl::StatusCode::kDataLoss);
  EXPECT_NE(p->status().message().find("corrupt event block of entity 'u'"),
            std::string::npos)
      << p->status();
  p->Seek("v");
  ASSERT_TRUE(p->Valid());
  EXPECT_NE(p->Decode({v1::STRING}), nullptr);
}

}  // namespace
}  // namespace rawfeat
