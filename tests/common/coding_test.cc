#include "server/common/coding.h"

#include <limits>
#include <random>

#include "gtest/gtest.h"

namespace rawfeat {
namespace {

TEST(CodingTest, BigEndianRoundTripAndOrder) {
  std::mt19937_64 rng(1);
  for (int i = 0; i < 1000; ++i) {
    const uint64_t a = rng(), b = rng();
    std::string ea, eb;
    PutBigEndian64(&ea, a);
    PutBigEndian64(&eb, b);
    EXPECT_EQ(DecodeBigEndian64(ea.data()), a);
    EXPECT_EQ(a < b, ea < eb);
  }
  std::string e;
  PutBigEndian32(&e, 0xdeadbeef);
  EXPECT_EQ(DecodeBigEndian32(e.data()), 0xdeadbeefu);
}

TEST(CodingTest, SignedOrderPreserved) {
  const int64_t values[] = {
      std::numeric_limits<int64_t>::min(), -1000000, -1, 0, 1, 1000000,
      std::numeric_limits<int64_t>::max()};
  std::string prev;
  for (int64_t v : values) {
    std::string e;
    PutBigEndian64(&e, OrderedFromSigned(v));
    EXPECT_EQ(SignedFromOrdered(DecodeBigEndian64(e.data())), v);
    if (!prev.empty()) {
      EXPECT_LT(prev, e) << v;
    }
    prev = e;
  }
}

TEST(CodingTest, VarintAndZigZag) {
  const int64_t values[] = {0,
                            1,
                            -1,
                            63,
                            -64,
                            1 << 20,
                            std::numeric_limits<int64_t>::min(),
                            std::numeric_limits<int64_t>::max()};
  std::string buf;
  for (int64_t v : values) PutVarint64(&buf, ZigZagEncode(v));
  absl::string_view in(buf);
  for (int64_t v : values) {
    uint64_t z;
    ASSERT_TRUE(GetVarint64(&in, &z));
    EXPECT_EQ(ZigZagDecode(z), v);
  }
  EXPECT_TRUE(in.empty());
  absl::string_view truncated("\x80", 1);
  uint64_t z;
  EXPECT_FALSE(GetVarint64(&truncated, &z));
}

TEST(CodingTest, LengthPrefixedRejectsTruncation) {
  std::string buf;
  PutLengthPrefixed(&buf, "hello");
  absl::string_view in(buf.data(), buf.size() - 1);
  absl::string_view out;
  EXPECT_FALSE(GetLengthPrefixed(&in, &out));
}

}  // namespace
}  // namespace rawfeat
