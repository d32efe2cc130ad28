#ifndef RAWFEAT_SERVER_VIEWS_TILES_H_
#define RAWFEAT_SERVER_VIEWS_TILES_H_

// Day tiles: per (view version, entity, UTC day) partial aggregation
// states, so long windows of heavy entities do not rescan history. The
// store keeps them (EventStore::ScanTiles / WriteTiles: keys, watermark,
// the day's events above it, folding at sealing); this file owns their
// payload and what goes into it:
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
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "server/aggregation/aggregator.h"
#include "server/storage/event_cursor.h"
#include "server/storage/event_store.h"
#include "server/views/compiled_view.h"

namespace rawfeat {

using AggregatorStates = std::vector<std::unique_ptr<Aggregator>>;

// Fresh states, one per feature of `view`.
AggregatorStates NewStates(const CompiledView& view);

// Hands one entity's events, in time order, to the features that take
// them: a feature takes an event at t if its window start <= t and, in a
// day its tile already gave it (`tiled_day`), only if its window starts
// after that day began. Which features take an event is worked out again
// only where a window starts or the tiled day changes, not per event.
// Used by one thread.
class EventRouter {
 public:
  // `starts`: each feature's window start, or null for "every feature
  // takes every event" (a tile's whole day). `view`, `starts` and
  // `states` outlive the router.
  EventRouter(const CompiledView& view, const std::vector<int64_t>* starts,
              AggregatorStates* states);

  // Adds the cursor's current event, in `tiled_day` (the lowest int64:
  // none), to the features that take it. Its fields are decoded (against
  // `types`, the stream's newest field list) only if one of those reads a
  // field or has a filter: counts alone, as for a heavy entity's last hour
  // next to tiles, read no values. False if the event is corrupt (the
  // cursor then says so). REQUIRES: cursor->Valid().
  bool Add(EventCursor* cursor, const std::vector<v1::FieldType>& types,
           int64_t tiled_day = std::numeric_limits<int64_t>::min());
  // The same for an event handed out whole (e.g. TileCursor::late), in no
  // tiled day, its value parsed into `reader` only if a taker reads
  // fields. False if the value is corrupt.
  bool Add(const StoredEvent& event, const std::vector<v1::FieldType>& types,
           EventValueReader* reader);

 private:
  // Adds the event at (time_us, seq) to its takers; `fields` returns its
  // decoded fields (nullptr: corrupt), called only if a taker reads them.
  template <typename Fields>
  bool Take(int64_t time_us, uint64_t seq, int64_t tiled_day,
            const Fields& fields);
  // Routes for an event at `time_us` in `tiled_day` if it lies outside
  // what was routed last; true if a taker reads fields.
  bool At(int64_t time_us, int64_t tiled_day);
  void Route(int64_t time_us, int64_t tiled_day);

  const CompiledView& view_;
  const std::vector<int64_t>* starts_;
  AggregatorStates* states_;
  std::vector<int> takers_;  // features taking events in [since_, until_)
  bool needs_fields_ = false;
  int64_t since_ = 0;
  int64_t until_ = std::numeric_limits<int64_t>::min();  // nothing routed
  int64_t tiled_day_ = std::numeric_limits<int64_t>::min();
};

// The payload of a tile holding `states`.
std::string EncodeTilePayload(const AggregatorStates& states);

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

// Merges the tile `tile` is on into `states` as MergeTilePayload does,
// with the events of its day above its watermark (TileCursor::late) that
// are at or below `watermark`, into the same features. Errors: DATA_LOSS
// (a malformed tile or corrupt event).
absl::Status MergeTile(const CompiledView& view, TileCursor* tile,
                       uint64_t watermark, const std::vector<int64_t>& starts,
                       AggregatorStates* scratch, AggregatorStates* states);

// The payload of a tile of `day` holding what `payload` holds and
// `events` (of that day, not in it yet): EventStore's TileFolder. Errors:
// DATA_LOSS (a malformed tile or corrupt event).
absl::StatusOr<std::string> FoldTilePayload(
    const CompiledView& view, absl::string_view payload, int64_t day,
    absl::Span<const StoredEvent> events);

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
