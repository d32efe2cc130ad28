#include "server/aggregation/aggregation_spec.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "server/aggregation/aggregator.h"

namespace rawfeat {
namespace {
constexpr uint32_t kMaxK = 1000;
}  // namespace

const AggregationSpec* FindAggregation(absl::string_view name) {
  const auto* entry = BuiltinAggregators().Find(name);
  return entry == nullptr ? nullptr : &entry->spec;
}

absl::Status CheckAggregationFits(const v1::FeatureDef& feature,
                                  v1::FieldType field_type) {
  const AggregationSpec* spec = FindAggregation(feature.aggregation());
  if (spec == nullptr) {
    std::vector<std::string> names;
    for (const auto& e : BuiltinAggregators().entries()) {
      names.push_back(e.spec.name);
    }
    return absl::InvalidArgumentError(
        absl::StrCat("unknown aggregation '", feature.aggregation(),
                     "' (known: ", absl::StrJoin(names, ", "), ")"));
  }
  if (feature.field().empty()) {
    if (spec->field_use == AggregationSpec::FieldUse::kRequired) {
      return absl::InvalidArgumentError(
          absl::StrCat(spec->name, " needs a source field"));
    }
  } else if (!spec->types.empty()) {
    bool ok = false;
    for (auto t : spec->types) ok = ok || t == field_type;
    if (!ok) {
      return absl::InvalidArgumentError(absl::StrCat(
          spec->name, " needs a numeric field (INT64 or DOUBLE); '",
          feature.field(), "' is ", v1::FieldType_Name(field_type)));
    }
  }
  if (spec->takes_k) {
    if (feature.k() < 1 || feature.k() > kMaxK) {
      return absl::InvalidArgumentError(absl::StrCat(
          spec->name, " needs k in [1, ", kMaxK, "], got ", feature.k()));
    }
  } else if (feature.k() != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(spec->name, " takes no k (only last_k does)"));
  }
  return absl::OkStatus();
}

std::string ResultTypeName(const AggregationSpec& spec, v1::FieldType field) {
  switch (spec.result) {
    case AggregationSpec::Result::kInt64:
      return "INT64";
    case AggregationSpec::Result::kDouble:
      return "DOUBLE";
    case AggregationSpec::Result::kField:
      return v1::FieldType_Name(field);
    case AggregationSpec::Result::kListOfField:
      return absl::StrCat("LIST<", v1::FieldType_Name(field), ">");
  }
  return "";
}

}  // namespace rawfeat
