#ifndef RAWFEAT_SERVER_EVENTS_INGESTER_H_
#define RAWFEAT_SERVER_EVENTS_INGESTER_H_

// The ingest path: validate a batch against its stream, then append it to
// the store with idempotency. Knows nothing of gRPC. Thread-safe.

#include "absl/status/statusor.h"
#include "rawfeat/v1/rawfeat.pb.h"
#include "server/schema/event_validator.h"
#include "server/schema/registry.h"
#include "server/storage/event_store.h"

namespace rawfeat {

class Ingester {
 public:
  // REQUIRES: `store` and `registry` outlive the ingester.
  Ingester(EventStore* store, Registry* registry, IngestLimits limits)
      : store_(store), registry_(registry), limits_(limits) {}

  // Ingests one batch. With REJECT_BATCH (the default) the batch is all or
  // nothing. With SKIP_ROW valid rows are written and the invalid or
  // conflicting ones listed in `rejected`. `batch_index` is copied into each
  // RowError (IngestStream numbers its batches).
  // Errors: NOT_FOUND (unknown stream), RESOURCE_EXHAUSTED (too many rows),
  // INVALID_ARGUMENT (REJECT_BATCH and some row failed: the message lists
  // each failing row with index, field and reason), UNAVAILABLE (storage).
  absl::StatusOr<v1::IngestResponse> Ingest(const v1::IngestRequest& request,
                                            int batch_index) const;

  const IngestLimits& limits() const { return limits_; }

 private:
  EventStore* const store_;
  Registry* const registry_;
  const IngestLimits limits_;
};

}  // namespace rawfeat

#endif  // RAWFEAT_SERVER_EVENTS_INGESTER_H_
