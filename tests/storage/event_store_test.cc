#include "server/storage/event_store.h"

#include <thread>
#include <vector>

#include "gtest/gtest.h"
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
  void Open() {
    store_.reset();
    auto s = EventStore::Open(dir_.Sub("db"), EventStoreOptions());
    ASSERT_TRUE(s.ok()) << s.status();
    store_ = std::move(*s);
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
                            [&](const LoggedEvent& e) {
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
                            [&](const LoggedEvent& e) {
                              EXPECT_EQ(e.seq, expect++);
                              return true;
                            })
                  .ok());
  EXPECT_EQ(expect, kBatches * 10 + 1u);
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
