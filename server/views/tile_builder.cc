// ViewEngine: the background tile builder. One thread, started by the
// first request for it, builds the day tiles that lookups asked for
// (QueueTiles) and, once sealing is quiet, those of the heavy old days of
// entities the sealer named (NoteSealed, tile_sealed_days), at a lower CPU
// priority than ingest and lookups. Tiles are a cache: a failed or voided
// build is dropped, and a later lookup or seal asks again.

#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "server/common/thread_name.h"
#include "server/common/time_util.h"
#include "server/views/tiles.h"
#include "server/views/view_engine.h"

namespace rawfeat {

ViewEngine::ViewEngine(EventStore* store, const Registry* registry,
                       Options options)
    : store_(store), registry_(registry), options_(options) {
  if (options_.lookup_threads > 1) {
    lookup_pool_ = std::make_unique<HelperPool>(options_.lookup_threads - 1);
  }
  if (options_.tiles) {
    // Sealing folds a tiled day's new events into its tiles.
    store_->SetTileFolder(
        this, [this](const TileScope& scope, int64_t day,
                     absl::string_view payload,
                     absl::Span<const StoredEvent> events)
                  -> absl::StatusOr<std::string> {
          auto view = Resolve(std::string(scope.view), scope.version);
          if (!view.ok()) return view.status();
          if ((*view)->stream->stream_id != scope.stream_id) {
            return absl::NotFoundError("the view reads another stream now");
          }
          return FoldTilePayload(**view, payload, day, events);
        });
  }
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
  store_->SetTileFolder(this, nullptr);
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
    tile_thread_ = std::thread([this] {
      NameThisThread("rf-tiles");
      BuildQueuedTiles();
    });
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
    {
      // A closing engine stops between entities (a heavy one's history
      // takes a while), not after the batch.
      absl::MutexLock l(&tile_mu_);
      if (tile_stop_) return;
    }
    auto found = views.find(stream_id);
    if (found == views.end()) continue;
    // The entity's heavy days, from one scan of its event times (from the
    // stream's retention horizon on: no window reads below it).
    std::vector<int64_t> heavy;
    // A background read of the whole history: not kept in the block cache.
    const std::unique_ptr<ReadView> scan_view =
        store_->NewReadView(/*fill_cache=*/false);
    auto cursor = store_->NewEventCursor(stream_id, scan_view.get());
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
      // Those without a tile (a stored tile serves every later watermark:
      // its day's new events are read beside it).
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

}  // namespace rawfeat
