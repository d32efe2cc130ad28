#ifndef RAWFEAT_SERVER_VIEWS_VIEW_ENGINE_H_
#define RAWFEAT_SERVER_VIEWS_VIEW_ENGINE_H_

// Feature views materialized on demand. A feature as of T with window W
// covers events with T - W <= event_time < T and seq <= watermark (lifetime:
// event_time < T), after its filter, skipping events that lack its source
// field. One bounded RocksDB scan per entity covers the longest window of
// the view; every feature reads from that scan. Knows nothing of gRPC.
// Thread-safe.

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "rawfeat/v1/rawfeat.pb.h"
#include "server/aggregation/aggregator.h"
#include "server/schema/registry.h"
#include "server/storage/event_store.h"

namespace rawfeat {

// A feature filter bound to a field position.
struct CompiledFilter {
  int position = -1;
  v1::FieldType type = v1::FIELD_TYPE_UNSPECIFIED;
  enum class Op { kEq, kNe, kLt, kLe, kGt, kGe, kIn } op = Op::kEq;
  std::vector<OwnedValue> values;  // converted to the field's type

  // False when the event lacks the field, whatever the operator.
  bool Matches(const std::vector<FieldValue>& fields) const;
};

struct CompiledFeature {
  std::string name;
  const AggregatorRegistry::Entry* aggregation = nullptr;
  v1::FeatureDef def;
  int field_position = -1;  // -1: no source field (count)
  v1::FieldType field_type = v1::FIELD_TYPE_UNSPECIFIED;
  bool lifetime = false;
  int64_t window_us = 0;
  bool has_filter = false;
  CompiledFilter filter;
};

// A view bound to its stream's field positions.
struct CompiledView {
  std::shared_ptr<const v1::FeatureViewDef> def;
  std::shared_ptr<const StreamSchema> stream;
  std::vector<CompiledFeature> features;
  bool any_lifetime = false;
  int64_t max_window_us = 0;

  // Errors: INVALID_ARGUMENT if the view does not fit the stream.
  static absl::StatusOr<CompiledView> Compile(
      std::shared_ptr<const v1::FeatureViewDef> def,
      std::shared_ptr<const StreamSchema> stream);
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
    // events (reading a tile costs about as much as scanning ~20 events).
    // Default: 32.
    int tile_min_events = 32;
    // Most days tiled by one lookup (tiles are built while ingest waits).
    // Default: 16.
    int max_tiles_per_lookup = 16;
  };

  // REQUIRES: `store` and `registry` outlive the engine.
  ViewEngine(EventStore* store, const Registry* registry, Options options)
      : store_(store), registry_(registry), options_(options) {}

  // Features of a view for a list of entities, one row per entity in
  // request order (unknown entities get count 0 / nulls), as of
  // `as_of` (default: now) at `watermark` (default: latest), read from one
  // consistent snapshot.
  // Errors: NOT_FOUND (view or version), INVALID_ARGUMENT (no entities, too
  // many, bad entity, watermark above the latest, bad time), OUT_OF_RANGE
  // (an INT64 sum overflows; names the feature and entity).
  absl::StatusOr<v1::GetFeaturesResponse> GetFeatures(
      const v1::GetFeaturesRequest& request) const;

  // Computes every feature of `view` for one entity. Appends values (aligned
  // with view.features) to `row`. Uses the tiles valid at `watermark` for
  // whole days inside every window (or outside it), scans the rest, and may
  // build tiles for heavy days it scanned.
  absl::Status ComputeEntity(const CompiledView& view, absl::string_view entity,
                             int64_t as_of_us, uint64_t watermark,
                             const ReadView* read_view,
                             v1::FeatureRow* row) const;

  // Resolves (name, version 0 = latest) and returns its compiled form,
  // cached until the view or its stream definition changes.
  absl::StatusOr<std::shared_ptr<const CompiledView>> Resolve(
      const std::string& name, uint32_t version) const;

 private:
  // Builds and stores tiles for `days` (day starts) of one entity.
  absl::Status BuildTiles(const CompiledView& view, absl::string_view entity,
                          const std::vector<int64_t>& days) const;

  EventStore* const store_;
  const Registry* const registry_;
  const Options options_;
  mutable absl::Mutex cache_mu_;
  // By (view name, resolved version).
  mutable std::map<std::pair<std::string, uint32_t>,
                   std::shared_ptr<const CompiledView>>
      cache_ ABSL_GUARDED_BY(cache_mu_);
};

}  // namespace rawfeat

#endif  // RAWFEAT_SERVER_VIEWS_VIEW_ENGINE_H_
