#include "server/common/time_util.h"

#include "gtest/gtest.h"

namespace rawfeat {
namespace {

TEST(TimeUtilTest, ParsesRfc3339WithOffsets) {
  auto utc = ParseTime("2026-11-24T00:00:00Z");
  ASSERT_TRUE(utc.ok()) << utc.status();
  EXPECT_EQ(*utc, 1795478400LL * 1000000);
  auto seoul = ParseTime("2026-11-24T09:00:00+09:00");
  ASSERT_TRUE(seoul.ok());
  EXPECT_EQ(*seoul, *utc);
  auto frac = ParseTime("2026-11-24T00:00:00.123456Z");
  ASSERT_TRUE(frac.ok());
  EXPECT_EQ(*frac - *utc, 123456);
}

TEST(TimeUtilTest, FloorsSubMicroseconds) {
  auto t = ParseTime("1969-12-31T23:59:59.9999995Z");
  ASSERT_TRUE(t.ok());
  EXPECT_EQ(*t, -1);  // floored, not truncated toward zero
  google::protobuf::Timestamp ts;
  ts.set_seconds(-1);
  ts.set_nanos(999999999);
  EXPECT_EQ(*TimestampToMicros(ts), -1);
  EXPECT_EQ(*TimestampToMicros(MicrosToTimestamp(-1)), -1);
}

TEST(TimeUtilTest, IntegersNeedAUnit) {
  EXPECT_EQ(*ParseTime("1700000000s"), 1700000000LL * 1000000);
  EXPECT_EQ(*ParseTime("1700000000000ms"), 1700000000LL * 1000000);
  EXPECT_EQ(*ParseTime("1700000000000000us"), 1700000000LL * 1000000);
  EXPECT_FALSE(ParseTime("1700000000").ok());
  EXPECT_EQ(*ParseTime("1700000000", TimeUnit::kSeconds),
            1700000000LL * 1000000);
}

TEST(TimeUtilTest, RejectsGarbageAndOutOfRange) {
  EXPECT_FALSE(ParseTime("yesterday").ok());
  EXPECT_FALSE(ParseTime("").ok());
  EXPECT_FALSE(ParseTime("2026-13-01T00:00:00Z").ok());
  EXPECT_FALSE(ParseTime("99999999999999s").ok());
  google::protobuf::Timestamp ts;
  ts.set_seconds(253402300800);  // 10000-01-01
  EXPECT_FALSE(TimestampToMicros(ts).ok());
  ts.set_seconds(0);
  ts.set_nanos(-1);
  EXPECT_FALSE(TimestampToMicros(ts).ok());
}

TEST(TimeUtilTest, FormatsUtc) {
  EXPECT_EQ(FormatMicros(1795478400LL * 1000000), "2026-11-24T00:00:00Z");
  EXPECT_EQ(FormatMicros(1795478400LL * 1000000 + 120),
            "2026-11-24T00:00:00.000120Z");
  EXPECT_EQ(*ParseTime(FormatMicros(-123456789)), -123456789);
}

}  // namespace
}  // namespace rawfeat
