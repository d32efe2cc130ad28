#include "server/events/ingester.h"

#include <algorithm>
#include <limits>
#include <memory>

#include "absl/strings/str_cat.h"
#include "server/common/chunk_buffer.h"
#include "server/common/echo.h"
#include "server/events/event_wire.h"

namespace rawfeat {
namespace {

constexpr int kMaxErrorsInMessage = 20;

std::string DescribeRowErrors(const std::vector<v1::RowError>& errors) {
  std::string msg = absl::StrCat(
      "batch rejected, nothing written: ", errors.size(), " row error(s): ");
  for (int i = 0; i < static_cast<int>(errors.size()); ++i) {
    if (i == kMaxErrorsInMessage) {
      absl::StrAppend(&msg, "; and ", errors.size() - i, " more");
      break;
    }
    const v1::RowError& e = errors[i];
    // Bounded: the message travels in trailers (see server/common/echo.h).
    absl::StrAppend(
        &msg, i == 0 ? "" : "; ", "row ", e.row(),
        e.field().empty() ? "" : absl::StrCat(" field ", Echo(e.field())), ": ",
        Echo(e.reason(), 2 * kMaxEcho));
  }
  return msg;
}

}  // namespace

absl::StatusOr<v1::IngestResponse> Ingester::Ingest(
    const v1::IngestRequest& request, int batch_index) const {
  Prepared prepared;
  Prepare(request, batch_index, &prepared);
  return Commit(&prepared);
}

void Ingester::Prepare(const v1::IngestRequest& request, int batch_index,
                       Prepared* out) const {
  IngestBatch batch;
  IngestBatchOf(request, &batch);
  // The wire size, for the observer's metrics only.
  Prepare(batch, observer_ != nullptr ? request.ByteSizeLong() : 0, batch_index,
          out);
}

void Ingester::Prepare(const IngestBatch& batch, size_t wire_bytes,
                       int batch_index, Prepared* out) const {
  out->stream = std::string(batch.stream);
  out->batch_index = batch_index;
  auto schema = registry_->FindStream(out->stream);
  if (schema == nullptr) {
    out->status = absl::NotFoundError(
        absl::StrCat("stream '", Echo(batch.stream),
                     "' is not defined (apply its definition first)"));
    return;
  }
  out->known_stream = true;
  const size_t rows = batch.events.size();
  out->counts.rows = static_cast<int64_t>(rows);
  out->counts.bytes = static_cast<int64_t>(wire_bytes);
  if (rows > static_cast<size_t>(limits_.max_batch_rows)) {
    out->status = absl::ResourceExhaustedError(
        absl::StrCat("batch has ", rows, " rows; the limit is ",
                     limits_.max_batch_rows, " (split it)"));
    return;
  }
  out->skip_rows = batch.on_invalid == v1::SKIP_ROW;
  out->append.stream_id = schema->stream_id;
  out->append.atomic = !out->skip_rows;
  PrepareEvents(*schema, batch, limits_, &out->append.events, &out->errors);
  if (limits_.max_replay_message_bytes > 0) RejectUnreadable(*schema, out);
  out->counts.invalid = static_cast<int64_t>(out->errors.size());
  if (!out->skip_rows && !out->errors.empty()) {
    out->status = absl::InvalidArgumentError(DescribeRowErrors(out->errors));
  }
}

void Ingester::RejectUnreadable(const StreamSchema& schema,
                                Prepared* out) const {
  const size_t limit = limits_.max_replay_message_bytes;
  // A bound on an event's ReadEvents size that needs no encoding, for the
  // events far below the limit (all but a few): its stored value, entity
  // and id, and for every field of the stream its name and room for the
  // tags, lengths and value wider on the wire than stored.
  size_t fixed = 128;  // the event's own tags and lengths, time, seq
  for (const auto& f : schema.def().fields()) fixed += f.name().size() + 32;
  std::unique_ptr<EventChunkEncoder> encoder;  // for the others
  ChunkBuffer encoded;
  std::vector<PendingEvent>& events = out->append.events;
  size_t kept = 0;
  for (size_t i = 0; i < events.size(); ++i) {
    PendingEvent& e = events[i];
    const size_t bound = fixed + e.value.size() + e.entity.size() +
                         2 * std::max<size_t>(e.event_id.size(), 64);
    if (bound + kChunkWatermarkBytes > limit) {
      if (encoder == nullptr) {
        encoder = std::make_unique<EventChunkEncoder>(schema);
      }
      encoded.Clear();
      // The widest seq it could be given.
      const StoredEvent stored{std::numeric_limits<uint64_t>::max(),
                               schema.stream_id, e.entity, e.time_us, e.value};
      if (encoder->AppendEvent(stored, &encoded).ok() &&
          encoded.size() + kChunkWatermarkBytes > limit) {
        v1::RowError err;
        err.set_row(e.row);
        err.set_event_id(e.event_id);
        err.set_reason(absl::StrCat(
            "the event takes ", encoded.size(),
            " bytes in a ReadEvents answer, more than the largest message "
            "allows (",
            limit - kChunkWatermarkBytes,
            " bytes and the answer's watermark; rawfeatd --max_message_bytes "
            "is ",
            limit, "): stored, it could not be read back"));
        out->errors.push_back(std::move(err));
        continue;
      }
    }
    if (kept != i) events[kept] = std::move(e);
    ++kept;
  }
  events.resize(kept);
}

absl::StatusOr<v1::IngestResponse> Ingester::Commit(Prepared* prepared) const {
  auto response = CommitPrepared(prepared);
  if (observer_ != nullptr && prepared->known_stream) {
    prepared->counts.failed = !response.ok();
    observer_(prepared->stream, prepared->counts);
  }
  return response;
}

absl::StatusOr<v1::IngestResponse> Ingester::CommitPrepared(
    Prepared* prepared) const {
  if (!prepared->status.ok()) {
    if (AppendChain* chain = prepared->append.chain; chain != nullptr) {
      // Before the next batch of the chain may queue.
      chain->Break(prepared->append.chain_position);
      chain->MarkQueued();
    }
    return prepared->status;
  }
  IngestCounts* counts = &prepared->counts;
  std::vector<v1::RowError>& errors = prepared->errors;
  const bool skip_rows = prepared->skip_rows;
  const int batch_index = prepared->batch_index;
  AppendRequest& append = prepared->append;
  auto result = store_->Append(&append);
  if (!result.ok()) return result.status();
  counts->conflicts = static_cast<int64_t>(result->conflicts.size());
  if (!skip_rows && !result->conflicts.empty()) {
    counts->accepted = counts->duplicates = 0;  // nothing was written
  } else {
    counts->accepted = result->accepted;
    counts->duplicates = result->duplicates;
    counts->expired = result->expired;
  }
  for (const AppendConflict& c : result->conflicts) {
    v1::RowError err;
    err.set_row(c.row);
    err.set_event_id(c.event_id);
    err.set_field("event_id");
    err.set_reason(c.reason);
    errors.push_back(std::move(err));
  }
  if (!skip_rows && !errors.empty()) {
    return absl::InvalidArgumentError(DescribeRowErrors(errors));
  }
  std::stable_sort(errors.begin(), errors.end(),
                   [](const v1::RowError& a, const v1::RowError& b) {
                     return a.row() < b.row();
                   });
  v1::IngestResponse response;
  response.set_accepted(result->accepted);
  response.set_duplicates(result->duplicates);
  response.set_expired(result->expired);
  response.set_watermark(result->watermark);
  response.set_batches(1);
  for (auto& e : errors) {
    e.set_batch(batch_index);
    *response.add_rejected() = std::move(e);
  }
  return response;
}

}  // namespace rawfeat
