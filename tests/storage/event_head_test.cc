// EventHead alone: versions, visibility by RocksDB sequence, and what
// Purge may drop while readers are registered.

#include "server/storage/event_head.h"

#include <algorithm>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "gtest/gtest.h"

namespace rawfeat {
namespace {

// (time, seq, value) of the events of `head` a reader at `read_seq` sees.
std::vector<std::string> Seen(const EntityHeadRef& head, uint64_t read_seq) {
  std::vector<std::string> out;
  if (head == nullptr) return out;
  HeadReader reader;
  for (reader.Reset(head.get()); reader.Valid(); reader.Next()) {
    const HeadEvent& e = reader.event();
    if (!EntityHead::Visible(e, read_seq)) continue;
    out.push_back(std::to_string(e.time_us) + "/" + std::to_string(e.seq) +
                  "=" + std::string(e.value));
  }
  return out;
}

using Strings = std::vector<std::string>;

TEST(EventHeadTest, EventsAreOrderedAndVisibleFromTheirBirth) {
  EventHead head;
  const std::string a = "\x00\x00\x00\x01" "a" + std::string(1, '\0');
  head.Add({{a, 20, 1, "x"}, {a, 30, 2, "y"}}, /*born_at=*/10);
  // A late event and one at an equal time with a higher seq.
  head.Add({{a, 10, 3, "late"}, {a, 30, 4, "tie"}}, /*born_at=*/12);
  EntityHeadRef h = head.Find(a);
  EXPECT_EQ(Seen(h, 9), Strings{});
  EXPECT_EQ(Seen(h, 11), (Strings{"20/1=x", "30/2=y"}));
  EXPECT_EQ(Seen(h, 12), (Strings{"10/3=late", "20/1=x", "30/2=y", "30/4=tie"}));
  EXPECT_EQ(head.live_events(), 4u);
  EXPECT_EQ(head.min_live_seq(), 1u);
  EXPECT_GT(head.bytes(), 0u);
  EXPECT_EQ(head.Find("nobody"), nullptr);
}

TEST(EventHeadTest, GoneEventsStayForOlderReadersUntilTheyLeave) {
  EventHead head;
  const std::string a = "\x00\x00\x00\x01" "a" + std::string(1, '\0');
  head.Add({{a, 1, 1, "one"}, {a, 2, 2, "two"}}, 5);
  const uint64_t old_reader = head.Register([] { return 6; });
  // Seq 1 sealed at 20; seq 3 arrives meanwhile and stays live.
  head.Add({{a, 3, 3, "three"}}, 15);
  head.MarkGone(a, {1}, 20);
  EXPECT_EQ(head.live_events(), 2u);
  EXPECT_EQ(head.min_live_seq(), 2u);
  head.Purge();  // the reader at 6 still needs seq 1
  EXPECT_EQ(Seen(head.Find(a), 6), (Strings{"1/1=one", "2/2=two"}));
  EXPECT_EQ(Seen(head.Find(a), 20), (Strings{"2/2=two", "3/3=three"}));
  head.Unregister(old_reader);
  head.Purge();
  const EntityHeadRef h = head.Find(a);
  ASSERT_NE(h, nullptr);
  EXPECT_EQ(h->events, 2u);  // seq 1 left memory
  EXPECT_EQ(Seen(h, 20), (Strings{"2/2=two", "3/3=three"}));
  // A version a reader holds outlives the purge that replaced it.
  head.MarkGone(a, {}, 30);  // everything, e.g. an erasure
  EXPECT_EQ(head.live_events(), 0u);
  EXPECT_EQ(head.min_live_seq(), 0u);
  head.Purge();
  EXPECT_EQ(head.Find(a), nullptr);
  EXPECT_EQ(Seen(h, 20), (Strings{"2/2=two", "3/3=three"}));
}

TEST(EventHeadTest, NextWalksEntitiesInByteOrderWithinBounds) {
  EventHead head;
  auto prefix = [](uint32_t stream, const std::string& entity) {
    std::string p(4, '\0');
    p[3] = static_cast<char>(stream);
    return p + entity + std::string(1, '\0');
  };
  // Byte-prefix entities: "a" < "a\x01" < "ab".
  const std::vector<std::string> order = {
      prefix(1, "a"), prefix(1, std::string("a\x01")), prefix(1, "ab"),
      prefix(1, "b")};
  for (auto it = order.rbegin(); it != order.rend(); ++it) {
    head.Add({{*it, 1, 1, "v"}}, 1);
  }
  head.Add({{prefix(2, "a"), 1, 9, "other stream"}}, 1);
  std::string from = prefix(1, "");
  from.pop_back();  // the stream prefix
  const std::string upper = prefix(2, "").substr(0, 4);
  std::vector<std::string> walked;
  std::string p;
  EntityHeadRef h;
  while (head.Next(from, upper, &p, &h)) {
    walked.push_back(p);
    from = p;
    from.back() = '\x01';  // the successor of the entity prefix
  }
  EXPECT_EQ(walked, order);
  const auto picked = head.Pick(1);
  ASSERT_EQ(picked.size(), 5u);
  for (size_t i = 0; i < order.size(); ++i)
    EXPECT_EQ(picked[i].first, order[i]);
  EXPECT_EQ(picked[4].first, prefix(2, "a"));

  // An entity whose events all leave the head leaves the walk too.
  head.MarkGone(order[1], {}, 5);
  head.Purge();
  EXPECT_EQ(head.Find(order[1]), nullptr);
  walked.clear();
  from = prefix(1, "");
  from.pop_back();
  while (head.Next(from, upper, &p, &h)) {
    walked.push_back(p);
    from = p;
    from.back() = '\x01';
  }
  EXPECT_EQ(walked, std::vector<std::string>({order[0], order[2], order[3]}));
  EXPECT_EQ(head.Pick(1).size(), 4u);
}

TEST(EventHeadTest, AppendsInAnyOrderKeepFewRunsAndReadInOrder) {
  EventHead head;
  const std::string a = "\x00\x00\x00\x01" "a" + std::string(1, '\0');
  // 2,000 appends of 1-3 events at scattered times (late ones, ties at
  // equal times), each visible from its own sequence.
  std::mt19937_64 rng(7);
  std::vector<std::pair<int64_t, uint64_t>> model;  // (time, seq)
  uint64_t seq = 0;
  std::vector<EntityHeadRef> versions;
  for (int call = 1; call <= 2000; ++call) {
    std::vector<std::pair<int64_t, uint64_t>> batch;
    const int n = 1 + static_cast<int>(rng() % 3);
    for (int k = 0; k < n; ++k) {
      batch.emplace_back(static_cast<int64_t>(rng() % 500), ++seq);
    }
    std::sort(batch.begin(), batch.end());
    std::vector<EventHead::NewEvent> events;
    std::vector<std::string> values;
    values.reserve(batch.size());
    for (const auto& [time, s] : batch) {
      values.push_back("v" + std::to_string(s));
      events.push_back({a, time, s, values.back()});
    }
    head.Add(events, /*born_at=*/call);
    model.insert(model.end(), batch.begin(), batch.end());
    if (call % 500 == 0) versions.push_back(head.Find(a));
  }
  std::sort(model.begin(), model.end());
  const EntityHeadRef h = head.Find(a);
  ASSERT_NE(h, nullptr);
  EXPECT_EQ(h->events, model.size());
  // Each run more than twice the next: at most log2(n) + 1 of them.
  EXPECT_LE(h->runs.size(), 14u);
  for (size_t r = 0; r + 1 < h->runs.size(); ++r) {
    EXPECT_GT(h->runs[r].size, 2 * h->runs[r + 1].size);
  }
  // Read in (time, seq) order, from the start and from a seek.
  std::vector<std::pair<int64_t, uint64_t>> read;
  HeadReader reader;
  for (reader.Reset(h.get()); reader.Valid(); reader.Next()) {
    read.emplace_back(reader.event().time_us, reader.event().seq);
    EXPECT_EQ(reader.event().value,
              "v" + std::to_string(reader.event().seq));
  }
  EXPECT_EQ(read, model);
  reader.Reset(h.get());
  reader.Seek(250);
  ASSERT_TRUE(reader.Valid());
  const auto first = std::lower_bound(
      model.begin(), model.end(), std::make_pair(int64_t{250}, uint64_t{0}));
  EXPECT_EQ(reader.event().time_us, first->first);
  EXPECT_EQ(reader.event().seq, first->second);
  // A reader at the sequence of call 1000 sees exactly the events of the
  // first 1,000 calls, and an older version still reads the same.
  size_t seen = 0;
  for (reader.Reset(h.get()); reader.Valid(); reader.Next()) {
    if (EntityHead::Visible(reader.event(), 1000)) ++seen;
  }
  size_t old_seen = 0;
  for (reader.Reset(versions[1].get()); reader.Valid(); reader.Next()) {
    ++old_seen;
  }
  EXPECT_EQ(seen, old_seen);
  // Marking some gone copies only the runs that hold them.
  const HeadRuns before = h->runs;
  head.MarkGone(a, {model.back().second}, 5000);
  const EntityHeadRef marked = head.Find(a);
  size_t shared = 0;
  for (size_t r = 0; r < before.size(); ++r) {
    if (marked->runs[r].data == before[r].data) ++shared;
  }
  EXPECT_EQ(shared, before.size() - 1);
  EXPECT_EQ(head.live_events(), model.size() - 1);
  head.Purge();
  EXPECT_EQ(head.Find(a)->events, model.size() - 1);
}

// Events after an entity's newest one are appended to its newest run in
// place. The versions before keep reading exactly their own events though
// later appends wrote into the storage they share, and a late event, a
// seal (MarkGone) or a purge in between changes nothing of that.
TEST(EventHeadTest, InOrderAppendsShareARunAndOldVersionsKeepTheirEvents) {
  EventHead head;
  const std::string a =
      "\x00\x00\x00\x01"
      "a" +
      std::string(1, '\0');
  std::mt19937_64 rng(11);
  std::vector<std::pair<int64_t, uint64_t>> model;  // (time, seq), sorted
  std::vector<std::pair<EntityHeadRef, size_t>> versions;  // + live events
  std::vector<std::string> values;
  values.reserve(4000);
  uint64_t seq = 0;
  int64_t now = 1000;
  std::vector<uint64_t> gone;
  for (int call = 1; call <= 1500; ++call) {
    std::vector<std::pair<int64_t, uint64_t>> batch;
    const int n = 1 + static_cast<int>(rng() % 3);
    const bool late = rng() % 50 == 0;
    for (int k = 0; k < n; ++k) {
      now += static_cast<int64_t>(rng() % 3);  // ties at equal times too
      batch.emplace_back(late ? static_cast<int64_t>(rng() % 1000) : now,
                         ++seq);
    }
    std::sort(batch.begin(), batch.end());
    std::vector<EventHead::NewEvent> events;
    for (const auto& [time, s] : batch) {
      values.push_back("v" + std::to_string(s));
      events.push_back({a, time, s, values.back()});
    }
    head.Add(events, /*born_at=*/call);
    model.insert(model.end(), batch.begin(), batch.end());
    if (call % 300 == 0) {
      // Seal the oldest live events, and drop them from memory.
      std::vector<uint64_t> seal;
      for (size_t i = 0; i < 5 && i < model.size(); ++i) {
        seal.push_back(model[i].second);
      }
      std::sort(seal.begin(), seal.end());
      head.MarkGone(a, seal, call);
      head.Purge();
      std::sort(model.begin(), model.end());
      model.erase(model.begin(), model.begin() + seal.size());
    }
    std::sort(model.begin(), model.end());
    versions.emplace_back(head.Find(a), model.size());
    ASSERT_LE(head.Find(a)->runs.size(), 14u);
  }
  // Without late events most appends were in place: few runs, and the
  // newest run's storage shared with the version before.
  const EntityHeadRef h = head.Find(a);
  EXPECT_EQ(h->events, model.size());
  // Every version reads its own events, in order, with their values.
  std::vector<std::pair<int64_t, uint64_t>> all = model;
  HeadReader reader;
  for (size_t v = 0; v < versions.size(); ++v) {
    const auto& [version, count] = versions[v];
    std::vector<std::pair<int64_t, uint64_t>> read;
    for (reader.Reset(version.get()); reader.Valid(); reader.Next()) {
      const HeadEvent& e = reader.event();
      ASSERT_EQ(e.value, "v" + std::to_string(e.seq));
      if (e.gone_at == 0) read.emplace_back(e.time_us, e.seq);
    }
    ASSERT_TRUE(std::is_sorted(read.begin(), read.end())) << v;
    ASSERT_EQ(read.size(), count) << "version " << v;
  }
  std::vector<std::pair<int64_t, uint64_t>> read;
  for (reader.Reset(h.get()); reader.Valid(); reader.Next()) {
    read.emplace_back(reader.event().time_us, reader.event().seq);
  }
  EXPECT_EQ(read, model);
  size_t shared = 0;
  for (size_t v = 1; v < versions.size(); ++v) {
    const HeadRuns& now_runs = versions[v].first->runs;
    const HeadRuns& before = versions[v - 1].first->runs;
    if (now_runs.back().data == before.back().data) ++shared;
  }
  EXPECT_GT(shared, versions.size() / 2);
}

}  // namespace
}  // namespace rawfeat
