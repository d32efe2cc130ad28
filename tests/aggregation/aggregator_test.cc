#include "server/aggregation/aggregator.h"

#include <algorithm>
#include <cmath>
#include <random>

#include "gtest/gtest.h"
#include "tests/test_util.h"

namespace rawfeat {
namespace {

struct Ev {
  FieldValue v;
  std::string s;  // backing store for strings
  int64_t t;
  uint64_t seq;
};

std::vector<Ev> RandomEvents(v1::FieldType type, std::mt19937_64& rng, int n) {
  std::vector<Ev> evs(n);
  for (int i = 0; i < n; ++i) {
    Ev& e = evs[i];
    e.v.type = type;
    switch (type) {
      case v1::INT64:
        // Small values, and large ones with a small spread (exact squares
        // beyond 2^64, partial sums beyond int64).
        e.v.i = rng() % 3 == 0
                    ? (int64_t{1} << 62) + static_cast<int64_t>(rng() % 5)
                    : static_cast<int64_t>(rng() % 2000) - 1000;
        break;
      case v1::DOUBLE: {
        const int kind = rng() % 5;
        e.v.d = kind == 0   ? std::ldexp(1.0, 100) * (rng() % 2 ? 1 : -1)
                : kind == 1 ? static_cast<double>(rng() % 7) / 3
                : kind == 2 ? 1e15 + static_cast<double>(rng() % 9)
                            : static_cast<double>(rng() % 100) - 50.5;
        break;
      }
      case v1::STRING:
        // Mostly short; some longer than a state keeps inline (32 bytes).
        e.s = std::string(rng() % 8 == 0 ? 30 + rng() % 40 : 1 + rng() % 3,
                          static_cast<char>('a' + rng() % 4));
        break;
      case v1::BOOL:
        e.v.b = rng() % 2;
        break;
      default:
        break;
    }
    // Few distinct times so ties (broken by seq) happen.
    e.t = static_cast<int64_t>(rng() % 10);
    e.seq = static_cast<uint64_t>(i + 1);
  }
  for (auto& e : evs) {
    if (type == v1::STRING) e.v.s = e.s;
  }
  return evs;
}

// The finalized value, or its error code (an INT64 sum may overflow: then
// every grouping must overflow alike).
std::string Final(const Aggregator& a) {
  v1::Value v;
  const absl::Status s = a.Finalize(&v);
  if (!s.ok()) return absl::StatusCodeToString(s.code());
  return testing::Canonical(v);
}

struct Case {
  const char* agg;
  v1::FieldType type;
};

// Test names like sum_DOUBLE.
std::string CaseName(const ::testing::TestParamInfo<Case>& info) {
  return std::string(info.param.agg) + "_" +
         v1::FieldType_Name(info.param.type);
}

class AggregatorPropertyTest : public ::testing::TestWithParam<Case> {
 protected:
  void SetUp() override {
    entry_ = BuiltinAggregators().Find(GetParam().agg);
    ASSERT_NE(entry_, nullptr);
    def_.set_aggregation(GetParam().agg);
    def_.set_k(3);
  }
  // A new state of the parameter's aggregation (last_k with k = 3).
  std::unique_ptr<Aggregator> Make() const {
    return entry_->create(def_, GetParam().type);
  }

  const AggregatorRegistry::Entry* entry_ = nullptr;
  v1::FeatureDef def_;
};

TEST_P(AggregatorPropertyTest, MergeOfPartsEqualsAddingAllInAnyOrder) {
  const Case c = GetParam();
  std::mt19937_64 rng(std::hash<std::string>()(c.agg) + c.type);
  for (int trial = 0; trial < 30; ++trial) {
    auto evs = RandomEvents(c.type, rng, static_cast<int>(rng() % 40));
    auto all = Make();
    for (const auto& e : evs) all->Add(e.v, e.t, e.seq);
    const std::string want = Final(*all);
    for (int order = 0; order < 20; ++order) {
      std::shuffle(evs.begin(), evs.end(), rng);
      // Moving an Ev moves its string: point the views at the new homes.
      for (auto& e : evs) {
        if (c.type == v1::STRING) e.v.s = e.s;
      }
      // Random split into parts; parts merged in random order.
      std::vector<std::unique_ptr<Aggregator>> parts;
      for (const auto& e : evs) {
        if (parts.empty() || rng() % 4 == 0) {
          parts.push_back(Make());
        }
        parts[rng() % parts.size()]->Add(e.v, e.t, e.seq);
      }
      std::shuffle(parts.begin(), parts.end(), rng);
      auto merged = Make();
      for (size_t pi = 0; pi < parts.size(); ++pi) {
        // A third of the parts travel through Serialize/Deserialize, a
        // third are merged from their bytes (as lookups merge tiles), a
        // third are cloned.
        if (pi % 3 == 1) {
          std::string bytes;
          parts[pi]->Serialize(&bytes);
          auto scratch = Make();
          ASSERT_TRUE(merged->MergeSerialized(bytes, scratch.get())) << c.agg;
          continue;
        }
        std::unique_ptr<Aggregator> copy;
        if (pi % 3 == 0) {
          std::string bytes;
          parts[pi]->Serialize(&bytes);
          copy = Make();
          ASSERT_TRUE(copy->Deserialize(bytes)) << c.agg;
          std::string again;
          copy->Serialize(&again);
          EXPECT_EQ(again, bytes) << c.agg;
        } else {
          copy = parts[pi]->Clone();
        }
        merged->Merge(*copy);
      }
      EXPECT_EQ(Final(*merged), want) << c.agg << " trial " << trial;
    }
  }
}

// Lookups reuse one state per feature from entity to entity (Reset in
// between): a reset state, whatever it held, is a new one.
TEST_P(AggregatorPropertyTest, ResetStateIsANewState) {
  const Case c = GetParam();
  std::mt19937_64 rng(std::hash<std::string>()(c.agg) + 7 * c.type);
  auto reused = Make();
  for (int trial = 0; trial < 50; ++trial) {
    // Before: anything (large sums, many distinct values, a merged part).
    for (const auto& e :
         RandomEvents(c.type, rng, static_cast<int>(rng() % 60))) {
      reused->Add(e.v, e.t, e.seq);
    }
    if (trial % 3 == 0) {
      auto part = Make();
      for (const auto& e : RandomEvents(c.type, rng, 5))
        part->Add(e.v, e.t, e.seq);
      reused->Merge(*part);
    }
    reused->Reset();
    auto fresh = Make();
    std::string reset_bytes, fresh_bytes;
    reused->Serialize(&reset_bytes);
    fresh->Serialize(&fresh_bytes);
    EXPECT_EQ(reset_bytes, fresh_bytes) << c.agg << " trial " << trial;
    EXPECT_EQ(Final(*reused), Final(*fresh)) << c.agg << " trial " << trial;
    // And after: both take the same events to the same bits.
    for (const auto& e :
         RandomEvents(c.type, rng, static_cast<int>(rng() % 20))) {
      reused->Add(e.v, e.t, e.seq);
      fresh->Add(e.v, e.t, e.seq);
    }
    reset_bytes.clear();
    fresh_bytes.clear();
    reused->Serialize(&reset_bytes);
    fresh->Serialize(&fresh_bytes);
    EXPECT_EQ(reset_bytes, fresh_bytes) << c.agg << " trial " << trial;
    EXPECT_EQ(Final(*reused), Final(*fresh)) << c.agg << " trial " << trial;
  }
}

// Sliding windows (joins) add events at one end and remove them at the
// other: after any interleaving, the state finalizes to the same bits as
// adding only the events still in it.
class RemovePropertyTest : public ::testing::TestWithParam<Case> {};

TEST_P(RemovePropertyTest, RemoveForgetsExactly) {
  const Case c = GetParam();
  const auto* entry = BuiltinAggregators().Find(c.agg);
  v1::FeatureDef def;
  def.set_aggregation(c.agg);
  def.set_k(3);
  std::mt19937_64 rng(std::hash<std::string>()(c.agg) * 31 + c.type);
  ASSERT_EQ(entry->spec.sliding, AggregationSpec::Sliding::kInvertible)
      << c.agg << " should be declared invertible";
  for (int trial = 0; trial < 30; ++trial) {
    auto evs = RandomEvents(c.type, rng, 1 + static_cast<int>(rng() % 60));
    auto sliding = entry->create(def, c.type);
    size_t lo = 0;
    for (size_t hi = 0; hi < evs.size(); ++hi) {
      sliding->Add(evs[hi].v, evs[hi].t, evs[hi].seq);
      while (lo <= hi && rng() % 3 == 0) {
        ASSERT_TRUE(sliding->Remove(evs[lo].v, evs[lo].t, evs[lo].seq));
        ++lo;
      }
      auto fresh = entry->create(def, c.type);
      for (size_t i = lo; i <= hi; ++i) {
        fresh->Add(evs[i].v, evs[i].t, evs[i].seq);
      }
      ASSERT_EQ(Final(*sliding), Final(*fresh))
          << c.agg << " trial " << trial << " window [" << lo << ", " << hi
          << "]";
    }
  }
}

INSTANTIATE_TEST_SUITE_P(
    All, AggregatorPropertyTest,
    ::testing::Values(Case{"count", v1::INT64}, Case{"sum", v1::INT64},
                      Case{"sum", v1::DOUBLE}, Case{"avg", v1::INT64},
                      Case{"avg", v1::DOUBLE}, Case{"min", v1::DOUBLE},
                      Case{"min", v1::STRING}, Case{"max", v1::INT64},
                      Case{"max", v1::BOOL}, Case{"first", v1::STRING},
                      Case{"last", v1::DOUBLE}, Case{"last_k", v1::INT64},
                      Case{"last_k", v1::STRING},
                      Case{"count_distinct", v1::STRING},
                      Case{"count_distinct", v1::DOUBLE},
                      Case{"stddev", v1::DOUBLE}, Case{"stddev", v1::INT64}),
    CaseName);

// The invertible aggregations (the others keep their window's events in
// joins instead, and Remove returns false for them).
INSTANTIATE_TEST_SUITE_P(
    Invertible, RemovePropertyTest,
    ::testing::Values(Case{"count", v1::INT64}, Case{"sum", v1::INT64},
                      Case{"sum", v1::DOUBLE}, Case{"avg", v1::INT64},
                      Case{"avg", v1::DOUBLE},
                      Case{"count_distinct", v1::STRING},
                      Case{"count_distinct", v1::DOUBLE},
                      Case{"stddev", v1::DOUBLE}, Case{"stddev", v1::INT64}),
    CaseName);

// Aggregations not declared invertible refuse Remove (the sweep keeps
// their window's deciding events instead); the declared ones are exactly
// those the Invertible suite above checks.
TEST(AggregatorTest, OnlyDeclaredInvertibleAggregationsRemove) {
  std::vector<std::string> invertible;
  for (const auto& e : BuiltinAggregators().entries()) {
    v1::FeatureDef def;
    def.set_aggregation(e.spec.name);
    def.set_k(3);
    FieldValue v;
    v.type = v1::INT64;
    auto state = e.create(def, v1::INT64);
    state->Add(v, 1, 1);
    const bool declared =
        e.spec.sliding == AggregationSpec::Sliding::kInvertible;
    EXPECT_EQ(state->Remove(v, 1, 1), declared) << e.spec.name;
    if (declared) invertible.push_back(e.spec.name);
  }
  EXPECT_EQ(invertible, (std::vector<std::string>{"count", "sum", "avg",
                                                  "count_distinct", "stddev"}));
}

TEST(AggregatorTest, EmptyWindowValues) {
  v1::FeatureDef def;
  def.set_k(2);
  for (const auto& e : BuiltinAggregators().entries()) {
    def.set_aggregation(e.spec.name);
    auto a = e.create(def, v1::DOUBLE);
    v1::Value v;
    ASSERT_TRUE(a->Finalize(&v).ok());
    if (e.spec.name == "count" || e.spec.name == "count_distinct") {
      EXPECT_EQ(v.int64_value(), 0) << e.spec.name;
      EXPECT_EQ(v.kind_case(), v1::Value::kInt64Value);
    } else if (e.spec.name == "sum") {
      EXPECT_EQ(v.kind_case(), v1::Value::kDoubleValue);
      EXPECT_EQ(v.double_value(), 0.0);
      EXPECT_FALSE(std::signbit(v.double_value()));  // +0.0
      // A window whose events all left it again is empty too.
      FieldValue x;
      x.type = v1::DOUBLE;
      x.d = -0.1;
      a->Add(x, 1, 1);
      ASSERT_TRUE(a->Remove(x, 1, 1));
      ASSERT_TRUE(a->Finalize(&v).ok());
      EXPECT_EQ(v.double_value(), 0.0);
      EXPECT_FALSE(std::signbit(v.double_value()));
    } else {
      EXPECT_EQ(v.kind_case(), v1::Value::KIND_NOT_SET) << e.spec.name;
    }
  }
  def.set_aggregation("sum");
  auto isum = BuiltinAggregators().Find("sum")->create(def, v1::INT64);
  v1::Value v;
  ASSERT_TRUE(isum->Finalize(&v).ok());
  EXPECT_EQ(v.kind_case(), v1::Value::kInt64Value);
}

TEST(AggregatorTest, IntSumOverflowIsOutOfRange) {
  v1::FeatureDef def;
  def.set_aggregation("sum");
  auto a = BuiltinAggregators().Find("sum")->create(def, v1::INT64);
  FieldValue big;
  big.type = v1::INT64;
  big.i = std::numeric_limits<int64_t>::max();
  a->Add(big, 1, 1);
  a->Add(big, 2, 2);
  v1::Value v;
  EXPECT_EQ(a->Finalize(&v).code(), absl::StatusCode::kOutOfRange);
  // Coming back into range is fine: the sum is exact, not wrapped.
  big.i = -std::numeric_limits<int64_t>::max();
  a->Add(big, 3, 3);
  ASSERT_TRUE(a->Finalize(&v).ok());
  EXPECT_EQ(v.int64_value(), std::numeric_limits<int64_t>::max());
}

// first/last/min/max keep a copy of the winning string, whatever its
// length (short ones inline in the state, long ones beside it); the copy
// outlives the event's bytes and travels through Clone and Serialize.
TEST(AggregatorTest, PicksKeepWholeStringsOfAnyLength) {
  const std::vector<size_t> lengths = {0, 1, 31, 32, 33, 100, 1000, 2};
  for (const char* name : {"first", "last", "min", "max"}) {
    v1::FeatureDef def;
    def.set_aggregation(name);
    auto a = BuiltinAggregators().Find(name)->create(def, v1::STRING);
    std::vector<std::string> offered;
    for (size_t i = 0; i < lengths.size(); ++i) {
      // Distinct bytes per string, so a mixed-up copy shows.
      std::string bytes(lengths[i], static_cast<char>('a' + i));
      for (size_t j = 0; j < bytes.size(); j += 7) bytes[j] = 'A' + j % 26;
      FieldValue v;
      v.type = v1::STRING;
      v.s = bytes;
      a->Add(v, static_cast<int64_t>(i), i + 1);
      offered.push_back(bytes);
      bytes.assign(bytes.size(), '#');  // the event's bytes go away
      // The definition, from the strings offered so far (times ascending).
      std::string want;
      if (std::string(name) == "first") want = offered.front();
      if (std::string(name) == "last") want = offered.back();
      if (std::string(name) == "min") {
        want = *std::min_element(offered.begin(), offered.end());
      }
      if (std::string(name) == "max") {
        want = *std::max_element(offered.begin(), offered.end());
      }
      v1::Value out;
      ASSERT_TRUE(a->Finalize(&out).ok());
      EXPECT_EQ(out.string_value(), want) << name << " after " << i;
      // Through Serialize/Deserialize, and a clone of that: each owns its
      // copy (the state cloned from moves on and goes away).
      std::string bytes_of_state;
      a->Serialize(&bytes_of_state);
      auto copy = BuiltinAggregators().Find(name)->create(def, v1::STRING);
      ASSERT_TRUE(copy->Deserialize(bytes_of_state));
      bytes_of_state.assign(bytes_of_state.size(), '#');
      ASSERT_TRUE(copy->Finalize(&out).ok());
      EXPECT_EQ(out.string_value(), want) << name << " after " << i;
      auto clone = copy->Clone();
      // Lowest and highest bytes, earliest and latest: each pick changes.
      for (const char c : {'\x01', 'z'}) {
        for (const size_t n : {size_t{5}, size_t{50}}) {
          const std::string other(n, c);
          FieldValue z;
          z.type = v1::STRING;
          z.s = other;
          copy->Add(z, 1000 + c, 1000 + n);
          copy->Add(z, -1000 - c, 1);
        }
      }
      copy.reset();
      ASSERT_TRUE(clone->Finalize(&out).ok());
      EXPECT_EQ(out.string_value(), want) << name << " after " << i;
    }
  }
}

TEST(AggregatorTest, TiesAndOrder) {
  v1::FeatureDef def;
  def.set_k(2);
  auto make = [&](const char* name) {
    def.set_aggregation(name);
    return BuiltinAggregators().Find(name)->create(def, v1::DOUBLE);
  };
  auto first = make("first"), last = make("last"), lastk = make("last_k"),
       mn = make("min");
  auto add = [&](double d, int64_t t, uint64_t seq) {
    FieldValue v;
    v.type = v1::DOUBLE;
    v.d = d;
    for (auto* a : {first.get(), last.get(), lastk.get(), mn.get()}) {
      a->Add(v, t, seq);
    }
  };
  add(2.0, 5, 9);   // same time, later seq
  add(-0.0, 5, 3);  // same time, earlier seq
  add(0.0, 4, 10);  // earlier time, latest seq
  v1::Value v;
  ASSERT_TRUE(first->Finalize(&v).ok());
  EXPECT_EQ(v.double_value(), 0.0);
  EXPECT_FALSE(std::signbit(v.double_value()));  // (4, 10) is first
  ASSERT_TRUE(last->Finalize(&v).ok());
  EXPECT_EQ(v.double_value(), 2.0);  // (5, 9) is last
  ASSERT_TRUE(lastk->Finalize(&v).ok());
  ASSERT_EQ(v.list_value().values_size(), 2);
  EXPECT_EQ(v.list_value().values(0).double_value(), 2.0);
  EXPECT_TRUE(std::signbit(v.list_value().values(1).double_value()));
  // min: 0.0 and -0.0 tie; the earliest event (4, 10) wins.
  ASSERT_TRUE(mn->Finalize(&v).ok());
  EXPECT_FALSE(std::signbit(v.double_value()));
}

}  // namespace
}  // namespace rawfeat
