#ifndef RAWFEAT_SERVER_SCHEMA_EVENT_VALIDATOR_H_
#define RAWFEAT_SERVER_SCHEMA_EVENT_VALIDATOR_H_

// Turns API events into validated, canonical, encoded PendingEvents, and
// computes the stable content hash that idempotency rests on.
// Pure functions; thread-safe.

#include <cstdint>
#include <vector>

#include "rawfeat/v1/rawfeat.pb.h"
#include "server/common/hash.h"
#include "server/common/ingest_batch.h"
#include "server/schema/registry.h"
#include "server/storage/event_codec.h"
#include "server/storage/event_store.h"

namespace rawfeat {

struct IngestLimits {
  // Rows in one Ingest batch. Default: 100,000.
  int max_batch_rows = 100000;
  // Entity key length in bytes. Default: 1,024.
  size_t max_entity_bytes = 1024;
  // Writer-given event_id length in bytes. Default: 512.
  size_t max_event_id_bytes = 512;
  // STRING field value length in bytes. Default: 65,536.
  size_t max_string_bytes = 64 << 10;
  // The largest message a ReadEvents answer may be (the server's
  // --max_message_bytes). An event that would not fit one alone, with its
  // seq and the answer's watermark, is a row error (the Ingester checks):
  // stored, it could not be read back. 0: not checked. Default: 0.
  size_t max_replay_message_bytes = 0;
};

// The SHA-256 of an event's canonical content: stream name, entity, event
// time (µs), then the present fields sorted by name with their type and
// value. Stable across releases and across additive schema evolution (a new
// optional field that is absent does not change it). `values` are by
// position in `schema`.
Sha256Digest ContentHash(const StreamSchema& schema, absl::string_view entity,
                         int64_t time_us,
                         const std::vector<FieldValue>& values);

// Validates each event of `batch` against `schema`. Valid rows are appended
// to `out` (encoded under the newest schema version, INT64 widened to DOUBLE
// where the field is DOUBLE, ids derived from content where absent); every
// problem becomes a RowError (row index, event_id, field, reason) in
// `errors`. A row can have several errors: those of its event id, entity and
// time first, then those of its fields in the order the fields were sent,
// then missing required fields in schema order. A field named twice in one
// event counts once, with its last value (a protobuf map's rule).
void PrepareEvents(const StreamSchema& schema, const IngestBatch& batch,
                   const IngestLimits& limits, std::vector<PendingEvent>* out,
                   std::vector<v1::RowError>* errors);
// The same for parsed events (tests and tools).
void PrepareEvents(const StreamSchema& schema,
                   const google::protobuf::RepeatedPtrField<v1::Event>& events,
                   const IngestLimits& limits, std::vector<PendingEvent>* out,
                   std::vector<v1::RowError>* errors);

}  // namespace rawfeat

#endif  // RAWFEAT_SERVER_SCHEMA_EVENT_VALIDATOR_H_
