#include "server/storage/log_record.h"

#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "server/storage/keys.h"

namespace rawfeat {
namespace {

struct Event {
  uint64_t seq;
  uint32_t stream;
  std::string entity;
  int64_t time;
  std::string value;
  bool operator==(const Event& o) const {
    return seq == o.seq && stream == o.stream && entity == o.entity &&
           time == o.time && value == o.value;
  }
};

StoredEvent View(const Event& e) {
  return StoredEvent{e.seq, e.stream, e.entity, e.time, e.value};
}

// Every event of one entry, or nothing with *ok false.
std::vector<Event> Read(uint64_t key_seq, const std::string& value, bool* ok) {
  std::vector<Event> out;
  LogEntryReader r;
  *ok = r.Reset(key_seq, value);
  if (!*ok) return out;
  StoredEvent e;
  while (r.Next(&e)) {
    out.push_back({e.seq, e.stream_id, std::string(e.entity), e.time_us,
                   std::string(e.value)});
  }
  *ok = r.ok();
  return out;
}

TEST(LogRecordTest, AGroupEntryHoldsItsEventsInSeqOrder) {
  const std::vector<Event> events = {
      {10, 1, "u1", -5, "A"},
      {11, 2, std::string("a\0b", 3), INT64_MIN, std::string("B\0", 2)},
      {12, 1, "", INT64_MAX, std::string(300, 'x')},
  };
  LogGroupWriter w(10);
  for (const Event& e : events) w.Add(View(e));
  EXPECT_EQ(w.events(), 3u);
  EXPECT_EQ(w.last_seq(), 12u);
  bool ok = false;
  EXPECT_EQ(Read(12, w.value(), &ok), events);
  EXPECT_TRUE(ok);
  // Every cut of the entry is malformed, never a shorter history.
  for (size_t n = 1; n + 1 < w.value().size(); ++n) {
    const std::vector<Event> got = Read(12, w.value().substr(0, n), &ok);
    if (ok) {
      EXPECT_LT(got.size(), 3u) << n;
    }
  }
  EXPECT_FALSE(Read(12, "", &ok).size() > 0 || ok);
}

TEST(LogRecordTest, SeqsStrictlyIncreaseWithinAGroup) {
  LogGroupWriter w(5);
  w.Add(View({5, 1, "u", 1, "A"}));
  std::string v = w.value();
  // A second event with delta 0 (seq 5 again) is malformed.
  w.Add(View({6, 1, "u", 1, "B"}));
  std::string bad = w.value();
  const size_t second = v.size();
  ASSERT_EQ(bad[second], 1);  // the delta
  bad[second] = 0;
  bool ok = true;
  Read(6, bad, &ok);
  EXPECT_FALSE(ok);
}

TEST(LogRecordTest, FormatOneEntriesAndRemovedMarkersRead) {
  const std::string key = EventKey(3, "user-1", 1700000000000000, 42);
  bool ok = false;
  std::vector<Event> got = Read(42, LogValueV1(key, "VALUE"), &ok);
  ASSERT_TRUE(ok);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0], (Event{42, 3, "user-1", 1700000000000000, "VALUE"}));
  // Before the log carried values: the bare key, the value to be fetched.
  got = Read(42, key, &ok);
  ASSERT_TRUE(ok);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].value, "");
  // An entry under another seq than its event's is malformed.
  Read(43, key, &ok);
  EXPECT_FALSE(ok);
  got = Read(42, kLogRemoved, &ok);
  EXPECT_TRUE(ok);
  EXPECT_TRUE(got.empty());
  std::string truncated = LogValueV1(key, "VALUE");
  truncated.resize(5);
  Read(42, truncated, &ok);
  EXPECT_FALSE(ok);
}

TEST(LogRecordTest, RewritesKeepTheChosenEvents) {
  LogGroupWriter w(100);
  std::vector<Event> events;
  for (uint64_t s = 100; s < 110; ++s) {
    events.push_back({s, 1, "e" + std::to_string(s % 3),
                      static_cast<int64_t>(s) * 1000, "v" + std::to_string(s)});
    w.Add(View(events.back()));
  }
  std::string out;
  auto keep_all = [](const StoredEvent&) { return true; };
  EXPECT_EQ(RewriteLogEntry(109, w.value(), keep_all, &out),
            LogRewrite::kUnchanged);
  // Without entity e1: the rest, same seqs, same order.
  EXPECT_EQ(RewriteLogEntry(
                109, w.value(),
                [](const StoredEvent& e) { return e.entity != "e1"; }, &out),
            LogRewrite::kChanged);
  std::vector<Event> want;
  for (const Event& e : events) {
    if (e.entity != "e1") want.push_back(e);
  }
  bool ok = false;
  EXPECT_EQ(Read(109, out, &ok), want);
  EXPECT_TRUE(ok);
  // Without the first event (the seq at the base), and then without all.
  EXPECT_EQ(RewriteLogEntry(
                109, w.value(),
                [](const StoredEvent& e) { return e.seq != 100; }, &out),
            LogRewrite::kChanged);
  EXPECT_EQ(Read(109, out, &ok),
            std::vector<Event>(events.begin() + 1, events.end()));
  EXPECT_EQ(RewriteLogEntry(
                109, w.value(), [](const StoredEvent&) { return false; },
                &out),
            LogRewrite::kChanged);
  EXPECT_TRUE(IsRemovedLogValue(out));
  EXPECT_EQ(RewriteLogEntry(109, kLogRemoved, keep_all, &out),
            LogRewrite::kUnchanged);
  // A format-1 entry is removed whole.
  const std::string key = EventKey(1, "u", 5, 7);
  EXPECT_EQ(RewriteLogEntry(
                7, LogValueV1(key, "V"),
                [](const StoredEvent&) { return false; }, &out),
            LogRewrite::kChanged);
  EXPECT_TRUE(IsRemovedLogValue(out));
  EXPECT_EQ(RewriteLogEntry(7, "\x03", keep_all, &out),
            LogRewrite::kMalformed);
}

}  // namespace
}  // namespace rawfeat
