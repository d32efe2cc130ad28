#include "server/aggregation/aggregator.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <tuple>

#include "absl/container/flat_hash_map.h"
#include "server/aggregation/exact_sum.h"
#include "server/common/coding.h"

namespace rawfeat {

int CompareValues(const FieldValue& a, const FieldValue& b) {
  switch (a.type) {
    case v1::INT64:
      return a.i < b.i ? -1 : a.i > b.i ? 1 : 0;
    case v1::DOUBLE:
      return a.d < b.d ? -1 : a.d > b.d ? 1 : 0;
    case v1::STRING: {
      const int c = a.s.compare(b.s);
      return c < 0 ? -1 : c > 0 ? 1 : 0;
    }
    case v1::BOOL:
      return static_cast<int>(a.b) - static_cast<int>(b.b);
    default:
      return 0;
  }
}

namespace {

using Order = std::pair<int64_t, uint64_t>;  // (event time, seq)

// ---- state encoding helpers (tiles store serialized states)

// A typed value: type byte, then its payload.
void PutValue(std::string* out, const FieldValue& v) {
  out->push_back(static_cast<char>(v.type));
  PutFieldPayload(out, v);
}

// A STRING value points into *in.
bool GetValue(absl::string_view* in, FieldValue* v) {
  if (in->empty()) return false;
  *v = FieldValue();
  v->type = static_cast<v1::FieldType>(static_cast<unsigned char>((*in)[0]));
  in->remove_prefix(1);
  return GetFieldPayload(in, v);
}

bool GetValue(absl::string_view* in, OwnedValue* out) {
  FieldValue v;
  if (!GetValue(in, &v)) return false;
  out->Set(v);
  return true;
}

void PutOrder(std::string* out, Order o) {
  PutBigEndian64(out, OrderedFromSigned(o.first));
  PutBigEndian64(out, o.second);
}

bool GetOrder(absl::string_view* in, Order* o) {
  if (in->size() < 16) return false;
  o->first = SignedFromOrdered(DecodeBigEndian64(in->data()));
  o->second = DecodeBigEndian64(in->data() + 8);
  in->remove_prefix(16);
  return true;
}

bool GetCount(absl::string_view* in, int64_t* n) {
  uint64_t v;
  if (!GetVarint64(in, &v)) return false;
  *n = static_cast<int64_t>(v);
  return true;
}

// Down-casts the other state of a Merge (same factory by contract).
template <typename T>
const T& Same(const Aggregator& other) {
  return static_cast<const T&>(other);
}

class CountAggregator final : public Aggregator {
 public:
  void Add(const FieldValue&, int64_t, uint64_t) override { ++n_; }
  bool Remove(const FieldValue&, int64_t, uint64_t) override {
    --n_;
    return true;
  }
  void Merge(const Aggregator& o) override {
    n_ += Same<CountAggregator>(o).n_;
  }
  absl::Status Finalize(v1::Value* out) const override {
    out->set_int64_value(n_);
    return absl::OkStatus();
  }
  std::unique_ptr<Aggregator> Clone() const override {
    return std::make_unique<CountAggregator>(*this);
  }
  void Reset() override { n_ = 0; }
  void Serialize(std::string* out) const override { PutVarint64(out, n_); }
  bool Deserialize(absl::string_view in) override {
    return GetCount(&in, &n_) && in.empty();
  }
  bool MergeSerialized(absl::string_view in, Aggregator*) override {
    int64_t n;
    if (!GetCount(&in, &n) || !in.empty()) return false;
    n_ += n;
    return true;
  }

 private:
  int64_t n_ = 0;
};

absl::Status IntOverflow() {
  return absl::OutOfRangeError("INT64 sum overflows int64");
}

// sum and avg. INT64 sums are exact in 128 bits (no overflow for < 2^64
// events); DOUBLE sums use ExactSum.
class SumAggregator final : public Aggregator {
 public:
  SumAggregator(v1::FieldType type, bool average)
      : type_(type), average_(average) {}
  void Add(const FieldValue& v, int64_t, uint64_t) override {
    ++n_;
    if (type_ == v1::INT64) {
      isum_ += v.i;
    } else {
      dsum_.Add(v.d);
    }
  }
  // Exact arithmetic: adding -x cancels x exactly.
  bool Remove(const FieldValue& v, int64_t, uint64_t) override {
    --n_;
    if (type_ == v1::INT64) {
      isum_ -= v.i;
    } else {
      dsum_.Add(-v.d);
    }
    return true;
  }
  void Merge(const Aggregator& o) override {
    const auto& other = Same<SumAggregator>(o);
    n_ += other.n_;
    isum_ += other.isum_;
    dsum_.Merge(other.dsum_);
  }
  absl::Status Finalize(v1::Value* out) const override {
    if (average_ && n_ == 0) {
      out->Clear();
      return absl::OkStatus();
    }
    if (type_ == v1::INT64) {
      if (average_) {
        // The exact sum, rounded once to double, divided by the count.
        out->set_double_value(static_cast<double>(isum_) /
                              static_cast<double>(n_));
        return absl::OkStatus();
      }
      if (isum_ > std::numeric_limits<int64_t>::max() ||
          isum_ < std::numeric_limits<int64_t>::min()) {
        return IntOverflow();
      }
      out->set_int64_value(static_cast<int64_t>(isum_));
      return absl::OkStatus();
    }
    if (n_ == 0) {
      // No event in the window (none added, or all removed again): the
      // exact sum is zero, which rounds to +0.0. Common (a short window of
      // a small entity), and it spares Round's path for tiny sums.
      out->set_double_value(0.0);
      return absl::OkStatus();
    }
    auto sum = dsum_.Round();
    if (!sum.ok()) return sum.status();
    out->set_double_value(average_ ? *sum / static_cast<double>(n_) : *sum);
    return absl::OkStatus();
  }
  std::unique_ptr<Aggregator> Clone() const override {
    return std::make_unique<SumAggregator>(*this);
  }
  void Reset() override {
    n_ = 0;
    isum_ = 0;
    dsum_.Clear();
  }
  void Serialize(std::string* out) const override {
    PutVarint64(out, n_);
    PutBigEndian64(out, static_cast<uint64_t>(isum_ >> 64));
    PutBigEndian64(out, static_cast<uint64_t>(isum_));
    dsum_.Serialize(out);
  }
  bool Deserialize(absl::string_view in) override {
    n_ = 0;
    isum_ = 0;
    dsum_ = ExactSum();
    return MergeSerialized(in, nullptr);
  }
  bool MergeSerialized(absl::string_view in, Aggregator*) override {
    int64_t n;
    if (!GetCount(&in, &n) || in.size() < 16) return false;
    const unsigned __int128 hi = DecodeBigEndian64(in.data());
    const unsigned __int128 lo = DecodeBigEndian64(in.data() + 8);
    n_ += n;
    isum_ += static_cast<__int128>((hi << 64) | lo);
    in.remove_prefix(16);
    return dsum_.MergeSerialized(&in) && in.empty();
  }

 private:
  v1::FieldType type_;
  bool average_;
  int64_t n_ = 0;
  __int128 isum_ = 0;
  ExactSum dsum_;
};

// min, max, first, last: keeps one event's value. min/max compare values
// and keep the earliest event on ties; first/last go by (time, seq).
class PickAggregator final : public Aggregator {
 public:
  enum class Mode { kMin, kMax, kFirst, kLast };
  explicit PickAggregator(Mode mode) : mode_(mode) {}
  PickAggregator(const PickAggregator& o)
      : mode_(o.mode_), has_(o.has_), order_(o.order_) {
    Keep(o.value_);
  }
  PickAggregator& operator=(const PickAggregator&) = delete;
  void Add(const FieldValue& v, int64_t t, uint64_t seq) override {
    Offer(v, {t, seq});
  }
  void Merge(const Aggregator& o) override {
    const auto& other = Same<PickAggregator>(o);
    if (other.has_) Offer(other.value_, other.order_);
  }
  absl::Status Finalize(v1::Value* out) const override {
    if (has_) {
      FieldValueToProto(value_, out);
    } else {
      out->Clear();
    }
    return absl::OkStatus();
  }
  std::unique_ptr<Aggregator> Clone() const override {
    return std::make_unique<PickAggregator>(*this);
  }
  void Reset() override { has_ = false; }
  void Serialize(std::string* out) const override {
    out->push_back(has_ ? 1 : 0);
    if (!has_) return;
    PutValue(out, value_);
    PutOrder(out, order_);
  }
  bool Deserialize(absl::string_view in) override {
    if (in.empty()) return false;
    has_ = in[0] != 0;
    in.remove_prefix(1);
    if (has_) {
      FieldValue v;  // views into `in`
      if (!GetValue(&in, &v) || !GetOrder(&in, &order_)) return false;
      Keep(v);
    }
    return in.empty();
  }
  bool MergeSerialized(absl::string_view in, Aggregator*) override {
    if (in.empty()) return false;
    const bool has = in[0] != 0;
    in.remove_prefix(1);
    if (!has) return in.empty();
    FieldValue v;  // views into `in`; Offer copies what it keeps
    Order order;
    if (!GetValue(&in, &v) || !GetOrder(&in, &order) || !in.empty()) {
      return false;
    }
    Offer(v, order);
    return true;
  }

 private:
  // True if (v, order) replaces the kept value.
  bool Better(const FieldValue& v, Order order) const {
    switch (mode_) {
      case Mode::kFirst:
        return order < order_;
      case Mode::kLast:
        return order > order_;
      default: {
        int c = CompareValues(v, value_);
        if (mode_ == Mode::kMax) c = -c;
        return c < 0 || (c == 0 && order < order_);
      }
    }
  }
  void Offer(const FieldValue& v, Order order) {
    if (has_ && !Better(v, order)) return;
    has_ = true;
    Keep(v);
    order_ = order;
  }
  // Makes `v` the kept value, copying a string's bytes into this state:
  // a scan that keeps the latest of many short strings (a last category)
  // copies a few bytes per event instead of calling into std::string.
  void Keep(const FieldValue& v) {
    value_ = v;
    if (v.type != v1::STRING) {
      value_.s = absl::string_view();
      return;
    }
    char* to = short_;
    if (v.s.size() > sizeof(short_)) {
      // Grows to the longest string kept; never shrinks.
      if (long_.size() < v.s.size()) long_.resize(v.s.size());
      to = long_.data();
    }
    std::memmove(to, v.s.data(), v.s.size());  // v may be value_ itself
    value_.s = absl::string_view(to, v.s.size());
  }
  Mode mode_;
  bool has_ = false;
  Order order_{};
  FieldValue value_;  // a string's bytes are in short_ or long_
  char short_[32];
  std::string long_;
};

// last_k: up to k values, most recent first.
class LastKAggregator final : public Aggregator {
 public:
  explicit LastKAggregator(uint32_t k) : k_(k) {}
  void Add(const FieldValue& v, int64_t t, uint64_t seq) override {
    Offer(Order{t, seq}, v);
  }
  void Merge(const Aggregator& o) override {
    for (const auto& [order, value] : Same<LastKAggregator>(o).items_) {
      Offer(order, value.v);
    }
  }
  absl::Status Finalize(v1::Value* out) const override {
    out->Clear();
    if (items_.empty()) return absl::OkStatus();
    auto* list = out->mutable_list_value();
    for (const auto& [order, value] : items_) {
      FieldValueToProto(value.v, list->add_values());
    }
    return absl::OkStatus();
  }
  std::unique_ptr<Aggregator> Clone() const override {
    return std::make_unique<LastKAggregator>(*this);
  }
  void Reset() override { items_.clear(); }
  void Serialize(std::string* out) const override {
    PutVarint64(out, items_.size());
    for (const auto& [order, value] : items_) {
      PutOrder(out, order);
      PutValue(out, value.v);
    }
  }
  bool Deserialize(absl::string_view in) override {
    int64_t n;
    if (!GetCount(&in, &n) || n > static_cast<int64_t>(k_)) return false;
    items_.clear();
    for (int64_t i = 0; i < n; ++i) {
      Order order;
      OwnedValue value;
      if (!GetOrder(&in, &order) || !GetValue(&in, &value)) return false;
      items_.emplace_back(order, value);
    }
    return in.empty();
  }

 private:
  // items_ is sorted by order, descending (most recent first).
  void Offer(Order order, const FieldValue& v) {
    if (items_.size() < k_ && (items_.empty() || order < items_.back().first)) {
      items_.emplace_back(order, OwnedValue(v));  // offered newest first
      return;
    }
    if (items_.size() == k_ && order <= items_.back().first) return;
    auto at = std::find_if(items_.begin(), items_.end(),
                           [&](const auto& it) { return it.first < order; });
    items_.insert(at, {order, OwnedValue(v)});
    if (items_.size() > k_) items_.pop_back();
  }
  uint32_t k_;
  std::vector<std::pair<Order, OwnedValue>> items_;
};

// count_distinct: exact, by value (-0.0 and 0.0 are one value).
class CountDistinctAggregator final : public Aggregator {
 public:
  void Add(const FieldValue& v, int64_t, uint64_t) override {
    char buf[8];
    Count(Key(v, buf), 1);
  }
  bool Remove(const FieldValue& v, int64_t, uint64_t) override {
    char buf[8];
    auto it = seen_.find(Key(v, buf));
    if (it != seen_.end() && --it->second == 0) seen_.erase(it);
    return true;
  }
  void Merge(const Aggregator& o) override {
    for (const auto& [key, n] : Same<CountDistinctAggregator>(o).seen_) {
      Count(key, n);
    }
  }
  absl::Status Finalize(v1::Value* out) const override {
    out->set_int64_value(static_cast<int64_t>(seen_.size()));
    return absl::OkStatus();
  }
  std::unique_ptr<Aggregator> Clone() const override {
    return std::make_unique<CountDistinctAggregator>(*this);
  }
  void Reset() override { seen_.clear(); }
  void Serialize(std::string* out) const override {
    // Sorted, so equal states serialize to equal bytes.
    std::vector<absl::string_view> keys;
    keys.reserve(seen_.size());
    for (const auto& [key, n] : seen_) keys.push_back(key);
    std::sort(keys.begin(), keys.end());
    PutVarint64(out, keys.size());
    for (absl::string_view k : keys) PutLengthPrefixed(out, k);
  }
  bool Deserialize(absl::string_view in) override {
    seen_.clear();
    return MergeSerialized(in, nullptr);
  }
  // As Merge: each key of the other state counts one.
  bool MergeSerialized(absl::string_view in, Aggregator*) override {
    int64_t n;
    if (!GetCount(&in, &n)) return false;
    for (int64_t i = 0; i < n; ++i) {
      absl::string_view k;
      if (!GetLengthPrefixed(&in, &k)) return false;
      Count(k, 1);
    }
    return in.empty();
  }

 private:
  // Adds `n` events carrying the value whose identity is `key`.
  void Count(absl::string_view key, int64_t n) {
    // One hash and probe; the key is copied only for a value not seen yet.
    seen_.try_emplace(key, 0).first->second += n;
  }
  // The value's identity as bytes (numbers are written into `buf`).
  static absl::string_view Key(const FieldValue& v, char (&buf)[8]) {
    switch (v.type) {
      case v1::INT64:
        std::memcpy(buf, &v.i, sizeof(v.i));
        return absl::string_view(buf, sizeof(v.i));
      case v1::DOUBLE: {
        const double d = v.d == 0 ? 0.0 : v.d;
        std::memcpy(buf, &d, sizeof(d));
        return absl::string_view(buf, sizeof(d));
      }
      case v1::STRING:
        return v.s;
      case v1::BOOL:
        return v.b ? "1" : "0";
      default:
        return "";
    }
  }
  // Value -> how many added events carry it (for Remove); serialized as
  // the set of keys.
  absl::flat_hash_map<std::string, int64_t> seen_;
};

// stddev (sample, n-1): sqrt(RN(v)) where v is the exact sample variance,
// from the exact n, sum of x and sum of x^2 (INT64 values as exact
// integers). Only Finalize rounds: once for v, once in the IEEE sqrt.
// Null for fewer than two values.
class StddevAggregator final : public Aggregator {
 public:
  explicit StddevAggregator(v1::FieldType type) : type_(type) {}
  void Add(const FieldValue& v, int64_t, uint64_t) override {
    ++n_;
    Accumulate(v, /*negate=*/false);
  }
  // Exact arithmetic: subtracting x and x^2 cancels them exactly.
  bool Remove(const FieldValue& v, int64_t, uint64_t) override {
    --n_;
    Accumulate(v, /*negate=*/true);
    return true;
  }
  void Merge(const Aggregator& o) override {
    const auto& other = Same<StddevAggregator>(o);
    n_ += other.n_;
    s1_.Merge(other.s1_);
    s2_.Merge(other.s2_);
  }
  absl::Status Finalize(v1::Value* out) const override {
    out->Clear();
    if (n_ < 2) return absl::OkStatus();
    auto var = ExactSampleVariance(n_, s1_, s2_);
    if (!var.ok()) return var.status();
    out->set_double_value(std::sqrt(*var));
    return absl::OkStatus();
  }
  std::unique_ptr<Aggregator> Clone() const override {
    return std::make_unique<StddevAggregator>(*this);
  }
  void Reset() override {
    n_ = 0;
    s1_.Clear();
    s2_.Clear();
  }
  void Serialize(std::string* out) const override {
    PutVarint64(out, n_);
    s1_.Serialize(out);
    s2_.Serialize(out);
  }
  bool Deserialize(absl::string_view in) override {
    return GetCount(&in, &n_) && s1_.Deserialize(&in) && s2_.Deserialize(&in) &&
           in.empty();
  }
  bool MergeSerialized(absl::string_view in, Aggregator*) override {
    int64_t n;
    if (!GetCount(&in, &n)) return false;
    n_ += n;
    return s1_.MergeSerialized(&in) && s2_.MergeSerialized(&in) && in.empty();
  }

 private:
  void Accumulate(const FieldValue& v, bool negate) {
    if (type_ == v1::INT64) {
      s1_.AddInt(v.i, negate);
      s2_.AddSquareInt(v.i, negate);
    } else {
      s1_.Add(negate ? -v.d : v.d);
      s2_.AddSquare(v.d, negate);
    }
  }
  v1::FieldType type_;
  int64_t n_ = 0;
  ExactSum s1_;
  ExactSquareSum s2_;
};

}  // namespace

void AggregatorRegistry::Register(AggregationSpec spec,
                                  AggregatorFactory create) {
  entries_.push_back({std::move(spec), std::move(create)});
}

const AggregatorRegistry::Entry* AggregatorRegistry::Find(
    absl::string_view name) const {
  for (const auto& e : entries_) {
    if (e.spec.name == name) return &e;
  }
  return nullptr;
}

void RegisterBuiltinAggregators(AggregatorRegistry* r) {
  using FU = AggregationSpec::FieldUse;
  using S = AggregationSpec::Sliding;
  using R = AggregationSpec::Result;
  using Mode = PickAggregator::Mode;
  const std::vector<v1::FieldType> numeric = {v1::INT64, v1::DOUBLE};
  r->Register({"count", FU::kOptional, {}, false, S::kInvertible, R::kInt64},
              [](const v1::FeatureDef&, v1::FieldType) {
                return std::make_unique<CountAggregator>();
              });
  r->Register({"sum", FU::kRequired, numeric, false, S::kInvertible, R::kField},
              [](const v1::FeatureDef&, v1::FieldType t) {
                return std::make_unique<SumAggregator>(t, false);
              });
  r->Register(
      {"avg", FU::kRequired, numeric, false, S::kInvertible, R::kDouble},
      [](const v1::FeatureDef&, v1::FieldType t) {
        return std::make_unique<SumAggregator>(t, true);
      });
  const struct {
    const char* name;
    Mode mode;
    S sliding;
  } picks[] = {{"min", Mode::kMin, S::kKeepMin},
               {"max", Mode::kMax, S::kKeepMax},
               {"first", Mode::kFirst, S::kKeepFirst},
               {"last", Mode::kLast, S::kKeepLatest}};
  for (const auto& p : picks) {
    const Mode mode = p.mode;
    r->Register({p.name, FU::kRequired, {}, false, p.sliding, R::kField},
                [mode](const v1::FeatureDef&, v1::FieldType) {
                  return std::make_unique<PickAggregator>(mode);
                });
  }
  r->Register(
      {"last_k", FU::kRequired, {}, true, S::kKeepLatest, R::kListOfField},
      [](const v1::FeatureDef& f, v1::FieldType) {
        return std::make_unique<LastKAggregator>(f.k());
      });
  r->Register(
      {"count_distinct", FU::kRequired, {}, false, S::kInvertible, R::kInt64},
      [](const v1::FeatureDef&, v1::FieldType) {
        return std::make_unique<CountDistinctAggregator>();
      });
  r->Register(
      {"stddev", FU::kRequired, numeric, false, S::kInvertible, R::kDouble},
      [](const v1::FeatureDef&, v1::FieldType t) {
        return std::make_unique<StddevAggregator>(t);
      });
}

const AggregatorRegistry& BuiltinAggregators() {
  static const AggregatorRegistry* registry = [] {
    auto* r = new AggregatorRegistry();
    RegisterBuiltinAggregators(r);
    return r;
  }();
  return *registry;
}

}  // namespace rawfeat
