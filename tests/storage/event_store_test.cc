#include "server/storage/event_store.h"

#include <algorithm>
#include <atomic>
#include <map>
#include <random>
#include <set>
#include <thread>
#include <tuple>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "rocksdb/db.h"
#include "rocksdb/metadata.h"
#include "rocksdb/table_properties.h"
#include "server/common/coding.h"
#include "server/common/time_util.h"
#include "server/storage/keys.h"
#include "tests/test_util.h"

namespace rawfeat {
namespace {

PendingEvent Pending(int row, const std::string& id, const std::string& entity,
                     int64_t t, unsigned char content) {
  PendingEvent p;
  p.row = row;
  p.event_id = id;
  p.entity = entity;
  p.time_us = t;
  p.content_hash.fill(content);
  p.value = std::string("v") + static_cast<char>(content);
  return p;
}

class EventStoreTest : public ::testing::Test {
 protected:
  void Open(const EventStoreOptions& options = EventStoreOptions()) {
    store_.reset();
    auto s = EventStore::Open(dir_.Sub("db"), options);
    ASSERT_TRUE(s.ok()) << s.status();
    store_ = std::move(*s);
  }
  // Sealing only when the test calls Seal().
  void OpenWithoutSealer() {
    EventStoreOptions options;
    options.seal_min_events = 0;
    Open(options);
  }
  void SetUp() override { Open(); }
  testing::TempDir dir_;
  std::unique_ptr<EventStore> store_;
};

TEST_F(EventStoreTest, AssignsIncreasingSeqAndCountsDuplicates) {
  AppendRequest req;
  req.stream_id = 1;
  req.events = {Pending(0, "a", "u1", 10, 1), Pending(1, "b", "u2", 5, 2),
                Pending(2, "a", "u1", 10, 1)};  // repeated in-batch
  auto r = store_->Append(&req);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->accepted, 2);
  EXPECT_EQ(r->duplicates, 1);
  EXPECT_EQ(r->watermark, 2u);
  EXPECT_EQ(store_->watermark(), 2u);

  auto again = store_->Append(&req);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->accepted, 0);
  EXPECT_EQ(again->duplicates, 3);
  EXPECT_EQ(again->watermark, 2u);
  EXPECT_EQ(store_->StreamCounts()[1], 2u);

  // Log order is seq order; it carries each event's place and value.
  std::vector<uint64_t> seqs;
  ASSERT_TRUE(store_
                  ->ScanLog(0, 10, nullptr,
                            [&](const StoredEvent& e) {
                              EXPECT_EQ(e.stream_id, 1u);
                              EXPECT_EQ(e.entity, e.seq == 1 ? "u1" : "u2");
                              EXPECT_FALSE(e.value.empty());
                              seqs.push_back(e.seq);
                              return true;
                            })
                  .ok());
  EXPECT_EQ(seqs, (std::vector<uint64_t>{1, 2}));
}

TEST_F(EventStoreTest, ConflictIsAllOrNothingWhenAtomic) {
  AppendRequest first;
  first.stream_id = 1;
  first.events = {Pending(0, "a", "u1", 10, 1)};
  ASSERT_TRUE(store_->Append(&first).ok());

  AppendRequest req;
  req.stream_id = 1;
  req.events = {Pending(0, "new", "u1", 11, 3), Pending(1, "a", "u1", 10, 9)};
  auto r = store_->Append(&req);
  ASSERT_TRUE(r.ok());
  ASSERT_EQ(r->conflicts.size(), 1u);
  EXPECT_EQ(r->conflicts[0].row, 1);
  EXPECT_NE(r->conflicts[0].reason.find("'a'"), std::string::npos);
  EXPECT_EQ(r->accepted, 0);
  EXPECT_EQ(store_->watermark(), 1u);

  req.atomic = false;
  req.events = {Pending(0, "new", "u1", 11, 3), Pending(1, "a", "u1", 10, 9)};
  r = store_->Append(&req);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->accepted, 1);
  EXPECT_EQ(r->conflicts.size(), 1u);
  EXPECT_EQ(store_->watermark(), 2u);
}

// Duplicates and conflicts are found wherever the first copy is: stored
// (ids are looked up 32 a RocksDB call, so stored ids sit at every
// position of a batch), earlier in the same batch, or in another batch
// committed beside it; an atomic batch refused for a conflict leaves its
// new ids free. Expectations come from a model of the semantics: the first
// copy of an id is kept, a later one with its content is a duplicate, with
// other content a conflict.
TEST_F(EventStoreTest, FindsEveryDuplicateWhereverItsFirstCopyIs) {
  std::map<std::string, unsigned char> kept;  // id -> content
  AppendRequest stored;
  stored.stream_id = 1;
  for (int i = 0; i < 100; ++i) {
    stored.events.push_back(Pending(i, absl::StrCat("s", i), "u", i, 1));
    kept[absl::StrCat("s", i)] = 1;
  }
  ASSERT_TRUE(store_->Append(&stored).ok());

  // Stored ids again (same or other content), new ids, and repeats of new
  // ids of this batch, interleaved.
  std::mt19937 rng(7);
  AppendRequest req;
  req.stream_id = 1;
  req.atomic = false;
  for (int row = 0; row < 400; ++row) {
    const std::string id = absl::StrCat(rng() % 2 ? "s" : "n", rng() % 150);
    const unsigned char content = 1 + rng() % 2;
    req.events.push_back(Pending(row, id, "u", row, content));
  }
  int accepted = 0, duplicates = 0;
  std::map<int, std::string> conflicts;  // row -> where the first copy is
  std::set<std::string> batch_ids;
  for (const PendingEvent& e : req.events) {
    auto it = kept.find(e.event_id);
    if (it == kept.end()) {
      kept[e.event_id] = e.content_hash[0];
      batch_ids.insert(e.event_id);
      ++accepted;
    } else if (it->second == e.content_hash[0]) {
      ++duplicates;
    } else {
      conflicts[e.row] =
          batch_ids.count(e.event_id) ? "of this batch" : "(seq ";
    }
  }
  auto r = store_->Append(&req);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->accepted, accepted);
  EXPECT_EQ(r->duplicates, duplicates);
  ASSERT_EQ(r->conflicts.size(), conflicts.size());
  for (const auto& c : r->conflicts) {
    ASSERT_TRUE(conflicts.count(c.row)) << c.row;
    EXPECT_TRUE(absl::StrContains(c.reason, conflicts[c.row])) << c.reason;
  }
  EXPECT_EQ(store_->watermark(), 100u + accepted);

  // An atomic batch with a conflict writes nothing: its new ids are free.
  AppendRequest refused;
  refused.stream_id = 1;
  refused.events = {Pending(0, "fresh", "u", 1, 1),
                    Pending(1, "s0", "u", 1, 9)};
  r = store_->Append(&refused);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->accepted, 0);
  AppendRequest after;
  after.stream_id = 1;
  after.events = {Pending(0, "fresh", "u", 1, 2)};
  r = store_->Append(&after);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->accepted, 1);

  // Eight batches at once over the same 300 ids, queued while a large
  // batch commits (so most of them share a group): each id is kept once;
  // every other copy is a duplicate or, with other content, a conflict
  // naming the copy it met.
  const uint64_t before = store_->watermark();
  AppendRequest large;
  large.stream_id = 3;
  for (int i = 0; i < 100000; ++i) {
    large.events.push_back(Pending(i, absl::StrCat("l", i), "u", i, 1));
  }
  std::thread large_thread([&] { ASSERT_TRUE(store_->Append(&large).ok()); });
  constexpr int kBatches = 8;
  std::vector<AppendRequest> reqs(kBatches);
  std::vector<absl::StatusOr<AppendResult>> results(kBatches);
  std::vector<std::thread> threads;
  for (int b = 0; b < kBatches; ++b) {
    reqs[b].stream_id = 2;
    reqs[b].atomic = false;
    for (int i = 0; i < 300; ++i) {
      const int id = (i * 7 + b * 31) % 300;
      reqs[b].events.push_back(Pending(i, absl::StrCat("c", id), "u", id,
                                       id % 2 == 0 ? 1 : 1 + b % 2));
    }
  }
  for (int b = 0; b < kBatches; ++b) {
    threads.emplace_back([&, b] { results[b] = store_->Append(&reqs[b]); });
  }
  for (std::thread& t : threads) t.join();
  large_thread.join();
  int64_t total_accepted = 0, total_other = 0;
  for (int b = 0; b < kBatches; ++b) {
    ASSERT_TRUE(results[b].ok()) << results[b].status();
    total_accepted += results[b]->accepted;
    total_other += results[b]->duplicates +
                   static_cast<int64_t>(results[b]->conflicts.size());
    for (const auto& c : results[b]->conflicts) {
      EXPECT_TRUE(absl::StrContains(c.reason, "a concurrent batch") ||
                  absl::StrContains(c.reason, "(seq "))
          << c.reason;
    }
  }
  EXPECT_EQ(total_accepted, 300);
  EXPECT_EQ(total_other, kBatches * 300 - 300);
  EXPECT_EQ(store_->watermark(), before + 100000 + 300);
}

// The requests of one chain (an IngestStream call's batches, several in
// flight) get seqs in the chain's order whatever threads run them and
// whatever else commits beside them, and once one fails (atomic and
// conflicting, or refused before it was queued) none after it is written,
// and none before it is affected.
TEST_F(EventStoreTest, ChainedAppendsCommitInOrderAndNothingAfterAFailure) {
  AppendRequest stored;
  stored.stream_id = 1;
  stored.events = {Pending(0, "taken", "u", 1, 1)};
  ASSERT_TRUE(store_->Append(&stored).ok());
  constexpr int kRequests = 12, kEvents = 20;
  for (int round = 0; round < 3 * kRequests + 2; ++round) {
    // Then none fails.
    const int bad = round < 3 * kRequests ? round % kRequests : -1;
    // A request refused before it reached the store (as a batch with a
    // row error): the chain breaks at its place, before any is queued.
    const bool refused = round >= kRequests && round < 2 * kRequests;
    AppendChain chain;
    if (refused) chain.Break(bad + 1);
    std::vector<AppendRequest> reqs(kRequests);
    std::vector<absl::StatusOr<AppendResult>> results(
        kRequests, absl::UnknownError("not run"));
    std::vector<std::thread> threads;
    // Unchained appends beside the chain, so groups mix.
    std::thread other([&] {
      for (int i = 0; i < 6; ++i) {
        AppendRequest req;
        req.stream_id = 2;
        req.events = {Pending(0, absl::StrCat("o", round, "-", i), "x", 1, 3)};
        EXPECT_TRUE(store_->Append(&req).ok());
      }
    });
    for (int i = 0; i < kRequests; ++i) {
      reqs[i].stream_id = 1;
      reqs[i].chain = &chain;
      reqs[i].chain_position = i + 1;
      for (int k = 0; k < kEvents; ++k) {
        // The entity and time say which request and event it is.
        reqs[i].events.push_back(
            Pending(k, absl::StrCat("r", round, "-", i, "-", k),
                    absl::StrCat("r", round, "-", i), 100 + k, 2));
      }
      if (i == bad && !refused) {
        reqs[i].events.push_back(Pending(kEvents, "taken", "u", 1, 9));
      }
      if (i == bad && refused) {
        results[i] = absl::InvalidArgumentError("refused");
        chain.MarkQueued();
        continue;
      }
      threads.emplace_back([&, i] { results[i] = store_->Append(&reqs[i]); });
      chain.AwaitQueued(i + 1);  // as BatchCommitter starts the next
    }
    for (std::thread& t : threads) t.join();
    other.join();
    for (int i = 0; i < kRequests; ++i) {
      if (bad < 0 || i < bad) {
        ASSERT_TRUE(results[i].ok())
            << round << " " << i << results[i].status();
        EXPECT_EQ(results[i]->accepted, kEvents);
      } else if (i == bad && refused) {
        EXPECT_EQ(results[i].status().code(),
                  absl::StatusCode::kInvalidArgument);
      } else if (i == bad) {
        ASSERT_TRUE(results[i].ok()) << results[i].status();
        EXPECT_EQ(results[i]->accepted, 0);
        EXPECT_EQ(results[i]->conflicts.size(), 1u);
      } else {
        EXPECT_EQ(results[i].status().code(), absl::StatusCode::kAborted)
            << round << " " << i << results[i].status();
      }
    }
    EXPECT_TRUE(chain.broken() == (bad >= 0));
    // In seq order: exactly the requests before the failed one, in order.
    std::vector<std::string> ids;
    const std::string mine = absl::StrCat("r", round, "-");
    ASSERT_TRUE(store_
                    ->ScanLog(0, store_->watermark(), nullptr,
                              [&](const StoredEvent& e) {
                                if (e.stream_id == 1) {
                                  ids.push_back(
                                      absl::StrCat(e.entity, "@", e.time_us));
                                }
                                return true;
                              })
                    .ok());
    ids.erase(std::remove_if(ids.begin(), ids.end(),
                             [&](const std::string& id) {
                               return !absl::StartsWith(id, mine);
                             }),
              ids.end());
    std::vector<std::string> want;
    for (int i = 0; i < (bad < 0 ? kRequests : bad); ++i) {
      for (int k = 0; k < kEvents; ++k) {
        want.push_back(absl::StrCat(mine, i, "@", 100 + k));
      }
    }
    EXPECT_EQ(ids, want) << "round " << round;
  }
}

TEST_F(EventStoreTest, SameIdInOtherStreamIsIndependent) {
  AppendRequest a;
  a.stream_id = 1;
  a.events = {Pending(0, "x", "u", 1, 1)};
  AppendRequest b;
  b.stream_id = 2;
  b.events = {Pending(0, "x", "u", 1, 2)};
  EXPECT_EQ(store_->Append(&a)->accepted, 1);
  EXPECT_EQ(store_->Append(&b)->accepted, 1);
}

TEST_F(EventStoreTest, ConcurrentWritersLeaveNoGapsAndNoDuplicates) {
  constexpr int kThreads = 4;
  constexpr int kBatches = 50;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int b = 0; b < kBatches; ++b) {
        AppendRequest req;
        req.stream_id = 1;
        // Every thread sends the same ids: each must be stored once.
        for (int i = 0; i < 10; ++i) {
          req.events.push_back(Pending(i, "id" + std::to_string(b * 10 + i),
                                       "u" + std::to_string(i), b, 1));
        }
        auto r = store_->Append(&req);
        ASSERT_TRUE(r.ok());
        // The watermark covers this writer's own events.
        EXPECT_GE(store_->watermark(), r->watermark);
      }
      (void)t;
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(store_->watermark(), static_cast<uint64_t>(kBatches * 10));
  uint64_t expect = 1;
  ASSERT_TRUE(store_
                  ->ScanLog(0, store_->watermark(), nullptr,
                            [&](const StoredEvent& e) {
                              EXPECT_EQ(e.seq, expect++);
                              return true;
                            })
                  .ok());
  EXPECT_EQ(expect, kBatches * 10 + 1u);
}

// A group is written while the one before it still enters the head
// (Publish): a read pinned at any watermark it can see still finds every
// event up to that watermark, with the sealer running meanwhile.
TEST_F(EventStoreTest, ReadsAtEveryPublishedWatermarkSeeEveryEventUpToIt) {
  EventStoreOptions options;
  options.seal_min_events = 4;  // seals while appends and reads go on
  Open(options);
  constexpr int kThreads = 3, kBatches = 150, kBatch = 20;
  std::atomic<bool> writing{true};
  std::atomic<int> reads{0};
  std::thread reader([&] {
    while (writing.load()) {
      auto pinned = store_->PinRead(0);
      ASSERT_TRUE(pinned.ok()) << pinned.status();
      // Every seq up to the watermark is an event of stream 1.
      uint64_t seen = 0;
      for (auto c = store_->ScanStream(1, pinned->view.get()); c->Valid();
           c->Next()) {
        if (c->seq() <= pinned->watermark) ++seen;
      }
      ASSERT_EQ(seen, pinned->watermark);
      ++reads;
    }
  });
  std::vector<std::thread> writers;
  for (int t = 0; t < kThreads; ++t) {
    writers.emplace_back([&, t] {
      for (int b = 0; b < kBatches; ++b) {
        AppendRequest req;
        req.stream_id = 1;
        for (int i = 0; i < kBatch; ++i) {
          const std::string id = absl::StrCat(t, "-", b, "-", i);
          req.events.push_back(
              Pending(i, id, absl::StrCat("u", (b * kBatch + i) % 37), b, 1));
        }
        auto r = store_->Append(&req);
        ASSERT_TRUE(r.ok()) << r.status();
        EXPECT_GE(store_->watermark(), r->watermark);
      }
    });
  }
  for (auto& th : writers) th.join();
  writing = false;
  reader.join();
  EXPECT_GT(reads.load(), 0);
  EXPECT_EQ(store_->watermark(),
            static_cast<uint64_t>(kThreads * kBatches * kBatch));
}

TEST_F(EventStoreTest, RecoversSeqAndCountsAfterReopen) {
  AppendRequest req;
  req.stream_id = 5;
  req.events = {Pending(0, "a", "u", 1, 1), Pending(1, "b", "u", 2, 2)};
  ASSERT_TRUE(store_->Append(&req).ok());
  Open();
  EXPECT_EQ(store_->watermark(), 2u);
  EXPECT_EQ(store_->StreamCounts()[5], 2u);
  auto again = store_->Append(&req);
  EXPECT_EQ(again->duplicates, 2);
  AppendRequest more;
  more.stream_id = 5;
  more.events = {Pending(0, "c", "u", 3, 3)};
  EXPECT_EQ(store_->Append(&more)->watermark, 3u);
}

TEST_F(EventStoreTest, ReadViewIsStable) {
  AppendRequest req;
  req.stream_id = 1;
  req.events = {Pending(0, "a", "u", 1, 1)};
  ASSERT_TRUE(store_->Append(&req).ok());
  auto view = store_->NewReadView();
  AppendRequest more;
  more.stream_id = 1;
  more.events = {Pending(0, "b", "u", 2, 2)};
  ASSERT_TRUE(store_->Append(&more).ok());
  int seen = 0;
  for (auto it = store_->ScanStream(1, view.get()); it->Valid(); it->Next()) {
    ++seen;
  }
  EXPECT_EQ(seen, 1);
}

}  // namespace
}  // namespace rawfeat

namespace rawfeat {
namespace {

// An event whose value decodes: one INT64 field holding `x`.
PendingEvent Typed(int row, const std::string& id, const std::string& entity,
                   int64_t t, int64_t x) {
  PendingEvent p = Pending(row, id, entity, t, static_cast<unsigned char>(x));
  FieldValue v;
  v.type = v1::INT64;
  v.i = x;
  p.value.clear();
  EncodeEventValue(0, id, nullptr, {v}, &p.value);
  return p;
}

const std::vector<v1::FieldType> kTypes = {v1::INT64};

// (entity, time, seq, x) of every event the cursor shows from here on (of
// the first `most`).
using Row = std::tuple<std::string, int64_t, uint64_t, int64_t>;
std::vector<Row> Drain(EventCursor* c, size_t most = SIZE_MAX) {
  std::vector<Row> rows;
  for (; c->Valid() && rows.size() < most; c->Next()) {
    const EventValueReader* e = c->Decode(kTypes);
    EXPECT_NE(e, nullptr) << c->status();
    if (e == nullptr) break;
    rows.emplace_back(std::string(c->entity()), c->time_us(), c->seq(),
                      e->fields()[0].i);
  }
  EXPECT_TRUE(c->status().ok()) << c->status();
  return rows;
}

TEST_F(EventStoreTest, EntityCursorsKeepToTheirEntityAndTimeRange) {
  // Entities that are byte prefixes of one another, another stream's
  // events under the same entity, and a late event (seq 6 at time 15).
  AppendRequest req;
  req.stream_id = 2;
  req.events = {Typed(0, "1", "a", 10, 1),  Typed(1, "2", "a", 20, 2),
                Typed(2, "3", "ab", 10, 3), Typed(3, "4", "a\x01", 5, 4),
                Typed(4, "5", "b", 30, 5),  Typed(5, "6", "a", 15, 6)};
  ASSERT_TRUE(store_->Append(&req).ok());
  AppendRequest other;
  other.stream_id = 3;
  other.events = {Typed(0, "x", "a", 12, 7)};
  ASSERT_TRUE(store_->Append(&other).ok());

  auto c = store_->NewEventCursor(2, nullptr);
  c->Seek("a");
  EXPECT_EQ(
      Drain(c.get()),
      (std::vector<Row>{{"a", 10, 1, 1}, {"a", 15, 6, 6}, {"a", 20, 2, 2}}));
  // [from, to): the end is exclusive; SeekTime keeps the end.
  c->Seek("a", 15, 20);
  EXPECT_EQ(Drain(c.get()), (std::vector<Row>{{"a", 15, 6, 6}}));
  c->Seek("a", 11, 21);
  c->SeekTime(16);
  EXPECT_EQ(Drain(c.get()), (std::vector<Row>{{"a", 20, 2, 2}}));
  c->Seek("ab");
  EXPECT_EQ(Drain(c.get()), (std::vector<Row>{{"ab", 10, 3, 3}}));
  c->Seek("zz");
  EXPECT_FALSE(c->Valid());
  EXPECT_TRUE(c->status().ok());
  c->Seek("a", 21);
  EXPECT_FALSE(c->Valid());

  // A range cursor reads one entity's range only.
  auto r = store_->ScanEntity(2, "a", 15, 20, nullptr);
  EXPECT_EQ(Drain(r.get()), (std::vector<Row>{{"a", 15, 6, 6}}));
  r = store_->ScanEntity(2, "a", kMinEventTime, kMaxEventTime, nullptr);
  EXPECT_EQ(Drain(r.get()).size(), 3u);
  r = store_->ScanEntity(2, "a", 11, kMaxEventTime, nullptr);
  r->SeekTime(16);
  EXPECT_EQ(Drain(r.get()), (std::vector<Row>{{"a", 20, 2, 2}}));

  // A stream cursor walks entities in byte order; NextEntity skips one.
  auto s = store_->ScanStream(2, nullptr);
  EXPECT_EQ(Drain(s.get()).size(), 6u);
  s = store_->ScanStream(2, nullptr);
  ASSERT_TRUE(s->Valid());
  EXPECT_EQ(s->entity(), "a");
  s->NextEntity();
  ASSERT_TRUE(s->Valid());
  EXPECT_EQ(s->entity(), "a\x01");
  s->NextEntity();
  EXPECT_EQ(Drain(s.get()),
            (std::vector<Row>{{"ab", 10, 3, 3}, {"b", 30, 5, 5}}));
  EXPECT_FALSE(store_->ScanStream(9, nullptr)->Valid());
}

// An ascending cursor (snapshots) steps from one entity's blocks to the
// next instead of seeking; whatever order it is sought in, it must read
// exactly what an entity cursor reads: entities that are byte prefixes of
// one another, several blocks per entity, events sealed and not, late
// events into sealed ranges, another stream's blocks beside them, partial
// reads, re-seeks of one entity to earlier and later times, jumps back.
// So does one primed with the sole blocks a stream cursor handed out (as
// a snapshot's workers are), and primed with another entity's block.
TEST_F(EventStoreTest, AnAscendingCursorReadsWhatAnEntityCursorReads) {
  OpenWithoutSealer();
  std::mt19937_64 rng(20261206);
  const std::vector<std::string> entities = {
      "a",  "a\x01", "aa",    "ab", "ab\x01", "abc", "b", "ba", "c", "d",
      "da", "e",     "f\xff", "g",  "h",      "hh",  "i", "j",  "k", "kz"};
  int64_t id = 0;
  auto append = [&](uint32_t stream, int n, int64_t t_max) {
    AppendRequest req;
    req.stream_id = stream;
    for (int i = 0; i < n; ++i) {
      // Some entities far heavier than others: several full blocks.
      const size_t e = rng() % 3 == 0 ? rng() % 3 : rng() % entities.size();
      req.events.push_back(Typed(i, absl::StrCat("e", id), entities[e],
                                 static_cast<int64_t>(rng() % t_max), id));
      ++id;
    }
    ASSERT_TRUE(store_->Append(&req).ok());
  };
  for (int round = 0; round < 4; ++round) {
    append(2, 600, 1000000);
    append(3, 200, 1000000);
    ASSERT_TRUE(store_->Seal(1).ok());
  }
  append(2, 150, 2000000);  // unsealed: the head, late ones among them
  append(3, 50, 2000000);

  const std::unique_ptr<ReadView> view = store_->NewReadView();
  // Each entity's sole block, where it has one.
  std::map<std::string, std::string> sole;
  size_t several = 0;  // entities with sealed events in more blocks
  for (auto scan = store_->ScanStream(2, view.get()); scan->Valid();
       scan->NextEntity()) {
    const std::string entity(scan->entity());
    if (!scan->SoleBlock().empty()) {
      sole[entity] = std::string(scan->SoleBlock());
    } else if (entity.size() <= 2 && entity[0] == 'a') {
      ++several;  // the heavy ones
    }
  }
  EXPECT_GE(sole.size(), 10u);
  EXPECT_EQ(several, 3u);
  auto plain = store_->NewEventCursor(2, view.get());
  auto ascending = store_->NewAscendingCursor(2, view.get());
  auto primed = store_->NewAscendingCursor(2, view.get());
  size_t at = 0;
  size_t nonempty = 0;
  for (int op = 0; op < 3000; ++op) {
    SCOPED_TRACE(absl::StrCat("op ", op));
    const int kind = static_cast<int>(rng() % 10);
    if (kind < 6) {
      at = std::min(entities.size() - 1, at + rng() % 3);  // on, or ahead
    } else if (kind < 8) {
      at = rng() % entities.size();  // anywhere, back too
    }                                // else: the same entity again
    const std::string& entity = entities[at];
    int64_t from = kMinEventTime, to = kMaxEventTime;
    if (rng() % 3 == 0) from = static_cast<int64_t>(rng() % 2000000);
    if (rng() % 4 == 0) to = from + static_cast<int64_t>(rng() % 500000);
    plain->Seek(entity, from, to);
    ascending->Seek(entity, from, to);
    if (auto it = sole.find(entity); it != sole.end()) {
      primed->Prime(entity, it->second);
    } else if (rng() % 2 == 0) {
      primed->Prime(sole.begin()->first, sole.begin()->second);  // not it
    }
    primed->Seek(entity, from, to);
    const size_t most = rng() % 4 == 0 ? rng() % 50 : SIZE_MAX;
    const auto expected = Drain(plain.get(), most);
    ASSERT_EQ(Drain(ascending.get(), most), expected);
    ASSERT_EQ(Drain(primed.get(), most), expected);
    nonempty += !expected.empty();
    if (rng() % 4 == 0 && plain->Valid()) {
      const int64_t later =
          plain->time_us() + static_cast<int64_t>(rng() % 300000);
      plain->SeekTime(later);
      ascending->SeekTime(later);
      primed->SeekTime(later);
      const auto rest = Drain(plain.get());
      ASSERT_EQ(Drain(ascending.get()), rest);
      ASSERT_EQ(Drain(primed.get()), rest);
    }
    if (rng() % 8 == 0) at = 0;  // start over, as a new batch might
  }
  EXPECT_GT(nonempty, 1000u);
}

TEST_F(EventStoreTest, ACorruptStoredEventStopsTheCursorWithDataLoss) {
  AppendRequest req;
  req.stream_id = 1;
  req.events = {Typed(0, "1", "u", 1, 1), Pending(1, "2", "u", 2, 2)};
  ASSERT_TRUE(store_->Append(&req).ok());
  auto c = store_->NewEventCursor(1, nullptr);
  c->Seek("u");
  ASSERT_TRUE(c->Valid());
  ASSERT_NE(c->Decode(kTypes), nullptr);
  c->Next();
  ASSERT_TRUE(c->Valid());
  EXPECT_EQ(c->Decode(kTypes), nullptr);  // "v\x02" is no event value
  EXPECT_FALSE(c->Valid());
  EXPECT_EQ(c->status().code(), absl::StatusCode::kDataLoss);
  EXPECT_NE(c->status().message().find("entity 'u' (seq 2)"), std::string::npos)
      << c->status();
  // Re-seeking starts afresh.
  c->Seek("u", 0, 2);
  EXPECT_TRUE(c->Valid());
  EXPECT_TRUE(c->status().ok());
}

// Tiles are read by range; an event appended to a tiled day leaves the
// tile and is read beside it (late) until sealing folds it in (through the
// folder), or deletes the tile when there is no folder or it fails.
TEST_F(EventStoreTest, TilesKeepTheirDaysNewEventsBesideThemUntilSealing) {
  OpenWithoutSealer();
  AppendRequest req;
  req.stream_id = 1;
  req.events = {Typed(0, "1", "u", 5, 1)};
  ASSERT_TRUE(store_->Append(&req).ok());
  const TileScope scope{1, "u", "v", 1};
  const TileScope other{1, "u", "v", 2};
  // (day, watermark, payload, late seqs) of each tile, as of `view`.
  struct Seen {
    int64_t day;
    uint64_t watermark;
    std::string payload;
    std::vector<uint64_t> late;
    bool operator==(const Seen& o) const {
      return day == o.day && watermark == o.watermark &&
             payload == o.payload && late == o.late;
    }
  };
  auto tiles = [&](const TileScope& sc, int64_t from, int64_t to,
                   const ReadView* view = nullptr) {
    std::vector<Seen> out;
    auto t = store_->ScanTiles(sc, from, to, view);
    for (; t->Valid(); t->Next()) {
      Seen seen{t->day(), t->watermark(), std::string(t->payload()), {}};
      for (const StoredEvent& e : t->late()) {
        EXPECT_EQ(e.entity, "u");
        EXPECT_EQ(DayStart(e.time_us), t->day());
        seen.late.push_back(e.seq);
      }
      out.push_back(std::move(seen));
    }
    EXPECT_TRUE(t->status().ok()) << t->status();
    return out;
  };
  for (const TileScope& sc : {scope, other}) {
    ASSERT_TRUE(store_
                    ->WriteTiles(sc, {0, kDayMicros, 2 * kDayMicros},
                                 [](uint64_t w, const ReadView*, auto* tiles) {
                                   EXPECT_EQ(w, 1u);
                                   for (int d : {0, 1, 2}) {
                                     tiles->emplace_back(d * kDayMicros,
                                                         absl::StrCat("p", d));
                                   }
                                   return absl::OkStatus();
                                 })
                    .ok());
  }
  EXPECT_EQ(store_->TileCount(), 6u);
  const int64_t d1 = kDayMicros, d2 = 2 * kDayMicros;
  EXPECT_EQ(tiles(scope, kMinEventTime, kMaxEventTime),
            (std::vector<Seen>{{0, 1, "p0", {}}, {d1, 1, "p1", {}},
                               {d2, 1, "p2", {}}}));
  EXPECT_EQ(tiles(scope, d1, d2), (std::vector<Seen>{{d1, 1, "p1", {}}}));
  // Events in days 1 and 2 stay beside their tiles, in (time, seq) order.
  req.events = {Typed(0, "2", "u", d1 + 7, 2), Typed(1, "3", "u", d2 + 9, 3),
                Typed(2, "4", "u", d2 + 8, 4)};
  ASSERT_TRUE(store_->Append(&req).ok());
  EXPECT_EQ(store_->TileCount(), 6u);
  EXPECT_EQ(tiles(scope, kMinEventTime, kMaxEventTime),
            (std::vector<Seen>{{0, 1, "p0", {}}, {d1, 1, "p1", {2}},
                               {d2, 1, "p2", {4, 3}}}));

  // Sealing folds them in: each tile of each day once, with the day's
  // events above its watermark, in time order; the tile's watermark is
  // then the highest seq folded. A folder that fails drops that tile.
  std::vector<std::string> calls;
  store_->SetTileFolder(
      this, [&](const TileScope& sc, int64_t day, absl::string_view payload,
                absl::Span<const StoredEvent> events)
                -> absl::StatusOr<std::string> {
        std::string folded(payload);
        for (const StoredEvent& e : events) {
          EXPECT_EQ(e.entity, sc.entity);
          absl::StrAppend(&folded, "+", e.seq);
        }
        calls.push_back(absl::StrCat(sc.version, ":", folded));
        if (sc.version == 2 && day == d1) {
          return absl::DataLossError("cannot fold");
        }
        return folded;
      });
  std::unique_ptr<ReadView> before = store_->NewReadView();
  ASSERT_TRUE(store_->Seal().ok());
  std::sort(calls.begin(), calls.end());
  EXPECT_EQ(calls, (std::vector<std::string>{"1:p1+2", "1:p2+4+3", "2:p1+2",
                                             "2:p2+4+3"}));
  EXPECT_EQ(store_->TileCount(), 5u);
  EXPECT_EQ(tiles(scope, kMinEventTime, kMaxEventTime),
            (std::vector<Seen>{{0, 1, "p0", {}}, {d1, 2, "p1+2", {}},
                               {d2, 4, "p2+4+3", {}}}));
  EXPECT_EQ(tiles(other, kMinEventTime, kMaxEventTime),
            (std::vector<Seen>{{0, 1, "p0", {}}, {d2, 4, "p2+4+3", {}}}));
  // A read from before the seal still sees the tiles it saw, and the
  // events beside them.
  EXPECT_EQ(tiles(scope, kMinEventTime, kMaxEventTime, before.get()),
            (std::vector<Seen>{{0, 1, "p0", {}}, {d1, 1, "p1", {2}},
                               {d2, 1, "p2", {4, 3}}}));
  before.reset();
  EXPECT_EQ(store_->Stats().tiles_folded, 3u);
  EXPECT_EQ(store_->Stats().tiles_invalidated, 1u);

  // Without a folder, sealing into a tiled day deletes its tiles.
  store_->SetTileFolder(this, nullptr);
  req.events = {Typed(0, "5", "u", 11, 5)};
  ASSERT_TRUE(store_->Append(&req).ok());
  ASSERT_TRUE(store_->Seal().ok());
  EXPECT_EQ(store_->TileCount(), 3u);
  EXPECT_EQ(tiles(scope, kMinEventTime, kMaxEventTime),
            (std::vector<Seen>{{d1, 2, "p1+2", {}}, {d2, 4, "p2+4+3", {}}}));
  EXPECT_TRUE(tiles(TileScope{1, "u2", "v", 1}, kMinEventTime, kMaxEventTime)
                  .empty());
  // Folded tiles survive a restart.
  OpenWithoutSealer();
  EXPECT_EQ(store_->TileCount(), 3u);
  EXPECT_EQ(tiles(other, kMinEventTime, kMaxEventTime),
            (std::vector<Seen>{{d2, 4, "p2+4+3", {}}}));
}

// Building a tile reads each day once, in the background: the blocks it
// reads stay out of the block cache, which keeps what lookups read.
TEST_F(EventStoreTest, TileBuildsLeaveTheBlockCacheAlone) {
  AppendRequest req;
  req.stream_id = 1;
  for (int i = 0; i < 20000; ++i) {
    req.events.push_back(Typed(i, absl::StrCat("e", i), "u", i, i));
  }
  ASSERT_TRUE(store_->Append(&req).ok());
  ASSERT_TRUE(store_->CompactAll().ok());  // sealed blocks in table files
  const uint64_t before = store_->Stats().block_cache_bytes;
  auto read_all = [&](const ReadView* view) {
    auto c = store_->NewEventCursor(1, view);
    int n = 0;
    for (c->Seek("u"); c->Valid(); c->Next()) ++n;
    EXPECT_TRUE(c->status().ok()) << c->status();
    return n;
  };
  ASSERT_TRUE(store_
                  ->WriteTiles(TileScope{1, "u", "v", 1}, {0},
                               [&](uint64_t, const ReadView* view, auto* tiles) {
                                 EXPECT_EQ(read_all(view), 20000);
                                 tiles->emplace_back(0, "p");
                                 return absl::OkStatus();
                               })
                  .ok());
  EXPECT_EQ(read_all(store_->NewReadView(/*fill_cache=*/false).get()), 20000);
  EXPECT_EQ(store_->Stats().block_cache_bytes, before);
  // A lookup's read keeps its blocks.
  EXPECT_EQ(read_all(nullptr), 20000);
  EXPECT_GT(store_->Stats().block_cache_bytes, before + 16 * 1024);
}

// A tile is built from a read pinned at its watermark while appends go on:
// an append to a day being built leaves its tile valid (the event is read
// beside it), and so does a seal of events the build's view holds, while
// a seal of a later event into the day (or an erasure of the entity)
// before the tile is written voids it; the build sees none of the later
// events.
TEST_F(EventStoreTest, TilesBuiltWhileSealsGoOnSkipTheDaysTheyChanged) {
  OpenWithoutSealer();
  AppendRequest req;
  req.stream_id = 1;
  req.events = {Typed(0, "1", "u", 5, 1), Typed(1, "2", "u", kDayMicros + 5, 2),
                Typed(2, "3", "u", 2 * kDayMicros + 5, 3),
                Typed(3, "4", "u", 3 * kDayMicros + 5, 4)};
  ASSERT_TRUE(store_->Append(&req).ok());  // unsealed when the build pins
  const TileScope scope{1, "u", "v", 1};
  // (day, watermark, late seqs) of each stored tile.
  auto stored = [&]() {
    std::vector<std::tuple<int64_t, uint64_t, std::vector<uint64_t>>> out;
    auto t = store_->ScanTiles(scope, kMinEventTime, kMaxEventTime, nullptr);
    for (; t->Valid(); t->Next()) {
      std::vector<uint64_t> late;
      for (const StoredEvent& e : t->late()) late.push_back(e.seq);
      out.emplace_back(t->day(), t->watermark(), late);
    }
    return out;
  };
  using Tiles = decltype(stored());
  const std::vector<int64_t> all = {0, kDayMicros, 2 * kDayMicros};
  ASSERT_TRUE(
      store_
          ->WriteTiles(
              scope, all,
              [&](uint64_t w, const ReadView* view, auto* tiles) {
                EXPECT_EQ(w, 4u);
                // Appended while the build runs: a late event into day 1
                // and another entity's event into day 2, then sealed with
                // the events the view holds (days 0 to 3, which stay
                // valid); then a late event into day 0, not sealed.
                AppendRequest late;
                late.stream_id = 1;
                late.events = {Typed(0, "5", "u", kDayMicros + 9, 5),
                               Typed(1, "6", "x", 2 * kDayMicros + 9, 6)};
                EXPECT_TRUE(store_->Append(&late).ok());
                EXPECT_TRUE(store_->Seal().ok());
                late.events = {Typed(0, "7", "u", 9, 7)};
                EXPECT_TRUE(store_->Append(&late).ok());
                // The pinned view holds only what the watermark covers.
                auto c = store_->NewEventCursor(1, view);
                c->Seek("u", kMinEventTime, kMaxEventTime);
                int n = 0;
                for (; c->Valid(); c->Next()) ++n;
                EXPECT_EQ(n, 4);
                for (int64_t day : all) tiles->emplace_back(day, "p");
                return absl::OkStatus();
              })
          .ok());
  EXPECT_EQ(stored(), (Tiles{{0, 4, {7}}, {2 * kDayMicros, 4, {}}}));
  EXPECT_EQ(store_->TileCount(), 2u);

  // A tile for a day it was not asked to build is refused.
  auto wrong = store_->WriteTiles(
      scope, {0}, [](uint64_t, const ReadView*, auto* tiles) {
        tiles->emplace_back(5 * kDayMicros, "p");
        return absl::OkStatus();
      });
  EXPECT_EQ(wrong.code(), absl::StatusCode::kInvalidArgument) << wrong;

  // An erasure of the entity while a build runs voids all of its days.
  ASSERT_TRUE(
      store_
          ->WriteTiles(scope, {3 * kDayMicros},
                       [&](uint64_t, const ReadView*, auto* tiles) {
                         EXPECT_TRUE(store_->Erase(1, "u", v1::Erasure()).ok());
                         tiles->emplace_back(3 * kDayMicros, "p");
                         return absl::OkStatus();
                       })
          .ok());
  EXPECT_TRUE(stored().empty());
  EXPECT_EQ(store_->TileCount(), 0u);
}

}  // namespace
}  // namespace rawfeat

namespace rawfeat {
namespace {

// Writes meta "format" of a stopped store with RocksDB itself.
void SetStoredFormat(const std::string& dir, uint32_t format) {
  testing::RawStore raw(dir);
  ASSERT_TRUE(raw.ok());
  std::string v;
  PutBigEndian32(&v, format);
  rocksdb::WriteOptions wo;
  wo.sync = true;
  ASSERT_TRUE(
      raw.db()->Put(wo, raw.family(kMetaColumnFamily), kMetaFormatKey, v).ok());
}

// (entity, time, seq) of every event of stream 1, in scan order.
std::vector<std::tuple<std::string, int64_t, uint64_t>> AllEvents(
    const EventStore& store) {
  std::vector<std::tuple<std::string, int64_t, uint64_t>> out;
  auto c = store.ScanStream(1, nullptr);
  for (; c->Valid(); c->Next()) {
    out.emplace_back(std::string(c->entity()), c->time_us(), c->seq());
  }
  EXPECT_TRUE(c->status().ok()) << c->status();
  return out;
}

TEST_F(EventStoreTest, APauseInAppendsMergesLevelZeroOfWhatLookupsRead) {
  // Three rounds of appends, each sealed and flushed (a checkpoint
  // flushes), leave three files in level 0 of `events`: below the usual
  // trigger of a compaction.
  EventStoreOptions never;
  never.compact_idle_ms = 0;
  auto reopen = [&](const EventStoreOptions& options) {
    store_.reset();
    auto s = EventStore::Open(dir_.Sub("db"), options);
    ASSERT_TRUE(s.ok()) << s.status();
    store_ = std::move(*s);
  };
  reopen(never);
  for (int round = 0; round < 3; ++round) {
    AppendRequest req;
    req.stream_id = 1;
    for (int i = 0; i < 300; ++i) {
      req.events.push_back(Pending(i, absl::StrCat("r", round, "-", i),
                                   absl::StrCat("u", i % 30),
                                   1000 * round + i, 1 + i % 200));
    }
    ASSERT_TRUE(store_->Append(&req).ok());
    ASSERT_TRUE(store_->Seal(1).ok());
    ASSERT_TRUE(store_->Checkpoint(dir_.Sub(absl::StrCat("cp", round))).ok());
  }
  const uint64_t files = store_->Stats().read_level0_files;
  ASSERT_GE(files, 2u);
  const auto events = AllEvents(*store_);
  ASSERT_EQ(events.size(), 900u);

  // Idle after 100 ms: the sealer lowers the trigger, RocksDB merges
  // level 0 down (bounded wait; a machine's speed only makes it later).
  EventStoreOptions idle;
  idle.compact_idle_ms = 100;
  reopen(idle);
  const absl::Time deadline = absl::Now() + absl::Seconds(120);
  while (store_->Stats().read_level0_files > 0 && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(50));
  }
  EXPECT_EQ(store_->Stats().read_level0_files, 0u) << "was " << files;
  EXPECT_EQ(AllEvents(*store_), events);

  // Appends resume: the trigger is back, reads and writes as before.
  AppendRequest more;
  more.stream_id = 1;
  more.events = {Pending(0, "later", "u1", 5000, 7)};
  auto r = store_->Append(&more);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->accepted, 1);
  EXPECT_EQ(AllEvents(*store_).size(), 901u);
}

TEST_F(EventStoreTest, LevelZeroOfIdsAndEventsIsUncompressedAndTheLogIsLz4) {
  // Flushed files stay in level 0 (no idle merge): blocks in `events`, ids,
  // log entries.
  EventStoreOptions never;
  never.compact_idle_ms = 0;
  store_.reset();
  auto opened = EventStore::Open(dir_.Sub("db"), never);
  ASSERT_TRUE(opened.ok()) << opened.status();
  store_ = std::move(*opened);
  AppendRequest req;
  req.stream_id = 1;
  for (int i = 0; i < 300; ++i) {
    req.events.push_back(Pending(i, absl::StrCat("e", i),
                                 absl::StrCat("u", i % 30), i, 1 + i % 200));
  }
  ASSERT_TRUE(store_->Append(&req).ok());
  ASSERT_TRUE(store_->Seal(1).ok());
  ASSERT_TRUE(store_->Checkpoint(dir_.Sub("cp")).ok());
  store_.reset();

  testing::RawStore raw(dir_.Sub("db"), /*read_only=*/true);
  ASSERT_TRUE(raw.ok());
  // Each family's table files: level and compression.
  auto files = [&](const char* family) {
    std::vector<std::pair<int, std::string>> out;
    rocksdb::ColumnFamilyHandle* cf = raw.family(family);
    rocksdb::TablePropertiesCollection props;
    EXPECT_TRUE(raw.db()->GetPropertiesOfAllTables(cf, &props).ok());
    rocksdb::ColumnFamilyMetaData meta;
    raw.db()->GetColumnFamilyMetaData(cf, &meta);
    for (const auto& level : meta.levels) {
      for (const auto& file : level.files) {
        for (const auto& [path, p] : props) {
          if (absl::EndsWith(path, file.name)) {
            out.emplace_back(level.level, p->compression_name);
          }
        }
      }
    }
    return out;
  };
  for (const char* family : {kIdsColumnFamily, kEventsColumnFamily}) {
    const auto found = files(family);
    EXPECT_FALSE(found.empty()) << family;
    for (const auto& [level, compression] : found) {
      EXPECT_EQ(level, 0) << family;
      EXPECT_EQ(compression, "NoCompression") << family;
    }
  }
  const auto log = files(kLogColumnFamily);
  EXPECT_FALSE(log.empty());
  for (const auto& [level, compression] : log) {
    EXPECT_EQ(compression, "LZ4") << "log file at level " << level;
  }
}

TEST_F(EventStoreTest, AStoreOfAnotherStorageFormatIsRefusedUntouched) {
  AppendRequest req;
  req.stream_id = 1;
  req.events = {Typed(0, "1", "u", 1, 1)};
  ASSERT_TRUE(store_->Append(&req).ok());
  store_.reset();
  SetStoredFormat(dir_.Sub("db"), kStoreFormat + 1);
  auto refused = EventStore::Open(dir_.Sub("db"), EventStoreOptions());
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(refused.status().message().find(
                absl::StrCat("holds storage format ", kStoreFormat + 1)),
            std::string::npos)
      << refused.status();
  // Nothing was changed: put back, it opens with its event.
  SetStoredFormat(dir_.Sub("db"), kStoreFormat);
  Open();
  EXPECT_EQ(store_->watermark(), 1u);
  auto c = store_->NewEventCursor(1, nullptr);
  c->Seek("u");
  EXPECT_TRUE(c->Valid());
}

}  // namespace
}  // namespace rawfeat
