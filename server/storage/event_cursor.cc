// EventCursor and TileCursor over the layout of keys.h and event_block.h,
// and the EventStore methods that make them.

#include "server/storage/event_cursor.h"

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

// A total-order iterator of `cf` that ends before `upper`, which it reads
// from `*upper_store` (kept by the caller as long as the iterator lives).
std::unique_ptr<rocksdb::Iterator> NewBoundedIterator(
    rocksdb::DB* db, rocksdb::ColumnFamilyHandle* cf,
    const rocksdb::Snapshot* snapshot, std::string upper,
    std::string* upper_store, rocksdb::Slice* upper_slice) {
  *upper_store = std::move(upper);
  *upper_slice = ToSlice(*upper_store);
  rocksdb::ReadOptions ro;
  ro.snapshot = snapshot;
  ro.iterate_upper_bound = upper_slice;
  ro.total_order_seek = true;
  return std::unique_ptr<rocksdb::Iterator>(db->NewIterator(ro, cf));
}

}  // namespace

// ---------------------------------------------------------- EventCursor

// The cursor merges two sources in (entity, time, seq) order: the events
// of the block it last read (decoded into `block`), and the keys that
// follow it (single events, or the next block). Blocks of an entity never
// overlap and never span a day, so the block being read holds every
// sealed event up to the next block key, and a seek starts at the day's
// first key.
struct EventCursor::Rep {
  uint32_t stream_id = 0;
  std::unique_ptr<rocksdb::Iterator> it;
  std::string upper;  // stream cursors: the end of the stream's keys
  rocksdb::Slice upper_slice;
  std::string target;       // scratch for seek keys
  bool one_entity = false;  // kept to `entity` by Seek
  std::string entity;       // the entity Seek chose
  int64_t from_us = kMinEventTime;
  int64_t to_us = kMaxEventTime;
  bool valid = false;
  // The current event: from the block (in_block) or the iterator's key.
  bool in_block = false;
  ParsedEventKey key;  // the iterator's key, while it is in range
  bool key_ok = false;
  // The block read last: its value, entity and events; `next` is the
  // first not yet passed.
  std::string block_value;
  std::string block_entity;
  std::vector<BlockEvent> block;
  size_t next = 0;
  EventValueReader reader;
  absl::Status status;

  void Fail(absl::Status s) {
    status = std::move(s);
    valid = false;
    key_ok = false;
    block.clear();
    next = 0;
  }

  // Reads the iterator's position into `key`: false at the end of the
  // range (or on an error, with status set).
  bool ReadKey() {
    key_ok = false;
    if (it == nullptr) return false;
    if (!it->Valid()) {
      absl::Status s = FromRocks(it->status(), "scan events");
      if (!s.ok()) Fail(std::move(s));
      return false;
    }
    const absl::string_view k = ToView(it->key());
    if (!ParseEventKey(k, &key) || key.stream_id != stream_id) {
      Fail(absl::DataLossError(
          absl::StrCat("stream ", stream_id, " holds a malformed event key (",
                       HexEncode(k), ")")));
      return false;
    }
    if (one_entity && key.entity != entity) return false;
    if (key.time_us >= to_us) return false;
    return key_ok = true;
  }

  bool BlockLeft() const { return next < block.size(); }

  // True if the block's next event comes before the iterator's key.
  bool BlockFirst() const {
    if (!key_ok) return true;
    if (key.entity != block_entity) return key.entity > block_entity;
    const BlockEvent& b = block[next];
    return b.time_us != key.time_us ? b.time_us < key.time_us
                                    : b.seq < key.seq;
  }

  // Positions on the first event at or after where the sources stand,
  // skipping events before from_us and ending at to_us.
  void Settle() {
    valid = false;
    while (status.ok()) {
      if (!key_ok) ReadKey();
      if (!status.ok()) return;
      if (key_ok && !BlockLeft() && IsBlockValue(ToView(it->value()))) {
        // A block with nothing of the last one left: read it, unless it
        // ends before the range.
        uint64_t n;
        int64_t last;
        if (from_us != kMinEventTime &&
            ReadBlockHeader(key.time_us, ToView(it->value()), &n, &last) &&
            last < from_us) {
          it->Next();
          key_ok = false;
          continue;
        }
        block_value.assign(it->value().data(), it->value().size());
        block_entity.assign(key.entity.data(), key.entity.size());
        if (!DecodeBlock(key.time_us, block_value, &block)) {
          Fail(absl::DataLossError(absl::StrCat(
              "corrupt event block of entity '", Echo(block_entity),
              "' at time ", key.time_us, " in stream ", stream_id)));
          return;
        }
        next = 0;
        it->Next();
        key_ok = false;
        continue;
      }
      if (BlockLeft() && (BlockFirst() || IsBlockValue(ToView(it->value())))) {
        const BlockEvent& b = block[next];
        if (b.time_us < from_us) {
          ++next;
          continue;
        }
        if (b.time_us >= to_us) {
          block.clear();
          next = 0;
          continue;
        }
        in_block = true;
        valid = true;
        return;
      }
      if (!key_ok) return;  // both sources are done
      if (key.time_us < from_us) {
        it->Next();
        key_ok = false;
        continue;
      }
      in_block = false;
      valid = true;
      return;
    }
  }

  // Positions on the entity's first event with time >= from.
  void SeekTo(int64_t from) {
    block.clear();
    next = 0;
    from_us = from;
    // A block never spans a day, so the block holding `from` starts on
    // its day.
    target = from == kMinEventTime
                 ? EntityPrefix(stream_id, entity)
                 : EntityTimeKey(stream_id, entity, DayStart(from));
    it->Seek(ToSlice(target));
    key_ok = false;
    status = absl::OkStatus();
    Settle();
  }
};

EventCursor::EventCursor(std::unique_ptr<Rep> rep) : rep_(std::move(rep)) {}
EventCursor::~EventCursor() = default;

void EventCursor::Seek(absl::string_view entity, int64_t from_us,
                       int64_t to_us) {
  rep_->one_entity = true;
  rep_->entity.assign(entity.data(), entity.size());
  rep_->to_us = to_us;
  rep_->SeekTo(from_us);
}

void EventCursor::SeekTime(int64_t from_us) {
  if (!rep_->one_entity) {  // a stream cursor on its current entity
    rep_->one_entity = true;
    const absl::string_view e = entity();
    rep_->entity.assign(e.data(), e.size());
  }
  rep_->SeekTo(from_us);
}

void EventCursor::NextEntity() {
  rep_->target = PrefixSuccessor(EntityPrefix(rep_->stream_id, entity()));
  rep_->one_entity = false;
  rep_->from_us = kMinEventTime;
  rep_->to_us = kMaxEventTime;
  rep_->block.clear();
  rep_->next = 0;
  rep_->it->Seek(ToSlice(rep_->target));
  rep_->key_ok = false;
  rep_->Settle();
}

bool EventCursor::Valid() const { return rep_->valid; }
void EventCursor::Next() {
  if (rep_->in_block) {
    ++rep_->next;
  } else {
    rep_->it->Next();
    rep_->key_ok = false;
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
  return rep_->in_block ? rep_->block[rep_->next].value
                        : ToView(rep_->it->value());
}

const EventValueReader* EventCursor::Decode(
    const std::vector<v1::FieldType>& types) {
  if (rep_->reader.Parse(value(), types)) return &rep_->reader;
  rep_->Fail(absl::DataLossError(
      absl::StrCat("corrupt stored event of entity '", Echo(entity()),
                   "' (seq ", seq(), ") in stream ", rep_->stream_id)));
  return nullptr;
}

absl::Status EventCursor::status() const { return rep_->status; }

std::unique_ptr<EventCursor> EventStore::NewEventCursor(
    uint32_t stream_id, const ReadView* view) const {
  auto rep = std::make_unique<EventCursor::Rep>();
  rep->stream_id = stream_id;
  rocksdb::ReadOptions ro;
  ro.snapshot = SnapshotOf(view);
  // Within one entity a prefix seek suffices: the entity-prefix Bloom
  // filters skip files without it, and the hash memtable is fast at it.
  ro.prefix_same_as_start = true;
  rep->it.reset(db_->NewIterator(ro, events_cf_));
  return std::unique_ptr<EventCursor>(new EventCursor(std::move(rep)));
}

std::unique_ptr<EventCursor> EventStore::ScanEntity(
    uint32_t stream_id, absl::string_view entity, int64_t from_us,
    int64_t to_us, const ReadView* view) const {
  auto rep = std::make_unique<EventCursor::Rep>();
  rep->stream_id = stream_id;
  // The bound keeps RocksDB from reading past the range (the next block of
  // another entity) just to find where it ends.
  rep->upper = to_us == kMaxEventTime
                   ? PrefixSuccessor(EntityPrefix(stream_id, entity))
                   : EntityTimeKey(stream_id, entity, to_us);
  rep->upper_slice = ToSlice(rep->upper);
  rocksdb::ReadOptions ro;
  ro.snapshot = SnapshotOf(view);
  ro.prefix_same_as_start = true;
  ro.iterate_upper_bound = &rep->upper_slice;
  rep->it.reset(db_->NewIterator(ro, events_cf_));
  rep->one_entity = true;
  rep->entity.assign(entity.data(), entity.size());
  rep->to_us = to_us;
  rep->SeekTo(from_us);
  return std::unique_ptr<EventCursor>(new EventCursor(std::move(rep)));
}

std::unique_ptr<EventCursor> EventStore::ScanStream(
    uint32_t stream_id, const ReadView* view) const {
  auto rep = std::make_unique<EventCursor::Rep>();
  rep->stream_id = stream_id;
  const std::string prefix = StreamPrefix(stream_id);
  rep->it = NewBoundedIterator(db_.get(), events_cf_, SnapshotOf(view),
                               PrefixSuccessor(prefix), &rep->upper,
                               &rep->upper_slice);
  rep->it->Seek(ToSlice(prefix));
  rep->Settle();
  return std::unique_ptr<EventCursor>(new EventCursor(std::move(rep)));
}

// ----------------------------------------------------------- TileCursor

struct TileCursor::Rep {
  std::unique_ptr<rocksdb::Iterator> it;  // null: no tiles are readable
  std::string upper;
  rocksdb::Slice upper_slice;
  size_t prefix_size = 0;
  bool valid = false;
  int64_t day = 0;
  uint64_t watermark = 0;
  absl::string_view payload;
  absl::Status status;

  void Settle() {
    valid = false;
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
absl::Status TileCursor::status() const { return rep_->status; }

std::unique_ptr<TileCursor> EventStore::ScanTiles(const TileScope& scope,
                                                  int64_t from_day,
                                                  int64_t to_day,
                                                  const ReadView* view) const {
  auto rep = std::make_unique<TileCursor::Rep>();
  if (tiles_readable_) {
    const std::string prefix =
        TilePrefix(scope.stream_id, scope.entity, scope.view, scope.version);
    rep->prefix_size = prefix.size();
    rep->it =
        NewBoundedIterator(db_.get(), tiles_cf_, SnapshotOf(view),
                           to_day == kMaxEventTime ? PrefixSuccessor(prefix)
                                                   : TileKey(prefix, to_day),
                           &rep->upper, &rep->upper_slice);
    rep->it->Seek(ToSlice(
        from_day == kMinEventTime ? prefix : TileKey(prefix, from_day)));
    rep->Settle();
  }
  return std::unique_ptr<TileCursor>(new TileCursor(std::move(rep)));
}

}  // namespace rawfeat
