#ifndef RAWFEAT_SERVER_AGGREGATION_AGGREGATION_SPEC_H_
#define RAWFEAT_SERVER_AGGREGATION_AGGREGATION_SPEC_H_

// The static description of an aggregation: its name, whether it reads a
// source field, which field types it accepts, and whether it takes `k`.
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
};

// The spec of a builtin aggregation (see aggregator.h); nullptr if unknown.
const AggregationSpec* FindAggregation(absl::string_view name);

// Checks that `feature` (aggregation, field presence, `k`) fits; `field_type`
// is the source field's type, or UNSPECIFIED when the feature names none.
// Errors: INVALID_ARGUMENT whose message names the aggregation and reason
// (callers prefix it with the view and feature name).
absl::Status CheckAggregationFits(const v1::FeatureDef& feature,
                                  v1::FieldType field_type);

}  // namespace rawfeat

#endif  // RAWFEAT_SERVER_AGGREGATION_AGGREGATION_SPEC_H_
