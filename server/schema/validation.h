#ifndef RAWFEAT_SERVER_SCHEMA_VALIDATION_H_
#define RAWFEAT_SERVER_SCHEMA_VALIDATION_H_

// Static checks of stream and feature-view definitions, and the rules of
// stream evolution. Pure functions; thread-safe.

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "rawfeat/v1/rawfeat.pb.h"

namespace rawfeat {

// A feature window: a positive duration, or lifetime (unbounded).
struct Window {
  bool lifetime = false;
  int64_t micros = 0;  // > 0 unless lifetime
};

// Parses "30s", "30m", "1h", "1d", "7d", "2w", or "lifetime".
// Errors: INVALID_ARGUMENT naming the text and the accepted forms.
absl::StatusOr<Window> ParseWindow(absl::string_view text);

// A stream's retention in microseconds: 0 for "" (keep forever), else a
// positive duration as ParseWindow takes (not "lifetime").
// Errors: INVALID_ARGUMENT naming the text.
absl::StatusOr<int64_t> ParseRetention(absl::string_view text);

// "retention 400d", or "retention forever, after a shorter one" for a
// stream that keeps everything now but had a retention before: for
// messages about its horizon.
std::string DescribeRetention(const v1::StreamDef& stream);

// True for [A-Za-z_][A-Za-z0-9_]{0,63}.
bool IsValidName(absl::string_view name);

// A request's entity-hash partition: count 0 means "everything"; otherwise
// index must be below count. Errors: INVALID_ARGUMENT.
absl::Status ValidatePartition(const v1::Partition& partition);

// Problems with one stream definition, each a sentence naming the field
// ("stream orders: field amount: type is unspecified"). Empty = valid.
std::vector<std::string> ValidateStream(const v1::StreamDef& def);

// Problems with one view over `stream` (already valid). Empty = valid.
std::vector<std::string> ValidateView(const v1::FeatureViewDef& view,
                                      const v1::StreamDef& stream);

// Problems of a new view with its stream's retention: a window longer than
// the retention (or lifetime, when the stream has one) could never be read.
// Empty = none.
std::vector<std::string> ViewRetentionProblems(const v1::FeatureViewDef& view,
                                               const v1::StreamDef& stream);

// The view (name, version) a service part names, or nullptr if unknown.
using FindViewFn = std::function<const v1::FeatureViewDef*(
    const std::string& name, uint32_t version)>;

// Problems with one service, each naming the service and the part ("service
// 'fraud' version 1: part 2 (view 'merchant_orders' v1): ..."): a bad name
// or version, no parts, an unknown view/version, a bad key column, an
// unknown or repeated feature, output names that clash. Empty = valid.
std::vector<std::string> ValidateService(const v1::FeatureServiceDef& service,
                                         const FindViewFn& find_view);

// The features a service part takes from its view, in output order: the
// ones it lists, or all of the view's when it lists none.
std::vector<std::string> PartFeatures(const v1::ServicePart& part,
                                      const v1::FeatureViewDef& view);

// The output feature names of a valid service: each part's features (all
// of its view's when it lists none) with its prefix, parts in order.
std::vector<std::string> ServiceFeatureNames(
    const v1::FeatureServiceDef& service, const FindViewFn& find_view);

// Outcome of comparing a stored stream with a newly applied definition.
struct StreamEvolution {
  bool changed = false;
  bool new_schema_version = false;  // fields were added
  bool retention_changed = false;
  // The definition to store: the old fields in their old order, then the
  // added ones (so field positions never move), with updated descriptions.
  v1::StreamDef merged;
  std::vector<std::string> changes;  // human-readable diff lines
};

// Additive-only evolution. Errors: FAILED_PRECONDITION naming the stream,
// the field and why (field removed, type changed, optional made required,
// new required field, entity/time field changed).
absl::StatusOr<StreamEvolution> EvolveStream(const v1::StreamDef& current,
                                             const v1::StreamDef& proposed);

}  // namespace rawfeat

#endif  // RAWFEAT_SERVER_SCHEMA_VALIDATION_H_
