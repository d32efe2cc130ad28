// EventStore: sealing events into blocks (event_block.h).
//
// Appends write one key per event. A background thread (SealLoop) folds
// an entity's unsealed events into its blocks: each event goes into the
// first block whose last event is not before it (or into the tail block
// when there is none), the blocks that received events are re-cut into
// blocks of at most kBlockMaxEvents, and the new blocks, the deletion of
// the blocks they replace and the deletion of the sealed events' own keys
// go in one atomic write. Readers merge blocks with the events not sealed
// yet (event_cursor.cc), so sealing never changes an answer.
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

}  // namespace

void EventStore::Unsealed::Note(uint64_t seq) {
  ++events;
  min_seq = min_seq == 0 ? seq : std::min(min_seq, seq);
}

void EventStore::Unsealed::Merge(const Unsealed& other) {
  events += other.events;
  if (other.min_seq != 0) {
    min_seq = min_seq == 0 ? other.min_seq : std::min(min_seq, other.min_seq);
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
    current->Note(DecodeBigEndian64(key.data() + key.size() - 8));
  }
  unsealed_events_ += puts.size();
  if (options_.seal_min_events > 0 &&
      unsealed_events_ >= 16 * options_.seal_min_events) {
    seal_cv_.Signal();
  }
}

void EventStore::SetSealListener(const void* owner, SealListener listener) {
  absl::MutexLock l(&seal_listener_mu_);
  if (listener == nullptr && owner != seal_listener_owner_) return;
  seal_listener_owner_ = listener == nullptr ? nullptr : owner;
  seal_listener_ = std::move(listener);
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
                                e.seq);
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
  // Entity by entity in key order.
  std::sort(picked.begin(), picked.end(),
            [](const auto& a, const auto& b) { return a.first < b.first; });
  absl::Status status;
  size_t done = 0;
  for (; done < picked.size(); ++done) {
    // A closing store stops between entities; the rest stays unsealed.
    if (stopping_.load(std::memory_order_acquire)) break;
    // One entity at a time under seal_mu_: an erasure waits for one
    // entity's sealing at most.
    absl::MutexLock seal_lock(&seal_mu_);
    status = SealEntity(picked[done].first);
    if (!status.ok()) break;  // this entity and the rest stay unsealed
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

absl::Status EventStore::SealEntity(absl::string_view prefix) {
  if (DiskFreeBytes() < options_.min_free_bytes) {
    return absl::ResourceExhaustedError(
        "disk space low: sealing waits for free space");
  }
  // The entity's unsealed events: every key under its prefix.
  const std::string upper = PrefixSuccessor(prefix);
  const rocksdb::Slice upper_slice = ToSlice(upper);
  // Prefix iterators: the `events` memtable is hashed by entity and serves
  // one entity's keys directly (a total-order iterator would sort the
  // whole memtable first).
  rocksdb::ReadOptions ro;
  ro.prefix_same_as_start = true;
  ro.iterate_upper_bound = &upper_slice;
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(ro, events_cf_));
  std::vector<std::string> single_keys, single_values;
  std::vector<BlockEvent> singles;
  uint32_t stream_id = 0;
  absl::string_view entity;
  for (it->Seek(ToSlice(prefix)); it->Valid(); it->Next()) {
    single_keys.emplace_back(ToView(it->key()));
    single_values.emplace_back(ToView(it->value()));
  }
  RETURN_IF_ERROR(FromRocks(it->status(), "seal"));
  if (single_keys.empty()) return absl::OkStatus();  // erased or expired
  for (size_t i = 0; i < single_keys.size(); ++i) {
    ParsedEventKey k;
    if (!ParseEventKey(single_keys[i], &k)) {
      return absl::DataLossError(
          absl::StrCat("malformed event key ", HexEncode(single_keys[i])));
    }
    stream_id = k.stream_id;
    entity = k.entity;
    singles.push_back({k.time_us, k.seq, single_values[i]});
  }
  // Keys order them by (time, seq) already.

  const std::string block_prefix = BlockPrefix(stream_id, entity);
  const std::string block_upper = PrefixSuccessor(block_prefix);
  const rocksdb::Slice block_upper_slice = ToSlice(block_upper);
  ro.iterate_upper_bound = &block_upper_slice;
  std::unique_ptr<rocksdb::Iterator> bit(db_->NewIterator(ro, events_cf_));
  const std::string tail_key = TailBlockKey(stream_id, entity);

  rocksdb::WriteBatch batch;
  // Deletions before puts: a re-cut block may take the key of one it
  // replaces.
  std::vector<std::pair<std::string, std::string>> puts;
  auto cut = [&](std::vector<BlockEvent>& events, bool keep_tail) {
    std::sort(events.begin(), events.end());
    // An event already in a block (an event key that came back, see
    // EventCursor) is kept once.
    events.erase(std::unique(events.begin(), events.end(),
                             [](const BlockEvent& a, const BlockEvent& b) {
                               return a.time_us == b.time_us && a.seq == b.seq;
                             }),
                 events.end());
    // Blocks of kBlockMaxEvents (or kBlockMaxBytes) from the front; with
    // keep_tail, a last one that is not full becomes the tail.
    size_t begin = 0;
    while (begin < events.size()) {
      size_t end = begin, bytes = 0;
      while (end < events.size() && end - begin < kBlockMaxEvents &&
             (end == begin ||
              bytes + events[end].value.size() <= kBlockMaxBytes)) {
        bytes += events[end].value.size() + 4;
        ++end;
      }
      const bool full = end - begin == kBlockMaxEvents || end < events.size();
      const std::vector<BlockEvent> chunk(events.begin() + begin,
                                          events.begin() + end);
      if (keep_tail && !full) {
        puts.emplace_back(tail_key, EncodeBlock(chunk));
      } else {
        puts.emplace_back(BlockKey(stream_id, entity, chunk.back().time_us,
                                   chunk.back().seq),
                          EncodeBlock(chunk));
      }
      begin = end;
    }
  };
  std::vector<BlockEvent> merged;
  size_t i = 0;
  while (i < singles.size()) {
    // The first block whose last event is not before singles[i]: the
    // singles up to its last event go into it.
    bit->Seek(ToSlice(
        BlockKey(stream_id, entity, singles[i].time_us, singles[i].seq)));
    RETURN_IF_ERROR(FromRocks(bit->status(), "seal"));
    merged.clear();
    bool tail = true;
    size_t j = singles.size();
    if (bit->Valid()) {
      // `merged` views the iterator's value: cut() encodes it before `bit`
      // moves again.
      const absl::string_view key = ToView(bit->key());
      if (!DecodeBlock(ToView(bit->value()), &merged)) {
        return absl::DataLossError(absl::StrCat(
            "corrupt event block of entity '", Echo(entity), "' (key ",
            HexEncode(key), ")"));
      }
      batch.Delete(events_cf_, ToSlice(key));
      tail = key == tail_key;
      if (!tail) {
        const BlockEvent& last = merged.back();
        j = i;
        while (j < singles.size() && !(last < singles[j])) ++j;
      }
    }
    merged.insert(merged.end(), singles.begin() + i, singles.begin() + j);
    cut(merged, tail);
    i = j;
    if (!tail) continue;
    // Whatever was left went into the tail.
    break;
  }
  // Each event key is written once (its seq is its own), so SingleDelete
  // applies: the deletion and the event vanish together as soon as a
  // flush or compaction meets both, instead of a tombstone that lives
  // until the bottom level and slows every seek over it.
  for (const std::string& key : single_keys) {
    batch.SingleDelete(events_cf_, ToSlice(key));
  }
  for (const auto& [key, value] : puts) {
    batch.Put(events_cf_, ToSlice(key), ToSlice(value));
  }
  // Not synced: the events it replaces are durable already, and the
  // write-ahead log keeps this write whole or not at all.
  RETURN_IF_ERROR(
      FromRocks(db_->Write(rocksdb::WriteOptions(), &batch), "seal"));
  absl::MutexLock l(&seal_listener_mu_);
  if (seal_listener_ != nullptr) {
    seal_listener_(stream_id, entity, singles.front().time_us);
  }
  return absl::OkStatus();
}

void EventStore::SealLoop() {
  uint64_t last_watermark = watermark();
  absl::Time last_full = absl::Now();
  absl::Duration wait = absl::Milliseconds(500);
  absl::MutexLock l(&seal_state_mu_);
  while (!stop_sealer_) {
    seal_cv_.WaitWithTimeout(&seal_state_mu_, wait);
    if (stop_sealer_) break;
    const uint64_t w = watermark();
    // Everything is sealed when appends pause, and at least once a minute
    // under a steady trickle (so a restart reads little of the log).
    const bool full =
        w == last_watermark || absl::Now() - last_full > absl::Minutes(1);
    last_watermark = w;
    if (unsealed_events_ == 0) continue;
    if (full) last_full = absl::Now();
    seal_state_mu_.Unlock();
    const absl::Status s = Seal(full ? 1 : options_.seal_min_events);
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
