#include "server/common/time_util.h"

#include <random>
#include <string>

#include "absl/strings/str_format.h"
#include "absl/time/time.h"
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

// RFC 3339 texts as absl::ParseTime reads them, floored to microseconds:
// the reference for ParseTime's own reading of the common form.
absl::StatusOr<int64_t> AbslReading(const std::string& text) {
  absl::Time parsed;
  std::string err;
  if (!absl::ParseTime(absl::RFC3339_full, text, &parsed, &err)) {
    return absl::InvalidArgumentError(err);
  }
  int64_t us = absl::ToInt64Microseconds(parsed - absl::UnixEpoch());
  if (absl::FromUnixMicros(us) > parsed) --us;
  if (us < kMinMicros || us > kMaxMicros) {
    return absl::InvalidArgumentError("out of range");
  }
  return us;
}

TEST(TimeUtilTest, ReadsRfc3339AsAbslDoes) {
  // Dates and clocks at and past every field's limits (Feb 29 of leap and
  // other years, 30-day months, hour 24, second 60), fractions of 0-12
  // digits, offsets up to +-25:59, years 1 to 9999 with the range's ends.
  std::mt19937_64 rng(20261203);
  auto pick = [&](int lo, int hi) {
    return static_cast<int>(lo + rng() % static_cast<uint64_t>(hi - lo + 1));
  };
  int compared = 0, valid = 0;
  for (int i = 0; i < 200000; ++i) {
    const int year = pick(0, 9) == 0 ? (pick(0, 1) ? 1 : 9999)
                     : pick(0, 3) == 0 ? pick(1896, 2104)
                                       : pick(1, 9999);
    std::string text = absl::StrFormat(
        "%04d-%02d-%02dT%02d:%02d:%02d", year, pick(1, 12),
        pick(0, 4) == 0 ? pick(28, 31) : pick(1, 31), pick(0, 24),
        pick(0, 60), pick(0, 60));
    if (pick(0, 1) == 1) {
      text += ".";
      const int digits = pick(0, 12);
      for (int d = 0; d < digits; ++d) text += static_cast<char>('0' + pick(0, 9));
    }
    switch (pick(0, 3)) {
      case 0:
        text += "Z";
        break;
      case 1:
        text += absl::StrFormat("+%02d:%02d", pick(0, 25), pick(0, 59));
        break;
      case 2:
        text += absl::StrFormat("-%02d:%02d", pick(0, 25), pick(0, 59));
        break;
      default:
        text += pick(0, 1) ? "z" : "";
    }
    const auto ours = ParseTime(text);
    const auto reference = AbslReading(text);
    ASSERT_EQ(ours.ok(), reference.ok()) << text << ": " << ours.status();
    if (ours.ok()) {
      ASSERT_EQ(*ours, *reference) << text;
      ++valid;
    }
    ++compared;
  }
  // Both kinds were drawn often.
  EXPECT_GT(valid, compared / 10);
  EXPECT_LT(valid, compared - compared / 10);
  EXPECT_EQ(*ParseTime("0001-01-01T00:00:00Z"), kMinMicros);
  EXPECT_EQ(*ParseTime("9999-12-31T23:59:59.999999999Z"), kMaxMicros);
  EXPECT_FALSE(ParseTime("0001-01-01T00:00:00+00:01").ok());
  EXPECT_FALSE(ParseTime("9999-12-31T23:59:59-00:01").ok());
  EXPECT_FALSE(ParseTime("2026-11-24T09:00:00.Z").ok());
  EXPECT_FALSE(ParseTime("2026-11-24T09:00:00Zjunk").ok());
}

TEST(TimeUtilTest, FormatsUtc) {
  EXPECT_EQ(FormatMicros(1795478400LL * 1000000), "2026-11-24T00:00:00Z");
  EXPECT_EQ(FormatMicros(1795478400LL * 1000000 + 120),
            "2026-11-24T00:00:00.000120Z");
  EXPECT_EQ(*ParseTime(FormatMicros(-123456789)), -123456789);
}

}  // namespace
}  // namespace rawfeat
