#include "server/views/view_engine.h"

#include <algorithm>
#include <atomic>
#include <limits>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "server/common/coding.h"
#include "server/common/echo.h"
#include "server/common/hash.h"
#include "server/common/parallel.h"
#include "server/common/status_macros.h"
#include "server/common/time_util.h"
#include "server/schema/validation.h"
#include "server/views/columns.h"
#include "server/views/sweep.h"
#include "server/views/tiles.h"

namespace rawfeat {

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

// Takes `bytes` from `*budget` for feature `feature` (-1: the row itself)
// of `entity`; RESOURCE_EXHAUSTED naming them once the budget is spent.
// Threads building one answer take from its budget at once.
absl::Status TakeBytes(size_t bytes, std::atomic<size_t>* budget,
                       const CompiledView& view, int feature,
                       absl::string_view entity) {
  size_t left = budget->load(std::memory_order_relaxed);
  while (bytes <= left) {
    if (budget->compare_exchange_weak(left, left - bytes,
                                      std::memory_order_relaxed)) {
      return absl::OkStatus();
    }
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

void EntityScratch::Prepare(const CompiledView& view) {
  if (view_ != &view) {
    states_ = NewStates(view);
    tile_states_.clear();  // MergeTile makes them on first use
    view_ = &view;
    return;
  }
  for (auto& state : states_) state->Reset();
}

absl::Status ViewEngine::ComputeEntity(
    const CompiledView& view, absl::string_view entity, int64_t as_of_us,
    uint64_t watermark, const ReadView* read_view, EventCursor* cursor,
    v1::FeatureRow* row, std::atomic<size_t>* budget, bool queue_tiles,
    EntityScratch* scratch) const {
  const StreamSchema& stream = *view.stream;
  EntityScratch own;
  EntityScratch& reused = scratch != nullptr ? *scratch : own;
  reused.Prepare(view);
  AggregatorStates& states = reused.states_;
  std::vector<int64_t>& starts = reused.starts_;
  starts.clear();
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
  if (options_.tiles && store_->MayHaveTiles(TileScopeOf(view, entity))) {
    auto tiles =
        store_->ScanTiles(TileScopeOf(view, entity),
                          lo == kMinEventTime ? kMinEventTime : DayStart(lo),
                          as_of_day, read_view);
    for (; tiles->Valid(); tiles->Next()) {
      const int64_t day = tiles->day();
      existing.push_back(day);
      // A tile holds every event of its day up to its build watermark;
      // read at an older watermark it would hold too much.
      if (day + kDayMicros > as_of_us || tiles->watermark() > watermark) {
        continue;
      }
      RETURN_IF_ERROR(MergeTile(view, tiles.get(), watermark, starts,
                                &reused.tile_states_, &states));
      covered.push_back(Covered{day, raw_from_of(day)});
    }
    tiles_used_.fetch_add(covered.size(), std::memory_order_relaxed);
    if (!tiles->status().ok()) return tiles->status();
  }

  // Events stamped exactly as_of are not part of the value as of it.
  EventCursor* const it = cursor;
  // An entity with tiles is a large one: its tail is not its only block.
  it->Seek(entity, lo, as_of_us, /*many_blocks=*/!existing.empty());
  size_t next_covered = 0;
  int64_t day = std::numeric_limits<int64_t>::min();
  int64_t day_events = 0;
  std::vector<int64_t> heavy_days;  // scanned whole days worth a tile
  EventRouter router(view, &starts, &states);
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
    const int64_t time_us = it->time_us();
    const int64_t event_day = DayStart(time_us);
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
    if (tiled && time_us < covered[next_covered].raw_from) {
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
      it->SeekTime(target);
      continue;
    }
    if (!tiled) ++day_events;
    if (it->seq() <= watermark) {
      // In a tiled day, only features whose window starts inside it.
      if (!router.Add(it, stream.types,
                      tiled ? event_day
                            : std::numeric_limits<int64_t>::min())) {
        break;
      }
    }
    it->Next();
  }
  if (!it->status().ok()) return it->status();
  close_day();

  row->set_entity(std::string(entity));
  RETURN_IF_ERROR(TakeBytes(row->ByteSizeLong(), budget, view, -1, entity));
  row->mutable_values()->Reserve(static_cast<int>(states.size()));
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
  if (queue_tiles && !heavy_days.empty()) {
    if (static_cast<int>(heavy_days.size()) > options_.max_tiles_per_lookup) {
      heavy_days.resize(options_.max_tiles_per_lookup);
    }
    // A cache fill, in the background: the lookup does not wait for it.
    QueueTiles(view, entity, std::move(heavy_days));
  }
  return absl::OkStatus();
}

int ViewEngine::LookupWorkers(int n) const {
  return lookup_pool_ == nullptr || n <= kLookupGroup ? 1
                                                      : lookup_pool_->workers();
}

absl::Status ViewEngine::ForEachLookupGroup(
    int n, absl::FunctionRef<absl::Status(int, int, int)> fn) const {
  const int groups = (n + kLookupGroup - 1) / kLookupGroup;
  std::vector<absl::Status> errors(groups);
  std::atomic<bool> failed{false};
  auto run = [&](size_t g, int worker) {
    if (failed.load(std::memory_order_relaxed)) return;
    const int begin = static_cast<int>(g) * kLookupGroup;
    errors[g] = fn(begin, std::min(n, begin + kLookupGroup), worker);
    if (!errors[g].ok()) failed = true;
  };
  if (LookupWorkers(n) == 1) {
    for (int g = 0; g < groups; ++g) run(g, 0);
  } else {
    lookup_pool_->Run(groups, run);
  }
  // No group starts after an error; of the groups that failed, the first.
  for (absl::Status& s : errors) {
    if (!s.ok()) return std::move(s);
  }
  return absl::OkStatus();
}

absl::StatusOr<v1::GetFeaturesResponse> ViewEngine::GetFeatures(
    const v1::GetFeaturesRequest& request) const {
  v1::GetFeaturesResponse response;
  RETURN_IF_ERROR(GetFeatures(request, &response));
  return response;
}

absl::Status ViewEngine::GetFeatures(const v1::GetFeaturesRequest& request,
                                     v1::GetFeaturesResponse* out) const {
  if (!request.service().empty() || request.key_rows_size() > 0) {
    if (!request.view().empty() || request.entities_size() > 0) {
      return absl::InvalidArgumentError(
          "give a view with entities, or a service with key_rows, not both");
    }
    return GetServiceFeatures(request, out);
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
  auto as_of_or = RequestAsOf(request);
  if (!as_of_or.ok()) return as_of_or.status();
  const int64_t as_of = *as_of_or;
  RETURN_IF_ERROR(CheckAsOf(**view, as_of, EarliestAsOf(**view)));
  v1::GetFeaturesResponse& response = *out;
  for (const auto& f : (*view)->features) response.add_feature_names(f.name);
  // Counted while rows are built, so an oversized answer is refused before
  // it is allocated whole.
  std::atomic<size_t> budget{options_.max_response_bytes};
  RETURN_IF_ERROR(
      TakeBytes(response.ByteSizeLong() + 64, &budget, **view, -1, ""));
  // Entities in key order, so each worker's seeks move forward, often
  // within the blocks its last one read; rows stay in request order.
  const int n = request.entities_size();
  std::vector<std::pair<absl::string_view, int>> order;
  order.reserve(n);
  for (int i = 0; i < n; ++i) order.emplace_back(request.entities(i), i);
  std::sort(order.begin(), order.end());
  response.mutable_rows()->Reserve(n);
  for (int i = 0; i < n; ++i) response.add_rows();
  // Each lookup thread re-seeks one cursor for all its entities (a RocksDB
  // iterator costs about as much to make as a median entity's whole scan).
  struct Worker {
    std::unique_ptr<EventCursor> cursor;
    EntityScratch scratch;
  };
  std::vector<Worker> workers(LookupWorkers(n));
  RETURN_IF_ERROR(ForEachLookupGroup(n, [&](int begin, int end, int w) {
    Worker& worker = workers[w];
    if (worker.cursor == nullptr) {
      worker.cursor = store_->NewEventCursor(
          (*view)->stream->stream_id, pinned->view.get(), /*lookups=*/true);
    }
    for (int k = begin; k < end; ++k) {
      const auto& [entity, i] = order[k];
      RETURN_IF_ERROR(ComputeEntity(**view, entity, as_of, pinned->watermark,
                                    pinned->view.get(), worker.cursor.get(),
                                    response.mutable_rows(i), &budget,
                                    /*queue_tiles=*/true, &worker.scratch));
    }
    return absl::OkStatus();
  }));
  response.set_watermark(pinned->watermark);
  response.set_version((*view)->def->version());
  *response.mutable_as_of() = MicrosToTimestamp(as_of);
  return absl::OkStatus();
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

absl::Status ViewEngine::GetServiceFeatures(
    const v1::GetFeaturesRequest& request,
    v1::GetFeaturesResponse* out) const {
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
  v1::GetFeaturesResponse& response = *out;
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
  auto as_of_or = RequestAsOf(request);
  if (!as_of_or.ok()) return as_of_or.status();
  const int64_t as_of = *as_of_or;
  for (const ServicePartView& part : service->parts) {
    RETURN_IF_ERROR(CheckAsOf(*part.view, as_of, EarliestAsOf(*part.view)));
  }
  std::atomic<size_t> budget{options_.max_response_bytes};
  // Per lookup thread: one cursor per stream, re-seeked for each key; one
  // scratch per part.
  struct Worker {
    absl::flat_hash_map<uint32_t, std::unique_ptr<EventCursor>> cursors;
    std::vector<EntityScratch> scratches;
    v1::FeatureRow computed;
  };
  const int n = request.key_rows_size();
  std::vector<Worker> workers(LookupWorkers(n));
  for (Worker& worker : workers) {
    worker.scratches = std::vector<EntityScratch>(service->parts.size());
  }
  response.mutable_rows()->Reserve(n);
  for (int r = 0; r < n; ++r) response.add_rows();
  RETURN_IF_ERROR(ForEachLookupGroup(n, [&](int begin, int end, int w) {
    Worker& worker = workers[w];
    for (int r = begin; r < end; ++r) {
      const v1::KeyRow& keys = request.key_rows(r);
      v1::FeatureRow* row = response.mutable_rows(r);
      for (size_t p = 0; p < service->parts.size(); ++p) {
        const ServicePartView& part = service->parts[p];
        auto it = keys.keys().find(part.key);
        if (it == keys.keys().end() || it->second.empty()) {
          // No key for this part: its features are null.
          for (size_t i = 0; i < part.take.size(); ++i) row->add_values();
          continue;
        }
        worker.computed.Clear();
        std::unique_ptr<EventCursor>& cursor =
            worker.cursors[part.view->stream->stream_id];
        if (cursor == nullptr) {
          cursor = store_->NewEventCursor(part.view->stream->stream_id,
                                          pinned->view.get(),
                                          /*lookups=*/true);
        }
        RETURN_IF_ERROR(ComputeEntity(
            *part.view, it->second, as_of, pinned->watermark,
            pinned->view.get(), cursor.get(), &worker.computed, &budget,
            /*queue_tiles=*/true, &worker.scratches[p]));
        for (int i : part.take) *row->add_values() = worker.computed.values(i);
      }
    }
    return absl::OkStatus();
  }));
  response.set_watermark(pinned->watermark);
  response.set_version(service->def->version());
  *response.mutable_as_of() = MicrosToTimestamp(as_of);
  return absl::OkStatus();
}

}  // namespace rawfeat
