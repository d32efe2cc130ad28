#ifndef RAWFEAT_SERVER_VIEWS_VIEW_ENGINE_H_
#define RAWFEAT_SERVER_VIEWS_VIEW_ENGINE_H_

// Feature views materialized on demand. A feature as of T with window W
// covers events with T - W <= event_time < T and seq <= watermark (lifetime:
// event_time < T), after its filter, skipping events that lack its source
// field. One bounded RocksDB scan per entity covers the longest window of
// the view; every feature reads from that scan. Knows nothing of gRPC.
// Thread-safe.

#include <atomic>
#include <cstdint>
#include <deque>
#include <functional>
#include <limits>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_set.h"
#include "absl/functional/function_ref.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "rawfeat/v1/rawfeat.pb.h"
#include "server/aggregation/aggregator.h"
#include "server/common/helper_pool.h"
#include "server/common/time_util.h"
#include "server/schema/registry.h"
#include "server/storage/event_store.h"
#include "server/views/compiled_view.h"
#include "server/views/tiles.h"

namespace rawfeat {

// One part of a feature service bound to its compiled view: the label key
// column it is looked up by, its output prefix, and the indices of the
// view's features it takes, in output order (all of them when the part
// lists none).
struct ServicePartView {
  std::shared_ptr<const CompiledView> view;
  std::string key;
  std::string prefix;
  std::vector<int> take;
};

// Parts of a service that read one stream by one key column, fused into one
// view so that one sweep of each key's events computes all of them: its
// features are the parts' views' features concatenated (a part alone keeps
// its own view). For SweepEntity only: a fused view keeps its first part's
// `def`, so it has no tiles of its own (ComputeEntity takes real views).
struct FusedParts {
  std::shared_ptr<const CompiledView> view;
  std::string key;
  // Each fused part: its index in the service, and where its view's
  // features start in `view`.
  std::vector<std::pair<int, int>> parts;
};
// Groups `parts` by (stream, key), in order of each group's first part.
std::vector<FusedParts> FuseParts(const std::vector<ServicePartView>& parts);

// A feature service bound to its parts' compiled views.
struct ResolvedService {
  std::shared_ptr<const v1::FeatureServiceDef> def;
  std::vector<ServicePartView> parts;

  // The output feature names, parts in order (prefix + feature).
  std::vector<std::string> FeatureNames() const;
};

// A request's as-of time in microseconds; now when unset.
// Errors: INVALID_ARGUMENT (out of range).
template <typename Request>
absl::StatusOr<int64_t> RequestAsOf(const Request& request) {
  if (!request.has_as_of()) return NowMicros();
  return RequestTimeToMicros(request.as_of(), "as_of");
}

// What ComputeEntity reuses from one entity to the next of one call: the
// aggregation states of the view it served last (reset between entities,
// so e.g. a count_distinct table keeps its memory instead of being freed
// and regrown), the states tiles are decoded into, and its vectors. One per
// thread. It knows its view by address, so it must not outlive the views
// it served.
class EntityScratch {
 public:
  EntityScratch() = default;
  EntityScratch(const EntityScratch&) = delete;
  EntityScratch& operator=(const EntityScratch&) = delete;

 private:
  friend class ViewEngine;
  // Makes the states those of `view`, each as new.
  void Prepare(const CompiledView& view);

  const CompiledView* view_ = nullptr;  // what the states were made for
  AggregatorStates states_;
  AggregatorStates tile_states_;  // MergeTile's scratch
  std::vector<int64_t> starts_;
};

class ViewEngine {
 public:
  struct Options {
    // Most entities one GetFeatures call may ask for. Default: 1,000.
    int max_entities = 1000;
    // Day tiles: per (view, entity, UTC day) partial aggregation states, so
    // long windows of heavy entities do not rescan history. Values are
    // bit-identical with or without them. Default: on.
    bool tiles = true;
    // A day gets a tile once a lookup scans at least this many of its
    // events (merging a tile costs about as much as scanning 3-5 events,
    // and it saves a seek past the day). Default: 8.
    int tile_min_events = 8;
    // Most days tiled by one lookup, and by one build of the background
    // builder. Default: 16.
    int max_tiles_per_lookup = 16;
    // Tiles heavy days ahead of lookups: the entities whose events the
    // store sealed (EventStore::SetSealListener), from a day before
    // yesterday or earlier, get tiles for each such day with at least
    // tile_min_events events, for the newest version of every view of
    // their stream. The background builder takes them once sealing has
    // been quiet for sealed_quiet_ms (or has gone on for 30 times that),
    // after the lookups' own requests. Default: on, 1 s.
    bool tile_sealed_days = true;
    int sealed_quiet_ms = 1000;
    // Threads computing one Snapshot's entities. Default: 1.
    int analyst_threads = 1;
    // Threads computing one GetFeatures call's entities: its handler and
    // up to lookup_threads - 1 helpers shared by all calls, which take a
    // call's entities in groups of kLookupGroup only while idle (a call of
    // fewer than two groups is its handler's alone). Default: 1.
    int lookup_threads = 1;
    // Largest GetFeatures response, Snapshot chunk or snapshot row in
    // bytes (the gRPC message limit). Sizes are counted while values are
    // computed: an answer that would pass it is refused with
    // RESOURCE_EXHAUSTED naming the entity and feature, holding at most this
    // much plus one feature value per lookup thread. Default: 64 MiB.
    size_t max_response_bytes = 64 << 20;
    // Snapshot chunks are cut at this many bytes (or chunk_rows rows).
    // Default: 4 MiB.
    size_t snapshot_chunk_bytes = 4 << 20;
  };

  // REQUIRES: `store` and `registry` outlive the engine.
  // With tiles and tile_sealed_days, listens to the store's sealer
  // (EventStore::SetSealListener; one engine per store does).
  ViewEngine(EventStore* store, const Registry* registry, Options options);
  // Stops listening and stops the tile builder (a build in progress
  // finishes first).
  ~ViewEngine();
  ViewEngine(const ViewEngine&) = delete;
  ViewEngine& operator=(const ViewEngine&) = delete;

  // Features of a view for a list of entities, one row per entity in
  // request order (unknown entities get count 0 / nulls), as of
  // `as_of` (default: now) at `watermark` (default: latest), read from one
  // consistent snapshot.
  // Errors: NOT_FOUND (view or version), INVALID_ARGUMENT (no entities, too
  // many, bad entity, watermark above the latest, bad time),
  // FAILED_PRECONDITION (a window reaches below the stream's retention
  // horizon; see CheckAsOf), OUT_OF_RANGE
  // (an INT64 sum overflows; names the feature and entity),
  // RESOURCE_EXHAUSTED (the response would pass max_response_bytes).
  absl::StatusOr<v1::GetFeaturesResponse> GetFeatures(
      const v1::GetFeaturesRequest& request) const;
  // Entities one lookup thread takes at a time (Options::lookup_threads).
  static constexpr int kLookupGroup = 16;
  // The same into `*response`, which must be empty and may live on an
  // arena (the server's does: an answer of many rows is thousands of small
  // messages, then freed at once). On an error `*response` holds a part.
  absl::Status GetFeatures(const v1::GetFeaturesRequest& request,
                           v1::GetFeaturesResponse* response) const;

  // Every entity of the view's stream with at least one event before
  // `as_of` (default: now) visible at `watermark` (default: latest), in
  // entity byte order, as of `as_of`, optionally only entity-hash partition
  // `index` of `count`. Of a service (request.service set) whose parts all
  // share one key column: every entity with such an event in any part's
  // stream, each row its parts' features in order (a part whose stream has
  // no event of the entity gives count 0 / nulls, as GetFeatures does); a
  // service keyed by several columns is INVALID_ARGUMENT naming them. One pass
  // over the stream in key order from one consistent snapshot finds the
  // entities in batches of about a chunk; `analyst_threads` workers compute
  // them (SweepEntity, one entity at a time) while the next batches are
  // found, and each batch is sent as soon as it is complete. Memory: up to
  // three batches of rows plus one entity's window per worker. Calls `emit`
  // with chunks of up to `chunk_rows` rows (the first with the feature
  // names; at least one chunk, even when no entity qualifies); an error from
  // `emit` stops the scan and is returned.
  // Errors: those of GetFeatures, INVALID_ARGUMENT (bad partition).
  // With as_of_times (up to kMaxSnapshotTimes), one pass computes every
  // time: each chunk holds rows of one time (its as_of), entity order per
  // time, at least one chunk per time. With request.columnar each chunk's
  // rows are sent as its `entities` and `columns` instead.
  // Chunks hold up to `chunk_rows` rows and about snapshot_chunk_bytes; the
  // entities computed at once are sized from the rows seen so far, so
  // memory stays near one chunk whatever the rows weigh. `cancelled` is
  // polled between entities: once it returns true the snapshot stops with
  // CANCELLED. Errors also: RESOURCE_EXHAUSTED (one entity's row would pass
  // max_response_bytes; names it).
  using SnapshotEmit = std::function<absl::Status(v1::SnapshotChunk*)>;
  static constexpr int kMaxSnapshotTimes = 1000;
  absl::Status Snapshot(
      const v1::SnapshotRequest& request, const SnapshotEmit& emit,
      const std::function<bool()>& cancelled = [] { return false; },
      int chunk_rows = 1000) const;

  // Computes every feature of `view` for one entity. Appends values (aligned
  // with view.features) to `row`. Reads events through `cursor`, an entity
  // cursor of the view's stream at `read_view` (EventStore::NewEventCursor;
  // re-seeked here, so one serves many calls). Uses the tiles valid at
  // `watermark` for whole days inside every window (or outside it), scans
  // the rest, and (with `queue_tiles`) may queue tiles of heavy days it
  // scanned for the background builder (it never waits for them).
  // `*budget` is the bytes the answer may still take (threads building one
  // answer share it); it is reduced by what the row takes, and a row that
  // would pass it is RESOURCE_EXHAUSTED naming the feature and entity.
  // `scratch` (optional) is state reused between calls of one thread.
  absl::Status ComputeEntity(const CompiledView& view, absl::string_view entity,
                             int64_t as_of_us, uint64_t watermark,
                             const ReadView* read_view, EventCursor* cursor,
                             v1::FeatureRow* row, std::atomic<size_t>* budget,
                             bool queue_tiles = true,
                             EntityScratch* scratch = nullptr) const;

  // Retention: the earliest as-of time `view` can answer, i.e. whose every
  // window starts at or above its stream's horizon now (the lowest int64
  // when the stream keeps everything; the highest when a lifetime feature
  // meets a horizon).
  int64_t EarliestAsOf(const CompiledView& view) const;
  // FAILED_PRECONDITION naming the view, the stream, its retention and
  // horizon, and `as_of_us`, when as_of_us < earliest (EarliestAsOf).
  // `what` prefixes the message ("label row 7: ").
  static absl::Status CheckAsOf(const CompiledView& view, int64_t as_of_us,
                                int64_t earliest, absl::string_view what = "");

  const EventStore& store() const { return *store_; }
  const Registry& registry() const { return *registry_; }

  // GetFeatures of a feature service (request.service set).
  absl::Status GetServiceFeatures(const v1::GetFeaturesRequest& request,
                                  v1::GetFeaturesResponse* response) const;

  // Resolves (name, version 0 = latest) and returns its compiled form,
  // cached until the view or its stream definition changes.
  absl::StatusOr<std::shared_ptr<const CompiledView>> Resolve(
      const std::string& name, uint32_t version) const;

  // Resolves a feature service (version 0 = latest) and each part's view.
  // Errors: NOT_FOUND (service or version), those of Resolve.
  absl::StatusOr<ResolvedService> ResolveService(const std::string& name,
                                                 uint32_t version) const;

  // Day tiles read by lookups and built for them, since start (metrics).
  uint64_t tiles_used() const {
    return tiles_used_.load(std::memory_order_relaxed);
  }
  uint64_t tiles_built() const {
    return tiles_built_.load(std::memory_order_relaxed);
  }
  // Tile builds lookups asked for, and entities the sealer named
  // (tile_sealed_days), that are queued or running.
  size_t TileBuildsPending() const;

 private:
  EventStore* const store_;
  const Registry* const registry_;
  const Options options_;
  mutable absl::Mutex cache_mu_;
  // By (view name, resolved version).
  mutable std::map<std::pair<std::string, uint32_t>,
                   std::shared_ptr<const CompiledView>>
      cache_ ABSL_GUARDED_BY(cache_mu_);
  mutable std::atomic<uint64_t> tiles_used_{0};
  // The lookups' helpers (null: lookup_threads 1).
  std::unique_ptr<HelperPool> lookup_pool_;
  // The threads ForEachLookupGroup(n, ...) may call with: worker numbers
  // are below it.
  int LookupWorkers(int n) const;
  // Calls fn(begin, end, worker) for the groups [begin, end) of
  // kLookupGroup of [0, n), on the lookup threads when there are two groups
  // or more (no two calls in flight share a worker number). No group
  // starts after one failed; returns the error of the first failed group.
  absl::Status ForEachLookupGroup(
      int n, absl::FunctionRef<absl::Status(int, int, int)> fn) const;
  mutable std::atomic<uint64_t> tiles_built_{0};

  // Tiles of heavy days a lookup scanned are built by one background
  // thread (started by the first request), off the request path: a lookup
  // only queues them. At most kMaxTileJobs wait; one entity of one view is
  // queued once; more are dropped (a later lookup asks again).
  struct TileJob {
    std::string view;
    uint32_t version = 0;
    std::string entity;
    std::vector<int64_t> days;
  };
  static constexpr size_t kMaxTileJobs = 256;
  void QueueTiles(const CompiledView& view, absl::string_view entity,
                  std::vector<int64_t> days) const;
  void BuildQueuedTiles() const;
  void StartTileThread() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(tile_mu_);
  // Entities the sealer named (tile_sealed_days): at most
  // kMaxSealedEntities wait (more are dropped: lookups still tile them).
  using SealedEntity = std::pair<uint32_t, std::string>;  // stream id, entity
  static constexpr size_t kMaxSealedEntities = 1 << 18;
  void NoteSealed(uint32_t stream_id, absl::string_view entity,
                  int64_t earliest_us) const;
  // Builds the missing tiles of heavy old days of `entities` (stops
  // between entities once the engine closes).
  void TileSealed(const std::vector<SealedEntity>& entities) const;
  mutable absl::Mutex tile_mu_;
  mutable absl::CondVar tile_cv_;
  mutable std::deque<TileJob> tile_jobs_ ABSL_GUARDED_BY(tile_mu_);
  // view \0 version \0 entity of each queued or running job.
  mutable absl::flat_hash_set<std::string> tile_queued_
      ABSL_GUARDED_BY(tile_mu_);
  mutable absl::flat_hash_set<SealedEntity> sealed_ ABSL_GUARDED_BY(tile_mu_);
  mutable size_t sealed_running_ ABSL_GUARDED_BY(tile_mu_) = 0;
  // When the first of sealed_ and the last were noted.
  mutable absl::Time sealed_first_ ABSL_GUARDED_BY(tile_mu_);
  mutable absl::Time sealed_last_ ABSL_GUARDED_BY(tile_mu_);
  mutable bool tile_stop_ ABSL_GUARDED_BY(tile_mu_) = false;
  mutable std::thread tile_thread_ ABSL_GUARDED_BY(tile_mu_);
};

}  // namespace rawfeat

#endif  // RAWFEAT_SERVER_VIEWS_VIEW_ENGINE_H_
