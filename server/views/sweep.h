#ifndef RAWFEAT_SERVER_VIEWS_SWEEP_H_
#define RAWFEAT_SERVER_VIEWS_SWEEP_H_

// Point-in-time evaluation of a view for one entity at many as-of times in
// one pass over its events (snapshots and training-set joins). Every
// feature's window [t - W, t) slides forward with t: events are added as
// they enter and forgotten as they leave, so an entity with L labels and N
// events costs O(N + L * features), not O(N * L).
//
// Each feature's window is kept as its aggregation's spec declares
// (AggregationSpec::Sliding): invertible aggregations keep a running state
// and Remove what leaves (exact arithmetic makes that cancel exactly);
// first/last/last_k keep the window's deciding events; min/max keep a
// monotonic deque. Every value is finalized by the aggregator itself, so it
// is bit-identical to ViewEngine::ComputeEntity at the same (entity, time,
// watermark).

#include <cstdint>
#include <vector>

#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "rawfeat/v1/rawfeat.pb.h"
#include "server/storage/event_store.h"
#include "server/views/view_engine.h"

namespace rawfeat {

// Receives the values for as-of time i (aligned with the view's features);
// `values` is scratch space reused for the next time: copy or swap out what
// is kept.
using ValuesSink = absl::FunctionRef<void(
    size_t i, google::protobuf::RepeatedPtrField<v1::Value>* values)>;

class FeatureWindow;

// What SweepEntity keeps from one entity to the next when a caller sweeps
// many (its feature windows and value buffers), so that a sweep of a small
// entity allocates next to nothing. One per thread. It knows its view by
// address, so it must not outlive the views it served.
class SweepScratch {
 public:
  SweepScratch();
  ~SweepScratch();
  SweepScratch(const SweepScratch&) = delete;
  SweepScratch& operator=(const SweepScratch&) = delete;

 private:
  friend absl::Status SweepEntity(const CompiledView&, EventCursor*,
                                  absl::string_view, absl::Span<const int64_t>,
                                  uint64_t, ValuesSink, SweepScratch*);
  const CompiledView* view_ = nullptr;  // what windows_ were made for
  std::vector<FeatureWindow> windows_;
  std::vector<int64_t> starts_;
  google::protobuf::RepeatedPtrField<v1::Value> values_;
};

// Computes every feature of `view` for `entity` as of each time in `as_of`
// (ascending; repeats allowed) at `watermark`, with one scan of `cursor`
// (an entity cursor of the view's stream, EventStore::NewEventCursor; it
// is re-seeked here, so one cursor may serve many entities in turn). Memory: the accepted values of the
// longest finite window of the entity (lifetime features keep only a state).
// Errors: DATA_LOSS (a corrupt stored event), OUT_OF_RANGE (an INT64 sum
// overflows; names the feature, entity and time).
// `scratch` (optional) is state reused between calls of one thread.
// Thread-safe for distinct cursors and scratches.
absl::Status SweepEntity(const CompiledView& view, EventCursor* cursor,
                         absl::string_view entity,
                         absl::Span<const int64_t> as_of, uint64_t watermark,
                         ValuesSink sink, SweepScratch* scratch = nullptr);

}  // namespace rawfeat

#endif  // RAWFEAT_SERVER_VIEWS_SWEEP_H_
