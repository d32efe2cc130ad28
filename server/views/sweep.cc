#include "server/views/sweep.h"

#include <algorithm>
#include <limits>
#include <memory>
#include <vector>

#include "absl/strings/str_cat.h"
#include "server/common/time_util.h"

namespace rawfeat {
namespace {

// One accepted event's contribution to a feature.
struct Item {
  int64_t t = 0;
  uint64_t seq = 0;
  OwnedValue v;
};

// A window's items, oldest first, in one ring of reused slots: an item
// leaves by moving an index, and a new one is written into a free slot
// (a string value reuses the slot's capacity). A std::deque of these
// allocated a node per five items and freed it again as the window slid:
// a third of a join's time went to that and to the cache misses on its
// nodes.
class ItemRing {
 public:
  bool empty() const { return size_ == 0; }
  size_t size() const { return size_; }
  // REQUIRES: i < size().
  const Item& at(size_t i) const { return slots_[(head_ + i) & mask_]; }
  const Item& front() const { return at(0); }
  const Item& back() const { return at(size_ - 1); }
  void pop_front() {
    head_ = (head_ + 1) & mask_;
    --size_;
  }
  void pop_back() { --size_; }
  void push_back(int64_t t, uint64_t seq, const FieldValue& v) {
    if (size_ == slots_.size()) Grow();
    Item& slot = slots_[(head_ + size_) & mask_];
    slot.t = t;
    slot.seq = seq;
    slot.v.Set(v);
    ++size_;
  }
  // Empties the ring; keeps its slots unless they are many (a heavy
  // entity's window), so memory returns after it.
  void clear() {
    head_ = size_ = 0;
    if (slots_.size() > kKeptSlots) {
      slots_ = std::vector<Item>();
      mask_ = 0;
    }
  }

 private:
  static constexpr size_t kKeptSlots = 4096;

  void Grow() {
    std::vector<Item> bigger(std::max<size_t>(8, 2 * slots_.size()));
    // Copies re-point each string value at its new slot's own bytes.
    for (size_t i = 0; i < size_; ++i) bigger[i] = at(i);
    slots_ = std::move(bigger);
    head_ = 0;
    mask_ = slots_.size() - 1;
  }

  std::vector<Item> slots_;  // a power of two of them
  size_t head_ = 0;
  size_t size_ = 0;
  size_t mask_ = 0;
};

}  // namespace

// One feature's window as it slides forward, kept as its aggregation's
// spec declares (AggregationSpec::Sliding). Values are always finalized by
// the aggregator itself.
class FeatureWindow {
 public:
  using Sliding = AggregationSpec::Sliding;

  explicit FeatureWindow(const CompiledFeature& f)
      : state_(f.aggregation->create(f.def, f.field_type)),
        sliding_(f.aggregation->spec.sliding),
        growing_(f.lifetime),
        keep_(f.aggregation->spec.takes_k ? f.def.k() : 1) {}

  // Forgets every event: as newly made.
  void Reset() {
    state_->Reset();
    items_.clear();
  }

  // An event with time < the current as-of and >= the current window start.
  // `final`: no later as-of follows, so nothing will be evicted again and
  // only what decides the value needs keeping.
  void Offer(const FieldValue& v, int64_t t, uint64_t seq, bool final) {
    if (growing_) {  // lifetime: nothing ever leaves
      state_->Add(v, t, seq);
      return;
    }
    switch (sliding_) {
      case Sliding::kInvertible:
        state_->Add(v, t, seq);
        if (final) return;
        break;
      case Sliding::kKeepFirst:
        if (final && !items_.empty()) return;
        break;
      case Sliding::kKeepLatest:
        if (items_.size() == keep_) items_.pop_front();
        break;
      case Sliding::kKeepMin:
      case Sliding::kKeepMax:
        // Whatever is worse than v and older can never be the answer again;
        // equal older values stay (ties keep the earliest event).
        while (!items_.empty()) {
          int c = CompareValues(items_.back().v.v, v);
          if (sliding_ == Sliding::kKeepMax) c = -c;
          if (c <= 0) break;
          items_.pop_back();
        }
        break;
    }
    items_.push_back(t, seq, v);
  }

  // Forgets events before `start`.
  void Evict(int64_t start) {
    while (!items_.empty() && items_.front().t < start) {
      const Item& front = items_.front();
      if (sliding_ == Sliding::kInvertible) {
        state_->Remove(front.v.v, front.t, front.seq);
      }
      items_.pop_front();
    }
  }

  absl::Status Value(v1::Value* out) {
    if (growing_ || sliding_ == Sliding::kInvertible) {
      return state_->Finalize(out);
    }
    // The state of exactly what decides the window's value: the front of
    // the kept events (first, min, max), or all of them (the newest k),
    // offered newest first.
    state_->Reset();
    if (sliding_ == Sliding::kKeepLatest) {
      for (size_t i = items_.size(); i-- > 0;) {
        const Item& item = items_.at(i);
        state_->Add(item.v.v, item.t, item.seq);
      }
    } else if (!items_.empty()) {
      const Item& front = items_.front();
      state_->Add(front.v.v, front.t, front.seq);
    }
    return state_->Finalize(out);
  }

 private:
  std::unique_ptr<Aggregator> state_;
  Sliding sliding_;
  bool growing_;
  size_t keep_;  // kKeepLatest: how many of the newest events decide
  ItemRing items_;
};

SweepScratch::SweepScratch() = default;
SweepScratch::~SweepScratch() = default;

absl::Status SweepEntity(const CompiledView& view, EventCursor* it,
                         absl::string_view entity,
                         absl::Span<const int64_t> as_of, uint64_t watermark,
                         ValuesSink sink, SweepScratch* scratch) {
  if (as_of.empty()) return absl::OkStatus();
  const StreamSchema& stream = *view.stream;
  const size_t nf = view.features.size();
  SweepScratch own;
  if (scratch == nullptr) scratch = &own;
  std::vector<FeatureWindow>& windows = scratch->windows_;
  if (scratch->view_ != &view) {
    windows.clear();
    windows.reserve(nf);
    for (const auto& f : view.features) windows.emplace_back(f);
    scratch->view_ = &view;
  } else {
    for (FeatureWindow& w : windows) w.Reset();
  }

  it->Seek(entity, view.ScanStart(as_of.front()));
  std::vector<int64_t>& starts = scratch->starts_;
  starts.resize(nf);
  google::protobuf::RepeatedPtrField<v1::Value>& values = scratch->values_;
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
      const int64_t time_us = it->time_us();
      // Events stamped exactly t are not part of the value as of t.
      if (time_us >= t) break;
      const uint64_t seq = it->seq();
      if (seq > watermark || time_us < min_start) continue;
      const EventValueReader* event = it->Decode(stream.types);
      if (event == nullptr) break;
      for (size_t f = 0; f < nf; ++f) {
        if (time_us < starts[f]) continue;
        if (const FieldValue* value =
                view.features[f].Accepts(event->fields())) {
          windows[f].Offer(*value, time_us, seq, final);
        }
      }
    }
    if (!it->status().ok()) return it->status();
    // Cleared elements stay allocated, so values are reused, not re-made.
    values.Clear();
    for (size_t f = 0; f < nf; ++f) {
      absl::Status s = windows[f].Value(values.Add());
      if (!s.ok()) {
        return absl::Status(s.code(),
                            absl::StrCat("feature '", view.features[f].name,
                                         "' of entity '", entity, "' as of ",
                                         FormatMicros(t), ": ", s.message()));
      }
    }
    sink(i, &values);
  }
  return absl::OkStatus();
}

}  // namespace rawfeat
