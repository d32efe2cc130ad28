#include "server/aggregation/exact_sum.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace rawfeat {
namespace {

double SumOf(const std::vector<double>& xs) {
  ExactSum s;
  for (double x : xs) s.Add(x);
  return *s.Round();
}

TEST(ExactSumTest, KnownCases) {
  EXPECT_EQ(SumOf({}), 0.0);
  EXPECT_EQ(SumOf({1e100, 1.0, -1e100}), 1.0);
  EXPECT_EQ(SumOf(std::vector<double>(10, 0.1)), 1.0);  // as math.fsum
  EXPECT_EQ(SumOf({0.1, 0.2, 0.3}), 0.6);
  EXPECT_EQ(SumOf({1.0, 1e-16, -1.0}), 1e-16);
  EXPECT_EQ(SumOf({std::ldexp(1.0, 100), 1.0, -std::ldexp(1.0, 100)}), 1.0);
  const double tiny = std::numeric_limits<double>::denorm_min();
  EXPECT_EQ(SumOf({tiny, tiny, tiny}), 3 * tiny);
  EXPECT_EQ(SumOf({-2.5, -2.5}), -5.0);
  const double big = std::numeric_limits<double>::max();
  EXPECT_EQ(SumOf({big, -big, big}), big);
  ExactSum overflow;
  overflow.Add(big);
  overflow.Add(big);
  EXPECT_EQ(overflow.Round().status().code(), absl::StatusCode::kOutOfRange);
}

TEST(ExactSumTest, RoundsHalfToEven) {
  // 2^53 + 1 is a tie between 2^53 and 2^53 + 2: even wins.
  EXPECT_EQ(SumOf({std::ldexp(1.0, 53), 1.0}), std::ldexp(1.0, 53));
  // 2^53 + 3 ties between 2^53 + 2 and 2^53 + 4: even mantissa is + 4.
  EXPECT_EQ(SumOf({std::ldexp(1.0, 53), 3.0}), std::ldexp(1.0, 53) + 4);
  // Just above the tie rounds up.
  EXPECT_EQ(SumOf({std::ldexp(1.0, 53), 1.0, std::ldexp(1.0, -60)}),
            std::ldexp(1.0, 53) + 2);
}

// Values k * 2^-20 with integer k: the exact sum is an integer we can form
// in 128 bits and round with one correctly rounded conversion.
TEST(ExactSumTest, MatchesExactIntegerArithmetic) {
  std::mt19937_64 rng(11);
  for (int trial = 0; trial < 200; ++trial) {
    std::vector<double> xs;
    __int128 exact = 0;
    const int n = 1 + rng() % 200;
    for (int i = 0; i < n; ++i) {
      const int64_t k = static_cast<int64_t>(rng() >> (rng() % 40 + 12)) *
                        (rng() % 2 ? 1 : -1);
      exact += k;
      xs.push_back(std::ldexp(static_cast<double>(k), -20));
      ASSERT_EQ(std::ldexp(xs.back(), 20), static_cast<double>(k));
    }
    const double want = std::ldexp(static_cast<double>(exact), -20);
    EXPECT_EQ(SumOf(xs), want) << trial;
  }
}

TEST(ExactSumTest, OrderAndGroupingIndependent) {
  std::mt19937_64 rng(5);
  std::vector<double> xs;
  for (int i = 0; i < 500; ++i) {
    const double mag = std::ldexp(1.0, static_cast<int>(rng() % 200) - 100);
    xs.push_back((rng() % 2 ? 1 : -1) * mag *
                 std::uniform_real_distribution<double>(1, 2)(rng));
  }
  xs.push_back(std::ldexp(1.0, 100));
  xs.push_back(-std::ldexp(1.0, 100));
  xs.push_back(std::ldexp(1.0, 100));
  const double reference = SumOf(xs);
  for (int order = 0; order < 20; ++order) {
    std::shuffle(xs.begin(), xs.end(), rng);
    EXPECT_EQ(SumOf(xs), reference);
    // Random split into parts, merged.
    ExactSum total;
    size_t i = 0;
    while (i < xs.size()) {
      const size_t len = 1 + rng() % 50;
      ExactSum part;
      for (size_t j = i; j < std::min(xs.size(), i + len); ++j) part.Add(xs[j]);
      total.Merge(part);
      i += len;
    }
    EXPECT_EQ(*total.Round(), reference);
  }
}

// A sliding window's life: large values come and go around small ones, the
// sum changes sign, and a copy travels through Serialize/Deserialize and
// Merge (as tiles do). The exact sum is an integer of units 2^-20 formed in
// 128 bits; only the values' widths are read, so this checks that none is
// missed whatever was added before.
// A state reused for another entity is cleared, not re-made: Clear leaves
// exactly zero, also after an input that failed to merge halfway.
TEST(ExactSumTest, ClearLeavesZeroEvenAfterAMalformedMerge) {
  std::string empty;
  ExactSum().Serialize(&empty);
  std::mt19937_64 rng(11);
  for (int trial = 0; trial < 200; ++trial) {
    ExactSum sum;
    for (int i = 0; i < 1 + static_cast<int>(rng() % 50); ++i) {
      sum.Add(std::ldexp(static_cast<double>(rng() % 1000) - 500,
                         static_cast<int>(rng() % 2000) - 1000));
    }
    if (trial % 2 == 0) {
      // Another sum's bytes, cut short: the merge fails midway.
      ExactSum other;
      other.Add(std::ldexp(1.0, static_cast<int>(rng() % 2000) - 1000) * 3);
      other.Add(1e300);
      std::string bytes;
      other.Serialize(&bytes);
      absl::string_view cut(bytes.data(), bytes.size() - 1 - rng() % 3);
      EXPECT_FALSE(sum.MergeSerialized(&cut));
    }
    sum.Clear();
    std::string cleared;
    sum.Serialize(&cleared);
    EXPECT_EQ(cleared, empty) << trial;
    ASSERT_TRUE(sum.Round().ok());
    EXPECT_EQ(*sum.Round(), 0.0);
    sum.Add(0.5);
    EXPECT_EQ(*sum.Round(), 0.5);
  }
}

TEST(ExactSumTest, AddRemoveSerializeAndMergeKeepTheExactValue) {
  std::mt19937_64 rng(17);
  for (int trial = 0; trial < 300; ++trial) {
    ExactSum sum;
    __int128 exact = 0;  // units of 2^-20, small values only
    std::vector<double> big;
    for (int step = 0; step < 60; ++step) {
      const int64_t k = static_cast<int64_t>(rng() >> (rng() % 50 + 14)) *
                        (rng() % 2 ? 1 : -1);
      sum.Add(std::ldexp(static_cast<double>(k), -20));
      exact += k;
      if (rng() % 3 == 0) {  // a large value enters, or one leaves
        if (!big.empty() && rng() % 2) {
          sum.Add(-big.back());
          big.pop_back();
        } else {
          big.push_back((rng() % 2 ? 1 : -1) *
                        std::ldexp(1.0, 200 + static_cast<int>(rng() % 700)));
          sum.Add(big.back());
        }
      }
      if (rng() % 10 == 0) {  // through the tile encoding and a merge
        std::string bytes;
        sum.Serialize(&bytes);
        absl::string_view in(bytes);
        // Decoded into a state that held another value, or merged from
        // its bytes into one that holds a value and then drops it.
        const double other = std::ldexp(
            (rng() % 2 ? 1.0 : -1.0), static_cast<int>(rng() % 900) - 450);
        ExactSum merged;
        merged.Add(other);
        if (rng() % 2) {
          ExactSum copy;
          copy.Add(-other * 3);
          ASSERT_TRUE(copy.Deserialize(&in));
          merged.Merge(copy);
        } else {
          ASSERT_TRUE(merged.MergeSerialized(&in));
        }
        EXPECT_TRUE(in.empty());
        merged.Add(-other);
        sum = merged;
      }
    }
    for (double b : big) sum.Add(-b);
    EXPECT_EQ(*sum.Round(), std::ldexp(static_cast<double>(exact), -20))
        << trial;
  }
}

}  // namespace
}  // namespace rawfeat
