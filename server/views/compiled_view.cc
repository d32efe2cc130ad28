#include "server/views/compiled_view.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "server/common/time_util.h"
#include "server/schema/validation.h"

namespace rawfeat {
namespace {

absl::StatusOr<CompiledFilter::Op> ParseOp(const std::string& op) {
  using Op = CompiledFilter::Op;
  if (op == "=") return Op::kEq;
  if (op == "!=") return Op::kNe;
  if (op == "<") return Op::kLt;
  if (op == "<=") return Op::kLe;
  if (op == ">") return Op::kGt;
  if (op == ">=") return Op::kGe;
  if (op == "in") return Op::kIn;
  return absl::InvalidArgumentError(
      absl::StrCat("unknown filter op '", op, "'"));
}

// A filter literal in the field's type (INT64 literals widen for DOUBLE).
OwnedValue Literal(const v1::Value& v, v1::FieldType type) {
  FieldValue f;
  f.type = type;
  switch (type) {
    case v1::INT64:
      f.i = v.int64_value();
      break;
    case v1::DOUBLE:
      f.d = v.kind_case() == v1::Value::kInt64Value
                ? static_cast<double>(v.int64_value())
                : v.double_value();
      break;
    case v1::STRING:
      f.s = v.string_value();
      break;
    case v1::BOOL:
      f.b = v.bool_value();
      break;
    default:
      break;
  }
  return OwnedValue(f);
}

int64_t SaturatingSub(int64_t a, int64_t b) {
  if (b > 0 && a < std::numeric_limits<int64_t>::min() + b) {
    return std::numeric_limits<int64_t>::min();
  }
  return a - b;
}

}  // namespace

bool CompiledFilter::Matches(const std::vector<FieldValue>& fields) const {
  if (position >= static_cast<int>(fields.size())) return false;
  const FieldValue& v = fields[position];
  if (!v.present()) return false;
  if (op == Op::kIn) {
    for (const auto& lit : values) {
      if (CompareValues(v, lit.v) == 0) return true;
    }
    return false;
  }
  const int c = CompareValues(v, values[0].v);
  switch (op) {
    case Op::kEq:
      return c == 0;
    case Op::kNe:
      return c != 0;
    case Op::kLt:
      return c < 0;
    case Op::kLe:
      return c <= 0;
    case Op::kGt:
      return c > 0;
    case Op::kGe:
      return c >= 0;
    default:
      return false;
  }
}

absl::StatusOr<CompiledView> CompiledView::Compile(
    std::shared_ptr<const v1::FeatureViewDef> def,
    std::shared_ptr<const StreamSchema> stream) {
  CompiledView view;
  view.def = def;
  view.stream = stream;
  for (const auto& f : def->features()) {
    CompiledFeature cf;
    cf.name = f.name();
    cf.def = f;
    cf.aggregation = BuiltinAggregators().Find(f.aggregation());
    if (cf.aggregation == nullptr) {
      return absl::InvalidArgumentError(absl::StrCat("feature '", f.name(),
                                                     "': unknown aggregation '",
                                                     f.aggregation(), "'"));
    }
    if (!f.field().empty()) {
      auto it = stream->position.find(f.field());
      if (it == stream->position.end()) {
        return absl::InvalidArgumentError(absl::StrCat(
            "feature '", f.name(), "': field '", f.field(), "' is unknown"));
      }
      cf.field_position = it->second;
      cf.field_type = stream->types[it->second];
    }
    auto window = ParseWindow(f.window());
    if (!window.ok()) return window.status();
    cf.lifetime = window->lifetime;
    cf.window_us = window->micros;
    if (f.has_filter()) {
      auto it = stream->position.find(f.filter().field());
      if (it == stream->position.end()) {
        return absl::InvalidArgumentError(
            absl::StrCat("feature '", f.name(), "': filter field '",
                         f.filter().field(), "' is unknown"));
      }
      auto op = ParseOp(f.filter().op());
      if (!op.ok()) return op.status();
      cf.has_filter = true;
      cf.filter.position = it->second;
      cf.filter.type = stream->types[it->second];
      cf.filter.op = *op;
      for (const auto& v : f.filter().values()) {
        cf.filter.values.push_back(Literal(v, cf.filter.type));
      }
      if (cf.filter.values.empty()) {
        return absl::InvalidArgumentError(
            absl::StrCat("feature '", f.name(), "': filter has no value"));
      }
    }
    view.any_lifetime = view.any_lifetime || cf.lifetime;
    view.max_window_us = std::max(view.max_window_us, cf.window_us);
    view.features.push_back(std::move(cf));
  }
  return view;
}

int64_t CompiledView::ScanStart(int64_t as_of_us) const {
  if (any_lifetime) return std::numeric_limits<int64_t>::min();
  return std::max(kMinMicros, SaturatingSub(as_of_us, max_window_us));
}

}  // namespace rawfeat
