#ifndef RAWFEAT_SERVER_EVENTS_EVENT_WIRE_H_
#define RAWFEAT_SERVER_EVENTS_EVENT_WIRE_H_

// Writes ReadEventsResponse messages in protobuf wire format straight from
// stored events (entity, time, seq and compact value), without building
// v1::Event objects: building and serializing a map<string, Value> per
// event was most of a replay's server CPU. The bytes parse as the same
// v1::Event that DecodeStoredEvent-style conversion would give (fields in
// schema order). Not thread-safe: one encoder per replay.

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "server/common/chunk_buffer.h"
#include "server/schema/registry.h"
#include "server/storage/event_codec.h"
#include "server/storage/event_cursor.h"

namespace rawfeat {

// The most bytes AppendWatermark adds to a chunk: a chunk of events takes
// at most the largest message less this.
inline constexpr size_t kChunkWatermarkBytes = 16;

class EventChunkEncoder {
 public:
  // REQUIRES: `schema` outlives the encoder.
  explicit EventChunkEncoder(const StreamSchema& schema);

  // Appends the event to `chunk` as one `events` entry (field 1) of a
  // ReadEventsResponse. Errors: DATA_LOSS (a corrupt value); `chunk` is
  // unchanged then.
  absl::Status AppendEvent(const StoredEvent& event, ChunkBuffer* chunk);

  // Appends the response's `watermark` field (field 2).
  static void AppendWatermark(uint64_t watermark, ChunkBuffer* chunk);

 private:
  const StreamSchema& schema_;
  // Per field position: a map entry's key part (tag 1, length, name).
  std::vector<std::string> entry_keys_;
  EventValueReader reader_;
  std::vector<uint32_t> value_sizes_;  // per field, scratch
};

}  // namespace rawfeat

#endif  // RAWFEAT_SERVER_EVENTS_EVENT_WIRE_H_
