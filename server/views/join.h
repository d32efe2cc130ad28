#ifndef RAWFEAT_SERVER_VIEWS_JOIN_H_
#define RAWFEAT_SERVER_VIEWS_JOIN_H_

// Point-in-time correct training-set joins: label rows (entity, time,
// passthrough) in, each row with its features as of its own time out, in
// input order. A label at t sees exactly the events GetFeatures as of t
// would (window [t - W, t), seq <= the join's watermark): never one stamped
// t or later.
//
// Rows are buffered into runs. A run is sorted by (entity, time) and each
// entity's events are swept once (SweepEntity), then the run's rows go back
// in input order. A run ends at `max_run_rows` (bounding memory whatever the
// input), at the end of the input, or -- when the input so far arrives
// grouped by entity -- as soon as `grouped_flush_rows` rows of finished
// entities are waiting, so grouped input streams back while it is sent.
// Unsorted input larger than one run is answered run by run; an entity
// spread over several runs is swept once per run.

#include <cstdint>
#include <deque>
#include <functional>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "rawfeat/v1/rawfeat.pb.h"
#include "server/common/parallel.h"
#include "server/views/view_engine.h"

namespace rawfeat {

class ColumnChunkBuilder;

class JoinSession {
 public:
  struct Options {
    // Most label rows held at once (memory bound). Default: 1,000,000.
    size_t max_run_rows = 1000000;
    // Grouped input is answered once this many rows wait. Default: 4,096.
    size_t grouped_flush_rows = 4096;
    // Rows per response message. Default: 1,000.
    int chunk_rows = 1000;
    // Threads sweeping one run's entities. Default: 1.
    int threads = 1;
    // Largest response message (and so largest row), in bytes; responses
    // are cut at about a sixteenth of it. Default: 64 MiB.
    size_t max_response_bytes = 64 << 20;
    // Most bytes of computed rows one worker thread holds before a run is
    // sent; a run that would pass it is refused with RESOURCE_EXHAUSTED
    // (send fewer label rows, or lower --join_run_rows). Default: 512 MiB.
    size_t max_run_bytes = size_t{512} << 20;
  };
  // Receives each response as serialized v1::JoinFeaturesResponse bytes
  // (written directly, see server/common/wire.h); may take the string's
  // contents.
  using Emit = std::function<absl::Status(std::string* response)>;

  // Starts a join from its first message (view, version 0 = latest,
  // watermark 0 = latest; its rows are not taken here: pass the message to
  // Add too). Pins one read snapshot for the whole join. With a service
  // instead of a view, each part is swept by its own key (LabelRow.keys)
  // at that one watermark, and a row's features are its parts' in order;
  // rows carry their keys by name (LabelRow.keys) or by position
  // (key_values, aligned with first.key_columns). With first.columnar the
  // answers are ColumnChunks (row indices and values, nothing echoed).
  // Errors: NOT_FOUND (view/service/version), INVALID_ARGUMENT (watermark
  // above the latest, both a view and a service, key_columns that are not
  // exactly the service's key columns).
  static absl::StatusOr<std::unique_ptr<JoinSession>> Start(
      const ViewEngine* engine, const v1::JoinFeaturesRequest& first,
      Options options);

  // Takes one message's rows or LabelColumns (copied into the run's
  // arena); may answer rows through `emit`. Errors: INVALID_ARGUMENT naming
  // the row (0-based index in the whole input) for an empty/NUL entity, a
  // NUL key, key_values that do not fit key_columns, a missing/out-of-range
  // time, or passthrough in a columnar join; FAILED_PRECONDITION naming the
  // row whose time puts a window below a stream's retention horizon;
  // INVALID_ARGUMENT for a message with both rows and labels or label columns
  // of unequal lengths; OUT_OF_RANGE (int overflow); any error of `emit`.
  absl::Status Add(v1::JoinFeaturesRequest* message, const Emit& emit);

  // The input is complete: answers every remaining row. Always emits at
  // least one response (with the feature names and watermark).
  absl::Status Finish(const Emit& emit);

  uint64_t watermark() const { return pinned_.watermark; }
  // Rows answered so far.
  uint64_t rows_sent() const { return rows_sent_; }

  // Not thread-safe: one caller at a time (a gRPC handler).
 private:
  // One buffered label row; its strings live in input_ until the run is
  // answered.
  struct Pending {
    uint64_t index = 0;  // in the whole input
    int64_t time_us = 0;
    absl::string_view entity;       // empty in a service join
    absl::string_view passthrough;  // as JoinedRow passthrough fields
    size_t keys = 0;  // a service join: its keys are keys_[keys ...]
  };
  // Append-only bytes in 1 MiB blocks: a run's strings and encoded rows
  // without one allocation (and its slack) each. Views stay valid until
  // Clear.
  class ByteBlocks {
   public:
    absl::string_view Add(absl::string_view bytes);
    void Clear();

   private:
    static constexpr size_t kBlockBytes = 1 << 20;
    std::vector<std::unique_ptr<char[]>> blocks_;
    size_t capacity_ = 0;
    size_t used_ = 0;
  };
  JoinSession(std::shared_ptr<const CompiledView> view,
              EventStore::PinnedRead pinned, const EventStore* store,
              Options options)
      : view_(std::move(view)),
        pinned_(std::move(pinned)),
        store_(store),
        options_(options) {}

  // A service join: its distinct key columns, and where the first
  // message's key_columns put each (when given). INVALID_ARGUMENT if they
  // are not exactly the service's.
  absl::Status BindKeys(const ResolvedService& service,
                        const v1::JoinFeaturesRequest& first);
  // Add of a message carrying LabelColumns.
  absl::Status AddLabels(const v1::JoinFeaturesRequest& message,
                         const Emit& emit);
  // Buffers the next label row (its strings copied into input_); a service
  // join's `take_keys` fills the row's keys. May answer rows through `emit`.
  absl::Status AddRow(absl::string_view entity, int64_t time_us,
                      absl::string_view passthrough, const Emit& emit,
                      absl::FunctionRef<absl::Status(Pending*)> take_keys);
  // Puts a label row's keys (by name or by position) into keys_ for `p`.
  // INVALID_ARGUMENT naming the row (wrong count, NUL).
  absl::Status TakeKeys(const v1::LabelRow& row, Pending* p);
  // Copies p's keys (keys_[p->keys ...]) into input_; INVALID_ARGUMENT
  // naming the row for a key with NUL.
  absl::Status CopyKeys(Pending* p);
  // Forgets the answered run's rows and frees their bytes.
  void ClearRun();
  // Answers every buffered row, in input order.
  absl::Status Flush(const Emit& emit);
  // Flush of a service join: each part swept by its own key, then the rows
  // assembled from the parts' values.
  absl::Status FlushService(const Emit& emit);
  // Sweeps `view` over the buffered rows grouped by `key_of(row)` (rows
  // whose key is empty are skipped), on options_.threads workers, the keys
  // with the most rows first, and hands each row's values (aligned with the
  // view's features; scratch) to `sink`. Its first error stops the run.
  using KeyOf = std::function<absl::string_view(const Pending&)>;
  using RowSink = std::function<absl::Status(
      int worker, uint32_t row, absl::string_view key,
      google::protobuf::RepeatedPtrField<v1::Value>* values)>;
  absl::Status SweepBy(const CompiledView& view, const KeyOf& key_of,
                       const RowSink& sink);
  // Sends rows 0..n-1 (in input order) in responses of up to chunk_rows
  // rows and about a sixteenth of max_response_bytes: `row_size(i)` is row
  // i's JoinedRow wire size, `append_row(i, out)` appends those bytes.
  using RowSizeFn = absl::FunctionRef<size_t(size_t)>;
  using AppendRowFn = absl::FunctionRef<void(size_t, std::string*)>;
  absl::Status SendRows(size_t n, RowSizeFn row_size, AppendRowFn append_row,
                        const Emit& emit);
  // Sends rows 0..n-1 (in input order) as ColumnChunks of up to
  // chunk_rows rows and about a sixteenth of max_response_bytes:
  // `add_values(i, chunk)` starts row i in `chunk` and adds its values.
  // RESOURCE_EXHAUSTED if one chunk passes max_response_bytes.
  using AddValuesFn =
      absl::FunctionRef<absl::Status(size_t, ColumnChunkBuilder*)>;
  absl::Status SendColumns(size_t n, AddValuesFn add_values, const Emit& emit);
  // Checks one finished row's size against the limits (see Options).
  // `label` and `value` name the row's entity or key in the error
  // ("entity", "u1"), formatted only then.
  absl::Status CheckRowSize(const Pending& p, absl::string_view label,
                            absl::string_view value, size_t bytes,
                            PaddedCount* worker_bytes) const;
  // Completes `response` (feature names on the first one, watermark,
  // version), emits it and clears it.
  absl::Status Send(std::string* response, const Emit& emit);

  const std::shared_ptr<const CompiledView> view_;  // null for a service
  ResolvedService service_;                         // a service join
  std::vector<FusedParts> fused_;         // service_.parts, swept together
  std::vector<std::string> key_columns_;  // distinct, in part order
  std::vector<int> value_at_;  // key_columns_[c] is key_values[value_at_[c]]
  const EventStore::PinnedRead pinned_;
  const EventStore* const store_;
  const Options options_;
  // Label rows before earliest_ are refused: a window of earliest_view_
  // would reach below its stream's retention horizon.
  int64_t earliest_ = std::numeric_limits<int64_t>::min();
  const CompiledView* earliest_view_ = nullptr;
  uint64_t next_index_ = 0;              // input index of the next row taken
  std::deque<Pending> buffer_;           // a deque: growing never copies it
  ByteBlocks input_;                     // the buffered rows' strings
  std::vector<absl::string_view> keys_;  // a service join: per row and column
  std::string scratch_;
  // Grouping of the buffered rows: entities whose run of rows ended.
  bool grouped_ = true;
  absl::flat_hash_set<std::string> finished_entities_;
  bool sent_header_ = false;
  bool columnar_ = false;  // answers are ColumnChunks (first.columnar)
  uint64_t rows_sent_ = 0;
};

}  // namespace rawfeat

#endif  // RAWFEAT_SERVER_VIEWS_JOIN_H_
