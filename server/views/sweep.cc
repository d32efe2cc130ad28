#include "server/views/sweep.h"

#include <deque>
#include <limits>
#include <memory>
#include <vector>

#include "absl/strings/str_cat.h"
#include "server/common/time_util.h"
#include "server/storage/keys.h"

namespace rawfeat {
namespace {

// One accepted event's contribution to a feature.
struct Item {
  int64_t t;
  uint64_t seq;
  OwnedValue v;
};

// One feature's window as it slides forward.
class FeatureWindow {
 public:
  explicit FeatureWindow(const CompiledFeature& f)
      : f_(f), state_(f.aggregation->create(f.def, f.field_type)) {
    const std::string& agg = f.def.aggregation();
    if (f.lifetime) {
      kind_ = Kind::kGrowing;
    } else if (agg == "first") {
      kind_ = Kind::kFirst;
    } else if (agg == "last") {
      kind_ = Kind::kLast;
    } else if (agg == "last_k") {
      kind_ = Kind::kLastK;
    } else if (agg == "min") {
      kind_ = Kind::kMin;
    } else if (agg == "max") {
      kind_ = Kind::kMax;
    } else if (f.invertible) {
      kind_ = Kind::kRunning;
    } else {
      kind_ = Kind::kRecompute;  // an aggregation that cannot forget
    }
  }

  // An event with time < the current as-of and >= the current window start.
  // `final`: no later as-of follows, so nothing will be evicted again and
  // only what decides the value needs keeping.
  void Offer(const FieldValue& v, int64_t t, uint64_t seq, bool final) {
    switch (kind_) {
      case Kind::kGrowing:
        state_->Add(v, t, seq);
        return;
      case Kind::kRunning:
        state_->Add(v, t, seq);
        if (final) return;
        break;
      case Kind::kFirst:
        if (final && !items_.empty()) return;
        break;
      case Kind::kLast:
        items_.clear();
        break;
      case Kind::kLastK:
        if (items_.size() == f_.def.k() && !items_.empty()) items_.pop_front();
        break;
      case Kind::kMin:
      case Kind::kMax:
        // Whatever is worse than v and older can never be the answer again;
        // equal older values stay (ties keep the earliest event).
        while (!items_.empty()) {
          int c = CompareValues(items_.back().v.v, v);
          if (kind_ == Kind::kMax) c = -c;
          if (c <= 0) break;
          items_.pop_back();
        }
        break;
      default:
        break;
    }
    items_.push_back(Item{t, seq, OwnedValue(v)});
  }

  // Forgets events before `start`.
  void Evict(int64_t start) {
    while (!items_.empty() && items_.front().t < start) {
      const Item& front = items_.front();
      if (kind_ == Kind::kRunning) {
        state_->Remove(front.v.v, front.t, front.seq);
      }
      items_.pop_front();
    }
  }

  absl::Status Value(v1::Value* out) const {
    switch (kind_) {
      case Kind::kGrowing:
      case Kind::kRunning:
        return state_->Finalize(out);
      case Kind::kFirst:
      case Kind::kMin:
      case Kind::kMax:
      case Kind::kLast:
        // The kept event is the value, as PickAggregator::Finalize gives it.
        out->Clear();
        if (!items_.empty()) {
          FieldValueToProto(kind_ == Kind::kLast ? items_.back().v.v
                                                 : items_.front().v.v,
                            out);
        }
        return absl::OkStatus();
      case Kind::kLastK:
        // Most recent first, as LastKAggregator::Finalize lists them.
        out->Clear();
        if (!items_.empty()) {
          auto* list = out->mutable_list_value();
          for (auto it = items_.rbegin(); it != items_.rend(); ++it) {
            FieldValueToProto(it->v.v, list->add_values());
          }
        }
        return absl::OkStatus();
      default: {
        // A fresh state given exactly the window's events.
        auto fresh = f_.aggregation->create(f_.def, f_.field_type);
        for (const Item& it : items_) fresh->Add(it.v.v, it.t, it.seq);
        return fresh->Finalize(out);
      }
    }
  }

 private:
  enum class Kind {
    kGrowing,    // lifetime: nothing ever leaves
    kRunning,    // invertible: Add on enter, Remove on leave
    kFirst,      // items_: the window, front is first
    kLast,       // items_: the newest accepted event
    kLastK,      // items_: the newest k
    kMin,        // items_: monotonic deque, front is the answer
    kMax,        //
    kRecompute,  // items_: the window, re-added for every as-of
  };
  const CompiledFeature& f_;
  std::unique_ptr<Aggregator> state_;
  Kind kind_ = Kind::kRecompute;
  std::deque<Item> items_;
};

}  // namespace

absl::Status SweepEntity(const CompiledView& view, EventIterator* it,
                         absl::string_view entity,
                         absl::Span<const int64_t> as_of, uint64_t watermark,
                         ValuesSink sink) {
  if (as_of.empty()) return absl::OkStatus();
  const StreamSchema& stream = *view.stream;
  const size_t nf = view.features.size();
  std::vector<FeatureWindow> windows;
  windows.reserve(nf);
  for (const auto& f : view.features) windows.emplace_back(f);

  const int64_t lo = view.ScanStart(as_of.front());
  const std::string lower = lo == std::numeric_limits<int64_t>::min()
                                ? EntityPrefix(stream.stream_id, entity)
                                : EntityTimeKey(stream.stream_id, entity, lo);
  it->Seek(lower);  // the cursor stays within the entity's prefix
  EventValueReader reader;
  std::vector<int64_t> starts(nf);
  FieldValue value;
  google::protobuf::RepeatedPtrField<v1::Value> values;
  for (size_t i = 0; i < as_of.size(); ++i) {
    const int64_t t = as_of[i];
    const bool final = i + 1 == as_of.size();
    int64_t min_start = std::numeric_limits<int64_t>::max();
    for (size_t f = 0; f < nf; ++f) {
      starts[f] = view.features[f].WindowStart(t);
      min_start = std::min(min_start, starts[f]);
      // Forget first, so what is offered below is never evicted at this t.
      windows[f].Evict(starts[f]);
    }
    for (; it->Valid(); it->Next()) {
      ParsedEventKey key;
      if (!ParseEventKey(it->key(), &key)) {
        return absl::DataLossError(
            absl::StrCat("corrupt stored event of entity '", entity, "'"));
      }
      // Events stamped exactly t are not part of the value as of t.
      if (key.time_us >= t || key.entity != entity) break;
      if (key.seq > watermark || key.time_us < min_start) continue;
      if (!reader.Parse(it->value(), stream.types)) {
        return absl::DataLossError(
            absl::StrCat("corrupt stored event of entity '", entity, "'"));
      }
      for (size_t f = 0; f < nf; ++f) {
        if (key.time_us >= starts[f] &&
            view.features[f].Accepts(reader.fields(), &value)) {
          windows[f].Offer(value, key.time_us, key.seq, final);
        }
      }
    }
    if (!it->status().ok()) return it->status();
    // Cleared elements stay allocated, so values are reused, not re-made.
    values.Clear();
    for (size_t f = 0; f < nf; ++f) {
      absl::Status s = windows[f].Value(values.Add());
      if (!s.ok()) {
        return absl::Status(
            s.code(), absl::StrCat("feature '", view.features[f].name,
                                   "' of entity '", entity, "' as of ",
                                   FormatMicros(t), ": ", s.message()));
      }
    }
    sink(i, &values);
  }
  return absl::OkStatus();
}

}  // namespace rawfeat
