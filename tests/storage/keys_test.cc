#include "server/storage/keys.h"

#include <algorithm>
#include <limits>
#include <utility>
#include <random>
#include <tuple>
#include <vector>

#include "gtest/gtest.h"

namespace rawfeat {
namespace {

TEST(KeysTest, EventKeyRoundTrip) {
  const std::string k = EventKey(7, "user-1", -42, 99);
  ParsedEventKey p;
  ASSERT_TRUE(ParseEventKey(k, &p));
  EXPECT_EQ(p.stream_id, 7u);
  EXPECT_EQ(p.entity, "user-1");
  EXPECT_EQ(p.time_us, -42);
  EXPECT_EQ(p.seq, 99u);
  EXPECT_FALSE(ParseEventKey("short", &p));
}

TEST(KeysTest, ByteOrderIsStreamEntityTimeSeqOrder) {
  std::mt19937 rng(3);
  const std::vector<std::string> entities = {"",      "a",    "ab", "b",
                                             "a\x7f", "\xff", "ba"};
  using Tuple = std::tuple<uint32_t, std::string, int64_t, uint64_t>;
  std::vector<Tuple> tuples;
  for (int i = 0; i < 2000; ++i) {
    tuples.emplace_back(rng() % 3, entities[rng() % entities.size()],
                        static_cast<int64_t>(rng()) - (1LL << 31),
                        rng() % 1000);
  }
  std::vector<Tuple> by_key = tuples;
  std::sort(tuples.begin(), tuples.end());
  std::sort(by_key.begin(), by_key.end(), [](const Tuple& a, const Tuple& b) {
    return EventKey(std::get<0>(a), std::get<1>(a), std::get<2>(a),
                    std::get<3>(a)) < EventKey(std::get<0>(b), std::get<1>(b),
                                               std::get<2>(b), std::get<3>(b));
  });
  EXPECT_EQ(tuples, by_key);
}

TEST(KeysTest, EntityPrefixesDoNotOverlap) {
  const std::string a = EntityPrefix(1, "a");
  const std::string ab_key = EventKey(1, "ab", 0, 1);
  EXPECT_NE(ab_key.compare(0, a.size(), a), 0);
  const std::string a_key = EventKey(1, "a", 5, 1);
  EXPECT_EQ(a_key.compare(0, a.size(), a), 0);
  EXPECT_LT(a_key, PrefixSuccessor(a));
  EXPECT_LT(PrefixSuccessor(a), ab_key);
}

TEST(KeysTest, OnlyTheTailBlockKeyIsTheTails) {
  EXPECT_TRUE(IsTailBlockKey(TailBlockKey(3, "u")));
  EXPECT_TRUE(IsTailBlockKey(TailBlockKey(3, "")));
  // Full blocks, even one ending at the latest time an event may have,
  // sort before it.
  for (const std::string& full :
       {BlockKey(3, "u", 0, 0), BlockKey(3, "u", -1, 7),
        BlockKey(3, "u", 253402300799LL * 1000000 + 999999,
                 std::numeric_limits<uint64_t>::max())}) {
    EXPECT_FALSE(IsTailBlockKey(full));
    EXPECT_LT(full, TailBlockKey(3, "u"));
  }
  // An entity whose name ends in 0xff bytes is still read by its key's end.
  EXPECT_FALSE(IsTailBlockKey(BlockKey(3, std::string(20, '\xff'), 5, 5)));
}

TEST(KeysTest, PrefixSuccessor) {
  EXPECT_EQ(PrefixSuccessor("ab"), "ac");
  EXPECT_EQ(PrefixSuccessor(std::string("a\xff", 2)), "b");
  EXPECT_EQ(PrefixSuccessor(std::string("\xff\xff", 2)), "");
}

TEST(KeysTest, LogKeysSortBySeq) {
  EXPECT_LT(LogKey(9), LogKey(10));
  EXPECT_LT(LogKey(255), LogKey(256));
  EXPECT_EQ(ParseLogKey(LogKey(123456789)), 123456789u);
}

TEST(KeysTest, IdRecordsOfEveryFormRoundTrip) {
  std::string hash(32, '\0');
  for (int i = 0; i < 32; ++i) hash[i] = static_cast<char>(0xa0 + i);
  const int64_t kMin = std::numeric_limits<int64_t>::min();
  const int64_t kMax = std::numeric_limits<int64_t>::max();
  for (const auto& [seq, time] : std::vector<std::pair<uint64_t, int64_t>>{
           {1, 0}, {127, -1}, {300, 1795478400000000}, {~0ULL, kMin},
           {1ULL << 40, kMax}}) {
    const std::string v = EncodeIdRecord(seq, hash, time);
    EXPECT_GE(v.size(), 18u);
    EXPECT_LE(v.size(), 36u);  // never an older record's 40 or 48 bytes
    IdRecord r;
    ASSERT_TRUE(DecodeIdRecord(v, &r)) << seq;
    EXPECT_EQ(r.seq, seq);
    EXPECT_TRUE(r.has_time);
    EXPECT_EQ(r.time_us, time);
    EXPECT_EQ(r.hash, absl::string_view(hash).substr(0, kIdHashBytes));
    // Every cut of it is malformed.
    for (size_t n = 0; n < v.size(); ++n) {
      EXPECT_FALSE(DecodeIdRecord(absl::string_view(v).substr(0, n), &r));
    }
  }
  // The forms written before format 4: be64 seq | 32-byte hash, and the
  // same with be64(time ^ 2^63) appended.
  std::string old = std::string("\0\0\0\0\0\0\x01\x02", 8) + hash;
  IdRecord r;
  ASSERT_TRUE(DecodeIdRecord(old, &r));
  EXPECT_EQ(r.seq, 258u);
  EXPECT_FALSE(r.has_time);
  EXPECT_EQ(r.hash, absl::string_view(hash).substr(0, kIdHashBytes));
  old += std::string("\x80\0\0\0\0\0\0\x05", 8);
  ASSERT_TRUE(DecodeIdRecord(old, &r));
  EXPECT_EQ(r.seq, 258u);
  EXPECT_TRUE(r.has_time);
  EXPECT_EQ(r.time_us, 5);
  EXPECT_FALSE(DecodeIdRecord(old + "x", &r));
}

}  // namespace
}  // namespace rawfeat
