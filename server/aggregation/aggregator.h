#ifndef RAWFEAT_SERVER_AGGREGATION_AGGREGATOR_H_
#define RAWFEAT_SERVER_AGGREGATION_AGGREGATOR_H_

// Aggregators: a state with Add / Merge / Finalize (as ClickHouse and DuckDB
// aggregate functions), found by name in a registry that is filled
// explicitly. Every aggregator is order-independent: adding events in any
// order, or merging partial states in any grouping, finalizes to the same
// bits. That is what lets GetFeatures, snapshots, joins, tiles and replays
// agree exactly.
//
// A state is not thread-safe; the registry is immutable once built and safe
// to share.

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "rawfeat/v1/rawfeat.pb.h"
#include "server/aggregation/aggregation_spec.h"
#include "server/storage/event_codec.h"

namespace rawfeat {

class Aggregator {
 public:
  virtual ~Aggregator() = default;

  // One event that passed the feature's window and filter. `v` is the
  // source field's value (type UNSPECIFIED for count without a field);
  // events missing the source field are never added. (time_us, seq) orders
  // events for first/last/last_k and breaks ties for min/max.
  virtual void Add(const FieldValue& v, int64_t time_us, uint64_t seq) = 0;

  // Undoes one earlier Add of the same (v, time_us, seq), for sliding
  // windows (point-in-time joins). Only aggregations whose spec declares
  // Sliding::kInvertible implement it; the others return false, changing
  // nothing (the caller keeps the window's events for those, as the spec's
  // Sliding says). After Remove the
  // state finalizes to the same bits as if the event had never been added.
  // REQUIRES: the state was built by Add only (not Merge/Deserialize), and
  // the event was added and not yet removed.
  virtual bool Remove(const FieldValue& v, int64_t time_us, uint64_t seq) {
    (void)v;
    (void)time_us;
    (void)seq;
    return false;
  }

  // Adds everything `other` has seen. REQUIRES: `other` was made by the same
  // factory for the same feature.
  virtual void Merge(const Aggregator& other) = 0;

  // The feature value; null (no kind set) where the design says so. The
  // only rounding of a numeric result happens here, once (README, "Numeric
  // contract"). Errors: OUT_OF_RANGE when an INT64 sum leaves int64, or a
  // rounded DOUBLE sum or a variance exceeds the largest double.
  virtual absl::Status Finalize(v1::Value* out) const = 0;

  virtual std::unique_ptr<Aggregator> Clone() const = 0;

  // Forgets everything added: the state of a newly made aggregator.
  virtual void Reset() = 0;

  // An exact encoding of the state (appended to *out), so partial states
  // can be stored (tiles) and merged later; Deserialize replaces this
  // state with a decoded one. REQUIRES for Deserialize: the bytes came from
  // Serialize of a state made by the same factory for the same feature.
  // False on malformed input.
  virtual void Serialize(std::string* out) const = 0;
  virtual bool Deserialize(absl::string_view in) = 0;

  // Merges a state Serialize wrote, with the result of Deserialize into a
  // fresh state and Merge, but without building that state where the
  // aggregation knows how (tiles merged by lookups). `scratch` is a state
  // of the same factory, which the generic way overwrites. False on
  // malformed input; this state is then undefined (callers drop it).
  virtual bool MergeSerialized(absl::string_view in, Aggregator* scratch) {
    if (!scratch->Deserialize(in)) return false;
    Merge(*scratch);
    return true;
  }
};

// Makes an empty state for one feature. `field_type` is the source field's
// type (UNSPECIFIED for count without a field).
using AggregatorFactory = std::function<std::unique_ptr<Aggregator>(
    const v1::FeatureDef& feature, v1::FieldType field_type)>;

class AggregatorRegistry {
 public:
  struct Entry {
    AggregationSpec spec;
    AggregatorFactory create;
  };
  void Register(AggregationSpec spec, AggregatorFactory create);
  // nullptr if unknown.
  const Entry* Find(absl::string_view name) const;
  const std::vector<Entry>& entries() const { return entries_; }

 private:
  std::vector<Entry> entries_;
};

// Registers count, sum, avg, min, max, first, last, last_k, count_distinct
// and stddev.
void RegisterBuiltinAggregators(AggregatorRegistry* registry);

// The registry with the builtins, built on first use.
const AggregatorRegistry& BuiltinAggregators();

// Orders two present values of the same type: strings by UTF-8 bytes,
// false < true, -0.0 == 0.0. Returns <0, 0, >0.
int CompareValues(const FieldValue& a, const FieldValue& b);

// A FieldValue that owns its string.
struct OwnedValue {
  FieldValue v;
  std::string s;
  OwnedValue() = default;
  explicit OwnedValue(const FieldValue& from) { Set(from); }
  OwnedValue(const OwnedValue& o) { *this = o; }
  OwnedValue& operator=(const OwnedValue& o) {
    if (this != &o) Set(o.v);
    return *this;
  }
  void Set(const FieldValue& from) {
    v = from;
    if (from.type != v1::STRING) {
      v.s = absl::string_view();  // only a string has bytes to own
      return;
    }
    s.assign(from.s.data(), from.s.size());
    v.s = s;
  }
};

}  // namespace rawfeat

#endif  // RAWFEAT_SERVER_AGGREGATION_AGGREGATOR_H_
