#include "server/aggregation/aggregation_spec.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace rawfeat {
namespace {

constexpr uint32_t kMaxK = 1000;

std::vector<AggregationSpec> MakeBuiltins() {
  using FU = AggregationSpec::FieldUse;
  const std::vector<v1::FieldType> numeric = {v1::INT64, v1::DOUBLE};
  std::vector<AggregationSpec> specs;
  specs.push_back({"count", FU::kOptional, {}, false});
  specs.push_back({"sum", FU::kRequired, numeric, false});
  specs.push_back({"avg", FU::kRequired, numeric, false});
  specs.push_back({"min", FU::kRequired, {}, false});
  specs.push_back({"max", FU::kRequired, {}, false});
  specs.push_back({"first", FU::kRequired, {}, false});
  specs.push_back({"last", FU::kRequired, {}, false});
  specs.push_back({"last_k", FU::kRequired, {}, true});
  specs.push_back({"count_distinct", FU::kRequired, {}, false});
  specs.push_back({"stddev", FU::kRequired, numeric, false});
  return specs;
}

}  // namespace

const std::vector<AggregationSpec>& BuiltinAggregations() {
  static const auto* specs = new std::vector<AggregationSpec>(MakeBuiltins());
  return *specs;
}

const AggregationSpec* FindAggregation(absl::string_view name) {
  for (const auto& spec : BuiltinAggregations()) {
    if (spec.name == name) return &spec;
  }
  return nullptr;
}

absl::Status CheckAggregationFits(const v1::FeatureDef& feature,
                                  v1::FieldType field_type) {
  const AggregationSpec* spec = FindAggregation(feature.aggregation());
  if (spec == nullptr) {
    std::vector<std::string> names;
    for (const auto& s : BuiltinAggregations()) names.push_back(s.name);
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

}  // namespace rawfeat
