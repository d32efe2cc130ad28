#include "server/views/tiles.h"

#include <utility>

#include "server/common/coding.h"
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

namespace {

// Whether feature i takes an event at `time_us` (AddEvent's arguments).
bool Takes(size_t i, int64_t time_us, const std::vector<int64_t>* starts,
           int64_t tiled_day) {
  if (starts == nullptr) return true;
  if (time_us < (*starts)[i]) return false;
  return tiled_day == std::numeric_limits<int64_t>::min() ||
         (*starts)[i] > tiled_day;
}

}  // namespace

bool EventNeedsFields(const CompiledView& view, int64_t time_us,
                      const std::vector<int64_t>* starts, int64_t tiled_day) {
  for (size_t i = 0; i < view.features.size(); ++i) {
    if (view.features[i].NeedsFields() &&
        Takes(i, time_us, starts, tiled_day)) {
      return true;
    }
  }
  return false;
}

void AddEvent(const CompiledView& view, int64_t time_us, uint64_t seq,
              const std::vector<FieldValue>& fields,
              const std::vector<int64_t>* starts, AggregatorStates* states,
              int64_t tiled_day) {
  FieldValue value;
  for (size_t i = 0; i < view.features.size(); ++i) {
    if (!Takes(i, time_us, starts, tiled_day)) continue;
    if (view.features[i].Accepts(fields, &value)) {
      (*states)[i]->Add(value, time_us, seq);
    }
  }
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
          for (cursor->Seek(entity, day, day + kDayMicros); cursor->Valid();
               cursor->Next()) {
            if (cursor->seq() > watermark) continue;  // not the tile's
            const EventValueReader* event = cursor->Decode(view.stream->types);
            if (event == nullptr) break;
            AddEvent(view, cursor->time_us(), cursor->seq(), event->fields(),
                     nullptr, &states);
          }
          if (!cursor->status().ok()) return cursor->status();
          tiles->emplace_back(day, EncodeTilePayload(states));
        }
        return absl::OkStatus();
      });
}

}  // namespace rawfeat
