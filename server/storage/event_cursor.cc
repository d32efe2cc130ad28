// EventCursor and TileCursor over the layout of keys.h and event_block.h,
// and the EventStore methods that make them.

#include "server/storage/event_cursor.h"

#include <algorithm>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "rocksdb/db.h"
#include "rocksdb/iterator.h"
#include "rocksdb/options.h"
#include "server/common/coding.h"
#include "server/common/echo.h"
#include "server/common/time_util.h"
#include "server/storage/event_block.h"
#include "server/storage/event_store.h"
#include "server/storage/keys.h"
#include "server/storage/rocks_util.h"

namespace rawfeat {
namespace {

// How a bounded iterator seeks: in total order (across entities), or
// within the entity prefix of its first seek (the prefix Bloom filters
// skip every file and memtable without it).
enum class SeekMode { kTotalOrder, kWithinPrefix };

// An iterator of `cf` reading with `ro` that ends before `upper`, which it
// reads from `*upper_store` (kept by the caller as long as the iterator
// lives).
std::unique_ptr<rocksdb::Iterator> NewBoundedIterator(
    rocksdb::DB* db, rocksdb::ColumnFamilyHandle* cf, rocksdb::ReadOptions ro,
    std::string upper, std::string* upper_store, rocksdb::Slice* upper_slice,
    SeekMode mode = SeekMode::kTotalOrder) {
  *upper_store = std::move(upper);
  *upper_slice = ToSlice(*upper_store);
  ro.iterate_upper_bound = upper_slice;
  ro.total_order_seek = mode == SeekMode::kTotalOrder;
  ro.prefix_same_as_start = mode == SeekMode::kWithinPrefix;
  return std::unique_ptr<rocksdb::Iterator>(db->NewIterator(ro, cf));
}

// NextEntity steps over at most this many blocks before it seeks.
constexpr int kStepsBeforeSeek = 1;

}  // namespace

// ---------------------------------------------------------- EventCursor

// The cursor merges two sorted sources in (entity, time, seq) order: the
// events not sealed yet (the store's head, event_head.h: one entity's
// EntityHead at a time) and the sealed blocks (iterator `bit`; the block
// read last is decoded into `block`).
struct EventCursor::Rep {
  ~Rep() {
    if (head != nullptr && registered) head->Unregister(read_seq);
  }
  uint32_t stream_id = 0;
  // The head, and the RocksDB sequence this cursor reads at: it shows a
  // head event unless a block visible at read_seq holds it.
  EventHead* head = nullptr;
  uint64_t read_seq = 0;
  bool registered = false;  // with head (a cursor without a view)
  // Blocks. A lookup cursor (`point_reads`) first reads each entity's
  // tail block by key: a tail that says it is the entity's only block
  // (event_block.h) is the whole block source, and RocksDB's row cache
  // answers such reads without a seek into every level. An entity cursor
  // makes the iterator (from `db`, `cf` and `ro`) on its first seek that
  // needs one; range and stream cursors are made with theirs.
  std::unique_ptr<rocksdb::Iterator> bit;
  rocksdb::DB* db = nullptr;
  rocksdb::ColumnFamilyHandle* cf = nullptr;
  rocksdb::ReadOptions ro;
  bool point_reads = false;
  bool many_blocks = false;  // Seek's hint for the entity it is on
  // An ascending cursor (EventStore::NewAscendingCursor): `bit` reads in
  // total order, and a seek to an entity after `walked` (the entity of its
  // last seek) may step forward instead.
  bool ascending = false;
  std::string walked;
  // The sole tail block of entity `sole_entity` (empty: none held).
  rocksdb::PinnableSlice sole;
  std::string sole_entity;
  // Prime's block of `primed_entity`, while `primed`.
  bool primed = false;
  std::string primed_entity;
  absl::string_view primed_block;
  // Iterator bound (kept alive as long as the iterator).
  std::string block_upper;
  rocksdb::Slice block_upper_slice;
  std::string target;       // scratch for seek keys
  bool one_entity = false;  // kept to `entity` by Seek
  std::string entity;       // the entity Seek chose
  int64_t from_us = kMinEventTime;
  int64_t to_us = kMaxEventTime;
  bool valid = false;
  // The current event: from the block (in_block) or the head.
  bool in_block = false;
  // The head source: the entity (head_prefix, its EntityPrefix) whose
  // events it is on, and the position in them. A stream cursor moves on
  // to the next entity with head events at or after head_next_from, below
  // head_upper, while head_more.
  std::string head_prefix;
  EntityHeadRef hentity;
  HeadReader hreader;  // on hentity's events
  std::string head_next_from, head_upper;
  bool head_more = false;
  ParsedEventKey key;  // the head's current event, while key_ok
  bool key_ok = false;
  bool key_read = false;  // the head source has not moved since key was read
  // The block read last: its entity and events (views into the value
  // `bit` stays on while block_pinned); `next` is the first not yet
  // passed.
  bool block_pinned = false;
  bool block_is_tail = false;  // the pinned block is its entity's last
  std::string block_entity;
  absl::string_view block_value;  // its stored bytes, while block_pinned
  std::vector<BlockEvent> block;
  // The block's value column, decoded into `block` on the first value()
  // (a scan that only looks at times and seqs, e.g. finding entities,
  // never decodes it).
  absl::string_view block_values;
  bool values_decoded = false;
  size_t next = 0;
  bool blocks_done = false;  // the block source reached to_us
  EventValueReader reader;
  absl::Status status;

  void Fail(absl::Status s) {
    status = std::move(s);
    valid = false;
    key_ok = false;
    ClearBlock();
  }

  void ClearBlock() {
    block.clear();
    next = 0;
    block_pinned = false;
    values_decoded = false;
  }

  absl::Status CorruptBlock() const {
    return absl::DataLossError(absl::StrCat("corrupt event block of entity '",
                                            Echo(block_entity), "' in stream ",
                                            stream_id));
  }

  // The value of the block's event `next`; empty if the block's value
  // column is corrupt: then the cursor has failed as with Fail, except that
  // the block stays, so the current event's entity, time and seq stay
  // readable until it moves.
  absl::string_view BlockValue() {
    if (!values_decoded) {
      if (!DecodeBlockValues(block_values, &block)) {
        status = CorruptBlock();
        valid = false;
        key_ok = false;
        return absl::string_view();
      }
      values_decoded = true;
    }
    return block[next].value;
  }

  // Reads the head source's position into `key`: false at the end of the
  // range.
  bool ReadKey() {
    key_read = true;
    key_ok = false;
    while (true) {
      if (hentity != nullptr) {
        while (hreader.Valid() &&
               !EntityHead::Visible(hreader.event(), read_seq)) {
          hreader.Next();
        }
        if (hreader.Valid()) {
          key.stream_id = stream_id;
          key.entity = EntityOfPrefix(head_prefix);
          key.time_us = hreader.event().time_us;
          key.seq = hreader.event().seq;
          if (key.time_us >= to_us) return false;
          return key_ok = true;
        }
        hentity = nullptr;
        hreader.Reset(nullptr);
      }
      if (one_entity || !head_more) return false;
      if (!head->Next(head_next_from, head_upper, &head_prefix, &hentity)) {
        head_more = false;
        return false;
      }
      hreader.Reset(hentity.get());
      head_next_from = PrefixSuccessor(head_prefix);
    }
  }

  // Moves `bit` past the block read last (if any) and decodes the one it
  // lands on into `block` if that belongs to the range; else leaves
  // `block` empty. `bit` stays on the block read.
  void ReadBlock() {
    if (block_pinned) bit->Next();
    ClearBlock();
    if (!bit->Valid()) {
      absl::Status s = FromRocks(bit->status(), "scan event blocks");
      if (!s.ok()) Fail(std::move(s));
      return;
    }
    const absl::string_view k = ToView(bit->key());
    ParsedEventKey bk;
    // A tail block's key has no valid time; only its entity is read.
    const bool parsed = ParseEventKey(k, &bk);
    if (!parsed || bk.stream_id != (stream_id | kBlockStreamBit)) {
      Fail(absl::DataLossError(absl::StrCat(
          "stream ", stream_id, " holds a malformed block key (",
          HexEncode(k), ")")));
      return;
    }
    if (one_entity && bk.entity != entity) return;
    block_pinned = true;
    block_value = ToView(bit->value());
    LoadBlock(block_value, bk.entity, IsTailBlockKey(k));
  }

  // Makes `value`, a block of `of` (its tail block if `is_tail`), the block
  // source's block, on its first event in the range; fails on a corrupt one.
  void LoadBlock(absl::string_view value, absl::string_view of,
                 bool is_tail) {
    block_entity.assign(of.data(), of.size());
    block_is_tail = is_tail;
    if (!DecodeBlockKeys(value, &block, &block_values)) {
      Fail(CorruptBlock());
      return;
    }
    // Skip what lies before the range (one block can straddle its start).
    while (next < block.size() && block[next].time_us < from_us) ++next;
  }

  // True if the head's event and the block are of one entity. A cursor
  // kept to one entity reads no other's head events or blocks, so it
  // skips the comparison (once per event of a heavy entity's scan).
  bool SameEntity() const {
    return one_entity || key.entity == block_entity;
  }

  // True if the block's next event comes before `it`'s key.
  bool BlockFirst() const {
    if (!key_ok) return true;
    if (!SameEntity()) return key.entity > block_entity;
    const BlockEvent& b = block[next];
    return b.time_us != key.time_us ? b.time_us < key.time_us
                                    : b.seq < key.seq;
  }

  // Positions on the next event of the merge at or after where the
  // sources stand, within [from_us, to_us).
  void Settle() {
    valid = false;
    if (!status.ok()) return;
    if (!key_read) ReadKey();
    if (!status.ok()) return;
    // The block source: a block of the range with events left, or none.
    while (next >= block.size() && !blocks_done && status.ok() &&
           bit != nullptr && bit->Valid()) {
      // Past an entity's tail block only other entities' blocks follow:
      // one entity's scan ends there without stepping the iterator (a
      // median entity's whole history is its tail block).
      if (one_entity && block_pinned && block_is_tail) {
        blocks_done = true;
        break;
      }
      ReadBlock();
      if (block.empty()) blocks_done = true;  // past the entity
    }
    if (!status.ok()) return;
    if (next >= block.size() && !blocks_done && bit != nullptr &&
        !bit->Valid()) {
      // A seek or step that failed leaves the iterator invalid, like the
      // end of the data: only its status tells them apart.
      absl::Status s = FromRocks(bit->status(), "scan event blocks");
      if (!s.ok()) {
        Fail(std::move(s));
        return;
      }
    }
    if (next < block.size() && block[next].time_us >= to_us) {
      ClearBlock();  // sorted: nothing later is in range either
      blocks_done = true;
    }
    const bool block_left = next < block.size();
    // A head event that a block holds too is read once, from the block:
    // the block was sealed after this cursor's view was taken (the head
    // marks it gone from a later sequence on), or the head was rebuilt
    // from the log at open and holds events sealed before the stop.
    while (block_left && key_ok && SameEntity() &&
           key.time_us == block[next].time_us && key.seq == block[next].seq) {
      hreader.Next();
      ReadKey();
    }
    if (block_left && BlockFirst()) {
      in_block = true;
      valid = true;
      return;
    }
    if (key_ok) {
      in_block = false;
      valid = true;
    }
  }

  void SeekTo(int64_t from) {
    from_us = from;
    ClearBlock();
    blocks_done = false;
    status = absl::OkStatus();
    SetEntityPrefix(stream_id, entity, &head_prefix);
    hentity = head->Find(head_prefix);
    hreader.Reset(hentity.get());
    if (from != kMinEventTime) hreader.Seek(from);
    key_read = false;
    if (primed && primed_entity != entity) primed = false;
    if (primed || (point_reads && !many_blocks && ReadSoleTail())) {
      if (!status.ok()) return;
      // The entity's only block: as if a seek had landed on it.
      LoadBlock(primed ? primed_block : ToView(sole), entity,
                /*is_tail=*/true);
      if (!status.ok()) return;
      blocks_done = true;  // no other block to read
      Settle();
      return;
    }
    if (bit == nullptr) bit.reset(db->NewIterator(ro, cf));
    target = from == kMinEventTime ? BlockPrefix(stream_id, entity)
                                   : BlockKey(stream_id, entity, from, 0);
    if (!StepTo()) bit->Seek(ToSlice(target));
    if (ascending) walked = entity;
    Settle();
  }

  // For an ascending cursor moving on to a later entity: steps `bit` to
  // `target` and returns true if that takes at most kStepsBeforeSeek
  // steps; else false (the caller seeks). Every key before `bit`'s
  // position belongs to `walked` or an earlier entity (the cursor only
  // ever seeks to `walked`'s range and steps forward from there), so all
  // of them lie before any key of a later entity: the first key at or
  // after `target` that stepping meets is where a seek would land. (Before
  // the first seek `bit` is not valid, so that one seeks.)
  bool StepTo() {
    if (!ascending || !(walked < entity)) return false;
    for (int step = 0;; ++step) {
      if (!bit->Valid()) return false;  // seek: it says why it is invalid
      if (ToView(bit->key()) >= absl::string_view(target)) return true;
      if (step == kStepsBeforeSeek) return false;
      bit->Next();
    }
  }

  // Reads `entity`'s tail block into `sole` (unless it holds it already)
  // and returns true if that is the entity's only block, or if the read
  // failed (then status says so).
  bool ReadSoleTail() {
    if (!sole_entity.empty() && sole_entity == entity) return true;
    sole_entity.clear();
    sole.Reset();
    SetTailBlockKey(stream_id, entity, &target);
    const rocksdb::Status s = db->Get(ro, cf, ToSlice(target), &sole);
    if (s.ok() && IsSoleTail(ToView(sole))) {
      sole_entity = entity;
      return true;
    }
    sole.Reset();
    if (s.ok() || s.IsNotFound()) return false;
    Fail(FromRocks(s, "read an event block"));
    return true;
  }
};

EventCursor::EventCursor(std::unique_ptr<Rep> rep) : rep_(std::move(rep)) {}
EventCursor::~EventCursor() = default;

void EventCursor::Seek(absl::string_view entity, int64_t from_us,
                       int64_t to_us, bool many_blocks) {
  rep_->many_blocks = many_blocks;
  rep_->one_entity = true;
  rep_->entity.assign(entity.data(), entity.size());
  rep_->to_us = to_us;
  rep_->SeekTo(from_us);
}

void EventCursor::SeekTime(int64_t from_us) {
  Rep& r = *rep_;
  if (!r.one_entity) {  // a stream cursor on its current entity
    r.one_entity = true;
    const absl::string_view e = entity();
    r.entity.assign(e.data(), e.size());
  } else if (r.status.ok() && r.next < r.block.size() &&
             r.block[r.next].time_us < from_us &&
             r.block.back().time_us >= from_us) {
    // The block at hand holds the entity's first block event at or after
    // from_us: earlier blocks end before its events, and everything the
    // cursor passed lies before its next one, which is before from_us. So
    // move within it instead of seeking again (a sparse entity's tiled
    // days alternate with raw ones inside one block); the head seeks on
    // its own (a head the cursor finished holds nothing after from_us).
    r.from_us = from_us;
    while (r.block[r.next].time_us < from_us) ++r.next;
    if (r.hentity != nullptr) r.hreader.Seek(from_us);
    r.key_read = false;
    r.Settle();
    return;
  }
  r.SeekTo(from_us);
}

void EventCursor::NextEntity() {
  const std::string e(entity());
  rep_->one_entity = false;
  rep_->from_us = kMinEventTime;
  rep_->to_us = kMaxEventTime;
  rep_->blocks_done = false;
  // A block read ahead that belongs to a later entity stays (`bit` is on
  // it).
  const bool keep_block = rep_->next < rep_->block.size() &&
                          absl::string_view(rep_->block_entity) > e;
  if (!keep_block) rep_->ClearBlock();
  // Each source moves only if it is not past the entity already.
  rep_->target = PrefixSuccessor(EntityPrefix(rep_->stream_id, e));
  if (rep_->hentity == nullptr ||
      absl::string_view(rep_->head_prefix) < rep_->target) {
    rep_->hentity = nullptr;
    rep_->hreader.Reset(nullptr);
    rep_->head_next_from = rep_->target;
    rep_->head_more = true;
  }
  rep_->key_read = false;
  rep_->target = PrefixSuccessor(BlockPrefix(rep_->stream_id, e));
  if (!keep_block) {
    // Most entities hold one block: stepping past it costs less than a
    // seek (which searches every level's index). More steps do not pay:
    // a heavy entity's blocks are read (and decompressed) to be stepped
    // over, where a seek skips them by the index.
    rocksdb::Iterator* bit = rep_->bit.get();
    for (int step = 0; step < kStepsBeforeSeek && bit->Valid() &&
                       ToView(bit->key()) < rep_->target;
         ++step) {
      bit->Next();
    }
    if (bit->Valid() && ToView(bit->key()) < rep_->target) {
      bit->Seek(ToSlice(rep_->target));
    }
  }
  rep_->Settle();
}

absl::string_view EventCursor::SoleBlock() const {
  const Rep& r = *rep_;
  if (!r.valid || !r.block_pinned || !r.block_is_tail ||
      r.block_entity != entity() || !IsSoleTail(r.block_value)) {
    return absl::string_view();
  }
  return r.block_value;
}

void EventCursor::Prime(absl::string_view entity, absl::string_view block) {
  rep_->primed = true;
  rep_->primed_entity.assign(entity.data(), entity.size());
  rep_->primed_block = block;
}

bool EventCursor::Valid() const { return rep_->valid; }
void EventCursor::Next() {
  if (rep_->in_block) {
    ++rep_->next;
  } else {
    rep_->hreader.Next();
    rep_->key_read = false;
  }
  rep_->Settle();
}
absl::string_view EventCursor::entity() const {
  return rep_->in_block ? absl::string_view(rep_->block_entity)
                        : rep_->key.entity;
}
int64_t EventCursor::time_us() const {
  return rep_->in_block ? rep_->block[rep_->next].time_us : rep_->key.time_us;
}
uint64_t EventCursor::seq() const {
  return rep_->in_block ? rep_->block[rep_->next].seq : rep_->key.seq;
}
absl::string_view EventCursor::value() const {
  return rep_->in_block ? rep_->BlockValue() : rep_->hreader.event().value;
}

const EventValueReader* EventCursor::Decode(
    const std::vector<v1::FieldType>& types) {
  const absl::string_view stored = value();
  if (!rep_->status.ok()) return nullptr;  // a corrupt block
  if (rep_->reader.Parse(stored, types)) return &rep_->reader;
  rep_->Fail(absl::DataLossError(
      absl::StrCat("corrupt stored event of entity '", Echo(entity()),
                   "' (seq ", seq(), ") in stream ", rep_->stream_id)));
  return nullptr;
}

absl::Status EventCursor::status() const { return rep_->status; }

void EventStore::StartCursor(EventCursor::Rep* rep, uint32_t stream_id,
                             const ReadView* view) const {
  rep->stream_id = stream_id;
  rep->head = &head_;
  if (view != nullptr) {
    rep->read_seq = view->read_seq_;  // the view is registered
  } else {
    // Registered before the iterators are made: they read at this
    // sequence or later, and the head keeps what they may not see.
    rep->read_seq =
        head_.Register([this] { return db_->GetLatestSequenceNumber(); });
    rep->registered = true;
  }
}

std::unique_ptr<EventCursor> EventStore::NewEventCursor(
    uint32_t stream_id, const ReadView* view, bool lookups) const {
  auto rep = std::make_unique<EventCursor::Rep>();
  StartCursor(rep.get(), stream_id, view);
  rep->db = db_.get();
  rep->cf = events_cf_;
  rep->ro = ReadOptionsOf(view);
  // Within one entity a prefix seek suffices: the entity-prefix Bloom
  // filters skip files without it.
  rep->ro.prefix_same_as_start = true;
  // Point reads need the view's snapshot (the iterator, made by the first
  // seek that needs it, reads at it too).
  rep->point_reads = lookups && options_.tail_point_reads && view != nullptr;
  return std::unique_ptr<EventCursor>(new EventCursor(std::move(rep)));
}

std::unique_ptr<EventCursor> EventStore::NewAscendingCursor(
    uint32_t stream_id, const ReadView* view) const {
  auto rep = std::make_unique<EventCursor::Rep>();
  StartCursor(rep.get(), stream_id, view);
  rep->db = db_.get();
  rep->cf = events_cf_;
  // In total order, so that stepping from one entity's blocks to the
  // next's meets every key between them (a prefix iterator need not).
  rep->bit = NewBoundedIterator(
      db_.get(), events_cf_, ReadOptionsOf(view),
      PrefixSuccessor(StreamPrefix(stream_id | kBlockStreamBit)),
      &rep->block_upper, &rep->block_upper_slice);
  rep->ascending = true;
  return std::unique_ptr<EventCursor>(new EventCursor(std::move(rep)));
}

std::unique_ptr<EventCursor> EventStore::ScanEntity(
    uint32_t stream_id, absl::string_view entity, int64_t from_us,
    int64_t to_us, const ReadView* view) const {
  auto rep = std::make_unique<EventCursor::Rep>();
  StartCursor(rep.get(), stream_id, view);
  // The bound keeps RocksDB from reading past the entity (the next block
  // of another entity) just to find where it ends. A block is keyed by its
  // last event, so the one holding the range's end may lie beyond to_us.
  rep->bit = NewBoundedIterator(
      db_.get(), events_cf_, ReadOptionsOf(view),
      PrefixSuccessor(BlockPrefix(stream_id, entity)), &rep->block_upper,
      &rep->block_upper_slice, SeekMode::kWithinPrefix);
  rep->one_entity = true;
  rep->entity.assign(entity.data(), entity.size());
  rep->to_us = to_us;
  rep->SeekTo(from_us);
  return std::unique_ptr<EventCursor>(new EventCursor(std::move(rep)));
}

std::unique_ptr<EventCursor> EventStore::ScanStream(
    uint32_t stream_id, const ReadView* view) const {
  auto rep = std::make_unique<EventCursor::Rep>();
  StartCursor(rep.get(), stream_id, view);
  const std::string prefix = StreamPrefix(stream_id);
  const std::string block_prefix = StreamPrefix(stream_id | kBlockStreamBit);
  rocksdb::ReadOptions ro = ReadOptionsOf(view);
  // A stream scan reads its table files from start to end: in large reads
  // (EventStoreOptions::scan_readahead_bytes), not a block at a time.
  ro.readahead_size = options_.scan_readahead_bytes;
  rep->bit = NewBoundedIterator(db_.get(), events_cf_, ro,
                                PrefixSuccessor(block_prefix),
                                &rep->block_upper, &rep->block_upper_slice);
  rep->head_next_from = prefix;
  rep->head_upper = PrefixSuccessor(prefix);
  rep->head_more = true;
  rep->bit->Seek(ToSlice(block_prefix));
  rep->Settle();
  return std::unique_ptr<EventCursor>(new EventCursor(std::move(rep)));
}

// ----------------------------------------------------------- TileCursor

struct TileCursor::Rep {
  // The view made when the caller gave none (it outlives the iterator).
  std::unique_ptr<ReadView> own_view;
  std::unique_ptr<rocksdb::Iterator> it;  // null: no tiles are readable
  std::string upper;
  rocksdb::Slice upper_slice;
  size_t prefix_size = 0;
  bool valid = false;
  int64_t day = 0;
  uint64_t watermark = 0;
  absl::string_view payload;
  absl::Status status;
  // The events of the tile's day above its watermark: from the head (an
  // event sealed into a block was folded into the tile first), as of
  // read_seq, the sequence of the view the tiles are read at.
  const EventHead* head = nullptr;
  uint64_t read_seq = 0;
  uint32_t stream_id = 0;
  std::string entity;
  std::string entity_prefix;  // EntityPrefix
  bool head_found = false;
  EntityHeadRef hentity;  // null: the entity has no head events
  bool late_ready = false;
  std::vector<StoredEvent> late;

  void Settle() {
    valid = false;
    late_ready = false;
    late.clear();
    if (it == nullptr) return;
    if (!it->Valid()) {
      status = FromRocks(it->status(), "scan tiles");
      return;
    }
    const absl::string_view k = ToView(it->key());
    const absl::string_view v = ToView(it->value());
    if (k.size() != prefix_size + 8 || v.size() < 8) {
      status = absl::DataLossError(
          absl::StrCat("malformed tile (key ", HexEncode(k), ")"));
      return;
    }
    day = SignedFromOrdered(DecodeBigEndian64(k.data() + prefix_size));
    watermark = DecodeBigEndian64(v.data());
    payload = v.substr(8);
    valid = true;
  }

  void FindLate() {
    late_ready = true;
    if (!head_found) {
      hentity = head->Find(entity_prefix);
      head_found = true;
    }
    if (hentity == nullptr) return;
    HeadReader reader;
    reader.Reset(hentity.get());
    reader.Seek(day);
    const int64_t end = day + kDayMicros;
    for (; reader.Valid() && reader.event().time_us < end; reader.Next()) {
      const HeadEvent& e = reader.event();
      if (e.seq <= watermark || !EntityHead::Visible(e, read_seq)) continue;
      late.push_back(StoredEvent{e.seq, stream_id, entity, e.time_us,
                                 e.value});
    }
  }
};

TileCursor::TileCursor(std::unique_ptr<Rep> rep) : rep_(std::move(rep)) {}
TileCursor::~TileCursor() = default;
bool TileCursor::Valid() const { return rep_->valid; }
void TileCursor::Next() {
  rep_->it->Next();
  rep_->Settle();
}
int64_t TileCursor::day() const { return rep_->day; }
uint64_t TileCursor::watermark() const { return rep_->watermark; }
absl::string_view TileCursor::payload() const { return rep_->payload; }
const std::vector<StoredEvent>& TileCursor::late() {
  if (!rep_->late_ready) rep_->FindLate();
  return rep_->late;
}
absl::Status TileCursor::status() const { return rep_->status; }

bool EventStore::MayHaveTiles(const TileScope& scope) const {
  if (!tiles_readable_) return false;
  // Asked for every entity a lookup reads, most of which have no tiles:
  // the key is built where the thread built the last one.
  thread_local std::string prefix;
  SetTilePrefix(scope.stream_id, scope.entity, scope.view, scope.version,
                &prefix);
  return MayHaveTiles(prefix);
}

bool EventStore::MayHaveTiles(const std::string& prefix) const {
  if (!tiles_readable_) return false;
  absl::ReaderMutexLock l(&tiled_scopes_mu_);  // lookup threads at once
  return tiled_scopes_.contains(prefix);
}

std::unique_ptr<TileCursor> EventStore::ScanTiles(const TileScope& scope,
                                                  int64_t from_day,
                                                  int64_t to_day,
                                                  const ReadView* view) const {
  auto rep = std::make_unique<TileCursor::Rep>();
  const std::string prefix =
      TilePrefix(scope.stream_id, scope.entity, scope.view, scope.version);
  if (MayHaveTiles(prefix)) {
    if (view == nullptr) {
      // The tiles and the head events beside them as of one moment.
      rep->own_view = NewReadView();
      view = rep->own_view.get();
    }
    rep->head = &head_;
    rep->read_seq = view->read_seq_;
    rep->stream_id = scope.stream_id;
    rep->entity.assign(scope.entity.data(), scope.entity.size());
    rep->entity_prefix = EntityPrefix(scope.stream_id, scope.entity);
    rep->prefix_size = prefix.size();
    rep->it = NewBoundedIterator(db_.get(), tiles_cf_, ReadOptionsOf(view),
                                 to_day == kMaxEventTime
                                     ? PrefixSuccessor(prefix)
                                     : TileKey(prefix, to_day),
                                 &rep->upper, &rep->upper_slice,
                                 SeekMode::kWithinPrefix);
    rep->it->Seek(ToSlice(
        from_day == kMinEventTime ? prefix : TileKey(prefix, from_day)));
    rep->Settle();
  }
  return std::unique_ptr<TileCursor>(new TileCursor(std::move(rep)));
}

}  // namespace rawfeat
