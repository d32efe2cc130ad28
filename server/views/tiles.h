#ifndef RAWFEAT_SERVER_VIEWS_TILES_H_
#define RAWFEAT_SERVER_VIEWS_TILES_H_

// Day tiles: per (view version, entity, UTC day) partial aggregation
// states, so long windows of heavy entities do not rescan history. The
// store keeps them (EventStore::ScanTiles / WriteTiles: keys, build
// watermark, invalidation by appends); this file owns their payload and
// what goes into it:
//
//   payload = varint n | n x length-prefixed Aggregator::Serialize state
//
// aligned with the view's features. A change here or in any Serialize
// encoding bumps kTileFormat (storage/event_cursor.h).
//
// Pure functions over their arguments; thread-safe.

#include <cstdint>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "server/aggregation/aggregator.h"
#include "server/storage/event_cursor.h"
#include "server/storage/event_store.h"
#include "server/views/compiled_view.h"

namespace rawfeat {

using AggregatorStates = std::vector<std::unique_ptr<Aggregator>>;

// Fresh states, one per feature of `view`.
AggregatorStates NewStates(const CompiledView& view);

// Adds one event to every feature whose window [starts[i], as-of) holds
// it; `starts` may be null, then windows are ignored (tiles hold whole
// days). With `tiled_day` set, features whose window starts at or before
// that day already have the day from its tile and are skipped.
void AddEvent(const CompiledView& view, int64_t time_us, uint64_t seq,
              const std::vector<FieldValue>& fields,
              const std::vector<int64_t>* starts, AggregatorStates* states,
              int64_t tiled_day = std::numeric_limits<int64_t>::min());

// The payload of a tile holding `states`.
std::string EncodeTilePayload(const AggregatorStates& states);

// True if a feature AddEvent would give the event to (same arguments)
// reads a field or has a filter, so the event's fields must be decoded.
// When false, AddEvent may be given no fields.
bool EventNeedsFields(const CompiledView& view, int64_t time_us,
                      const std::vector<int64_t>* starts,
                      int64_t tiled_day = std::numeric_limits<int64_t>::min());

// Merges the tile of `day` into `states` for every feature whose window
// starts at or before the day (day >= starts[i]); the other features'
// states in it are skipped undecoded. `scratch` is where aggregations
// without their own MergeSerialized decode (made on first use). Errors:
// DATA_LOSS (malformed).
absl::Status MergeTilePayload(const CompiledView& view,
                              absl::string_view payload, int64_t day,
                              const std::vector<int64_t>& starts,
                              AggregatorStates* scratch,
                              AggregatorStates* states);

// The store's name for `view`'s tiles of `entity` (views into both).
TileScope TileScopeOf(const CompiledView& view, absl::string_view entity);

// Builds and stores the tiles of whole `days` (day starts) of `entity`
// from its events at the latest watermark, while ingest goes on (a day
// that gets an event meanwhile gets no tile: EventStore::WriteTiles).
// Errors: those of WriteTiles, DATA_LOSS.
absl::Status BuildTiles(EventStore* store, const CompiledView& view,
                        absl::string_view entity,
                        const std::vector<int64_t>& days);

}  // namespace rawfeat

#endif  // RAWFEAT_SERVER_VIEWS_TILES_H_
