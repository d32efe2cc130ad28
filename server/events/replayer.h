#ifndef RAWFEAT_SERVER_EVENTS_REPLAYER_H_
#define RAWFEAT_SERVER_EVENTS_REPLAYER_H_

// Replay of raw events (ReadEvents): in seq order, cut at a watermark,
// filtered by seq, event time, entity and entity-hash partition. Returns
// events exactly as accepted (event_id, entity, time, fields, seq).
// Knows nothing of gRPC. Thread-safe.

#include <functional>
#include <string>

#include "absl/status/status.h"
#include "rawfeat/v1/rawfeat.pb.h"
#include "server/common/chunk_buffer.h"
#include "server/schema/registry.h"
#include "server/storage/event_store.h"

namespace rawfeat {

class Replayer {
 public:
  struct Options {
    // Events per emitted chunk. Default: 1,000.
    size_t chunk_events = 1000;
    // Approximate bytes per emitted chunk. Default: 1 MiB.
    size_t chunk_bytes = 1 << 20;
    // No chunk is larger than this (the largest message the transport
    // sends): an event that would take a chunk past it starts the next
    // one. Default: 64 MiB.
    size_t max_chunk_bytes = 64 << 20;
  };

  // REQUIRES: `store` and `registry` outlive the replayer.
  Replayer(EventStore* store, const Registry* registry, Options options)
      : store_(store), registry_(registry), options_(options) {}

  // Streams the matching events in seq order to `emit`, one chunk at a
  // time: each chunk is a serialized v1::ReadEventsResponse (events encoded
  // straight from storage, see event_wire.h) carrying the watermark used;
  // `emit` may take the buffer's bytes (ChunkBuffer::Release). Stops early
  // if `emit` returns false (client gone). Reads one consistent snapshot.
  // A stream with a retention horizon replays from it (events below are
  // not returned); a from_time below it is FAILED_PRECONDITION.
  // Errors: NOT_FOUND (unknown stream), INVALID_ARGUMENT (watermark above
  // the latest, bad time range, bad partition), DATA_LOSS (corrupt event),
  // RESOURCE_EXHAUSTED (one event larger than max_chunk_bytes), and the
  // store's read errors (UNAVAILABLE, DATA_LOSS), after the chunks before.
  absl::Status ReadEvents(
      const v1::ReadEventsRequest& request,
      const std::function<bool(ChunkBuffer* chunk)>& emit) const;

 private:
  EventStore* const store_;
  const Registry* const registry_;
  const Options options_;
};

}  // namespace rawfeat

#endif  // RAWFEAT_SERVER_EVENTS_REPLAYER_H_
