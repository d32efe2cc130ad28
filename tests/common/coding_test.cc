#include "server/common/coding.h"

#include <limits>
#include <random>
#include <string>
#include <vector>

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

TEST(CodingTest, VarintOfEveryLengthAndNoLonger) {
  // Values of 1 to 10 bytes, each at both ends of its length.
  std::vector<uint64_t> values;
  for (int bits = 0; bits <= 63; bits += 7) {
    values.push_back(bits == 0 ? 0 : uint64_t{1} << bits);
    values.push_back(bits + 7 >= 64 ? std::numeric_limits<uint64_t>::max()
                                    : (uint64_t{1} << (bits + 7)) - 1);
  }
  for (uint64_t v : values) {
    std::string buf;
    PutVarint64(&buf, v);
    buf += "rest";
    absl::string_view in(buf);
    uint64_t got = 0;
    ASSERT_TRUE(GetVarint64(&in, &got)) << v;
    EXPECT_EQ(got, v);
    EXPECT_EQ(in, "rest") << v;  // exactly its bytes consumed
    // Every proper prefix of its bytes is truncated.
    const size_t length = buf.size() - 4;
    for (size_t cut = 0; cut < length; ++cut) {
      absl::string_view part(buf.data(), cut);
      EXPECT_FALSE(GetVarint64(&part, &got)) << v << " cut at " << cut;
    }
  }
  // An 11th byte is never read: ten continuation bytes are malformed.
  const std::string eleven = std::string(10, '\x80') + '\x01';
  absl::string_view in(eleven);
  uint64_t got;
  EXPECT_FALSE(GetVarint64(&in, &got));
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
