#include "server/events/replayer.h"

#include <algorithm>
#include <limits>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "server/common/echo.h"
#include "server/common/hash.h"
#include "server/common/status_macros.h"
#include "server/common/time_util.h"
#include "server/events/event_wire.h"
#include "server/schema/validation.h"

namespace rawfeat {

absl::Status Replayer::ReadEvents(
    const v1::ReadEventsRequest& request,
    const std::function<bool(ChunkBuffer* chunk)>& emit) const {
  auto schema = registry_->FindStream(request.stream());
  if (schema == nullptr) {
    return absl::NotFoundError(
        absl::StrCat("stream '", Echo(request.stream()), "' is not defined"));
  }
  auto pinned = store_->PinRead(request.watermark(), /*fill_cache=*/false);
  if (!pinned.ok()) return pinned.status();
  const uint64_t watermark = pinned->watermark;
  const ReadView* view = pinned->view.get();
  int64_t from_us = std::numeric_limits<int64_t>::min();
  int64_t to_us = std::numeric_limits<int64_t>::max();
  if (request.has_from_time()) {
    auto t = RequestTimeToMicros(request.from_time(), "from_time");
    if (!t.ok()) return t.status();
    from_us = *t;
  }
  if (request.has_to_time()) {
    auto t = RequestTimeToMicros(request.to_time(), "to_time");
    if (!t.ok()) return t.status();
    to_us = *t;
  }
  if (from_us > to_us) {
    return absl::InvalidArgumentError("from_time is after to_time");
  }
  // Retention: replay starts at the stream's horizon (events below it are
  // gone or going); asking for less is refused, never answered short.
  const int64_t horizon = store_->Horizon(schema->stream_id);
  if (horizon != kNoHorizon) {
    if (request.has_from_time() && from_us < horizon) {
      return absl::FailedPreconditionError(absl::StrCat(
          "from_time ", FormatMicros(from_us),
          " is below the retention horizon of stream '", schema->name, "' at ",
          FormatMicros(horizon), " (", DescribeRetention(schema->def()),
          "): events there are no longer kept; leave from_time unset to "
          "replay from the horizon"));
    }
    from_us = std::max(from_us, horizon);
    to_us = std::max(to_us, from_us);
  }
  RETURN_IF_ERROR(ValidatePartition(request.partition()));
  const uint32_t pcount = request.partition().count();
  const uint32_t pindex = request.partition().index();
  const uint64_t limit = request.limit() == 0
                             ? std::numeric_limits<uint64_t>::max()
                             : request.limit();
  EventChunkEncoder encoder(*schema);
  ChunkBuffer chunk;
  size_t chunk_events = 0;
  uint64_t emitted = 0;
  bool stopped = false;
  // `emit` takes the chunk's buffer, so each chunk starts with the room
  // the largest one so far needed: grown by doubling instead, a chunk of
  // ~150 KiB was copied a dozen times into fresh pages.
  size_t room = 0;
  // Every chunk carries the watermark; an empty result is one empty chunk.
  auto flush = [&]() {
    EventChunkEncoder::AppendWatermark(watermark, &chunk);
    room = std::max(room, chunk.size());
    if (!emit(&chunk)) stopped = true;
    chunk.Clear();
    chunk_events = 0;
  };
  auto append = [&](const StoredEvent& event) {
    if (chunk.empty()) {
      chunk.Reserve(std::min(room, options_.chunk_bytes + (64 << 10)));
    }
    return encoder.AppendEvent(event, &chunk);
  };
  // Encodes an event into the chunk, flushing as it fills.
  auto add = [&](const StoredEvent& event) {
    const size_t before = chunk.size();
    RETURN_IF_ERROR(append(event));
    if (chunk.size() + kChunkWatermarkBytes > options_.max_chunk_bytes) {
      if (chunk_events == 0) {
        return absl::ResourceExhaustedError(absl::StrCat(
            "event seq ", event.seq, " takes ", chunk.size() - before,
            " bytes in a ReadEvents answer, more than the largest message (",
            options_.max_chunk_bytes, " bytes; rawfeatd --max_message_bytes)"));
      }
      // It does not fit beside the chunk's others: they go first.
      chunk.Truncate(before);
      flush();
      if (stopped) return absl::OkStatus();
      RETURN_IF_ERROR(append(event));
    }
    ++chunk_events;
    ++emitted;
    if (chunk_events >= options_.chunk_events ||
        chunk.size() >= options_.chunk_bytes) {
      flush();
    }
    return absl::OkStatus();
  };

  if (!request.entity().empty()) {
    if (!InPartition(request.entity(), pindex, pcount)) {
      flush();
      return absl::OkStatus();
    }
    // One entity: a bounded scan of its time range, then seq order.
    struct Found {
      uint64_t seq;
      int64_t time_us;
      std::string value;
    };
    std::vector<Found> found;
    auto cursor = store_->ScanEntity(schema->stream_id, request.entity(),
                                     from_us, to_us, view);
    for (; cursor->Valid(); cursor->Next()) {
      const uint64_t seq = cursor->seq();
      if (seq <= request.after_seq() || seq > watermark) continue;
      found.push_back({seq, cursor->time_us(), std::string(cursor->value())});
    }
    RETURN_IF_ERROR(cursor->status());
    std::sort(found.begin(), found.end(),
              [](const Found& a, const Found& b) { return a.seq < b.seq; });
    for (const Found& f : found) {
      if (emitted >= limit || stopped) break;
      RETURN_IF_ERROR(add(
          {f.seq, schema->stream_id, request.entity(), f.time_us, f.value}));
    }
  } else {
    // Whole stream: walk the log in seq order.
    uint64_t selected = 0;
    absl::Status inner;
    RETURN_IF_ERROR(store_->ScanLog(
        request.after_seq(), watermark, view, [&](const StoredEvent& e) {
          if (e.stream_id != schema->stream_id || e.time_us < from_us ||
              e.time_us >= to_us || !InPartition(e.entity, pindex, pcount)) {
            return true;
          }
          ++selected;
          inner = add(e);
          return inner.ok() && !stopped && selected < limit;
        }));
    RETURN_IF_ERROR(inner);
  }
  if (stopped) return absl::CancelledError("client went away");
  if (chunk_events > 0 || emitted == 0) {
    flush();
    if (stopped) return absl::CancelledError("client went away");
  }
  return absl::OkStatus();
}

}  // namespace rawfeat
