#ifndef RAWFEAT_SERVER_STORAGE_EVENT_HEAD_H_
#define RAWFEAT_SERVER_STORAGE_EVENT_HEAD_H_

// EventHead: the events not sealed into blocks yet, in memory (storage
// format 5). An append writes its events once, into the log (and their ids);
// the head indexes them by entity so reads find them, and the sealer writes
// them into the entity's blocks (event_block.h) from here, without reading
// them back from RocksDB. The log is the head's durable copy: the store
// rebuilds it from the log at open.
//
// Versions: each entity's head is an immutable EntityHead, replaced by
// appends, sealing and erasure (copy on write), so a reader holds one by a
// shared pointer and reads it without locks. A version is a few sorted
// runs that versions share, like an LSM tree's levels: an append adds its
// events as a new run and merges it into the runs before it only while
// those are at most twice its size, so each event is copied O(log n)
// times however late it lands, not once per append (a late event in one
// sorted vector copied the entity's whole head), and an entity of n head
// events has at most log2(n) + 1 runs. HeadReader merges them. Events that
// come after the newest run's last event (the common case: an entity's
// events arrive in time order) are appended to that run in place, in
// spare room that no version sees yet (HeadRunData).
//
// An event that leaves the head (sealed into a block, or erased) is first
// marked gone at a RocksDB sequence number S: a reader whose RocksDB view
// is at R shows it while R < S (its view does not hold the block, or still
// holds the erased data) and hides it from R >= S on. It is dropped from
// memory once every registered reader is at or after S (Purge). Likewise
// an event is born at the sequence its append's write made visible: a
// reader at an earlier R does not show it, as RocksDB would not.
//
// Thread-safety: all methods are safe to call concurrently; writers
// (Add, MarkGone, Purge) are serialized among themselves.

#include <cstdint>
#include <functional>
#include <memory>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/btree_set.h"
#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/container/inlined_vector.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/types/span.h"

namespace rawfeat {

// One event in the head.
struct HeadEvent {
  int64_t time_us = 0;
  uint64_t seq = 0;
  // The RocksDB sequence from which reads show it (its append's write is
  // visible there; event_store.h ReadView).
  uint64_t born_at = 0;
  // 0 while the event lives in the head only; else the RocksDB sequence
  // from which reads no longer show it (EventHead above).
  uint64_t gone_at = 0;
  absl::string_view value;  // the stored value, in the EntityHead's buffers
};

// Where an entity's head values live: blocks that never move, so the
// versions of one entity share it and the writer appends to it while
// readers read what earlier versions point to. Only the head's writer
// appends (EventHead serializes writers).
class ValueArena {
 public:
  // Copies `value` in and returns where it now lives.
  absl::string_view Append(absl::string_view value);
  size_t bytes() const { return bytes_; }
  // Asks the CPU to fetch where the next Append writes: link 0 the
  // pointer to the last block, link 1 (once that is fetched) the place in
  // it. A hint only; safe wherever Append is.
  void PrefetchTail(int link) const;

 private:
  std::vector<std::unique_ptr<char[]>> blocks_;
  size_t used_ = 0;   // of the last block
  size_t size_ = 0;   // of the last block
  size_t bytes_ = 0;  // all blocks
};

// Head events being gathered (sorted or not).
using HeadRun = std::vector<HeadEvent>;

// The storage of a sorted run of head events, by (time, seq), shared by
// the versions of an entity: each version sees a prefix of it
// (HeadRunRef::size). Only the writer appends, after every prefix a
// version sees, so what a reader reads never changes under it. An event in
// order after the run's last is appended so, without copying the run.
struct HeadRunData {
  explicit HeadRunData(size_t cap)
      : events(new HeadEvent[cap]), capacity(cap) {}
  std::unique_ptr<HeadEvent[]> events;
  const size_t capacity;
  size_t filled = 0;  // slots written; the writer's alone (EventHead)
};

// One version's view of a run: its first `size` events.
struct HeadRunRef {
  std::shared_ptr<HeadRunData> data;
  size_t size = 0;
  const HeadEvent* begin() const { return data->events.get(); }
  const HeadEvent* end() const { return begin() + size; }
  const HeadEvent& operator[](size_t i) const { return begin()[i]; }
  const HeadEvent& back() const { return begin()[size - 1]; }
};
// Most entities hold a run or two: they live in the EntityHead itself.
using HeadRuns = absl::InlinedVector<HeadRunRef, 4>;

// One entity's events in the head. Immutable once shared.
struct EntityHead {
  // Each sorted by (time, seq), oldest first; each more than twice the
  // size of the next. Seqs are unique across them.
  HeadRuns runs;
  std::shared_ptr<ValueArena> values;  // holds every event's value
  size_t events = 0;          // in all runs, gone ones included
  size_t live = 0;            // events with gone_at == 0
  uint64_t min_live_seq = 0;  // lowest seq of those (0: none)
  size_t bytes = 0;           // memory held, roughly
  // True if `e` is shown to a reader at RocksDB sequence `read_seq`.
  static bool Visible(const HeadEvent& e, uint64_t read_seq) {
    return e.born_at <= read_seq && (e.gone_at == 0 || e.gone_at > read_seq);
  }
};
using EntityHeadRef = std::shared_ptr<const EntityHead>;

// Reads one EntityHead's events, gone ones included, in (time, seq) order
// by merging its runs. The head must outlive the reader's use of it.
// Not thread-safe; one reader per thread.
class HeadReader {
 public:
  HeadReader() = default;
  // Positions on the head's first event (`head` may be nullptr: nothing).
  void Reset(const EntityHead* head);
  // Positions on the first event with time >= `from_us`.
  void Seek(int64_t from_us);
  bool Valid() const { return current_ >= 0; }
  // REQUIRES: Valid().
  const HeadEvent& event() const { return runs_[current_][pos_[current_]]; }
  void Next();

 private:
  void Choose();  // sets current_ to the run with the smallest event

  absl::InlinedVector<absl::Span<const HeadEvent>, 8> runs_;
  absl::InlinedVector<size_t, 8> pos_;
  int current_ = -1;
};

class EventHead {
 public:
  EventHead() = default;
  EventHead(const EventHead&) = delete;
  EventHead& operator=(const EventHead&) = delete;

  // An event to add: its entity's prefix (keys.h EntityPrefix), time, seq
  // and stored value (copied).
  struct NewEvent {
    absl::string_view prefix;
    int64_t time_us = 0;
    uint64_t seq = 0;
    absl::string_view value;
  };
  // Adds committed events, visible from RocksDB sequence `born_at` on.
  // REQUIRES: `events` sorted by (prefix, time, seq); seqs not in the head
  // already.
  void Add(absl::Span<const NewEvent> events, uint64_t born_at);

  // The head of the entity with that prefix; nullptr if it has none.
  EntityHeadRef Find(absl::string_view prefix) const;
  // The first entity whose prefix is >= `from` and < `upper` (empty: no
  // bound): its prefix and head. False if there is none.
  bool Next(absl::string_view from, absl::string_view upper,
            std::string* prefix, EntityHeadRef* head) const;
  // Every entity with at least `min_live` live events (min_live >= 1), in
  // prefix order.
  std::vector<std::pair<std::string, EntityHeadRef>> Pick(
      size_t min_live) const;

  // Marks the live events of the entity whose seqs are in `seqs` (sorted;
  // empty: every live event) gone at RocksDB sequence `at`.
  void MarkGone(absl::string_view prefix, absl::Span<const uint64_t> seqs,
                uint64_t at);
  // Drops from memory the events gone at or before the oldest registered
  // reader's sequence (all gone events if none is registered).
  void Purge();

  // Registers a reader: calls `sequence` (which returns the RocksDB
  // sequence the reader reads at, e.g. by taking a snapshot) under the
  // head's lock, so no Purge runs between the two, and returns it. Each
  // registration must be matched by one Unregister of the same sequence.
  uint64_t Register(const std::function<uint64_t()>& sequence);
  void Unregister(uint64_t read_seq);

  // Live events, the lowest live seq (0: none), and memory held.
  uint64_t live_events() const;
  uint64_t min_live_seq() const;
  uint64_t bytes() const;

 private:
  // Installs `next` (nullptr: removes the entity), moving the version it
  // replaces into `*old` (to be freed outside the lock).
  void Install(absl::string_view prefix, EntityHeadRef next,
               std::vector<EntityHeadRef>* old)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Install of `next` (not nullptr) over the version in `*slot`, the
  // entity's entry in entities_ (found under the lock since the last
  // change to the map's structure).
  void Replace(absl::string_view prefix, EntityHeadRef* slot,
               EntityHeadRef next, std::vector<EntityHeadRef>* old)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  absl::Mutex write_mu_;  // serializes Add, MarkGone and Purge
  mutable absl::Mutex mu_;
  // By prefix, hashed: an append finds each of its entities with a probe
  // or two (in a B-tree of entities, a cache miss per level). Writers
  // hold write_mu_, so a found entry stays put until their inserts.
  absl::flat_hash_map<std::string, EntityHeadRef> entities_
      ABSL_GUARDED_BY(mu_);
  // The same prefixes in order, for Next.
  absl::btree_set<std::string, std::less<>> order_ ABSL_GUARDED_BY(mu_);
  // Entities with gone events still in memory.
  absl::flat_hash_set<std::string> dirty_ ABSL_GUARDED_BY(mu_);
  std::multiset<uint64_t> readers_ ABSL_GUARDED_BY(mu_);
  uint64_t live_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t bytes_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace rawfeat

#endif  // RAWFEAT_SERVER_STORAGE_EVENT_HEAD_H_
