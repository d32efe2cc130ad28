#ifndef RAWFEAT_SERVER_VIEWS_COMPILED_VIEW_H_
#define RAWFEAT_SERVER_VIEWS_COMPILED_VIEW_H_

// A feature view bound to its stream: each feature's aggregation, source
// field position, window and filter resolved once, so evaluating an event
// is array lookups. Immutable once compiled; thread-safe to share.

#include <cstdint>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "rawfeat/v1/rawfeat.pb.h"
#include "server/aggregation/aggregator.h"
#include "server/schema/registry.h"
#include "server/storage/event_codec.h"

namespace rawfeat {

// A feature filter bound to a field position.
struct CompiledFilter {
  int position = -1;
  v1::FieldType type = v1::FIELD_TYPE_UNSPECIFIED;
  enum class Op { kEq, kNe, kLt, kLe, kGt, kGe, kIn } op = Op::kEq;
  std::vector<OwnedValue> values;  // converted to the field's type

  // False when the event lacks the field, whatever the operator.
  bool Matches(const std::vector<FieldValue>& fields) const;
};

struct CompiledFeature {
  std::string name;
  const AggregatorRegistry::Entry* aggregation = nullptr;
  v1::FeatureDef def;
  int field_position = -1;  // -1: no source field (count)
  v1::FieldType field_type = v1::FIELD_TYPE_UNSPECIFIED;
  bool lifetime = false;
  int64_t window_us = 0;
  bool has_filter = false;
  CompiledFilter filter;

  // The first event time inside the window as of `as_of_us` (the lowest
  // int64 for lifetime; saturating).
  int64_t WindowStart(int64_t as_of_us) const {
    if (lifetime ||
        as_of_us < std::numeric_limits<int64_t>::min() + window_us) {
      return std::numeric_limits<int64_t>::min();
    }
    return as_of_us - window_us;
  }

  // Whether Accepts reads the event's fields (a source field or a filter).
  bool NeedsFields() const { return has_filter || field_position >= 0; }

  // The value an event contributes (its field in `fields`; an empty value
  // for a count without a field), or null if the filter rejects it or it
  // lacks the source field. Not copied: it runs per feature and event.
  const FieldValue* Accepts(const std::vector<FieldValue>& fields) const {
    static constexpr FieldValue kNoField{};
    if (has_filter && !filter.Matches(fields)) return nullptr;
    if (field_position < 0) return &kNoField;
    if (field_position >= static_cast<int>(fields.size()) ||
        !fields[field_position].present()) {
      return nullptr;  // optional field missing: skipped
    }
    return &fields[field_position];
  }
};

// A view bound to its stream's field positions.
struct CompiledView {
  std::shared_ptr<const v1::FeatureViewDef> def;
  std::shared_ptr<const StreamSchema> stream;
  std::vector<CompiledFeature> features;
  bool any_lifetime = false;
  int64_t max_window_us = 0;

  // Where one entity's scan for as-of `as_of_us` starts: the start of the
  // longest window (clamped to the earliest valid time), or the lowest
  // int64 when a feature is lifetime (scan from the entity's first event).
  int64_t ScanStart(int64_t as_of_us) const;

  // Errors: INVALID_ARGUMENT if the view does not fit the stream.
  static absl::StatusOr<CompiledView> Compile(
      std::shared_ptr<const v1::FeatureViewDef> def,
      std::shared_ptr<const StreamSchema> stream);
};

}  // namespace rawfeat

#endif  // RAWFEAT_SERVER_VIEWS_COMPILED_VIEW_H_
