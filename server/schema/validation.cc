#include "server/schema/validation.h"

#include <limits>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "server/aggregation/aggregation_spec.h"

namespace rawfeat {
namespace {

constexpr int kMaxFields = 1000;
constexpr int kMaxFeatures = 1000;
constexpr int kMaxFilterValues = 1000;
constexpr int64_t kMaxWindowMicros = 100LL * 366 * 86400 * 1000000;

bool ValueFits(const v1::Value& v, v1::FieldType type) {
  switch (type) {
    case v1::INT64:
      return v.kind_case() == v1::Value::kInt64Value;
    case v1::DOUBLE:
      return v.kind_case() == v1::Value::kDoubleValue ||
             v.kind_case() == v1::Value::kInt64Value;
    case v1::STRING:
      return v.kind_case() == v1::Value::kStringValue;
    case v1::BOOL:
      return v.kind_case() == v1::Value::kBoolValue;
    default:
      return false;
  }
}

}  // namespace

bool IsValidName(absl::string_view name) {
  if (name.empty() || name.size() > 64) return false;
  if (!absl::ascii_isalpha(name[0]) && name[0] != '_') return false;
  for (char c : name) {
    if (!absl::ascii_isalnum(c) && c != '_') return false;
  }
  return true;
}

absl::Status ValidatePartition(const v1::Partition& partition) {
  if (partition.count() > 0 && partition.index() >= partition.count()) {
    return absl::InvalidArgumentError(
        absl::StrCat("partition index ", partition.index(),
                     " must be below count ", partition.count()));
  }
  return absl::OkStatus();
}

absl::StatusOr<Window> ParseWindow(absl::string_view text) {
  if (text == "lifetime") return Window{true, 0};
  const auto bad = [&]() {
    return absl::InvalidArgumentError(absl::StrCat(
        "bad window '", text,
        "': want a positive duration such as 30s, 30m, 1h, 1d, 7d, 2w, or "
        "'lifetime'"));
  };
  if (text.size() < 2) return bad();
  int64_t unit = 0;
  switch (text.back()) {
    case 's':
      unit = 1000000;
      break;
    case 'm':
      unit = 60LL * 1000000;
      break;
    case 'h':
      unit = 3600LL * 1000000;
      break;
    case 'd':
      unit = 86400LL * 1000000;
      break;
    case 'w':
      unit = 7 * 86400LL * 1000000;
      break;
    default:
      return bad();
  }
  const absl::string_view digits = text.substr(0, text.size() - 1);
  for (char c : digits) {
    if (!absl::ascii_isdigit(c)) return bad();
  }
  int64_t n;
  if (!absl::SimpleAtoi(digits, &n) || n <= 0 || n > kMaxWindowMicros / unit) {
    return bad();
  }
  return Window{false, n * unit};
}

absl::StatusOr<int64_t> ParseRetention(absl::string_view text) {
  if (text.empty()) return 0;
  auto w = ParseWindow(text);
  if (!w.ok() || w->lifetime) {
    return absl::InvalidArgumentError(absl::StrCat(
        "bad retention '", text,
        "': want a positive duration such as 90d, 400d or 52w, or nothing "
        "(keep forever)"));
  }
  return w->micros;
}

std::string DescribeRetention(const v1::StreamDef& stream) {
  return absl::StrCat("retention ", stream.retention().empty()
                                        ? "forever, after a shorter one"
                                        : stream.retention());
}

std::vector<std::string> ValidateStream(const v1::StreamDef& def) {
  std::vector<std::string> problems;
  const std::string where = absl::StrCat("stream '", def.name(), "'");
  auto add = [&](absl::string_view what) {
    problems.push_back(absl::StrCat(where, ": ", what));
  };
  if (!IsValidName(def.name())) {
    add("name must match [A-Za-z_][A-Za-z0-9_]* (at most 64 characters)");
  }
  if (!IsValidName(def.entity_field())) {
    add("entity_field must be set to the entity column's name");
  }
  if (!IsValidName(def.time_field())) {
    add("time_field must be set to the event-time column's name");
  }
  if (def.entity_field() == def.time_field() && !def.time_field().empty()) {
    add("entity_field and time_field must differ");
  }
  if (def.fields_size() > kMaxFields) {
    add(absl::StrCat("more than ", kMaxFields, " fields"));
  }
  if (auto r = ParseRetention(def.retention()); !r.ok()) {
    add(r.status().message());
  }
  absl::flat_hash_set<std::string> seen;
  for (const auto& f : def.fields()) {
    const std::string fw = absl::StrCat("field '", f.name(), "': ");
    if (!IsValidName(f.name())) {
      add(absl::StrCat(fw, "name must match [A-Za-z_][A-Za-z0-9_]*"));
    }
    if (f.name() == def.entity_field() || f.name() == def.time_field()) {
      add(absl::StrCat(fw,
                       "is the entity or time column; those are not fields"));
    }
    if (f.name() == "event_id") {
      add(absl::StrCat(fw, "'event_id' is reserved"));
    }
    if (!seen.insert(f.name()).second) add(absl::StrCat(fw, "defined twice"));
    if (f.type() == v1::FIELD_TYPE_UNSPECIFIED ||
        !v1::FieldType_IsValid(f.type())) {
      add(absl::StrCat(fw, "type must be INT64, DOUBLE, STRING or BOOL"));
    }
  }
  return problems;
}

std::vector<std::string> ValidateView(const v1::FeatureViewDef& view,
                                      const v1::StreamDef& stream) {
  std::vector<std::string> problems;
  const std::string where =
      absl::StrCat("view '", view.name(), "' version ", view.version());
  auto add = [&](absl::string_view what) {
    problems.push_back(absl::StrCat(where, ": ", what));
  };
  if (!IsValidName(view.name())) {
    add("name must match [A-Za-z_][A-Za-z0-9_]* (at most 64 characters)");
  }
  if (view.version() == 0) add("version must be >= 1");
  if (view.features().empty()) add("has no features");
  if (view.features_size() > kMaxFeatures) {
    add(absl::StrCat("more than ", kMaxFeatures, " features"));
  }
  absl::flat_hash_map<std::string, v1::FieldType> types;
  for (const auto& f : stream.fields()) types[f.name()] = f.type();
  absl::flat_hash_set<std::string> seen;
  for (const auto& feature : view.features()) {
    const std::string fw = absl::StrCat("feature '", feature.name(), "': ");
    if (!IsValidName(feature.name())) {
      add(absl::StrCat(fw, "name must match [A-Za-z_][A-Za-z0-9_]*"));
    }
    if (!seen.insert(feature.name()).second) {
      add(absl::StrCat(fw, "defined twice"));
    }
    v1::FieldType field_type = v1::FIELD_TYPE_UNSPECIFIED;
    if (!feature.field().empty()) {
      auto it = types.find(feature.field());
      if (it == types.end()) {
        add(absl::StrCat(fw, "field '", feature.field(), "' is not in stream '",
                         stream.name(), "'"));
        continue;
      }
      field_type = it->second;
    }
    if (absl::Status s = CheckAggregationFits(feature, field_type); !s.ok()) {
      add(absl::StrCat(fw, s.message()));
    }
    if (feature.window().empty()) {
      add(absl::StrCat(fw, "window is required (a duration or 'lifetime')"));
    } else if (auto w = ParseWindow(feature.window()); !w.ok()) {
      add(absl::StrCat(fw, w.status().message()));
    }
    if (feature.has_filter()) {
      const v1::Filter& filter = feature.filter();
      auto it = types.find(filter.field());
      static const auto* kOps = new absl::flat_hash_set<std::string>(
          {"=", "!=", "<", "<=", ">", ">=", "in"});
      if (it == types.end()) {
        add(absl::StrCat(fw, "filter field '", filter.field(),
                         "' is not in stream '", stream.name(), "'"));
      } else if (!kOps->contains(filter.op())) {
        add(absl::StrCat(fw, "filter op '", filter.op(),
                         "' is not one of = != < <= > >= in"));
      } else if (filter.op() == "in" ? (filter.values().empty() ||
                                        filter.values_size() > kMaxFilterValues)
                                     : filter.values_size() != 1) {
        add(absl::StrCat(
            fw, "filter op '", filter.op(), "' needs ",
            filter.op() == "in" ? "1 to 1000 values" : "exactly one value"));
      } else {
        for (const auto& v : filter.values()) {
          if (!ValueFits(v, it->second)) {
            add(absl::StrCat(fw, "filter value does not fit field '",
                             filter.field(), "' of type ",
                             v1::FieldType_Name(it->second)));
            break;
          }
        }
      }
    }
  }
  return problems;
}

std::vector<std::string> PartFeatures(const v1::ServicePart& part,
                                      const v1::FeatureViewDef& view) {
  if (!part.features().empty()) {
    return {part.features().begin(), part.features().end()};
  }
  std::vector<std::string> names;
  for (const auto& f : view.features()) names.push_back(f.name());
  return names;
}

std::vector<std::string> ValidateService(const v1::FeatureServiceDef& service,
                                         const FindViewFn& find_view) {
  std::vector<std::string> problems;
  const std::string where = absl::StrCat("service '", service.name(),
                                         "' version ", service.version());
  auto add = [&](absl::string_view what) {
    problems.push_back(absl::StrCat(where, ": ", what));
  };
  if (!IsValidName(service.name())) {
    add("name must match [A-Za-z_][A-Za-z0-9_]* (at most 64 characters)");
  }
  if (service.version() == 0) add("version must be >= 1");
  if (service.parts().empty()) add("has no parts");
  // Output name -> the part that produces it, for clashes.
  absl::flat_hash_map<std::string, int> outputs;
  for (int i = 0; i < service.parts_size(); ++i) {
    const v1::ServicePart& part = service.parts(i);
    const std::string pw = absl::StrCat("part ", i + 1, " (view '", part.view(),
                                        "' v", part.view_version(), "): ");
    if (part.view_version() == 0) {
      add(absl::StrCat(pw,
                       "view_version must be given (>= 1): a service "
                       "pins the versions it reads"));
      continue;
    }
    const v1::FeatureViewDef* view =
        find_view(part.view(), part.view_version());
    if (view == nullptr) {
      add(absl::StrCat(pw, "no such view version"));
      continue;
    }
    if (!IsValidName(part.key())) {
      add(absl::StrCat(pw,
                       "key must name the label column to look the view "
                       "up by ([A-Za-z_][A-Za-z0-9_]*)"));
    }
    absl::flat_hash_set<std::string> in_view, taken;
    for (const auto& f : view->features()) in_view.insert(f.name());
    for (const std::string& f : part.features()) {
      if (!in_view.contains(f)) {
        add(absl::StrCat(pw, "feature '", f, "' is not in the view"));
      } else if (!taken.insert(f).second) {
        add(absl::StrCat(pw, "feature '", f, "' is listed twice"));
      }
    }
    for (const std::string& f : PartFeatures(part, *view)) {
      const std::string out = absl::StrCat(part.prefix(), f);
      if (!IsValidName(out)) {
        add(absl::StrCat(pw, "output name '", out,
                         "' (prefix + feature) must match "
                         "[A-Za-z_][A-Za-z0-9_]*"));
        continue;
      }
      auto [it, inserted] = outputs.emplace(out, i);
      if (!inserted) {
        add(absl::StrCat(pw, "output feature '", out, "' clashes with part ",
                         it->second + 1, "'s: give one of them a prefix"));
      }
    }
  }
  return problems;
}

std::vector<std::string> ServiceFeatureNames(
    const v1::FeatureServiceDef& service, const FindViewFn& find_view) {
  std::vector<std::string> names;
  for (const auto& part : service.parts()) {
    const v1::FeatureViewDef* view =
        find_view(part.view(), part.view_version());
    if (view == nullptr) continue;
    for (const std::string& f : PartFeatures(part, *view)) {
      names.push_back(absl::StrCat(part.prefix(), f));
    }
  }
  return names;
}

std::vector<std::string> ViewRetentionProblems(const v1::FeatureViewDef& view,
                                               const v1::StreamDef& stream) {
  std::vector<std::string> problems;
  auto retention = ParseRetention(stream.retention());
  if (!retention.ok() || *retention == 0) return problems;
  for (const auto& feature : view.features()) {
    auto w = ParseWindow(feature.window());
    if (!w.ok() || (!w->lifetime && w->micros <= *retention)) continue;
    problems.push_back(absl::StrCat(
        "view '", view.name(), "' version ", view.version(), ": feature '",
        feature.name(), "': window ", feature.window(),
        " reaches below the retention of stream '", stream.name(), "' (",
        stream.retention(), "): every read of it would be refused"));
  }
  return problems;
}

absl::StatusOr<StreamEvolution> EvolveStream(const v1::StreamDef& current,
                                             const v1::StreamDef& proposed) {
  const std::string where = absl::StrCat("stream '", current.name(), "'");
  auto refuse = [&](absl::string_view what) {
    return absl::FailedPreconditionError(
        absl::StrCat(where, ": ", what,
                     " (streams evolve additively: only new optional "
                     "fields may be added)"));
  };
  if (proposed.entity_field() != current.entity_field()) {
    return refuse(absl::StrCat("entity_field cannot change from '",
                               current.entity_field(), "' to '",
                               proposed.entity_field(), "'"));
  }
  if (proposed.time_field() != current.time_field()) {
    return refuse(absl::StrCat("time_field cannot change from '",
                               current.time_field(), "' to '",
                               proposed.time_field(), "'"));
  }
  absl::flat_hash_map<std::string, const v1::FieldDef*> next;
  for (const auto& f : proposed.fields()) next[f.name()] = &f;
  StreamEvolution ev;
  ev.merged = current;
  ev.merged.clear_fields();
  for (const auto& old : current.fields()) {
    auto it = next.find(old.name());
    if (it == next.end()) {
      return refuse(absl::StrCat("field '", old.name(), "' cannot be removed"));
    }
    const v1::FieldDef& f = *it->second;
    if (f.type() != old.type()) {
      return refuse(absl::StrCat("field '", old.name(),
                                 "' cannot change type from ",
                                 v1::FieldType_Name(old.type()), " to ",
                                 v1::FieldType_Name(f.type())));
    }
    if (f.required() != old.required()) {
      return refuse(absl::StrCat("field '", old.name(), "' cannot change from ",
                                 old.required() ? "required" : "optional",
                                 " to ",
                                 f.required() ? "required" : "optional"));
    }
    if (f.description() != old.description()) {
      ev.changes.push_back(absl::StrCat(where, ": field '", old.name(),
                                        "' description updated"));
    }
    *ev.merged.add_fields() = f;
    next.erase(it);
  }
  for (const auto& f : proposed.fields()) {
    if (!next.contains(f.name())) continue;
    if (f.required()) {
      return refuse(absl::StrCat(
          "new field '", f.name(),
          "' must be optional: events already stored do not have it"));
    }
    *ev.merged.add_fields() = f;
    ev.new_schema_version = true;
    ev.changes.push_back(absl::StrCat(where, ": add optional field '", f.name(),
                                      "' ", v1::FieldType_Name(f.type())));
  }
  if (proposed.description() != current.description()) {
    ev.merged.set_description(proposed.description());
    ev.changes.push_back(absl::StrCat(where, ": description updated"));
  }
  if (proposed.retention() != current.retention()) {
    ev.merged.set_retention(proposed.retention());
    ev.retention_changed = true;
    ev.changes.push_back(absl::StrCat(
        where, ": retention ",
        current.retention().empty() ? "forever" : current.retention(), " -> ",
        proposed.retention().empty() ? "forever" : proposed.retention()));
  }
  ev.changed = !ev.changes.empty();
  return ev;
}

}  // namespace rawfeat
