// EventStore: sealing events into blocks (event_block.h).
//
// Appends write one key per event. A background thread (SealLoop) folds
// an entity's events of a day into blocks: it reads the day from the
// first unsealed event on (and the block before it, if that block has room
// or holds later events), sorts, cuts into blocks of kBlockMaxEvents, and
// writes the blocks and the deletions of what they replace in one atomic
// write. Readers merge blocks with the events not sealed yet
// (event_cursor.cc), so sealing never changes an answer.
//
// What is unsealed is tracked in memory (unsealed_), fed by appends; at
// open it is rebuilt from the log after meta "unsealed_from", a seq below
// every unsealed event's, which each sealing pass moves forward.

#include <algorithm>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "rocksdb/db.h"
#include "rocksdb/iterator.h"
#include "rocksdb/options.h"
#include "rocksdb/write_batch.h"
#include "server/common/coding.h"
#include "server/common/echo.h"
#include "server/common/log.h"
#include "server/common/status_macros.h"
#include "server/common/time_util.h"
#include "server/storage/event_block.h"
#include "server/storage/event_store.h"
#include "server/storage/keys.h"
#include "server/storage/rocks_util.h"

namespace rawfeat {
namespace {

constexpr char kMetaUnsealedFromKey[] = "unsealed_from";  // be64 seq

// prefix | be64(time ^ signbit) [| be64(seq)]
std::string TimeKey(const std::string& prefix, int64_t time_us) {
  std::string k = prefix;
  PutBigEndian64(&k, OrderedFromSigned(time_us));
  return k;
}

}  // namespace

void EventStore::Unsealed::Note(int64_t time_us, uint64_t seq) {
  ++events;
  min_seq = min_seq == 0 ? seq : std::min(min_seq, seq);
  const int64_t day = DayStart(time_us);
  for (auto& [d, min_time] : days) {
    if (d == day) {
      min_time = std::min(min_time, time_us);
      return;
    }
  }
  days.emplace_back(day, time_us);
}

void EventStore::Unsealed::Merge(const Unsealed& other) {
  events += other.events;
  if (other.min_seq != 0) {
    min_seq = min_seq == 0 ? other.min_seq : std::min(min_seq, other.min_seq);
  }
  for (const auto& [day, time] : other.days) {
    bool found = false;
    for (auto& [d, min_time] : days) {
      if (d == day) {
        min_time = std::min(min_time, time);
        found = true;
      }
    }
    if (!found) days.emplace_back(day, time);
  }
}

void EventStore::NoteUnsealed(
    const std::vector<std::pair<std::string, const std::string*>>& puts) {
  if (puts.empty()) return;
  absl::MutexLock l(&seal_state_mu_);
  Unsealed* current = nullptr;
  absl::string_view current_prefix;
  for (const auto& [key, value] : puts) {
    // Sorted keys: one lookup per entity.
    const absl::string_view prefix(key.data(), key.size() - 16);
    if (current == nullptr || prefix != current_prefix) {
      current = &unsealed_[prefix];
      current_prefix = prefix;
    }
    current->Note(
        SignedFromOrdered(DecodeBigEndian64(key.data() + key.size() - 16)),
        DecodeBigEndian64(key.data() + key.size() - 8));
  }
  unsealed_events_ += puts.size();
  if (options_.seal_min_events > 0 &&
      unsealed_events_ >= 16 * options_.seal_min_events) {
    seal_cv_.Signal();
  }
}

uint64_t EventStore::UnsealedEvents() const {
  absl::MutexLock l(&seal_state_mu_);
  return unsealed_events_;
}

absl::Status EventStore::LoadUnsealed() {
  uint64_t from = 1;
  auto stored = GetMeta(kMetaUnsealedFromKey);
  if (stored.ok() && stored->size() == 8) {
    from = DecodeBigEndian64(stored->data());
  } else if (!stored.ok() && !absl::IsNotFound(stored.status())) {
    return stored.status();
  }
  {
    absl::MutexLock l(&seal_pass_mu_);
    unsealed_from_ = from;
  }
  absl::flat_hash_map<std::string, Unsealed> found;
  uint64_t events = 0;
  RETURN_IF_ERROR(ScanLog(from - 1, watermark(), nullptr,
                          [&](const StoredEvent& e) {
                            found[EntityPrefix(e.stream_id, e.entity)].Note(
                                e.time_us, e.seq);
                            ++events;
                            return true;
                          }));
  absl::MutexLock l(&seal_state_mu_);
  unsealed_ = std::move(found);
  unsealed_events_ = events;
  return absl::OkStatus();
}

absl::Status EventStore::Seal(size_t min_events) {
  if (!read_only_.empty()) return absl::ResourceExhaustedError(read_only_);
  absl::MutexLock pass_lock(&seal_pass_mu_);
  std::vector<std::pair<std::string, Unsealed>> picked;
  {
    absl::MutexLock l(&seal_state_mu_);
    for (auto it = unsealed_.begin(); it != unsealed_.end();) {
      if (it->second.events >= std::max<size_t>(min_events, 1)) {
        unsealed_events_ -= it->second.events;
        picked.emplace_back(it->first, std::move(it->second));
        unsealed_.erase(it++);
      } else {
        ++it;
      }
    }
  }
  // Entity by entity in key order, each day in order.
  std::sort(picked.begin(), picked.end(),
            [](const auto& a, const auto& b) { return a.first < b.first; });
  absl::Status status;
  size_t done = 0;
  for (; done < picked.size() && status.ok(); ++done) {
    auto& days = picked[done].second.days;
    std::sort(days.begin(), days.end());
    // One entity at a time under seal_mu_: an erasure waits for one
    // entity's sealing at most.
    absl::MutexLock seal_lock(&seal_mu_);
    for (const auto& [day, min_time] : days) {
      status = SealDay(picked[done].first, day, min_time);
      if (!status.ok()) break;
    }
    if (!status.ok()) break;  // this entity stays unsealed (in part)
  }
  {
    absl::MutexLock l(&seal_state_mu_);
    // What was not sealed goes back.
    for (size_t i = done; i < picked.size(); ++i) {
      unsealed_[picked[i].first].Merge(picked[i].second);
      unsealed_events_ += picked[i].second.events;
    }
  }
  if (!status.ok()) return status;
  // Every unsealed event now has a seq >= from: a restart reads the log
  // from there (a lost update only makes it read more).
  uint64_t from = watermark() + 1;
  {
    absl::MutexLock l(&seal_state_mu_);
    for (const auto& [prefix, u] : unsealed_) {
      from = std::min(from, u.min_seq);
    }
  }
  if (from > unsealed_from_) {
    std::string v;
    PutBigEndian64(&v, from);
    RETURN_IF_ERROR(FromRocks(db_->Put(rocksdb::WriteOptions(), meta_cf_,
                                       kMetaUnsealedFromKey, v),
                              "seal"));
    unsealed_from_ = from;
  }
  return absl::OkStatus();
}

absl::Status EventStore::SealDay(const std::string& prefix, int64_t day,
                                 int64_t min_time) {
  if (DiskFreeBytes() < options_.min_free_bytes) {
    return absl::ResourceExhaustedError(
        "disk space low: sealing waits for free space");
  }
  const std::string lower = TimeKey(prefix, day);
  const std::string upper =
      day > std::numeric_limits<int64_t>::max() - kDayMicros
          ? PrefixSuccessor(prefix)
          : TimeKey(prefix, day + kDayMicros);
  const rocksdb::Slice upper_slice = ToSlice(upper);
  // A prefix iterator: the `events` memtable is hashed by entity and
  // serves one entity's keys directly (a total-order iterator would sort
  // the whole memtable first). It reads the day forward: RocksDB's hash
  // memtable cannot seek backwards.
  rocksdb::ReadOptions ro;
  ro.prefix_same_as_start = true;
  ro.iterate_upper_bound = &upper_slice;
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(ro, events_cf_));
  std::string target = TimeKey(prefix, min_time);
  PutBigEndian64(&target, 0);

  // What the day holds from the first unsealed event on, with the block
  // before it if that block holds later events (a late event landed inside
  // it) or has room: (key, value, is a block).
  struct Item {
    std::string key;
    std::string value;
    bool block;
  };
  std::vector<Item> items;
  size_t last_single = 0;
  bool any_single = false;
  bool collecting = false;
  for (it->Seek(ToSlice(lower)); it->Valid(); it->Next()) {
    const absl::string_view key = ToView(it->key());
    const absl::string_view value = ToView(it->value());
    const bool block = IsBlockValue(value);
    if (!collecting && block && key < target) {
      ParsedEventKey k;
      uint64_t n = 0;
      int64_t last = 0;
      if (!ParseEventKey(key, &k) ||
          !ReadBlockHeader(k.time_us, value, &n, &last)) {
        return absl::DataLossError(
            absl::StrCat("corrupt event block (key ", HexEncode(key), ")"));
      }
      items.clear();
      if (last >= min_time || n < kBlockMaxEvents / 2) {
        items.push_back({std::string(key), std::string(value), true});
      }
      continue;
    }
    collecting = true;
    items.push_back({std::string(key), std::string(value), block});
    if (!block) {
      last_single = items.size() - 1;
      any_single = true;
    }
  }
  RETURN_IF_ERROR(FromRocks(it->status(), "seal"));
  if (!any_single) return absl::OkStatus();  // sealed, erased or expired
  // Blocks after the last unsealed event stay as they are.
  items.resize(last_single + 1);

  std::vector<BlockEvent> events, decoded;
  for (const Item& item : items) {
    ParsedEventKey k;
    if (!ParseEventKey(item.key, &k)) {
      return absl::DataLossError(
          absl::StrCat("malformed event key ", HexEncode(item.key)));
    }
    if (!item.block) {
      events.push_back({k.time_us, k.seq, item.value});
      continue;
    }
    if (!DecodeBlock(k.time_us, item.value, &decoded)) {
      return absl::DataLossError(absl::StrCat(
          "corrupt event block of entity '", Echo(k.entity), "' at time ",
          k.time_us));
    }
    events.insert(events.end(), decoded.begin(), decoded.end());
  }
  std::sort(events.begin(), events.end(),
            [](const BlockEvent& a, const BlockEvent& b) {
              return a.time_us != b.time_us ? a.time_us < b.time_us
                                            : a.seq < b.seq;
            });

  rocksdb::WriteBatch batch;
  // Deletions first: a new block may take the key of an event it holds.
  for (const Item& item : items) batch.Delete(events_cf_, ToSlice(item.key));
  std::vector<BlockEvent> chunk;
  size_t bytes = 0;
  auto flush = [&]() {
    if (chunk.empty()) return;
    std::string key = TimeKey(prefix, chunk.front().time_us);
    PutBigEndian64(&key, chunk.front().seq);
    batch.Put(events_cf_, ToSlice(key),
              ToSlice(EncodeBlock(chunk.front().time_us, chunk)));
    chunk.clear();
    bytes = 0;
  };
  for (const BlockEvent& e : events) {
    if (chunk.size() >= kBlockMaxEvents ||
        (!chunk.empty() && bytes + e.value.size() > kBlockMaxBytes)) {
      flush();
    }
    chunk.push_back(e);
    bytes += e.value.size() + 4;
  }
  flush();
  // Not synced: the events it replaces are durable already, and the
  // write-ahead log keeps this write whole or not at all.
  return FromRocks(db_->Write(rocksdb::WriteOptions(), &batch), "seal");
}

void EventStore::SealLoop() {
  uint64_t last_watermark = watermark();
  absl::Duration wait = absl::Milliseconds(500);
  absl::MutexLock l(&seal_state_mu_);
  while (!stop_sealer_) {
    seal_cv_.WaitWithTimeout(&seal_state_mu_, wait);
    if (stop_sealer_) break;
    const uint64_t w = watermark();
    const bool idle = w == last_watermark;  // no append for a while
    last_watermark = w;
    if (unsealed_events_ == 0) continue;
    seal_state_mu_.Unlock();
    const absl::Status s = Seal(idle ? 1 : options_.seal_min_events);
    seal_state_mu_.Lock();
    if (s.ok()) {
      wait = absl::Milliseconds(500);
    } else if (wait < absl::Seconds(30)) {
      // A failed write or a low disk: retried, less often.
      LogWarning(absl::StrCat("sealing events into blocks: ", s.message()));
      wait = std::min(absl::Seconds(30), wait * 4);
    }
  }
}

}  // namespace rawfeat
