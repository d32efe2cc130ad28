// The numeric contract of the aggregations (README, "Numeric contract"),
// one test per claim. Expected values were computed from the definitions
// with exact arithmetic (Python's fractions.Fraction, float() of it, then
// math.sqrt), never with the implementation's formula.

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "absl/status/statusor.h"
#include "gtest/gtest.h"
#include "server/aggregation/aggregator.h"

namespace rawfeat {
namespace {

constexpr int64_t kI64Max = std::numeric_limits<int64_t>::max();
constexpr int64_t kI64Min = std::numeric_limits<int64_t>::min();

FieldValue Double(double d) {
  FieldValue v;
  v.type = v1::DOUBLE;
  v.d = d;
  return v;
}

FieldValue Int(int64_t i) {
  FieldValue v;
  v.type = v1::INT64;
  v.i = i;
  return v;
}

// Finalizes `agg` over `values` (field type of the first value).
absl::StatusOr<v1::Value> Aggregate(const std::string& agg,
                                    const std::vector<FieldValue>& values) {
  v1::FeatureDef def;
  def.set_aggregation(agg);
  auto a = BuiltinAggregators().Find(agg)->create(def, values.front().type);
  uint64_t seq = 0;
  for (const auto& v : values) {
    ++seq;
    a->Add(v, static_cast<int64_t>(seq), seq);
  }
  v1::Value out;
  absl::Status s = a->Finalize(&out);
  if (!s.ok()) return s;
  return out;
}

std::vector<FieldValue> Doubles(const std::vector<double>& xs) {
  std::vector<FieldValue> v;
  for (double x : xs) v.push_back(Double(x));
  return v;
}

std::vector<FieldValue> Ints(const std::vector<int64_t>& xs) {
  std::vector<FieldValue> v;
  for (int64_t x : xs) v.push_back(Int(x));
  return v;
}

// Bit-identical (so 0.0 and -0.0 differ, and the last bit counts).
void ExpectBits(double want, const absl::StatusOr<v1::Value>& got,
                const std::string& what) {
  ASSERT_TRUE(got.ok()) << what << ": " << got.status();
  ASSERT_EQ(got->kind_case(), v1::Value::kDoubleValue) << what;
  EXPECT_EQ(std::signbit(want), std::signbit(got->double_value())) << what;
  EXPECT_EQ(want, got->double_value()) << what;
}

struct StddevRow {
  const char* what;
  std::vector<double> values;
  double want;
};

TEST(NumericContractTest, StddevIsTheExactVarianceRoundedOnce) {
  std::vector<double> epoch;
  for (int i = 0; i < 10; ++i) epoch.push_back(1764547200 + 0.5 * i);
  const std::vector<StddevRow> rows = {
      // The four rows of issue 11 (the old formula gave 0, 21.33, 0 and
      // 0.09999999999999998).
      {"1e9 + k", {1e9, 1e9 + 1, 1e9 + 2}, 1.0},
      {"epoch seconds + 0.5 i", epoch, 1.5138251770487459},
      {"1e15 + odd",
       {1e15 + 1, 1e15 + 3, 1e15 + 5, 1e15 + 7},
       2.581988897471611},
      {"0.1 0.2 0.3", {0.1, 0.2, 0.3}, 0.09999999999999999},
      // All equal, signed zeros: exactly 0.0.
      {"all equal", {7.25, 7.25, 7.25, 7.25, 7.25}, 0.0},
      {"signed zeros", {-0.0, 0.0, -0.0}, 0.0},
      // A subnormal variance, rounded once with a subnormal's precision.
      {"subnormal variance", {1e-160, 3e-160}, 1.4142056902605667e-160},
      // Variances below half the smallest subnormal round to 0.
      {"squares below 2^-1074",
       {std::ldexp(1.0, -540), std::ldexp(1.0, -539)},
       0.0},
      {"subnormal values", {5e-324, 1e-323, 1.5e-323}, 0.0},
  };
  for (const auto& row : rows) {
    ExpectBits(row.want, Aggregate("stddev", Doubles(row.values)), row.what);
  }
}

TEST(NumericContractTest, StddevOfInt64IsExactOverTheWholeRange) {
  ExpectBits(1.0,
             Aggregate("stddev", Ints({kI64Max, kI64Max - 1, kI64Max - 2})),
             "near 2^63");
  ExpectBits(1.3043817825332783e+19,
             Aggregate("stddev", Ints({kI64Min, kI64Max})), "-2^63, 2^63-1");
  ExpectBits(1.5811388300841898,
             Aggregate("stddev", Ints({1764547200000000, 1764547200000001,
                                       1764547200000002, 1764547200000003,
                                       1764547200000004})),
             "epoch microseconds");
}

TEST(NumericContractTest, StddevIsNullBelowTwoValues) {
  auto one = Aggregate("stddev", Doubles({1e300}));
  ASSERT_TRUE(one.ok());
  EXPECT_EQ(one->kind_case(), v1::Value::KIND_NOT_SET);
}

TEST(NumericContractTest, VarianceAboveTheLargestDoubleIsOutOfRange) {
  // The squares themselves are exact (1e300^2 is far above DBL_MAX).
  for (const auto& values :
       {Doubles({1e154, -1e154}), Doubles({1e300, 1e-300, -1e300})}) {
    auto got = Aggregate("stddev", values);
    EXPECT_EQ(got.status().code(), absl::StatusCode::kOutOfRange);
    EXPECT_NE(got.status().message().find("variance"), std::string::npos);
  }
  // Just inside: a spread of 1e150 is fine.
  ExpectBits(1.414213562373095e+150,
             Aggregate("stddev", Doubles({1e150, -1e150})), "1e150");
}

TEST(NumericContractTest, Int64SumIsExactAndOverflowIsOutOfRange) {
  auto sum =
      Aggregate("sum", Ints({int64_t{1} << 62, (int64_t{1} << 62) - 1, -1}));
  ASSERT_TRUE(sum.ok());
  EXPECT_EQ(sum->int64_value(), kI64Max - 1);
  // Partial sums may leave int64; only the result must fit.
  sum = Aggregate("sum", Ints({kI64Max, 1, -1}));
  ASSERT_TRUE(sum.ok());
  EXPECT_EQ(sum->int64_value(), kI64Max);
  EXPECT_EQ(Aggregate("sum", Ints({kI64Max, 1})).status().code(),
            absl::StatusCode::kOutOfRange);
  EXPECT_EQ(Aggregate("sum", Ints({kI64Min, -1})).status().code(),
            absl::StatusCode::kOutOfRange);
}

TEST(NumericContractTest, Int64AvgRoundsTheExactSumNotEachValue) {
  // Each value rounded to double first would give 2^53 exactly.
  const int64_t v = (int64_t{1} << 53) + 1;
  ExpectBits(9007199254740994.0, Aggregate("avg", Ints({v, v, v})),
             "avg of 2^53 + 1");
  // The exact sum beyond int64 is still exact before its rounding.
  ExpectBits(static_cast<double>(kI64Max),
             Aggregate("avg", Ints({kI64Max, kI64Max})), "avg near 2^63");
}

TEST(NumericContractTest, DoubleSumIsCorrectlyRoundedOnce) {
  ExpectBits(1.0, Aggregate("sum", Doubles({1e100, 1.0, -1e100})),
             "cancellation");
  ExpectBits(1e-300, Aggregate("sum", Doubles({1e300, 1e-300, -1e300})),
             "1e300 next to 1e-300");
  ExpectBits(1.0, Aggregate("avg", Doubles({1e100, 3.0, -1e100})),
             "avg = RN(sum) / n");
  EXPECT_EQ(Aggregate("sum", Doubles({1.7e308, 1.7e308})).status().code(),
            absl::StatusCode::kOutOfRange);
}

// Every aggregation's result has the type its spec declares.
TEST(NumericContractTest, ResultsHaveTheDeclaredType) {
  using R = AggregationSpec::Result;
  for (const auto& e : BuiltinAggregators().entries()) {
    for (v1::FieldType type : {v1::INT64, v1::DOUBLE, v1::STRING, v1::BOOL}) {
      if (!e.spec.types.empty() &&
          std::find(e.spec.types.begin(), e.spec.types.end(), type) ==
              e.spec.types.end()) {
        continue;
      }
      v1::FeatureDef def;
      def.set_aggregation(e.spec.name);
      def.set_k(e.spec.takes_k ? 2 : 0);
      auto a = e.create(def, type);
      FieldValue v;
      v.type = type;
      v.s = "x";
      a->Add(v, 1, 1);
      a->Add(v, 2, 2);
      v1::Value out;
      ASSERT_TRUE(a->Finalize(&out).ok()) << e.spec.name;
      const v1::Value::KindCase field_kind =
          type == v1::INT64    ? v1::Value::kInt64Value
          : type == v1::DOUBLE ? v1::Value::kDoubleValue
          : type == v1::STRING ? v1::Value::kStringValue
                               : v1::Value::kBoolValue;
      switch (e.spec.result) {
        case R::kInt64:
          EXPECT_EQ(out.kind_case(), v1::Value::kInt64Value) << e.spec.name;
          break;
        case R::kDouble:
          EXPECT_EQ(out.kind_case(), v1::Value::kDoubleValue) << e.spec.name;
          break;
        case R::kField:
          EXPECT_EQ(out.kind_case(), field_kind) << e.spec.name;
          break;
        case R::kListOfField:
          ASSERT_EQ(out.kind_case(), v1::Value::kListValue) << e.spec.name;
          ASSERT_EQ(out.list_value().values_size(), 2) << e.spec.name;
          EXPECT_EQ(out.list_value().values(0).kind_case(), field_kind);
          break;
      }
      // Reset gives the empty state back.
      a->Reset();
      v1::Value empty, fresh;
      ASSERT_TRUE(a->Finalize(&empty).ok());
      ASSERT_TRUE(e.create(def, type)->Finalize(&fresh).ok());
      EXPECT_EQ(empty.SerializeAsString(), fresh.SerializeAsString())
          << e.spec.name;
    }
  }
}

}  // namespace
}  // namespace rawfeat
