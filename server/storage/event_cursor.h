#ifndef RAWFEAT_SERVER_STORAGE_EVENT_CURSOR_H_
#define RAWFEAT_SERVER_STORAGE_EVENT_CURSOR_H_

// Typed read access to what the store holds, for everything above storage:
// stored events (entity, event time, seq and fields) and day tiles (day,
// build watermark, payload). Readers never see keys or storage bytes, so
// the layout can change under them. Cursors come from EventStore
// (event_store.h); each is used by one thread at a time.

#include <cstdint>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "rawfeat/v1/rawfeat.pb.h"
#include "server/storage/event_codec.h"

namespace rawfeat {

inline constexpr int64_t kMinEventTime = std::numeric_limits<int64_t>::min();
inline constexpr int64_t kMaxEventTime = std::numeric_limits<int64_t>::max();

// A forward cursor over the stored events of one stream, in (entity,
// event time, seq) order, as of one read view. Every seq it shows is
// committed; readers filter by their watermark themselves (seq()).
//
// An entity cursor (EventStore::NewEventCursor) starts unpositioned: Seek
// puts it on one entity's events in a time range, and it may be re-seeked
// to any other entity, so one cursor serves many lookups (an ascending
// one, EventStore::NewAscendingCursor, reads a seek to a later entity by
// stepping forward when it can). A range cursor
// (EventStore::ScanEntity) is made for one entity's range and reads no
// further than it. A stream cursor
// (EventStore::ScanStream) starts on the stream's first event and walks
// every entity in byte order.
//
// A corrupt stored event ends the scan: Valid() turns false and status()
// is DATA_LOSS naming the stream and, where known, the entity.
class EventCursor {
 public:
  ~EventCursor();
  EventCursor(const EventCursor&) = delete;
  EventCursor& operator=(const EventCursor&) = delete;

  // Positions at the first event of `entity` with event time >= from_us;
  // the cursor then ends before the first event with time >= to_us, or at
  // the entity's end. A stream cursor keeps to that entity from then on.
  // `many_blocks` says the reader knows the entity is large (it has
  // tiles): a lookup cursor then seeks its blocks at once instead of first
  // reading its tail by key (EventStore::NewEventCursor).
  void Seek(absl::string_view entity, int64_t from_us = kMinEventTime,
            int64_t to_us = kMaxEventTime, bool many_blocks = false);
  // Moves forward to the current entity's first event with time >= from_us
  // (same end). REQUIRES: the cursor was positioned by Seek or is valid.
  void SeekTime(int64_t from_us);
  // Stream cursors: moves to the first event of the next entity.
  // REQUIRES: Valid().
  void NextEntity();

  // Stream cursors: if every sealed event of the current event's entity
  // lies in one block (its sole tail block, event_block.h) and the cursor
  // holds that block, the block's stored bytes; else empty. Valid until
  // the cursor moves. REQUIRES: Valid().
  absl::string_view SoleBlock() const;
  // Entity cursors: the next seeks to `entity` read `block` (what
  // SoleBlock gave for it on a cursor of the same stream and read view)
  // instead of the store's blocks, so one read serves both cursors. Seeks
  // to any other entity drop it. `block` must stay valid until then.
  void Prime(absl::string_view entity, absl::string_view block);

  bool Valid() const;
  void Next();
  // The current event. REQUIRES: Valid(). Views stay valid until the
  // cursor moves.
  absl::string_view entity() const;
  int64_t time_us() const;
  uint64_t seq() const;
  // Decodes the current event's fields and id against `types` (the
  // stream's newest field list). nullptr if the event is corrupt; then
  // Valid() is false and status() says so. The reader is the cursor's and
  // stays valid until the cursor moves. REQUIRES: Valid().
  const EventValueReader* Decode(const std::vector<v1::FieldType>& types);
  // The current event's stored value (event_codec.h), for readers that
  // copy events aside and decode them later. REQUIRES: Valid().
  absl::string_view value() const;
  // Non-OK if the scan stopped on an error.
  absl::Status status() const;

  struct Rep;

 private:
  friend class EventStore;
  explicit EventCursor(std::unique_ptr<Rep> rep);
  std::unique_ptr<Rep> rep_;
};

// One stored event: where it is and its stored value, as the log hands it
// out (replay in seq order) and the replay encoder takes it. Views into
// memory owned elsewhere (during ScanLog's callback: the store's).
struct StoredEvent {
  uint64_t seq = 0;
  uint32_t stream_id = 0;
  absl::string_view entity;
  int64_t time_us = 0;
  absl::string_view value;  // the stored value (event_codec.h)
};

// The format of tile values: the tile payload (views/tiles.h) and
// every aggregator's Serialize encoding. Bump it whenever either changes:
// tiles of another format are dropped when the store opens (they are a
// cache, rebuilt on demand), never merged with new ones.
//   1: up to issue 11 (stddev from rounded sums; sums as slots from 0).
//   2: exact stddev state (n, exact sum, exact sum of squares); sums as
//      (first slot, count, slots).
//   3: a tile stays when events land in its day: they are read beside it
//      (TileCursor::late) until sealing folds them in. A server of format
//      2 would read such a tile without them, so it drops these.
inline constexpr uint32_t kTileFormat = 3;

// Which tiles: one view version's tiles of one entity of a stream.
struct TileScope {
  uint32_t stream_id = 0;
  absl::string_view entity;
  absl::string_view view;
  uint32_t version = 0;
};

// A forward cursor over one scope's tiles in day order.
class TileCursor {
 public:
  ~TileCursor();
  TileCursor(const TileCursor&) = delete;
  TileCursor& operator=(const TileCursor&) = delete;

  bool Valid() const;
  void Next();
  // REQUIRES: Valid(). The UTC day start the tile covers, its watermark
  // (it holds exactly the events of the day with seq <= it), and what the
  // builder stored (views/tiles.h).
  int64_t day() const;
  uint64_t watermark() const;
  absl::string_view payload() const;
  // REQUIRES: Valid(). The events of the tile's day with seq above its
  // watermark, as of the cursor's view, in (time, seq) order: appended
  // after the tile was built and not folded into it yet (sealing folds an
  // entity's new events into its tiles before it writes them into blocks:
  // EventStore::SetTileFolder), so few. A reader adds those with seq <= its
  // own watermark to what it merged from the tile. Views stay valid until
  // the cursor moves.
  const std::vector<StoredEvent>& late();
  // DATA_LOSS if a stored tile is malformed (the scan stops there).
  absl::Status status() const;

  struct Rep;

 private:
  friend class EventStore;
  explicit TileCursor(std::unique_ptr<Rep> rep);
  std::unique_ptr<Rep> rep_;
};

}  // namespace rawfeat

#endif  // RAWFEAT_SERVER_STORAGE_EVENT_CURSOR_H_
