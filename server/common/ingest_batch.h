#ifndef RAWFEAT_SERVER_COMMON_INGEST_BATCH_H_
#define RAWFEAT_SERVER_COMMON_INGEST_BATCH_H_

// The events of one IngestRequest as PrepareEvents reads them, or of one
// ReadEventsResponse as a replay client reads them: views into the
// message's wire bytes, or into a parsed message. Reading the wire bytes
// directly skips building a message with a map per event, which cost the
// server more than all of validation, hashing and encoding together, and a
// replay client more than the server's whole read.
// Pure functions; a batch is not thread-safe, the functions are.

#include <cstddef>
#include <cstdint>
#include <vector>

#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "rawfeat/v1/rawfeat.pb.h"

namespace rawfeat {

// A field's value as sent (v1::Value).
struct IngestValue {
  enum Kind : uint8_t { kNull, kInt64, kDouble, kString, kBool, kList };
  Kind kind = kNull;
  int64_t i = 0;
  double d = 0;
  bool b = false;
  absl::string_view s;
};

// One entry of an event's field map.
struct IngestEntry {
  absl::string_view name;
  IngestValue value;
};

struct IngestEvent {
  absl::string_view event_id;
  absl::string_view entity;
  bool has_time = false;
  int64_t seconds = 0;
  int32_t nanos = 0;
  // This event's entries in IngestBatch::entries, in the order sent (the
  // map's order for a parsed message). A name may repeat (only from wire
  // bytes): as in a protobuf map, the last entry of a name counts.
  size_t first_entry = 0;
  size_t entries = 0;
  // Set by the server on reads (ReadEventsChunk); ignored on ingest.
  uint64_t seq = 0;
  // The event's own serialized v1::Event, when read from wire bytes (empty
  // from a parsed message): what a copy forwards as it is.
  absl::string_view bytes;
};

struct IngestBatch {
  absl::string_view stream;
  v1::OnInvalid on_invalid = v1::ON_INVALID_UNSPECIFIED;
  std::vector<IngestEvent> events;
  std::vector<IngestEntry> entries;

  absl::Span<const IngestEntry> fields(const IngestEvent& e) const {
    return absl::MakeConstSpan(entries).subspan(e.first_entry, e.entries);
  }
  void Clear();
};

// Reads a serialized v1::IngestRequest into `out` (views into `bytes`).
// True if `bytes` are in the form protobuf serializers write, meaning just
// what protobuf's parser would make of them: known fields with their
// declared wire types, each singular field at most once, varints of at most
// 10 bytes, strings valid UTF-8, values without lists. False for anything
// else -- malformed bytes, but also unknown fields, a repeated singular
// field, a list value -- which the caller hands to protobuf's parser
// (IngestBatchOf); `out` is then unspecified.
bool ReadIngestBatch(absl::string_view bytes, IngestBatch* out);

// Reads a serialized v1::ReadEventsResponse: its events into `out` (stream
// and on_invalid left empty) and its watermark. True and false as for
// ReadIngestBatch (false: hand the bytes to protobuf's parser).
bool ReadEventsChunk(absl::string_view bytes, IngestBatch* out,
                     uint64_t* watermark);

// Views of a parsed request (valid while `request` is unchanged), or of
// parsed events alone (stream and on_invalid left empty).
void IngestBatchOf(const v1::IngestRequest& request, IngestBatch* out);
void IngestBatchOf(const google::protobuf::RepeatedPtrField<v1::Event>& events,
                   IngestBatch* out);

}  // namespace rawfeat

#endif  // RAWFEAT_SERVER_COMMON_INGEST_BATCH_H_
