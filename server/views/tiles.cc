#include "server/views/tiles.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "server/common/coding.h"
#include "server/common/echo.h"
#include "server/common/status_macros.h"
#include "server/common/time_util.h"

namespace rawfeat {

AggregatorStates NewStates(const CompiledView& view) {
  AggregatorStates states;
  states.reserve(view.features.size());
  for (const auto& f : view.features) {
    states.push_back(f.aggregation->create(f.def, f.field_type));
  }
  return states;
}

EventRouter::EventRouter(const CompiledView& view,
                         const std::vector<int64_t>* starts,
                         AggregatorStates* states)
    : view_(view), starts_(starts), states_(states) {
  takers_.reserve(view.features.size());
}

bool EventRouter::At(int64_t time_us, int64_t tiled_day) {
  if (time_us >= until_ || time_us < since_ || tiled_day != tiled_day_) {
    Route(time_us, tiled_day);
  }
  return needs_fields_;
}

void EventRouter::Route(int64_t time_us, int64_t tiled_day) {
  constexpr int64_t kNone = std::numeric_limits<int64_t>::min();
  takers_.clear();
  needs_fields_ = false;
  since_ = time_us;
  until_ = std::numeric_limits<int64_t>::max();
  tiled_day_ = tiled_day;
  for (size_t i = 0; i < view_.features.size(); ++i) {
    const int64_t start = starts_ == nullptr ? kNone : (*starts_)[i];
    if (start > time_us) {
      until_ = std::min(until_, start);  // the feature takes events from it
      continue;
    }
    if (tiled_day != kNone && start <= tiled_day) continue;  // in the tile
    takers_.push_back(static_cast<int>(i));
    needs_fields_ = needs_fields_ || view_.features[i].NeedsFields();
  }
}

template <typename Fields>
bool EventRouter::Take(int64_t time_us, uint64_t seq, int64_t tiled_day,
                       const Fields& fields) {
  if (!At(time_us, tiled_day)) {
    for (int i : takers_) (*states_)[i]->Add(FieldValue(), time_us, seq);
    return true;
  }
  const std::vector<FieldValue>* decoded = fields();
  if (decoded == nullptr) return false;
  for (int i : takers_) {
    if (const FieldValue* value = view_.features[i].Accepts(*decoded)) {
      (*states_)[i]->Add(*value, time_us, seq);
    }
  }
  return true;
}

bool EventRouter::Add(EventCursor* cursor,
                      const std::vector<v1::FieldType>& types,
                      int64_t tiled_day) {
  return Take(cursor->time_us(), cursor->seq(), tiled_day,
              [&]() -> const std::vector<FieldValue>* {
                const EventValueReader* event = cursor->Decode(types);
                return event == nullptr ? nullptr : &event->fields();
              });
}

bool EventRouter::Add(const StoredEvent& event,
                      const std::vector<v1::FieldType>& types,
                      EventValueReader* reader) {
  return Take(event.time_us, event.seq, std::numeric_limits<int64_t>::min(),
              [&]() -> const std::vector<FieldValue>* {
                return reader->Parse(event.value, types) ? &reader->fields()
                                                         : nullptr;
              });
}

std::string EncodeTilePayload(const AggregatorStates& states) {
  std::string v;
  PutVarint64(&v, states.size());
  std::string state;
  for (const auto& st : states) {
    state.clear();
    st->Serialize(&state);
    PutLengthPrefixed(&v, state);
  }
  return v;
}

absl::Status MergeTilePayload(const CompiledView& view,
                              absl::string_view payload, int64_t day,
                              const std::vector<int64_t>& starts,
                              AggregatorStates* scratch,
                              AggregatorStates* states) {
  uint64_t n;
  if (!GetVarint64(&payload, &n) || n != states->size()) {
    return absl::DataLossError("malformed tile");
  }
  if (scratch->empty()) *scratch = NewStates(view);
  for (size_t i = 0; i < states->size(); ++i) {
    absl::string_view bytes;
    if (!GetLengthPrefixed(&payload, &bytes)) {
      return absl::DataLossError("malformed tile");
    }
    // A state the window does not take is skipped, not decoded: for a
    // long history most tiles serve only the lifetime features.
    if (day < starts[i]) continue;
    if (!(*states)[i]->MergeSerialized(bytes, (*scratch)[i].get())) {
      return absl::DataLossError("malformed tile state");
    }
  }
  if (!payload.empty()) return absl::DataLossError("malformed tile");
  return absl::OkStatus();
}

namespace {

// Adds `events` of `day` to the features whose window covers the day
// entirely (day >= starts[i]; every feature when `starts` is null), those
// at or below `watermark`.
absl::Status AddDayEvents(const CompiledView& view,
                          absl::Span<const StoredEvent> events, int64_t day,
                          const std::vector<int64_t>* starts,
                          uint64_t watermark, AggregatorStates* states) {
  if (events.empty()) return absl::OkStatus();
  // For the router: a feature covering the day takes every event, the
  // others none.
  std::vector<int64_t> takes;
  if (starts != nullptr) {
    for (int64_t start : *starts) {
      takes.push_back(day >= start ? kMinEventTime : kMaxEventTime);
    }
  }
  EventRouter router(view, starts != nullptr ? &takes : nullptr, states);
  EventValueReader reader;
  for (const StoredEvent& e : events) {
    if (e.seq > watermark) continue;
    if (!router.Add(e, view.stream->types, &reader)) {
      return absl::DataLossError(absl::StrCat(
          "corrupt stored event of entity '", Echo(e.entity), "' (seq ",
          e.seq, ") in stream ", e.stream_id));
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status MergeTile(const CompiledView& view, TileCursor* tile,
                       uint64_t watermark, const std::vector<int64_t>& starts,
                       AggregatorStates* scratch, AggregatorStates* states) {
  RETURN_IF_ERROR(MergeTilePayload(view, tile->payload(), tile->day(), starts,
                                   scratch, states));
  return AddDayEvents(view, tile->late(), tile->day(), &starts, watermark,
                      states);
}

absl::StatusOr<std::string> FoldTilePayload(
    const CompiledView& view, absl::string_view payload, int64_t day,
    absl::Span<const StoredEvent> events) {
  AggregatorStates states = NewStates(view);
  AggregatorStates scratch;
  const std::vector<int64_t> every(view.features.size(), kMinEventTime);
  RETURN_IF_ERROR(
      MergeTilePayload(view, payload, day, every, &scratch, &states));
  RETURN_IF_ERROR(AddDayEvents(view, events, day, nullptr,
                               std::numeric_limits<uint64_t>::max(), &states));
  return EncodeTilePayload(states);
}

TileScope TileScopeOf(const CompiledView& view, absl::string_view entity) {
  return TileScope{view.stream->stream_id, entity, view.def->name(),
                   view.def->version()};
}

absl::Status BuildTiles(EventStore* store, const CompiledView& view,
                        absl::string_view entity,
                        const std::vector<int64_t>& days) {
  return store->WriteTiles(
      TileScopeOf(view, entity), days,
      [&](uint64_t watermark, const ReadView* read_view,
          std::vector<std::pair<int64_t, std::string>>* tiles) {
        // Each day's content at the build watermark.
        auto cursor =
            store->NewEventCursor(view.stream->stream_id, read_view);
        for (int64_t day : days) {
          auto states = NewStates(view);
          EventRouter router(view, nullptr, &states);
          for (cursor->Seek(entity, day, day + kDayMicros); cursor->Valid();
               cursor->Next()) {
            if (cursor->seq() > watermark) continue;  // not the tile's
            if (!router.Add(cursor.get(), view.stream->types)) break;
          }
          if (!cursor->status().ok()) return cursor->status();
          tiles->emplace_back(day, EncodeTilePayload(states));
        }
        return absl::OkStatus();
      });
}

}  // namespace rawfeat
