#include "server/storage/event_head.h"

#include <algorithm>
#include <cstring>
#include <iterator>
#include <limits>

namespace rawfeat {
namespace {

bool Before(const HeadEvent& a, const HeadEvent& b) {
  return a.time_us != b.time_us ? a.time_us < b.time_us : a.seq < b.seq;
}

// Counts a live event of `head` (live and its lowest seq).
void NoteLive(EntityHead* head, uint64_t seq) {
  ++head->live;
  if (head->min_live_seq == 0 || seq < head->min_live_seq) {
    head->min_live_seq = seq;
  }
}

// Sets the counts of `head` that follow from its runs: events and memory
// (a run's whole storage, though versions share it).
void Finish(EntityHead* head) {
  head->events = 0;
  size_t capacity = 0;
  for (const HeadRunRef& run : head->runs) {
    head->events += run.size;
    capacity += run.data->capacity;
  }
  head->bytes = sizeof(EntityHead) + capacity * sizeof(HeadEvent) +
                head->runs.capacity() * sizeof(HeadRunRef) +
                (head->values == nullptr ? 0 : head->values->bytes());
}

// A run of room for `capacity` events holding copies of [begin, end).
HeadRunRef NewRun(const HeadEvent* begin, const HeadEvent* end,
                  size_t capacity) {
  HeadRunRef run;
  run.size = static_cast<size_t>(end - begin);
  run.data = std::make_shared<HeadRunData>(std::max(capacity, run.size));
  std::copy(begin, end, run.data->events.get());
  run.data->filled = run.size;
  return run;
}

// The merge of two runs, with room for `spare` more events.
HeadRunRef Merge(const HeadRunRef& a, const HeadRunRef& b, size_t spare) {
  HeadRunRef run;
  run.size = a.size + b.size;
  run.data = std::make_shared<HeadRunData>(run.size + spare);
  std::merge(a.begin(), a.end(), b.begin(), b.end(), run.data->events.get(),
             Before);
  run.data->filled = run.size;
  return run;
}

// A new head of `events` (sorted) as one run, its values copied into a
// fresh arena.
std::shared_ptr<EntityHead> Repack(const HeadRun& events) {
  auto head = std::make_shared<EntityHead>();
  head->values = std::make_shared<ValueArena>();
  HeadRunRef run =
      NewRun(events.data(), events.data() + events.size(), events.size());
  for (size_t i = 0; i < run.size; ++i) {
    HeadEvent& e = run.data->events[i];
    e.value = head->values->Append(e.value);
    if (e.gone_at == 0) NoteLive(head.get(), e.seq);
  }
  head->runs.push_back(std::move(run));
  Finish(head.get());
  return head;
}

// Adds `run` (sorted) as the newest run of `runs`, merging it first with
// the newest ones while they are at most twice its size.
void PushRun(HeadRuns* runs, HeadRunRef run) {
  while (!runs->empty() && runs->back().size <= 2 * run.size) {
    run = Merge(runs->back(), run, 0);
    runs->pop_back();
  }
  runs->push_back(std::move(run));
}

// Appends `events` (sorted, all after the newest run's last event) to the
// newest run of `runs` in place: into its storage's spare room if it has
// room for them and no version has appended past this one's view, else
// into a copy with twice the room. Then merges the newest runs while the
// one before the newest is at most twice its size.
void AppendInOrder(HeadRuns* runs, const HeadEvent* begin,
                   const HeadEvent* end) {
  HeadRunRef& last = runs->back();
  const size_t n = static_cast<size_t>(end - begin);
  if (last.size != last.data->filled || last.data->capacity - last.size < n) {
    last = NewRun(last.begin(), last.end(), 2 * (last.size + n));
  }
  std::copy(begin, end, last.data->events.get() + last.size);
  last.size += n;
  last.data->filled = last.size;
  while (runs->size() >= 2 &&
         (*runs)[runs->size() - 2].size <= 2 * runs->back().size) {
    HeadRunRef merged =
        Merge((*runs)[runs->size() - 2], runs->back(), runs->back().size / 2);
    runs->pop_back();
    runs->back() = std::move(merged);
  }
}

}  // namespace

absl::string_view ValueArena::Append(absl::string_view value) {
  if (value.empty()) return absl::string_view();
  if (blocks_.empty() || size_ - used_ < value.size()) {
    // Blocks double with the arena, from 256 bytes (most entities hold a
    // few events) to 64 KiB, or fit a big value.
    const size_t want =
        std::min<size_t>(64 << 10, std::max<size_t>(256, bytes_));
    size_ = std::max(want, value.size());
    blocks_.emplace_back(new char[size_]);
    used_ = 0;
    bytes_ += size_;
  }
  char* at = blocks_.back().get() + used_;
  std::memcpy(at, value.data(), value.size());
  used_ += value.size();
  return absl::string_view(at, value.size());
}

void ValueArena::PrefetchTail(int link) const {
  if (blocks_.empty()) return;
  if (link == 0) {
    __builtin_prefetch(&blocks_.back());
  } else {
    __builtin_prefetch(blocks_.back().get() + used_, 1);
  }
}

void HeadReader::Reset(const EntityHead* head) {
  runs_.clear();
  pos_.clear();
  if (head != nullptr) {
    for (const HeadRunRef& run : head->runs) {
      runs_.push_back(absl::MakeConstSpan(run.begin(), run.size));
      pos_.push_back(0);
    }
  }
  Choose();
}

void HeadReader::Seek(int64_t from_us) {
  for (size_t r = 0; r < runs_.size(); ++r) {
    const absl::Span<const HeadEvent> run = runs_[r];
    pos_[r] = std::partition_point(run.begin(), run.end(),
                                   [from_us](const HeadEvent& e) {
                                     return e.time_us < from_us;
                                   }) -
              run.begin();
  }
  Choose();
}

void HeadReader::Next() {
  ++pos_[current_];
  Choose();
}

void HeadReader::Choose() {
  current_ = -1;
  for (size_t r = 0; r < runs_.size(); ++r) {
    if (pos_[r] == runs_[r].size()) continue;
    if (current_ < 0 ||
        Before(runs_[r][pos_[r]], runs_[current_][pos_[current_]])) {
      current_ = static_cast<int>(r);
    }
  }
}

void EventHead::Install(absl::string_view prefix, EntityHeadRef next,
                        std::vector<EntityHeadRef>* old) {
  auto it = entities_.find(prefix);
  if (it != entities_.end() && next != nullptr) {
    Replace(prefix, &it->second, std::move(next), old);
    return;
  }
  if (next == nullptr) {
    if (it != entities_.end()) {
      live_ -= it->second->live;
      bytes_ -= it->second->bytes;
      old->push_back(std::move(it->second));
      entities_.erase(it);
      order_.erase(order_.find(prefix));
    }
    dirty_.erase(prefix);
    return;
  }
  live_ += next->live;
  bytes_ += next->bytes;
  if (next->live < next->events) dirty_.insert(std::string(prefix));
  entities_.emplace(std::string(prefix), std::move(next));
  order_.emplace(prefix);
}

void EventHead::Replace(absl::string_view prefix, EntityHeadRef* slot,
                        EntityHeadRef next, std::vector<EntityHeadRef>* old) {
  const EntityHead& prev = **slot;
  live_ += next->live - prev.live;
  bytes_ += next->bytes - prev.bytes;
  // dirty_ holds exactly the entities whose version has gone events.
  const bool was_dirty = prev.live < prev.events;
  const bool dirty = next->live < next->events;
  if (dirty && !was_dirty) {
    dirty_.insert(std::string(prefix));
  } else if (was_dirty && !dirty) {
    dirty_.erase(prefix);
  }
  old->push_back(std::move(*slot));
  *slot = std::move(next);
}

void EventHead::Add(absl::Span<const NewEvent> events, uint64_t born_at) {
  if (events.empty()) return;
  absl::MutexLock write_lock(&write_mu_);
  // The entities' current versions, in one pass under the lock.
  std::vector<size_t> starts;
  for (size_t i = 0; i < events.size(); ++i) {
    if (i == 0 || events[i].prefix != events[i - 1].prefix) starts.push_back(i);
  }
  // Their entries in entities_ (nullptr: a new entity) stay where they
  // are until this Add inserts the new ones: only writers change the map,
  // and writers hold write_mu_. So do the versions they point to.
  std::vector<EntityHeadRef*> slots(starts.size(), nullptr);
  {
    absl::MutexLock l(&mu_);
    for (size_t g = 0; g < starts.size(); ++g) {
      auto it = entities_.find(events[starts[g]].prefix);
      if (it != entities_.end()) slots[g] = &it->second;
    }
  }
  std::vector<EntityHeadRef> built(starts.size());
  HeadRun fresh;  // a group's events
  // Each entity's version is a chain of memory no recent append touched:
  // its slot in the map, the version, its arena and newest run, their
  // storage. Most of a group's entities get one event each, so a cache
  // miss per link was most of the insert's time; the chain is walked a
  // link per step ahead of the entity being built, two entities apart.
  auto warm = [&](size_t g, int link) {
    if (g >= starts.size() || slots[g] == nullptr) return;
    if (link == 0) {
      __builtin_prefetch(slots[g]);
      return;
    }
    const EntityHead* head = slots[g]->get();
    switch (link) {
      case 1:
        for (size_t b = 0; b < sizeof(EntityHead); b += 64) {
          __builtin_prefetch(reinterpret_cast<const char*>(head) + b);
        }
        break;
      case 2:
        __builtin_prefetch(head->values.get());
        if (!head->runs.empty())
          __builtin_prefetch(head->runs.back().data.get());
        break;
      case 3:
        head->values->PrefetchTail(/*link=*/0);
        if (!head->runs.empty()) {
          const HeadRunRef& run = head->runs.back();
          __builtin_prefetch(run.data->events.get() + run.size, 1);
        }
        break;
      default:
        head->values->PrefetchTail(/*link=*/1);
    }
  };
  for (size_t g = 0; g < starts.size(); ++g) {
    for (int link = 0; link <= 4; ++link) warm(g + 2 * (5 - link), link);
    const size_t begin = starts[g];
    const size_t end = g + 1 < starts.size() ? starts[g + 1] : events.size();
    const EntityHead* old = slots[g] != nullptr ? slots[g]->get() : nullptr;
    auto next = std::make_shared<EntityHead>();
    // The arena and the runs are shared with the old version: the arena
    // only appends, and a run's storage only past what versions see.
    next->values =
        old != nullptr ? old->values : std::make_shared<ValueArena>();
    next->live = old != nullptr ? old->live : 0;
    next->min_live_seq = old != nullptr ? old->min_live_seq : 0;
    if (old != nullptr) next->runs = old->runs;
    fresh.clear();
    for (size_t k = begin; k < end; ++k) {
      HeadEvent e;
      e.time_us = events[k].time_us;
      e.seq = events[k].seq;
      e.born_at = born_at;
      e.value = next->values->Append(events[k].value);
      fresh.push_back(e);
      NoteLive(next.get(), e.seq);
    }
    const HeadEvent* first = fresh.data();
    const HeadEvent* last = first + fresh.size();
    if (!next->runs.empty() && Before(next->runs.back().back(), *first)) {
      AppendInOrder(&next->runs, first, last);
    } else {
      // A new entity starts with room for a few more events.
      PushRun(&next->runs,
              NewRun(first, last, old == nullptr ? fresh.size() + 3 : 0));
    }
    Finish(next.get());
    built[g] = std::move(next);
  }
  std::vector<EntityHeadRef> old;
  old.reserve(built.size());
  {
    absl::MutexLock l(&mu_);
    // Replacements first: an insertion may move the map's entries.
    for (size_t g = 0; g < starts.size(); ++g) {
      if (slots[g] != nullptr) {
        Replace(events[starts[g]].prefix, slots[g], std::move(built[g]), &old);
      }
    }
    for (size_t g = 0; g < starts.size(); ++g) {
      if (slots[g] == nullptr) {
        Install(events[starts[g]].prefix, std::move(built[g]), &old);
      }
    }
  }
  // `old` releases the replaced versions here, unlocked.
}

EntityHeadRef EventHead::Find(absl::string_view prefix) const {
  absl::MutexLock l(&mu_);
  auto it = entities_.find(prefix);
  return it == entities_.end() ? nullptr : it->second;
}

bool EventHead::Next(absl::string_view from, absl::string_view upper,
                     std::string* prefix, EntityHeadRef* head) const {
  absl::MutexLock l(&mu_);
  auto it = order_.lower_bound(from);
  if (it == order_.end()) return false;
  if (!upper.empty() && absl::string_view(*it) >= upper) return false;
  *prefix = *it;
  *head = entities_.find(*it)->second;
  return true;
}

std::vector<std::pair<std::string, EntityHeadRef>> EventHead::Pick(
    size_t min_live) const {
  std::vector<std::pair<std::string, EntityHeadRef>> picked;
  {
    absl::MutexLock l(&mu_);
    for (const auto& [prefix, head] : entities_) {
      if (head->live >= std::max<size_t>(min_live, 1)) {
        picked.emplace_back(prefix, head);
      }
    }
  }
  std::sort(picked.begin(), picked.end(),
            [](const auto& a, const auto& b) { return a.first < b.first; });
  return picked;
}

void EventHead::MarkGone(absl::string_view prefix,
                         absl::Span<const uint64_t> seqs, uint64_t at) {
  absl::MutexLock write_lock(&write_mu_);
  const EntityHeadRef current = Find(prefix);
  if (current == nullptr) return;
  auto next = std::make_shared<EntityHead>(*current);
  next->live = 0;
  next->min_live_seq = 0;
  auto marked = [&](const HeadEvent& e) {
    return e.gone_at == 0 &&
           (seqs.empty() || std::binary_search(seqs.begin(), seqs.end(), e.seq));
  };
  // Runs without an event to mark stay shared.
  for (HeadRunRef& run : next->runs) {
    if (std::any_of(run.begin(), run.end(), marked)) {
      HeadRunRef copy = NewRun(run.begin(), run.end(), run.size);
      for (size_t i = 0; i < copy.size; ++i) {
        HeadEvent& e = copy.data->events[i];
        if (marked(e)) e.gone_at = at;
      }
      run = std::move(copy);
    }
    for (const HeadEvent& e : run) {
      if (e.gone_at == 0) NoteLive(next.get(), e.seq);
    }
  }
  Finish(next.get());
  std::vector<EntityHeadRef> old;
  absl::MutexLock l(&mu_);
  Install(prefix, std::move(next), &old);
}

void EventHead::Purge() {
  absl::MutexLock write_lock(&write_mu_);
  std::vector<std::string> dirty;
  uint64_t oldest;
  {
    absl::MutexLock l(&mu_);
    dirty.assign(dirty_.begin(), dirty_.end());
    oldest = readers_.empty() ? std::numeric_limits<uint64_t>::max()
                              : *readers_.begin();
  }
  std::vector<std::pair<std::string, EntityHeadRef>> next;
  for (std::string& prefix : dirty) {
    const EntityHeadRef current = Find(prefix);
    if (current == nullptr) continue;
    HeadRun kept;
    bool dropped = false;
    HeadReader reader;
    for (reader.Reset(current.get()); reader.Valid(); reader.Next()) {
      const HeadEvent& e = reader.event();
      if (e.gone_at != 0 && e.gone_at <= oldest) {
        dropped = true;
      } else {
        kept.push_back(e);
      }
    }
    if (!dropped) continue;
    next.emplace_back(std::move(prefix),
                      kept.empty() ? nullptr : Repack(kept));
  }
  std::vector<EntityHeadRef> old;
  absl::MutexLock l(&mu_);
  for (auto& [prefix, head] : next) Install(prefix, std::move(head), &old);
}

uint64_t EventHead::Register(const std::function<uint64_t()>& sequence) {
  absl::MutexLock l(&mu_);
  const uint64_t s = sequence();
  readers_.insert(s);
  return s;
}

void EventHead::Unregister(uint64_t read_seq) {
  absl::MutexLock l(&mu_);
  auto it = readers_.find(read_seq);
  if (it != readers_.end()) readers_.erase(it);
}

uint64_t EventHead::live_events() const {
  absl::MutexLock l(&mu_);
  return live_;
}

uint64_t EventHead::min_live_seq() const {
  absl::MutexLock l(&mu_);
  uint64_t min = 0;
  for (const auto& [prefix, head] : entities_) {
    if (head->min_live_seq != 0 && (min == 0 || head->min_live_seq < min)) {
      min = head->min_live_seq;
    }
  }
  return min;
}

uint64_t EventHead::bytes() const {
  absl::MutexLock l(&mu_);
  return bytes_;
}

}  // namespace rawfeat
