#ifndef RAWFEAT_SERVER_AGGREGATION_AGGREGATION_SPEC_H_
#define RAWFEAT_SERVER_AGGREGATION_AGGREGATION_SPEC_H_

// The static description of an aggregation: its name, whether it reads a
// source field, which field types it accepts, whether it takes `k`, and its
// declared capabilities (how a sliding window forgets, the result type).
// Every evaluation path (GetFeatures, tiles, snapshots, joins) decides from
// these declarations, never from the name, and finalizes through the
// aggregator itself, so an aggregation is defined in one place.
// Specs live in the aggregator registry (aggregator.h). Thread-safe.

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "rawfeat/v1/rawfeat.pb.h"

namespace rawfeat {

struct AggregationSpec {
  std::string name;
  // kRequired: the feature must name a field. kOptional: count may name one
  // (then it counts events that have it).
  enum class FieldUse { kRequired, kOptional } field_use;
  // Accepted field types; empty = every type.
  std::vector<v1::FieldType> types;
  bool takes_k = false;

  // How a window that slides forward (SweepEntity) keeps what it still
  // needs when events leave it:
  enum class Sliding {
    // Aggregator::Remove undoes an Add exactly: one running state.
    kInvertible,
    // The earliest event in (time, seq) order decides: keep the window.
    kKeepFirst,
    // The newest event decides (the k newest with takes_k): keep those.
    kKeepLatest,
    // The smallest / largest value decides, ties to the earliest event:
    // keep a monotonic deque.
    kKeepMin,
    kKeepMax,
  } sliding;

  // The type of a non-null result.
  enum class Result {
    kInt64,        // count, count_distinct
    kDouble,       // avg, stddev
    kField,        // the source field's type (sum, min, max, first, last)
    kListOfField,  // a list of the source field's values (last_k)
  } result;
};

// The spec of a builtin aggregation (see aggregator.h); nullptr if unknown.
const AggregationSpec* FindAggregation(absl::string_view name);

// The type name of `spec`'s non-null results over a field of type `field`
// (UNSPECIFIED when the feature names none): "INT64", "DOUBLE", "STRING",
// "BOOL" or "LIST<T>".
std::string ResultTypeName(const AggregationSpec& spec, v1::FieldType field);

// Checks that `feature` (aggregation, field presence, `k`) fits; `field_type`
// is the source field's type, or UNSPECIFIED when the feature names none.
// Errors: INVALID_ARGUMENT whose message names the aggregation and reason
// (callers prefix it with the view and feature name).
absl::Status CheckAggregationFits(const v1::FeatureDef& feature,
                                  v1::FieldType field_type);

}  // namespace rawfeat

#endif  // RAWFEAT_SERVER_AGGREGATION_AGGREGATION_SPEC_H_
