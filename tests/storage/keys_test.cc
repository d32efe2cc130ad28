#include "server/storage/keys.h"

#include <algorithm>
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

}  // namespace
}  // namespace rawfeat
