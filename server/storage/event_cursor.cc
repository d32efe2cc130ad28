// EventCursor and TileCursor over the v1 layout (keys.h), and the
// EventStore methods that make them.

#include "server/storage/event_cursor.h"

#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "rocksdb/db.h"
#include "rocksdb/iterator.h"
#include "rocksdb/options.h"
#include "server/common/coding.h"
#include "server/common/echo.h"
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

struct EventCursor::Rep {
  uint32_t stream_id = 0;
  std::unique_ptr<rocksdb::Iterator> it;
  std::string upper;  // stream cursors: the end of the stream's keys
  rocksdb::Slice upper_slice;
  std::string target;       // scratch for seek keys
  bool one_entity = false;  // kept to `entity` by Seek
  std::string entity;       // the entity Seek chose
  int64_t to_us = kMaxEventTime;
  bool valid = false;
  ParsedEventKey key;  // of the current event, while valid
  EventValueReader reader;
  absl::Status status;

  // Reads the iterator's position into `key` and decides validity.
  void Settle() {
    valid = false;
    status = absl::OkStatus();
    if (it == nullptr) return;
    if (!it->Valid()) {
      status = FromRocks(it->status(), "scan events");
      return;
    }
    const absl::string_view k = ToView(it->key());
    if (!ParseEventKey(k, &key) || key.stream_id != stream_id) {
      status = absl::DataLossError(
          absl::StrCat("stream ", stream_id, " holds a malformed event key (",
                       HexEncode(k), ")"));
      return;
    }
    if (one_entity && key.entity != entity) return;
    if (key.time_us >= to_us) return;
    valid = true;
  }

  void SeekTo(int64_t from_us) {
    target = from_us == kMinEventTime
                 ? EntityPrefix(stream_id, entity)
                 : EntityTimeKey(stream_id, entity, from_us);
    it->Seek(ToSlice(target));
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
    rep_->entity.assign(rep_->key.entity.data(), rep_->key.entity.size());
  }
  rep_->SeekTo(from_us);
}

void EventCursor::NextEntity() {
  rep_->target = PrefixSuccessor(EntityPrefix(rep_->stream_id, entity()));
  rep_->one_entity = false;
  rep_->to_us = kMaxEventTime;
  rep_->it->Seek(ToSlice(rep_->target));
  rep_->Settle();
}

bool EventCursor::Valid() const { return rep_->valid; }
void EventCursor::Next() {
  rep_->it->Next();
  rep_->Settle();
}
absl::string_view EventCursor::entity() const { return rep_->key.entity; }
int64_t EventCursor::time_us() const { return rep_->key.time_us; }
uint64_t EventCursor::seq() const { return rep_->key.seq; }
absl::string_view EventCursor::value() const {
  return ToView(rep_->it->value());
}

const EventValueReader* EventCursor::Decode(
    const std::vector<v1::FieldType>& types) {
  if (rep_->reader.Parse(ToView(rep_->it->value()), types)) {
    return &rep_->reader;
  }
  rep_->status = absl::DataLossError(
      absl::StrCat("corrupt stored event of entity '", Echo(rep_->key.entity),
                   "' (seq ", rep_->key.seq, ") in stream ", rep_->stream_id));
  rep_->valid = false;
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
