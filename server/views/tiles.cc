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

void AddEvent(const CompiledView& view, int64_t time_us, uint64_t seq,
              const std::vector<FieldValue>& fields,
              const std::vector<int64_t>* starts, AggregatorStates* states,
              int64_t tiled_day) {
  FieldValue value;
  const bool in_tile = tiled_day != std::numeric_limits<int64_t>::min();
  for (size_t i = 0; i < view.features.size(); ++i) {
    if (starts != nullptr && time_us < (*starts)[i]) continue;
    if (in_tile && starts != nullptr && (*starts)[i] <= tiled_day) continue;
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
    if (!GetLengthPrefixed(&payload, &bytes) ||
        !(*scratch)[i]->Deserialize(bytes)) {
      return absl::DataLossError("malformed tile state");
    }
    if (day >= starts[i]) (*states)[i]->Merge(*(*scratch)[i]);
  }
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
