#include "server/views/view_engine.h"

#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <limits>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
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
                                       EventCursor* cursor,
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
    auto tiles =
        store_->ScanTiles(TileScopeOf(view, entity),
                          lo == kMinEventTime ? kMinEventTime : DayStart(lo),
                          as_of_day, read_view);
    AggregatorStates scratch;  // made on first tile
    for (; tiles->Valid(); tiles->Next()) {
      const int64_t day = tiles->day();
      existing.push_back(day);
      // A tile holds every event of its day up to its build watermark;
      // read at an older watermark it would hold too much.
      if (day + kDayMicros > as_of_us || tiles->watermark() > watermark) {
        continue;
      }
      RETURN_IF_ERROR(MergeTilePayload(view, tiles->payload(), day, starts,
                                       &scratch, &states));
      covered.push_back(Covered{day, raw_from_of(day)});
    }
    tiles_used_.fetch_add(covered.size(), std::memory_order_relaxed);
    if (!tiles->status().ok()) return tiles->status();
  }

  // Events stamped exactly as_of are not part of the value as of it.
  EventCursor* const it = cursor;
  it->Seek(entity, lo, as_of_us);
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
      const EventValueReader* event = it->Decode(stream.types);
      if (event == nullptr) break;
      // In a tiled day, only features whose window starts inside it.
      AddEvent(view, time_us, it->seq(), event->fields(), &starts, &states,
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
    // A cache fill, in the background: the lookup does not wait for it.
    QueueTiles(view, entity, std::move(heavy_days));
  }
  return absl::OkStatus();
}

ViewEngine::ViewEngine(EventStore* store, const Registry* registry,
                       Options options)
    : store_(store), registry_(registry), options_(options) {
  if (options_.tiles && options_.tile_sealed_days) {
    store_->SetSealListener(
        this, [this](uint32_t stream_id, absl::string_view entity,
                     int64_t earliest_us) {
          NoteSealed(stream_id, entity, earliest_us);
        });
  }
}

ViewEngine::~ViewEngine() {
  // No sealer call is in progress or comes after this.
  store_->SetSealListener(this, nullptr);
  std::thread thread;
  {
    absl::MutexLock l(&tile_mu_);
    tile_stop_ = true;
    tile_cv_.SignalAll();
    thread = std::move(tile_thread_);
  }
  if (thread.joinable()) thread.join();
}

namespace {

// What identifies a tile job: one entity of one view version.
std::string TileJobKey(absl::string_view view, uint32_t version,
                       absl::string_view entity) {
  return absl::StrCat(view, absl::string_view("\0", 1), version,
                      absl::string_view("\0", 1), entity);
}

}  // namespace

void ViewEngine::QueueTiles(const CompiledView& view, absl::string_view entity,
                            std::vector<int64_t> days) const {
  std::string key =
      TileJobKey(view.def->name(), view.def->version(), entity);
  absl::MutexLock l(&tile_mu_);
  if (tile_stop_ || tile_jobs_.size() >= kMaxTileJobs ||
      !tile_queued_.insert(std::move(key)).second) {
    return;
  }
  tile_jobs_.push_back(TileJob{view.def->name(), view.def->version(),
                               std::string(entity), std::move(days)});
  StartTileThread();
  tile_cv_.Signal();
}

void ViewEngine::StartTileThread() const {
  if (!tile_thread_.joinable()) {
    tile_thread_ = std::thread([this] { BuildQueuedTiles(); });
  }
}

void ViewEngine::NoteSealed(uint32_t stream_id, absl::string_view entity,
                            int64_t earliest_us) const {
  // Only a day before yesterday can be tiled (ComputeEntity's horizon).
  if (DayStart(earliest_us) >= DayStart(NowMicros()) - kDayMicros) return;
  absl::MutexLock l(&tile_mu_);
  if (tile_stop_ || sealed_.size() >= kMaxSealedEntities) return;
  const absl::Time now = absl::Now();
  sealed_last_ = now;
  if (!sealed_.empty()) {
    // The builder waits for quiet with a timeout of its own already.
    sealed_.emplace(stream_id, std::string(entity));
    return;
  }
  sealed_first_ = now;
  sealed_.emplace(stream_id, std::string(entity));
  StartTileThread();
  tile_cv_.Signal();  // from an untimed wait to a timed one
}

void ViewEngine::BuildQueuedTiles() const {
  // Tiles are a cache fill: the scheduler gives this thread what ingest
  // and lookups leave (Linux nice applies per thread; failing is harmless).
  setpriority(PRIO_PROCESS, static_cast<id_t>(syscall(SYS_gettid)), 10);
  const absl::Duration quiet = absl::Milliseconds(options_.sealed_quiet_ms);
  absl::MutexLock l(&tile_mu_);
  while (true) {
    // Lookups' jobs first; sealed entities once sealing is quiet (or has
    // gone on long enough).
    while (!tile_stop_ && tile_jobs_.empty()) {
      if (sealed_.empty()) {
        tile_cv_.Wait(&tile_mu_);
        continue;
      }
      const absl::Time ready =
          std::min(sealed_last_ + quiet, sealed_first_ + 30 * quiet);
      const absl::Time now = absl::Now();
      if (now >= ready) break;
      tile_cv_.WaitWithTimeout(&tile_mu_, ready - now);
    }
    if (tile_stop_) return;
    if (tile_jobs_.empty()) {
      // A few sealed entities at a time, so lookups' jobs wait little.
      std::vector<SealedEntity> batch;
      while (!sealed_.empty() && batch.size() < 16) {
        batch.push_back(std::move(sealed_.extract(sealed_.begin()).value()));
      }
      if (sealed_.empty()) sealed_first_ = absl::InfinitePast();
      sealed_running_ += batch.size();
      tile_mu_.Unlock();
      TileSealed(batch);
      tile_mu_.Lock();
      sealed_running_ -= batch.size();
      tile_cv_.SignalAll();  // TileBuildsPending may fall to 0
      continue;
    }
    const TileJob job = std::move(tile_jobs_.front());
    tile_jobs_.pop_front();
    tile_mu_.Unlock();
    // The same view version (one dropped since builds nothing).
    auto view = Resolve(job.view, job.version);
    if (view.ok() &&
        BuildTiles(store_, **view, job.entity, job.days).ok()) {
      tiles_built_.fetch_add(job.days.size(), std::memory_order_relaxed);
    }
    tile_mu_.Lock();
    tile_queued_.erase(TileJobKey(job.view, job.version, job.entity));
    tile_cv_.SignalAll();  // TileBuildsPending may fall to 0
  }
}

void ViewEngine::TileSealed(const std::vector<SealedEntity>& entities) const {
  // The newest version of each view, by stream.
  using Views = std::vector<std::shared_ptr<const CompiledView>>;
  absl::flat_hash_map<uint32_t, Views> views;
  std::map<std::string, uint32_t> newest;
  for (const auto& def : registry_->Views()) {
    uint32_t& v = newest[def->name()];
    v = std::max(v, def->version());
  }
  for (const auto& [name, version] : newest) {
    auto view = Resolve(name, version);
    if (view.ok()) views[(*view)->stream->stream_id].push_back(*view);
  }
  // ComputeEntity's tile horizon: days before yesterday get no more
  // events in the normal course.
  const int64_t yesterday = DayStart(NowMicros()) - kDayMicros;
  for (const auto& [stream_id, entity] : entities) {
    auto found = views.find(stream_id);
    if (found == views.end()) continue;
    // The entity's heavy days, from one scan of its event times (from the
    // stream's retention horizon on: no window reads below it).
    std::vector<int64_t> heavy;
    auto cursor = store_->NewEventCursor(stream_id, nullptr);
    const int64_t kept = store_->Horizon(stream_id);  // kNoHorizon: all
    int64_t day = kMinEventTime;
    int64_t events = 0;
    for (cursor->Seek(entity, kept, yesterday); cursor->Valid();
         cursor->Next()) {
      const int64_t d = DayStart(cursor->time_us());
      if (d != day) {
        // A day that starts below the horizon is never read whole.
        if (events >= options_.tile_min_events && day >= kept) {
          heavy.push_back(day);
        }
        day = d;
        events = 0;
      }
      ++events;
    }
    if (events >= options_.tile_min_events && day >= kept) heavy.push_back(day);
    if (!cursor->status().ok() || heavy.empty()) continue;
    for (const auto& view : found->second) {
      // Those without a tile (a stored tile is valid at the latest
      // watermark: an append deletes it).
      std::vector<int64_t> missing;
      auto tiles = store_->ScanTiles(TileScopeOf(*view, entity), heavy.front(),
                                     heavy.back() + kDayMicros, nullptr);
      for (int64_t d : heavy) {
        while (tiles->Valid() && tiles->day() < d) tiles->Next();
        if (!tiles->Valid() || tiles->day() != d) missing.push_back(d);
      }
      if (!tiles->status().ok()) continue;
      const size_t chunk = std::max(options_.max_tiles_per_lookup, 1);
      for (size_t i = 0; i < missing.size(); i += chunk) {
        const std::vector<int64_t> days(
            missing.begin() + i,
            missing.begin() + std::min(missing.size(), i + chunk));
        if (!BuildTiles(store_, *view, entity, days).ok()) break;
        tiles_built_.fetch_add(days.size(), std::memory_order_relaxed);
      }
    }
  }
}

size_t ViewEngine::TileBuildsPending() const {
  absl::MutexLock l(&tile_mu_);
  return tile_queued_.size() + sealed_.size() + sealed_running_;
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
  auto as_of_or = RequestAsOf(request);
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
  // One cursor re-seeked for each entity (a RocksDB iterator costs about
  // as much to make as a median entity's whole scan).
  // Entities in key order, so each seek moves forward (often within the
  // blocks the last one read); rows stay in request order.
  auto cursor =
      store_->NewEventCursor((*view)->stream->stream_id, pinned->view.get());
  const int n = request.entities_size();
  std::vector<int> order(n);
  for (int i = 0; i < n; ++i) order[i] = i;
  std::sort(order.begin(), order.end(), [&](int a, int b) {
    return request.entities(a) < request.entities(b);
  });
  for (int i = 0; i < n; ++i) response.add_rows();
  for (int i : order) {
    absl::Status s = ComputeEntity(
        **view, request.entities(i), as_of, pinned->watermark,
        pinned->view.get(), cursor.get(), response.mutable_rows(i), &budget);
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
  auto as_of_or = RequestAsOf(request);
  if (!as_of_or.ok()) return as_of_or.status();
  const int64_t as_of = *as_of_or;
  for (const ServicePartView& part : service->parts) {
    RETURN_IF_ERROR(CheckAsOf(*part.view, as_of, EarliestAsOf(*part.view)));
  }
  size_t budget = options_.max_response_bytes;
  v1::FeatureRow computed;
  // One cursor per stream, re-seeked for each key.
  absl::flat_hash_map<uint32_t, std::unique_ptr<EventCursor>> cursors;
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
      std::unique_ptr<EventCursor>& cursor =
          cursors[part.view->stream->stream_id];
      if (cursor == nullptr) {
        cursor = store_->NewEventCursor(part.view->stream->stream_id,
                                        pinned->view.get());
      }
      absl::Status s = ComputeEntity(*part.view, it->second, as_of,
                                     pinned->watermark, pinned->view.get(),
                                     cursor.get(), &computed, &budget);
      if (!s.ok()) return s;
      for (int i : part.take) *row->add_values() = computed.values(i);
    }
  }
  response.set_watermark(pinned->watermark);
  response.set_version(service->def->version());
  *response.mutable_as_of() = MicrosToTimestamp(as_of);
  return response;
}

}  // namespace rawfeat
