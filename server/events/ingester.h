#ifndef RAWFEAT_SERVER_EVENTS_INGESTER_H_
#define RAWFEAT_SERVER_EVENTS_INGESTER_H_

// The ingest path: validate a batch against its stream, then append it to
// the store with idempotency. Knows nothing of gRPC. Thread-safe.

#include <cstdint>
#include <functional>
#include <string>
#include <utility>

#include "absl/status/statusor.h"
#include "rawfeat/v1/rawfeat.pb.h"
#include "server/schema/event_validator.h"
#include "server/schema/registry.h"
#include "server/storage/event_store.h"

namespace rawfeat {

// What one Ingest call did to a known stream, for metrics.
struct IngestCounts {
  int64_t rows = 0;   // events in the request
  int64_t bytes = 0;  // the request's wire size
  int64_t accepted = 0;
  int64_t duplicates = 0;
  int64_t expired = 0;    // below the stream's retention horizon
  int64_t conflicts = 0;  // same event id, other content
  int64_t invalid = 0;    // rows that failed validation
  bool failed = false;    // nothing written (rejected batch, storage error)
};

class Ingester {
 public:
  // Sees every call on a known stream, after it ended. Thread-safe.
  using Observer =
      std::function<void(const std::string& stream, const IngestCounts&)>;

  // REQUIRES: `store` and `registry` outlive the ingester. `observer` may
  // be empty.
  Ingester(EventStore* store, Registry* registry, IngestLimits limits,
           Observer observer = nullptr)
      : store_(store),
        registry_(registry),
        limits_(limits),
        observer_(std::move(observer)) {}

  // Ingests one batch. With REJECT_BATCH (the default) the batch is all or
  // nothing. With SKIP_ROW valid rows are written and the invalid or
  // conflicting ones listed in `rejected`. `batch_index` is copied into each
  // RowError (IngestStream numbers its batches).
  // Errors: NOT_FOUND (unknown stream), RESOURCE_EXHAUSTED (too many rows),
  // INVALID_ARGUMENT (REJECT_BATCH and some row failed: the message lists
  // each failing row with index, field and reason), UNAVAILABLE (storage).
  absl::StatusOr<v1::IngestResponse> Ingest(const v1::IngestRequest& request,
                                            int batch_index) const;

  // Ingest in two steps, so a caller may validate one batch while the one
  // before it is written (IngestStream does): Prepare checks the batch
  // against its stream and encodes its events, writing nothing and keeping
  // nothing of `request`; Commit appends what Prepare made, answers as
  // Ingest does, and reports the call to the observer. Prepared batches of
  // one caller are committed in order, one at a time.
  struct Prepared {
    std::string stream;
    int batch_index = 0;
    bool skip_rows = false;
    AppendRequest append;
    std::vector<v1::RowError> errors;  // rows that failed validation
    IngestCounts counts;
    bool known_stream = false;
    // Not OK: the batch fails with this and nothing is appended.
    absl::Status status;
  };
  void Prepare(const v1::IngestRequest& request, int batch_index,
               Prepared* out) const;
  // The same for a request read by ReadIngestBatch (common/ingest_batch.h)
  // from `wire_bytes` bytes.
  void Prepare(const IngestBatch& batch, size_t wire_bytes, int batch_index,
               Prepared* out) const;
  absl::StatusOr<v1::IngestResponse> Commit(Prepared* prepared) const;

  const IngestLimits& limits() const { return limits_; }

 private:
  absl::StatusOr<v1::IngestResponse> CommitPrepared(Prepared* prepared) const;
  // Moves the events of `out` that could not be read back (larger than
  // limits_.max_replay_message_bytes in a ReadEvents answer) to its row
  // errors.
  void RejectUnreadable(const StreamSchema& schema, Prepared* out) const;

  EventStore* const store_;
  Registry* const registry_;
  const IngestLimits limits_;
  const Observer observer_;
};

}  // namespace rawfeat

#endif  // RAWFEAT_SERVER_EVENTS_INGESTER_H_
