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
#include "server/storage/keys.h"

namespace rawfeat {

absl::Status Replayer::ReadEvents(
    const v1::ReadEventsRequest& request,
    const std::function<bool(std::string* chunk)>& emit) const {
  auto schema = registry_->FindStream(request.stream());
  if (schema == nullptr) {
    return absl::NotFoundError(
        absl::StrCat("stream '", Echo(request.stream()), "' is not defined"));
  }
  auto pinned = store_->PinRead(request.watermark());
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
  std::string chunk;
  size_t chunk_events = 0;
  uint64_t emitted = 0;
  bool stopped = false;
  // Every chunk carries the watermark; an empty result is one empty chunk.
  auto flush = [&]() {
    EventChunkEncoder::AppendWatermark(watermark, &chunk);
    if (!emit(&chunk)) stopped = true;
    chunk.clear();
    chunk_events = 0;
  };
  // Encodes (key, value) into the chunk, flushing as it fills.
  auto add = [&](absl::string_view key, absl::string_view value) {
    absl::Status s = encoder.AppendEvent(key, value, &chunk);
    if (!s.ok()) return s;
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
    const std::string lower =
        from_us == std::numeric_limits<int64_t>::min()
            ? EntityPrefix(schema->stream_id, request.entity())
            : EntityTimeKey(schema->stream_id, request.entity(), from_us);
    const std::string upper =
        to_us == std::numeric_limits<int64_t>::max()
            ? PrefixSuccessor(EntityPrefix(schema->stream_id, request.entity()))
            : EntityTimeKey(schema->stream_id, request.entity(), to_us);
    std::vector<std::pair<uint64_t, std::pair<std::string, std::string>>> found;
    auto it = store_->ScanEvents(lower, upper, view);
    for (; it->Valid(); it->Next()) {
      ParsedEventKey k;
      if (!ParseEventKey(it->key(), &k)) {
        return absl::DataLossError("malformed event key");
      }
      if (k.seq <= request.after_seq() || k.seq > watermark) continue;
      found.push_back(
          {k.seq, {std::string(it->key()), std::string(it->value())}});
    }
    if (!it->status().ok()) return it->status();
    std::sort(found.begin(), found.end(),
              [](const auto& a, const auto& b) { return a.first < b.first; });
    for (const auto& [seq, kv] : found) {
      if (emitted >= limit || stopped) break;
      absl::Status s = add(kv.first, kv.second);
      if (!s.ok()) return s;
    }
  } else {
    // Whole stream: walk the log in seq order; entries carry their event
    // (older ones are fetched by key, in batches).
    constexpr size_t kFetch = 1024;
    std::vector<std::string> keys;
    std::vector<std::string> values;
    absl::Status inner;
    auto drain = [&]() {
      if (keys.empty()) return absl::OkStatus();
      absl::Status s = store_->MultiGetEvents(keys, view, &values);
      if (!s.ok()) return s;
      for (size_t i = 0; i < keys.size() && !stopped; ++i) {
        if (values[i].empty()) {
          return absl::DataLossError(absl::StrCat(
              "log points at a missing event (key ", HexEncode(keys[i]), ")"));
        }
        s = add(keys[i], values[i]);
        if (!s.ok()) return s;
      }
      keys.clear();
      return absl::OkStatus();
    };
    uint64_t selected = 0;
    absl::Status s = store_->ScanLog(
        request.after_seq(), watermark, view,
        [&](uint64_t, absl::string_view event_key,
            absl::string_view event_value) {
          ParsedEventKey k;
          if (!ParseEventKey(event_key, &k)) {
            inner = absl::DataLossError("malformed log entry");
            return false;
          }
          if (k.stream_id != schema->stream_id || k.time_us < from_us ||
              k.time_us >= to_us || !InPartition(k.entity, pindex, pcount)) {
            return true;
          }
          ++selected;
          if (!event_value.empty()) {
            // The log carries the value: no point read. Older entries
            // queued before keep their place in seq order.
            inner = drain();
            if (inner.ok()) inner = add(event_key, event_value);
            if (!inner.ok() || stopped) return false;
            return selected < limit;
          }
          keys.emplace_back(event_key);
          if (keys.size() >= kFetch) {
            inner = drain();
            if (!inner.ok() || stopped) return false;
          }
          return selected < limit;
        });
    if (!s.ok()) return s;
    if (!inner.ok()) return inner;
    if (!stopped) {
      s = drain();
      if (!s.ok()) return s;
    }
  }
  if (stopped) return absl::CancelledError("client went away");
  if (chunk_events > 0 || emitted == 0) {
    flush();
    if (stopped) return absl::CancelledError("client went away");
  }
  return absl::OkStatus();
}

}  // namespace rawfeat
