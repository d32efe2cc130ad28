#include "server/views/view_engine.h"

#include <algorithm>
#include <limits>

#include "absl/strings/str_cat.h"
#include "server/common/coding.h"
#include "server/common/echo.h"
#include "server/common/hash.h"
#include "server/common/parallel.h"
#include "server/common/status_macros.h"
#include "server/common/time_util.h"
#include "server/schema/validation.h"
#include "server/storage/keys.h"
#include "server/views/columns.h"
#include "server/views/sweep.h"

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

// A request's as-of time in microseconds; now when unset.
template <typename Request>
absl::StatusOr<int64_t> AsOf(const Request& request) {
  if (!request.has_as_of()) return NowMicros();
  return RequestTimeToMicros(request.as_of(), "as_of");
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

int64_t ViewEngine::EarliestAsOf(const CompiledView& view) const {
  const int64_t horizon = store_->Horizon(view.stream->stream_id);
  if (horizon == kNoHorizon) return std::numeric_limits<int64_t>::min();
  if (view.any_lifetime) return std::numeric_limits<int64_t>::max();
  return horizon > std::numeric_limits<int64_t>::max() - view.max_window_us
             ? std::numeric_limits<int64_t>::max()
             : horizon + view.max_window_us;
}

absl::Status ViewEngine::CheckAsOf(const CompiledView& view, int64_t as_of_us,
                                   int64_t earliest, absl::string_view what) {
  if (as_of_us >= earliest) return absl::OkStatus();
  const v1::StreamDef& stream = view.stream->def();
  const std::string where =
      absl::StrCat(what, "view '", view.def->name(), "' version ",
                   view.def->version(), " as of ", FormatMicros(as_of_us));
  const std::string horizon_text =
      absl::StrCat("the retention horizon of stream '", stream.name(), "' (",
                   DescribeRetention(stream), ")");
  if (view.any_lifetime || earliest == std::numeric_limits<int64_t>::max()) {
    return absl::FailedPreconditionError(absl::StrCat(
        where, " has a lifetime feature, which reads below ", horizon_text,
        ": events there are no longer kept, so it cannot be answered"));
  }
  return absl::FailedPreconditionError(absl::StrCat(
      where, " reads events from ", FormatMicros(as_of_us - view.max_window_us),
      ", below ", horizon_text, " at ",
      FormatMicros(earliest - view.max_window_us),
      ": events there are no longer kept; ask for an as-of time at or after ",
      FormatMicros(earliest)));
}

absl::StatusOr<std::shared_ptr<const CompiledView>> ViewEngine::Resolve(
    const std::string& name, uint32_t version) const {
  auto def = registry_->FindView(name, version);
  if (!def.ok()) return def.status();
  auto stream = registry_->FindStream((*def)->stream());
  if (stream == nullptr) {
    return absl::NotFoundError(absl::StrCat(
        "stream '", (*def)->stream(), "' of view '", name, "' is not loaded"));
  }
  const auto key = std::make_pair(name, (*def)->version());
  {
    absl::MutexLock l(&cache_mu_);
    auto it = cache_.find(key);
    // The registry hands out new objects on every change, so pointer
    // equality means "unchanged".
    if (it != cache_.end() && it->second->def == *def &&
        it->second->stream == stream) {
      return it->second;
    }
  }
  auto compiled = CompiledView::Compile(*def, stream);
  if (!compiled.ok()) return compiled.status();
  auto shared = std::make_shared<const CompiledView>(std::move(*compiled));
  absl::MutexLock l(&cache_mu_);
  cache_[key] = shared;
  return shared;
}

namespace {

std::string TilePrefixOf(const CompiledView& view, absl::string_view entity) {
  return TilePrefix(view.stream->stream_id, entity, view.def->name(),
                    view.def->version());
}

// Adds one stored event to every feature whose window [starts[i], as-of)
// holds it; `starts` may be null, then windows are ignored (tiles hold
// whole days). With `tiled_day` set, features whose window starts at or
// before that day already have the day from its tile and are skipped.
void AddEvent(const CompiledView& view, const ParsedEventKey& key,
              const std::vector<FieldValue>& fields,
              const std::vector<int64_t>* starts,
              std::vector<std::unique_ptr<Aggregator>>* states,
              int64_t tiled_day = std::numeric_limits<int64_t>::min()) {
  FieldValue value;
  const bool in_tile = tiled_day != std::numeric_limits<int64_t>::min();
  for (size_t i = 0; i < view.features.size(); ++i) {
    if (starts != nullptr && key.time_us < (*starts)[i]) continue;
    if (in_tile && starts != nullptr && (*starts)[i] <= tiled_day) continue;
    if (view.features[i].Accepts(fields, &value)) {
      (*states)[i]->Add(value, key.time_us, key.seq);
    }
  }
}

std::vector<std::unique_ptr<Aggregator>> NewStates(const CompiledView& view) {
  std::vector<std::unique_ptr<Aggregator>> states;
  states.reserve(view.features.size());
  for (const auto& f : view.features) {
    states.push_back(f.aggregation->create(f.def, f.field_type));
  }
  return states;
}

// Tile value: be64(build watermark) | varint n | n x lp(serialized state).
std::string EncodeTile(uint64_t watermark,
                       const std::vector<std::unique_ptr<Aggregator>>& states) {
  std::string v;
  PutBigEndian64(&v, watermark);
  PutVarint64(&v, states.size());
  std::string state;
  for (const auto& st : states) {
    state.clear();
    st->Serialize(&state);
    PutLengthPrefixed(&v, state);
  }
  return v;
}

// Takes `bytes` from `*budget` for feature `feature` (-1: the row itself)
// of `entity`; RESOURCE_EXHAUSTED naming them once the budget is spent.
absl::Status TakeBytes(size_t bytes, size_t* budget, const CompiledView& view,
                       int feature, absl::string_view entity) {
  if (bytes <= *budget) {
    *budget -= bytes;
    return absl::OkStatus();
  }
  return absl::ResourceExhaustedError(absl::StrCat(
      "the answer would exceed the largest message (--max_message_bytes) at ",
      feature < 0 ? "the row"
                  : absl::StrCat("feature '", view.features[feature].name,
                                 "' (", bytes, " bytes)"),
      entity.empty() ? "" : absl::StrCat(" of entity '", Echo(entity), "'"),
      " of view '", view.def->name(),
      "'; ask for fewer entities, or a view with smaller values"));
}

}  // namespace

absl::Status ViewEngine::ComputeEntity(const CompiledView& view,
                                       absl::string_view entity,
                                       int64_t as_of_us, uint64_t watermark,
                                       const ReadView* read_view,
                                       v1::FeatureRow* row,
                                       size_t* budget) const {
  const StreamSchema& stream = *view.stream;
  auto states = NewStates(view);
  std::vector<int64_t> starts;
  for (const auto& f : view.features) {
    starts.push_back(f.WindowStart(as_of_us));
  }
  const int64_t lo = view.ScanStart(as_of_us);
  const int64_t as_of_day = DayStart(as_of_us);

  // A whole day before the as-of day can come from its tile for every
  // feature whose window covers the day entirely. A feature whose window
  // starts inside the day takes that day's raw events from its start on,
  // so the scan of a tiled day begins at the earliest such start (for a
  // heavy entity's last day under a 1h window: one hour, not a day).
  struct Covered {
    int64_t day;
    int64_t raw_from;  // day + kDayMicros when no feature needs raw events
  };
  auto raw_from_of = [&](int64_t day) {
    int64_t from = day + kDayMicros;
    for (int64_t start : starts) {
      if (start > day && start < from) from = start;
    }
    return from;
  };
  std::vector<Covered> covered;   // days served by tiles, ascending
  std::vector<int64_t> existing;  // every tiled day in range, ascending
  if (options_.tiles) {
    const std::string prefix = TilePrefixOf(view, entity);
    const std::string lower = lo == std::numeric_limits<int64_t>::min()
                                  ? prefix
                                  : TileKey(prefix, DayStart(lo));
    auto tiles =
        store_->ScanTiles(lower, TileKey(prefix, as_of_day), read_view);
    std::vector<std::unique_ptr<Aggregator>> scratch;  // made on first tile
    for (; tiles->Valid(); tiles->Next()) {
      absl::string_view k = tiles->key();
      absl::string_view v = tiles->value();
      if (k.size() != prefix.size() + 8 || v.size() < 8) {
        return absl::DataLossError("malformed tile");
      }
      const int64_t day =
          SignedFromOrdered(DecodeBigEndian64(k.data() + prefix.size()));
      existing.push_back(day);
      // A tile holds every event of its day up to its build watermark;
      // read at an older watermark it would hold too much.
      if (day + kDayMicros > as_of_us ||
          DecodeBigEndian64(v.data()) > watermark) {
        continue;
      }
      v.remove_prefix(8);
      uint64_t n;
      if (!GetVarint64(&v, &n) || n != states.size()) {
        return absl::DataLossError("malformed tile");
      }
      if (scratch.empty()) scratch = NewStates(view);
      for (size_t i = 0; i < states.size(); ++i) {
        absl::string_view bytes;
        if (!GetLengthPrefixed(&v, &bytes) || !scratch[i]->Deserialize(bytes)) {
          return absl::DataLossError("malformed tile state");
        }
        if (day >= starts[i]) states[i]->Merge(*scratch[i]);
      }
      covered.push_back(Covered{day, raw_from_of(day)});
    }
    tiles_used_.fetch_add(covered.size(), std::memory_order_relaxed);
    if (!tiles->status().ok()) return tiles->status();
  }

  const std::string lower = lo == std::numeric_limits<int64_t>::min()
                                ? EntityPrefix(stream.stream_id, entity)
                                : EntityTimeKey(stream.stream_id, entity, lo);
  // Keys of events stamped exactly as_of sort after this bound: excluded.
  const std::string upper = EntityTimeKey(stream.stream_id, entity, as_of_us);
  EventValueReader reader;
  auto it = store_->ScanEvents(lower, upper, read_view);
  size_t next_covered = 0;
  int64_t day = std::numeric_limits<int64_t>::min();
  int64_t day_events = 0;
  std::vector<int64_t> heavy_days;  // scanned whole days worth a tile
  const int64_t tile_horizon = DayStart(NowMicros()) - kDayMicros;
  auto close_day = [&]() {
    if (options_.tiles && day_events >= options_.tile_min_events &&
        day + kDayMicros <= as_of_day && day < tile_horizon &&
        (lo == std::numeric_limits<int64_t>::min() || day >= lo) &&
        !std::binary_search(existing.begin(), existing.end(), day)) {
      heavy_days.push_back(day);
    }
  };
  while (it->Valid()) {
    ParsedEventKey key;
    if (!ParseEventKey(it->key(), &key)) {
      return absl::DataLossError(
          absl::StrCat("corrupt stored event of entity '", entity, "'"));
    }
    const int64_t event_day = DayStart(key.time_us);
    if (event_day != day) {
      close_day();
      day = event_day;
      day_events = 0;
    }
    while (next_covered < covered.size() &&
           covered[next_covered].day < event_day) {
      ++next_covered;
    }
    const bool tiled =
        next_covered < covered.size() && covered[next_covered].day == event_day;
    if (tiled && key.time_us < covered[next_covered].raw_from) {
      // The tile has this part of the day: seek to where raw events are
      // needed again, across a run of days tiles serve entirely.
      int64_t target = covered[next_covered].raw_from;
      while (target == covered[next_covered].day + kDayMicros &&
             next_covered + 1 < covered.size() &&
             covered[next_covered + 1].day == target) {
        ++next_covered;
        target = covered[next_covered].raw_from;
      }
      day_events = 0;
      it->Seek(EntityTimeKey(stream.stream_id, entity, target));
      continue;
    }
    if (!tiled) ++day_events;
    if (key.seq <= watermark) {
      if (!reader.Parse(it->value(), stream.types)) {
        return absl::DataLossError(
            absl::StrCat("corrupt stored event of entity '", entity, "'"));
      }
      // In a tiled day, only features whose window starts inside it.
      AddEvent(view, key, reader.fields(), &starts, &states,
               tiled ? event_day : std::numeric_limits<int64_t>::min());
    }
    it->Next();
  }
  if (!it->status().ok()) return it->status();
  close_day();

  row->set_entity(std::string(entity));
  RETURN_IF_ERROR(TakeBytes(row->ByteSizeLong(), budget, view, -1, entity));
  for (size_t i = 0; i < states.size(); ++i) {
    v1::Value* value = row->add_values();
    absl::Status s = states[i]->Finalize(value);
    if (!s.ok()) {
      return absl::Status(
          s.code(),
          absl::StrCat("feature '", view.features[i].name, "' of entity '",
                       Echo(entity), "': ", s.message()));
    }
    // The value and its field tag and length in the row.
    RETURN_IF_ERROR(TakeBytes(value->ByteSizeLong() + 6, budget, view,
                              static_cast<int>(i), entity));
  }
  if (!heavy_days.empty()) {
    if (static_cast<int>(heavy_days.size()) > options_.max_tiles_per_lookup) {
      heavy_days.resize(options_.max_tiles_per_lookup);
    }
    // A cache fill: failing to build tiles never fails the lookup.
    (void)BuildTiles(view, entity, heavy_days);
  }
  return absl::OkStatus();
}

absl::Status ViewEngine::BuildTiles(const CompiledView& view,
                                    absl::string_view entity,
                                    const std::vector<int64_t>& days) const {
  const std::string prefix = TilePrefixOf(view, entity);
  const uint32_t stream_id = view.stream->stream_id;
  absl::Status s = store_->RunExclusive(
      [&](uint64_t watermark,
          std::vector<std::pair<std::string, std::string>>* tiles) {
        EventValueReader reader;
        for (int64_t day : days) {
          auto states = NewStates(view);
          // No append commits meanwhile: this is the day's final content
          // at `watermark`.
          auto it = store_->ScanEvents(
              EntityTimeKey(stream_id, entity, day),
              EntityTimeKey(stream_id, entity, day + kDayMicros), nullptr);
          for (; it->Valid(); it->Next()) {
            ParsedEventKey key;
            if (!ParseEventKey(it->key(), &key) ||
                !reader.Parse(it->value(), view.stream->types)) {
              return absl::DataLossError("corrupt stored event");
            }
            AddEvent(view, key, reader.fields(), nullptr, &states);
          }
          if (!it->status().ok()) return it->status();
          tiles->emplace_back(TileKey(prefix, day),
                              EncodeTile(watermark, states));
        }
        return absl::OkStatus();
      });
  if (s.ok()) tiles_built_.fetch_add(days.size(), std::memory_order_relaxed);
  return s;
}

absl::StatusOr<v1::GetFeaturesResponse> ViewEngine::GetFeatures(
    const v1::GetFeaturesRequest& request) const {
  if (!request.service().empty() || request.key_rows_size() > 0) {
    if (!request.view().empty() || request.entities_size() > 0) {
      return absl::InvalidArgumentError(
          "give a view with entities, or a service with key_rows, not both");
    }
    return GetServiceFeatures(request);
  }
  auto view = Resolve(request.view(), request.version());
  if (!view.ok()) return view.status();
  if (request.entities().empty()) {
    return absl::InvalidArgumentError("no entities requested");
  }
  if (request.entities_size() > options_.max_entities) {
    return absl::InvalidArgumentError(absl::StrCat(
        request.entities_size(), " entities requested; the limit is ",
        options_.max_entities, " per call (use Snapshot for all entities)"));
  }
  for (int i = 0; i < request.entities_size(); ++i) {
    const std::string& e = request.entities(i);
    if (e.empty() || e.find('\0') != std::string::npos) {
      return absl::InvalidArgumentError(
          absl::StrCat("entity ", i, " is empty or contains NUL"));
    }
  }
  auto pinned = store_->PinRead(request.watermark());
  if (!pinned.ok()) return pinned.status();
  auto as_of_or = AsOf(request);
  if (!as_of_or.ok()) return as_of_or.status();
  const int64_t as_of = *as_of_or;
  RETURN_IF_ERROR(CheckAsOf(**view, as_of, EarliestAsOf(**view)));
  v1::GetFeaturesResponse response;
  for (const auto& f : (*view)->features) response.add_feature_names(f.name);
  // Counted while rows are built, so an oversized answer is refused before
  // it is allocated whole.
  size_t budget = options_.max_response_bytes;
  RETURN_IF_ERROR(
      TakeBytes(response.ByteSizeLong() + 64, &budget, **view, -1, ""));
  for (const auto& entity : request.entities()) {
    absl::Status s =
        ComputeEntity(**view, entity, as_of, pinned->watermark,
                      pinned->view.get(), response.add_rows(), &budget);
    if (!s.ok()) return s;
  }
  response.set_watermark(pinned->watermark);
  response.set_version((*view)->def->version());
  *response.mutable_as_of() = MicrosToTimestamp(as_of);
  return response;
}

namespace {

// The indices in `view` of the features a service part takes, in output
// order (PartFeatures; validated at apply: each is in the view).
std::vector<int> PartFeatureIndices(const v1::ServicePart& part,
                                    const CompiledView& view) {
  std::vector<int> take;
  for (const std::string& name : PartFeatures(part, *view.def)) {
    for (int i = 0; i < static_cast<int>(view.features.size()); ++i) {
      if (view.features[i].name == name) take.push_back(i);
    }
  }
  return take;
}

}  // namespace

std::vector<FusedParts> FuseParts(const std::vector<ServicePartView>& parts) {
  std::vector<FusedParts> groups;
  std::vector<std::shared_ptr<CompiledView>> fused;  // built while grouping
  for (int k = 0; k < static_cast<int>(parts.size()); ++k) {
    const ServicePartView& part = parts[k];
    size_t g = 0;
    while (g < groups.size() &&
           !(groups[g].key == part.key && groups[g].view->stream->stream_id ==
                                              part.view->stream->stream_id)) {
      ++g;
    }
    if (g == groups.size()) {
      groups.push_back({part.view, part.key, {{k, 0}}});
      fused.push_back(nullptr);
      continue;
    }
    // A second part on the same stream and key: one view with both.
    if (fused[g] == nullptr) {
      fused[g] = std::make_shared<CompiledView>(*groups[g].view);
    }
    CompiledView& view = *fused[g];
    groups[g].parts.emplace_back(k, static_cast<int>(view.features.size()));
    view.features.insert(view.features.end(), part.view->features.begin(),
                         part.view->features.end());
    view.any_lifetime = view.any_lifetime || part.view->any_lifetime;
    view.max_window_us = std::max(view.max_window_us, part.view->max_window_us);
    groups[g].view = fused[g];
  }
  return groups;
}

std::vector<std::string> ResolvedService::FeatureNames() const {
  std::vector<std::string> names;
  for (const ServicePartView& part : parts) {
    for (int i : part.take) {
      names.push_back(absl::StrCat(part.prefix, part.view->features[i].name));
    }
  }
  return names;
}

absl::StatusOr<ResolvedService> ViewEngine::ResolveService(
    const std::string& name, uint32_t version) const {
  auto def = registry_->FindService(name, version);
  if (!def.ok()) return def.status();
  ResolvedService service;
  service.def = *std::move(def);
  for (const v1::ServicePart& p : service.def->parts()) {
    auto view = Resolve(p.view(), p.view_version());
    if (!view.ok()) return view.status();
    std::vector<int> take = PartFeatureIndices(p, **view);
    service.parts.push_back(
        {*std::move(view), p.key(), p.prefix(), std::move(take)});
  }
  return service;
}

absl::StatusOr<v1::GetFeaturesResponse> ViewEngine::GetServiceFeatures(
    const v1::GetFeaturesRequest& request) const {
  auto service = ResolveService(request.service(), request.service_version());
  if (!service.ok()) return service.status();
  if (request.key_rows().empty()) {
    return absl::InvalidArgumentError("no key rows requested");
  }
  if (request.key_rows_size() > options_.max_entities) {
    return absl::InvalidArgumentError(absl::StrCat(
        request.key_rows_size(), " key rows requested; the limit is ",
        options_.max_entities, " per call"));
  }
  v1::GetFeaturesResponse response;
  for (std::string& name : service->FeatureNames()) {
    response.add_feature_names(std::move(name));
  }
  for (int r = 0; r < request.key_rows_size(); ++r) {
    for (const auto& [column, key] : request.key_rows(r).keys()) {
      if (key.find('\0') != std::string::npos) {
        return absl::InvalidArgumentError(absl::StrCat(
            "key row ", r, ": key '", Echo(column), "' contains NUL"));
      }
    }
  }
  // One watermark for every part: seqs are global, so it pins every stream.
  auto pinned = store_->PinRead(request.watermark());
  if (!pinned.ok()) return pinned.status();
  auto as_of_or = AsOf(request);
  if (!as_of_or.ok()) return as_of_or.status();
  const int64_t as_of = *as_of_or;
  for (const ServicePartView& part : service->parts) {
    RETURN_IF_ERROR(CheckAsOf(*part.view, as_of, EarliestAsOf(*part.view)));
  }
  size_t budget = options_.max_response_bytes;
  v1::FeatureRow computed;
  for (const v1::KeyRow& keys : request.key_rows()) {
    v1::FeatureRow* row = response.add_rows();
    for (const ServicePartView& part : service->parts) {
      auto it = keys.keys().find(part.key);
      if (it == keys.keys().end() || it->second.empty()) {
        // No key for this part: its features are null.
        for (size_t i = 0; i < part.take.size(); ++i) row->add_values();
        continue;
      }
      computed.Clear();
      absl::Status s =
          ComputeEntity(*part.view, it->second, as_of, pinned->watermark,
                        pinned->view.get(), &computed, &budget);
      if (!s.ok()) return s;
      for (int i : part.take) *row->add_values() = computed.values(i);
    }
  }
  response.set_watermark(pinned->watermark);
  response.set_version(service->def->version());
  *response.mutable_as_of() = MicrosToTimestamp(as_of);
  return response;
}

absl::Status ViewEngine::Snapshot(const v1::SnapshotRequest& request,
                                  const SnapshotEmit& emit,
                                  const std::function<bool()>& cancelled,
                                  int chunk_rows) const {
  // What each row holds: one part per view read (a view snapshot is one
  // part taking every feature).
  std::vector<ServicePartView> parts;
  std::vector<std::string> feature_names;
  uint32_t version = 0;
  std::string what;  // for errors: "view 'v'" or "service 's'"
  if (!request.service().empty()) {
    if (!request.view().empty()) {
      return absl::InvalidArgumentError(
          "give a view or a service to snapshot, not both");
    }
    auto service = ResolveService(request.service(), request.service_version());
    if (!service.ok()) return service.status();
    for (const ServicePartView& part : service->parts) {
      if (part.key != service->parts[0].key) {
        return absl::InvalidArgumentError(absl::StrCat(
            "service '", request.service(), "' v", service->def->version(),
            " cannot be snapshotted: part 1 (view '",
            service->parts[0].view->def->name(), "') is keyed by '",
            service->parts[0].key, "' but part ",
            &part - service->parts.data() + 1, " (view '",
            part.view->def->name(), "') by '", part.key,
            "'; a snapshot lists the entities of one key column (use "
            "GetFeatures or JoinFeatures with rows of keys)"));
      }
    }
    feature_names = service->FeatureNames();
    version = service->def->version();
    what = absl::StrCat("service '", request.service(), "'");
    parts = std::move(service->parts);
  } else {
    auto view = Resolve(request.view(), request.version());
    if (!view.ok()) return view.status();
    for (const auto& f : (*view)->features) feature_names.push_back(f.name);
    version = (*view)->def->version();
    what = absl::StrCat("view '", request.view(), "'");
    parts.push_back({*std::move(view), "", "", {}});
  }
  // One part taking every feature: its values are swapped in whole.
  const bool whole = parts.size() == 1 && parts[0].take.empty();
  // Parts on one stream (all share the key) are swept together; each
  // part's values land at its place in the row.
  const std::vector<FusedParts> groups = FuseParts(parts);
  std::vector<int> out_at(parts.size());
  int width = 0;
  for (size_t k = 0; k < parts.size(); ++k) {
    out_at[k] = width;
    width += static_cast<int>(parts[k].take.size());
  }
  // The distinct streams the parts read, each scanned for entities.
  std::vector<uint32_t> stream_ids;
  for (const FusedParts& group : groups) {
    stream_ids.push_back(group.view->stream->stream_id);
  }
  RETURN_IF_ERROR(ValidatePartition(request.partition()));
  const uint32_t pindex = request.partition().index();
  const uint32_t pcount = request.partition().count();
  // The as-of times, ascending and distinct.
  std::vector<int64_t> times;
  if (request.as_of_times_size() > 0) {
    if (request.has_as_of()) {
      return absl::InvalidArgumentError("set as_of or as_of_times, not both");
    }
    if (request.as_of_times_size() > kMaxSnapshotTimes) {
      return absl::InvalidArgumentError(
          absl::StrCat(request.as_of_times_size(),
                       " as_of_times; the limit is ", kMaxSnapshotTimes));
    }
    for (const auto& ts : request.as_of_times()) {
      auto t = RequestTimeToMicros(ts, "as_of_times");
      if (!t.ok()) return t.status();
      times.push_back(*t);
    }
    std::sort(times.begin(), times.end());
    times.erase(std::unique(times.begin(), times.end()), times.end());
  } else {
    auto t = AsOf(request);
    if (!t.ok()) return t.status();
    times.push_back(*t);
  }
  for (const ServicePartView& part : parts) {
    RETURN_IF_ERROR(
        CheckAsOf(*part.view, times.front(), EarliestAsOf(*part.view)));
  }
  auto pinned = store_->PinRead(request.watermark());
  if (!pinned.ok()) return pinned.status();
  const uint64_t watermark = pinned->watermark;
  const ReadView* read_view = pinned->view.get();
  const size_t nt = times.size();

  // One chunk under construction per as-of time.
  std::vector<v1::SnapshotChunk> chunks(nt);
  std::vector<bool> sent(nt, false);
  bool names_sent = false;
  v1::SnapshotChunk piece;
  std::vector<v1::FeatureRow*> taken;
  auto header = [&](v1::SnapshotChunk* chunk, size_t k) {
    if (!names_sent) {
      for (const auto& name : feature_names) chunk->add_feature_names(name);
      names_sent = true;
    }
    chunk->set_watermark(watermark);
    chunk->set_version(version);
    *chunk->mutable_as_of() = MicrosToTimestamp(times[k]);
  };
  // Emits a chunk, as columns when asked.
  auto send = [&](v1::SnapshotChunk* chunk) {
    if (request.columnar()) {
      RETURN_IF_ERROR(SnapshotRowsToColumns(feature_names.size(), chunk));
    }
    return emit(chunk);
  };
  // Sends time k's rows in chunks of about snapshot_chunk_bytes (at least
  // one chunk, even without rows).
  auto flush = [&](size_t k) {
    v1::SnapshotChunk& all = chunks[k];
    sent[k] = true;
    while (true) {
      size_t bytes = 0;
      int n = 0;
      while (n < all.rows_size() &&
             (n == 0 ||
              (bytes < options_.snapshot_chunk_bytes && n < chunk_rows))) {
        // Sized when the row was computed (ByteSizeLong caches it).
        bytes += static_cast<size_t>(all.rows(n).GetCachedSize());
        ++n;
      }
      if (n == all.rows_size()) {
        // The rest fits one chunk: sent in place. Clear keeps the rows
        // allocated, so the next batch reuses them.
        header(&all, k);
        RETURN_IF_ERROR(send(&all));
        all.Clear();
        return absl::OkStatus();
      }
      piece.Clear();
      header(&piece, k);
      taken.resize(static_cast<size_t>(n));
      all.mutable_rows()->ExtractSubrange(0, n, taken.data());
      for (v1::FeatureRow* row : taken) piece.mutable_rows()->AddAllocated(row);
      RETURN_IF_ERROR(send(&piece));
    }
  };

  // One total-order pass over each stream's keys finds the entities (one
  // Seek skips the rest of each) and each one's first visible event time;
  // the streams' entities are merged in byte order. Each batch of entities
  // is then swept by workers, with one entity cursor per worker, for every
  // as-of time after that first event.
  struct Found {
    std::string entity;
    size_t first_time = 0;  // index of the first as-of time it is part of
    std::vector<v1::FeatureRow*> rows;  // one per time from first_time on
  };
  const int64_t last_time = times.back();
  struct Scan {
    uint32_t stream_id;
    std::unique_ptr<EventIterator> it;
    ParsedEventKey key;  // of it's current event, while it is valid
  };
  std::vector<Scan> scans;
  for (uint32_t id : stream_ids) {
    const std::string prefix = StreamPrefix(id);
    scans.push_back(
        {id,
         store_->ScanEvents(prefix, PrefixSuccessor(prefix), read_view),
         {}});
  }
  // Parses each valid scan's key; the smallest entity, or false when every
  // scan is done.
  std::string entity;
  auto next_entity = [&](bool* any) -> absl::Status {
    *any = false;
    for (Scan& scan : scans) {
      if (!scan.it->Valid()) {
        if (!scan.it->status().ok()) return scan.it->status();
        continue;
      }
      if (!ParseEventKey(scan.it->key(), &scan.key)) {
        return absl::DataLossError("corrupt stored event key");
      }
      if (!*any || scan.key.entity < entity)
        entity = std::string(scan.key.entity);
      *any = true;
    }
    return absl::OkStatus();
  };
  // Index of the first as-of time after the entity's earliest visible event
  // in `scan` (times.size() when none is visible before the last time), and
  // moves the scan past the entity.
  auto first_visible = [&](Scan& scan, size_t* first) -> absl::Status {
    ParsedEventKey& key = scan.key;
    for (; scan.it->Valid(); scan.it->Next()) {
      if (!ParseEventKey(scan.it->key(), &key)) {
        return absl::DataLossError("corrupt stored event key");
      }
      if (key.entity != entity || key.time_us >= last_time) break;
      if (key.seq <= watermark) {  // usually the first key
        *first = std::min<size_t>(
            *first, std::upper_bound(times.begin(), times.end(), key.time_us) -
                        times.begin());
        break;
      }
    }
    if (!scan.it->status().ok()) return scan.it->status();
    scan.it->Seek(PrefixSuccessor(EntityPrefix(scan.stream_id, entity)));
    return absl::OkStatus();
  };
  std::vector<std::unique_ptr<EventIterator>> cursors(
      std::max(1, options_.analyst_threads));
  std::vector<Found> batch;
  // Entities per batch: a batch holds up to (entities x times) rows, and
  // about one chunk's bytes: its size follows the rows seen so far,
  // starting small.
  const size_t max_batch =
      std::clamp<size_t>(static_cast<size_t>(chunk_rows) * 32 / nt, 64,
                         static_cast<size_t>(std::max(chunk_rows, 64)));
  size_t batch_limit = 64;
  // Bytes of rows each worker computed in this batch (one counter per
  // worker: no shared cache line on the per-row path).
  std::vector<PaddedCount> worker_bytes(std::max(1, options_.analyst_threads));
  size_t rows_seen = 0, bytes_seen = 0;
  bool more = true;
  while (more) {
    if (cancelled()) return absl::CancelledError("snapshot cancelled");
    batch.clear();
    while (batch.size() < batch_limit) {
      RETURN_IF_ERROR(next_entity(&more));
      if (!more) break;
      const bool in_partition = InPartition(entity, pindex, pcount);
      size_t first = nt;
      for (Scan& scan : scans) {
        if (!scan.it->Valid() || scan.key.entity != entity) continue;
        if (in_partition) {
          RETURN_IF_ERROR(first_visible(scan, &first));
        } else {
          scan.it->Seek(PrefixSuccessor(EntityPrefix(scan.stream_id, entity)));
        }
      }
      // Part of every as-of time after its first event.
      if (first < nt) batch.push_back(Found{entity, first, {}});
    }
    if (batch.empty()) break;
    for (Found& f : batch) {
      for (size_t k = f.first_time; k < nt; ++k) {
        v1::FeatureRow* row = chunks[k].add_rows();
        row->set_entity(f.entity);
        f.rows.push_back(row);
      }
    }
    for (PaddedCount& c : worker_bytes) c.n = 0;
    RETURN_IF_ERROR(ParallelFor(
        batch.size(), options_.analyst_threads, [&](size_t i, int worker) {
          if (cancelled()) return absl::CancelledError("snapshot cancelled");
          auto& cursor = cursors[worker];
          if (cursor == nullptr) cursor = store_->NewEntityCursor(read_view);
          Found& f = batch[i];
          const auto entity_times =
              absl::MakeConstSpan(times).subspan(f.first_time);
          for (const FusedParts& group : groups) {
            RETURN_IF_ERROR(
                SweepEntity(*group.view, cursor.get(), f.entity, entity_times,
                            watermark, [&](size_t j, auto* values) {
                              auto* row_values = f.rows[j]->mutable_values();
                              if (whole) {
                                row_values->Swap(values);
                                return;
                              }
                              while (row_values->size() < width)
                                row_values->Add();
                              for (const auto& [k, offset] : group.parts) {
                                int at = out_at[k];
                                for (int v : parts[k].take) {
                                  row_values->Mutable(at++)->Swap(
                                      values->Mutable(offset + v));
                                }
                              }
                            }));
          }
          for (v1::FeatureRow* row : f.rows) {
            const size_t bytes = row->ByteSizeLong();
            // One row must fit a message, and the batch must stay near
            // what the next chunks can carry.
            worker_bytes[worker].n += bytes;
            if (bytes > options_.max_response_bytes ||
                worker_bytes[worker].n > options_.max_response_bytes) {
              return absl::ResourceExhaustedError(
                  absl::StrCat("the row of entity '", Echo(f.entity), "' is ",
                               bytes, " bytes; snapshot rows of ", what,
                               " in flight would exceed the largest message "
                               "(--max_message_bytes ",
                               options_.max_response_bytes, ")"));
            }
          }
          return absl::OkStatus();
        }));
    rows_seen += batch.size() * nt;
    for (const PaddedCount& c : worker_bytes) bytes_seen += c.n;
    const size_t per_entity =
        std::max<size_t>(1, bytes_seen * nt / std::max<size_t>(1, rows_seen));
    batch_limit = std::clamp<size_t>(options_.snapshot_chunk_bytes / per_entity,
                                     1, max_batch);
    for (size_t k = 0; k < nt; ++k) {
      if (chunks[k].rows_size() > 0) RETURN_IF_ERROR(flush(k));
    }
  }
  // Every as-of time gets at least one chunk, even with no entity.
  for (size_t k = 0; k < nt; ++k) {
    if (!sent[k]) RETURN_IF_ERROR(flush(k));
  }
  return absl::OkStatus();
}

}  // namespace rawfeat
