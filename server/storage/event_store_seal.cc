// EventStore: sealing events into blocks (event_block.h).
//
// Appends write each event once, into the log; until it is sealed the
// event lives in memory, in the head (event_head.h), where reads find it
// by entity. A background thread (SealLoop) writes an entity's head
// events into its blocks: each event goes into the first block whose last
// event is not before it (or into the tail block when there is none), the
// blocks that received events are re-cut into blocks of at most
// kBlockMaxEvents, and the new blocks and the deletion of the blocks they
// replace go in one atomic write, after which the events are marked gone
// from the head for reads that see the new blocks. Readers merge blocks
// with the head (event_cursor.cc), so sealing never changes an answer.
//
// Sealing writes skip RocksDB's write-ahead log: its blocks are derived
// from the log, which holds every event durably. At open the head is
// rebuilt from the log after "unsealed_from", a seq at or below every
// unsealed event's, which each sealing pass moves forward. It is written
// in the events family too, without the write-ahead log, after the
// blocks it vouches for: a memtable flush keeps a prefix of one family's
// writes, so after a crash it never stands ahead of the blocks that
// survived, and a seal lost with the memtable is redone from the log.
// (Writes that must outlive a crash -- an erasure -- delete ranges, which
// also cover blocks such a lost seal had replaced.)

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

// Where format-5 stores before sealing skipped the write-ahead log kept
// "unsealed_from" (be64 seq); still read.
constexpr char kMetaUnsealedFromKey[] = "unsealed_from";

// Seals are written without the write-ahead log (see above).
rocksdb::WriteOptions SealWrite() {
  rocksdb::WriteOptions wo;
  wo.disableWAL = true;
  return wo;
}
// Entities remembered as costly to seal (EventStore::seal_later_), at most.
constexpr size_t kMaxSealLater = 1 << 16;
// The most head events such an entity gathers before a regular pass.
constexpr size_t kSealLaterEvents = 65536;

// Sorts `events` by (time, seq) and keeps one of each.
void SortUnique(std::vector<BlockEvent>* events) {
  std::sort(events->begin(), events->end());
  events->erase(std::unique(events->begin(), events->end(),
                            [](const BlockEvent& a, const BlockEvent& b) {
                              return a.time_us == b.time_us && a.seq == b.seq;
                            }),
                events->end());
}

}  // namespace

void EventStore::AddToHead(
    const std::vector<std::pair<std::string, const std::string*>>& puts) {
  if (puts.empty()) return;
  std::vector<EventHead::NewEvent> events;
  events.reserve(puts.size());
  for (const auto& [key, value] : puts) {
    // An event key: entity prefix | be64(time) | be64(seq).
    ParsedEventKey k;
    ParseEventKey(key, &k);  // made by EventKey
    EventHead::NewEvent e;
    e.prefix = absl::string_view(key.data(), key.size() - 16);
    e.time_us = k.time_us;
    e.seq = k.seq;
    e.value = *value;
    events.push_back(e);
  }
  // At or after the append's own write: a view that holds the write (and
  // so the watermark published after this) is at this sequence or later.
  head_.Add(events, db_->GetLatestSequenceNumber());
  // The sealer runs every half second; a head past half its memory wakes
  // it at once (it then seals the entities holding the most).
  if (options_.seal_min_events > 0 &&
      head_.bytes() >= options_.head_max_bytes / 2) {
    absl::MutexLock l(&seal_state_mu_);
    seal_cv_.Signal();
  }
}

void EventStore::SetSealListener(const void* owner, SealListener listener) {
  absl::MutexLock l(&seal_listener_mu_);
  SetOwned(owner, std::move(listener), &seal_listener_owner_, &seal_listener_);
}

uint64_t EventStore::UnsealedEvents() const { return head_.live_events(); }

absl::Status EventStore::LoadUnsealed() {
  // Either marker is a seq at or below every event not durably sealed
  // (sealed events stay sealed), so the higher one is.
  uint64_t from = 1;
  auto stored = GetMeta(kMetaUnsealedFromKey);
  if (stored.ok() && stored->size() == 8) {
    from = DecodeBigEndian64(stored->data());
  } else if (!stored.ok() && !absl::IsNotFound(stored.status())) {
    return stored.status();
  }
  std::string marker;
  const rocksdb::Status ms =
      db_->Get(rocksdb::ReadOptions(), events_cf_, kUnsealedFromKey, &marker);
  if (ms.ok() && marker.size() == 8) {
    from = std::max(from, DecodeBigEndian64(marker.data()));
  } else if (!ms.ok() && !ms.IsNotFound()) {
    return FromRocks(ms, "read unsealed_from");
  }
  {
    absl::MutexLock l(&seal_pass_mu_);
    unsealed_from_ = from;
  }
  {
    // Event keys of an earlier format (one per unsealed event) sort before
    // every block key: if the family starts with one, sealing deletes them.
    rocksdb::ReadOptions ro;
    ro.total_order_seek = true;
    std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(ro, events_cf_));
    it->SeekToFirst();
    RETURN_IF_ERROR(FromRocks(it->status(), "open events"));
    legacy_event_keys_ =
        it->Valid() && it->key().size() >= 4 &&
        (DecodeBigEndian32(it->key().data()) & kBlockStreamBit) == 0;
  }
  // The log after `from` holds every unsealed event (and perhaps some
  // sealed since: the head then holds them beside their block, which
  // reads and sealing tell apart by seq). Added in sorted runs; whenever
  // the head is full, what it holds is sealed first (a store of an old
  // format converts in bounded memory, and resumes where it stopped).
  std::vector<std::pair<std::string, std::string>> run;
  std::vector<std::pair<std::string, const std::string*>> puts;
  size_t run_bytes = 0;
  uint64_t loaded = 0;  // the last seq read (ScanLog goes in seq order)
  const size_t run_limit = std::max<size_t>(
      1, std::min<size_t>(16 << 20, options_.head_max_bytes / 4));
  auto flush = [&]() -> absl::Status {
    std::sort(run.begin(), run.end());
    puts.clear();
    for (const auto& [key, value] : run) puts.emplace_back(key, &value);
    AddToHead(puts);
    run.clear();
    run_bytes = 0;
    if (head_.bytes() >= options_.head_max_bytes && read_only_.empty()) {
      {
        absl::MutexLock l(&seal_pass_mu_);
        load_limit_ = loaded + 1;  // the log after it is not loaded yet
      }
      const absl::Status s = Seal(1);
      absl::MutexLock l(&seal_pass_mu_);
      load_limit_ = 0;
      RETURN_IF_ERROR(s);
    }
    return absl::OkStatus();
  };
  absl::Status inner;
  RETURN_IF_ERROR(ScanLog(from - 1, watermark(), nullptr,
                          [&](const StoredEvent& e) {
                            run.emplace_back(EventKey(e.stream_id, e.entity,
                                                      e.time_us, e.seq),
                                             std::string(e.value));
                            run_bytes += e.value.size() + 64;
                            loaded = e.seq;
                            if (run_bytes >= run_limit) {
                              inner = flush();
                              return inner.ok();
                            }
                            return true;
                          }));
  RETURN_IF_ERROR(inner);
  return flush();
}

absl::Status EventStore::MakeHeadRoom() {
  if (head_.bytes() < options_.head_max_bytes || !read_only_.empty()) {
    return absl::OkStatus();
  }
  // The append waits for one sealing pass (which seals the head down to a
  // quarter of its memory), then goes on even if the head is still
  // full: what is left then is sealed events that reads in progress still
  // see, which no waiting frees before they end.
  if (options_.seal_min_events > 0) {
    absl::MutexLock l(&seal_state_mu_);
    const uint64_t seen = seal_passes_;
    seal_cv_.Signal();
    const absl::Time deadline = absl::Now() + absl::Seconds(10);
    while (seal_passes_ == seen && !stop_sealer_ &&
           absl::Now() < deadline) {
      sealed_cv_.WaitWithDeadline(&seal_state_mu_, deadline);
    }
    if (seal_passes_ != seen) return absl::OkStatus();
  }
  // No sealer (or it is stuck): seal here.
  return SealPass(1, HeadExcess());
}

absl::Status EventStore::Seal(size_t min_events) {
  return SealPass(min_events, 0);
}

absl::Status EventStore::SealPass(size_t min_events, uint64_t free_bytes) {
  if (!read_only_.empty()) return absl::ResourceExhaustedError(read_only_);
  absl::MutexLock pass_lock(&seal_pass_mu_);
  auto picked = head_.Pick(min_events);
  // An entity whose new events land all over its history costs a re-cut
  // of most of its blocks per seal, however few they are: the regular
  // passes leave it until it has gathered a fair share of what they
  // rewrite, and a pass that makes room takes it last.
  auto later = [&](const std::pair<std::string, EntityHeadRef>& e) {
    auto it = seal_later_.find(e.first);
    return it != seal_later_.end() && e.second->live < it->second;
  };
  if (min_events > 1 && free_bytes == 0) {
    picked.erase(std::remove_if(picked.begin(), picked.end(), later),
                 picked.end());
  }
  if (free_bytes > 0) {
    // The entities holding the most first: sealing many events of one
    // entity costs about what sealing one does (its tail block is
    // rewritten either way).
    std::sort(picked.begin(), picked.end(), [&](const auto& a,
                                                const auto& b) {
      const bool la = later(a), lb = later(b);
      if (la != lb) return lb;
      return a.second->bytes > b.second->bytes;
    });
    size_t n = 0;
    uint64_t sum = 0;
    while (n < picked.size() && sum < free_bytes) {
      sum += picked[n++].second->bytes;
    }
    picked.resize(n);
    std::sort(picked.begin(), picked.end(), [](const auto& a, const auto& b) {
      return a.first < b.first;
    });
  }
  absl::Status status;
  // Entities are sealed in chunks, one atomic write each (a crash leaves
  // each chunk sealed or not), under seal_mu_: an erasure waits for one
  // chunk at most.
  constexpr size_t kChunkEntities = 512;
  constexpr size_t kChunkBytes = 8 << 20;
  size_t next = 0;
  while (next < picked.size() && status.ok()) {
    // A closing store stops between chunks; the rest stays unsealed.
    if (stopping_.load(std::memory_order_acquire)) break;
    if (DiskFreeBytes() < options_.min_free_bytes) {
      status = absl::ResourceExhaustedError(
          "disk space low: sealing waits for free space");
      break;
    }
    absl::MutexLock seal_lock(&seal_mu_);
    rocksdb::ReadOptions ro;
    ro.prefix_same_as_start = true;
    // The blocks read here are rewritten by this very pass (their keys
    // deleted): cached they would only push out blocks reads still use.
    ro.fill_cache = false;
    std::unique_ptr<rocksdb::Iterator> bit(db_->NewIterator(ro, events_cf_));
    // Kept unless an entity with a long history grew it further.
    ReusedWriteBatch reused(&seal_batch_, kChunkBytes * 2, kChunkBytes * 4);
    rocksdb::WriteBatch& batch = *reused;
    std::vector<SealedEntity> chunk;
    while (next < picked.size() && chunk.size() < kChunkEntities &&
           batch.GetDataSize() < kChunkBytes) {
      // The entity's head as it is now, under seal_mu_: an erasure since
      // the pick marked its events gone, and none may be written back.
      const std::string& prefix = picked[next++].first;
      const EntityHeadRef current = head_.Find(prefix);
      if (current == nullptr && !legacy_event_keys_) continue;
      const EntityHead none;
      chunk.emplace_back();
      chunk.back().head = current;  // the events' values live there
      status = SealEntity(prefix, current != nullptr ? *current : none,
                          bit.get(), &batch, &chunk.back());
      if (!status.ok()) break;  // this chunk stays unsealed
    }
    if (!status.ok()) break;
    {
      // From the folds to the write, no tile is stored (WriteTiles): one
      // stored before the folds is folded, a build still running is voided.
      absl::MutexLock tiles_lock(&tiles_mu_);
      status = FoldTiles(chunk);
      // Only the events family, so a memtable flush keeps it whole or not
      // at all; a crash before that leaves the events to the log.
      if (status.ok()) {
        status = FromRocks(db_->Write(SealWrite(), &batch), "seal");
      }
      if (status.ok()) VoidTileBuilds(chunk);
    }
    if (!status.ok()) break;
    // Reads from a RocksDB view that holds the new blocks no longer show
    // these events from the head.
    const uint64_t at = db_->GetLatestSequenceNumber();
    absl::MutexLock l(&seal_listener_mu_);
    for (const SealedEntity& e : chunk) {
      if (e.seqs.empty()) continue;
      head_.MarkGone(e.prefix, e.seqs, at);
      // More than 4 rewritten events per sealed one: wait for more (at
      // most kSealLaterEvents, so the head keeps room for the others).
      const size_t rewritten = e.blocks_rewritten * kBlockMaxEvents;
      if (rewritten > 4 * e.seqs.size()) {
        if (seal_later_.size() >= kMaxSealLater) seal_later_.clear();
        seal_later_[e.prefix] = std::min(rewritten / 4, kSealLaterEvents);
      } else {
        seal_later_.erase(e.prefix);
      }
      if (seal_listener_ != nullptr) {
        seal_listener_(e.stream_id, EntityOfPrefix(e.prefix), e.earliest_us);
      }
    }
  }
  head_.Purge();
  {
    absl::MutexLock l(&seal_state_mu_);
    ++seal_passes_;
    sealed_cv_.SignalAll();
  }
  RETURN_IF_ERROR(status);
  return SaveUnsealedFrom();
}

absl::Status EventStore::FoldTiles(const std::vector<SealedEntity>& chunk) {
  if (tiled_.empty()) return absl::OkStatus();
  rocksdb::WriteBatch batch;
  // Tiles the batch deletes (their day key and key), and how many it folds.
  std::vector<std::pair<std::string, std::string>> deleted;
  std::vector<std::pair<std::string, std::string>> gone;  // found missing
  uint64_t folded = 0;
  std::vector<StoredEvent> above;
  std::string value;
  for (const SealedEntity& sealed : chunk) {
    const std::vector<StoredEvent>& events = sealed.events;
    const absl::string_view entity = EntityOfPrefix(sealed.prefix);
    // The events by day (they are in time order).
    for (size_t i = 0, j = 0; i < events.size(); i = j) {
      const int64_t day = DayStart(events[i].time_us);
      j = i;
      while (j < events.size() && events[j].time_us < day + kDayMicros) ++j;
      std::string day_key = EntityTimeKey(sealed.stream_id, entity, day);
      auto tiles = tiled_.find(day_key);
      if (tiles == tiled_.end()) continue;
      for (const std::string& key : tiles->second) {
        const rocksdb::Status gs =
            db_->Get(rocksdb::ReadOptions(), tiles_cf_, key, &value);
        if (gs.IsNotFound()) {  // retention dropped it
          gone.emplace_back(day_key, key);
          continue;
        }
        RETURN_IF_ERROR(FromRocks(gs, "read tile"));
        ParsedTileKey parsed;
        absl::StatusOr<std::string> payload =
            absl::DataLossError("malformed tile");
        uint64_t watermark = 0;
        above.clear();
        if (value.size() >= 8 && ParseTileKey(key, &parsed)) {
          // The tile holds its day up to its watermark: only the events
          // above it are new to it.
          const uint64_t w = DecodeBigEndian64(value.data());
          for (size_t k = i; k < j; ++k) {
            if (events[k].seq <= w) continue;
            above.push_back(events[k]);
            above.back().entity = entity;
            watermark = std::max(watermark, events[k].seq);
          }
          if (above.empty()) continue;
          payload = tile_folder_ == nullptr
                        ? absl::NotFoundError("no tile folder")
                        : tile_folder_(
                              TileScope{parsed.stream_id, parsed.entity,
                                        parsed.view, parsed.version},
                              day, absl::string_view(value).substr(8), above);
        }
        if (!payload.ok()) {
          if (payload.status().code() != absl::StatusCode::kNotFound) {
            LogWarning(absl::StrCat("tile of entity '", Echo(entity),
                                    "' dropped at sealing: ",
                                    payload.status().message()));
          }
          batch.Delete(tiles_cf_, ToSlice(key));
          deleted.emplace_back(day_key, key);
          continue;
        }
        // Every event of the day up to the highest seq folded: the sealed
        // head is a prefix of the commits, so none below it is missing.
        std::string folded_value;
        PutBigEndian64(&folded_value, watermark);
        folded_value += *payload;
        batch.Put(tiles_cf_, ToSlice(key), ToSlice(folded_value));
        ++folded;
      }
    }
  }
  if (batch.Count() > 0) {
    // Durable before the seal (which skips the write-ahead log) is: after
    // a crash a tile never stands behind events that left the head.
    rocksdb::WriteOptions wo;
    wo.sync = options_.sync;
    RETURN_IF_ERROR(FromRocks(db_->Write(wo, &batch), "fold tiles"));
  }
  tiles_folded_.fetch_add(folded, std::memory_order_relaxed);
  tiles_invalidated_.fetch_add(deleted.size(), std::memory_order_relaxed);
  deleted.insert(deleted.end(), gone.begin(), gone.end());
  for (const auto& [day_key, key] : deleted) {
    auto tiles = tiled_.find(day_key);
    if (tiles == tiled_.end()) continue;
    auto& keys = tiles->second;
    keys.erase(std::remove(keys.begin(), keys.end(), key), keys.end());
    if (keys.empty()) tiled_.erase(tiles);
  }
  return absl::OkStatus();
}

void EventStore::VoidTileBuilds(const std::vector<SealedEntity>& chunk) {
  for (TileBuild* build : tile_builds_) {
    for (const SealedEntity& sealed : chunk) {
      if (sealed.prefix != build->entity_prefix) continue;
      const absl::string_view entity = EntityOfPrefix(sealed.prefix);
      for (const StoredEvent& e : sealed.events) {
        if (build->pinned && e.seq <= build->watermark) continue;
        std::string day_key =
            EntityTimeKey(sealed.stream_id, entity, DayStart(e.time_us));
        if (build->days.contains(day_key)) {
          build->voided.insert(std::move(day_key));
        }
      }
    }
  }
}

uint64_t EventStore::HeadExcess() const {
  const uint64_t bytes = head_.bytes();
  if (bytes < options_.head_max_bytes / 2) return 0;
  return bytes - options_.head_max_bytes / 4;
}

absl::Status EventStore::SaveUnsealedFrom() {
  // Every unsealed event has a seq >= from: a restart reads the log from
  // there (a lost update only makes it read more). The watermark is read
  // first: an event appended after that has a higher seq, and one
  // appended before is in the head (appends add to it before they publish
  // the watermark) or sealed.
  const uint64_t limit = load_limit_ != 0 ? load_limit_ : watermark() + 1;
  const uint64_t min_live = head_.min_live_seq();
  const uint64_t from = min_live != 0 ? std::min(min_live, limit) : limit;
  if (from <= unsealed_from_) return absl::OkStatus();
  std::string v;
  PutBigEndian64(&v, from);
  // After the blocks it vouches for, in their family (see above).
  RETURN_IF_ERROR(FromRocks(
      db_->Put(SealWrite(), events_cf_, kUnsealedFromKey, v), "seal"));
  unsealed_from_ = from;
  return absl::OkStatus();
}

absl::Status EventStore::SealEntity(absl::string_view prefix,
                                    const EntityHead& head,
                                    rocksdb::Iterator* bit,
                                    rocksdb::WriteBatch* batch,
                                    SealedEntity* sealed) {
  // An entity prefix: be32(stream) | entity | 0x00.
  const uint32_t stream_id = DecodeBigEndian32(prefix.data());
  const absl::string_view entity = EntityOfPrefix(prefix);
  sealed->prefix = std::string(prefix);
  sealed->stream_id = stream_id;
  // The entity's live head events, by (time, seq).
  std::vector<BlockEvent> singles;
  std::vector<uint64_t>& sealed_seqs = sealed->seqs;
  HeadReader reader;
  for (reader.Reset(&head); reader.Valid(); reader.Next()) {
    const HeadEvent& e = reader.event();
    if (e.gone_at != 0) continue;
    singles.push_back({e.time_us, e.seq, e.value});
    sealed_seqs.push_back(e.seq);
    sealed->events.push_back(
        StoredEvent{e.seq, stream_id, absl::string_view(), e.time_us, e.value});
  }
  std::sort(sealed_seqs.begin(), sealed_seqs.end());
  rocksdb::ReadOptions ro;
  ro.prefix_same_as_start = true;
  // Event keys an earlier format wrote for unsealed events: their events
  // are in the head too (loaded from the log); the keys are deleted with
  // this seal, and their values join in case one is not.
  std::vector<std::string> single_keys, single_values;
  if (legacy_event_keys_) {
    const std::string upper = PrefixSuccessor(prefix);
    const rocksdb::Slice upper_slice = ToSlice(upper);
    ro.iterate_upper_bound = &upper_slice;
    std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(ro, events_cf_));
    for (it->Seek(ToSlice(prefix)); it->Valid(); it->Next()) {
      single_keys.emplace_back(ToView(it->key()));
      single_values.emplace_back(ToView(it->value()));
    }
    RETURN_IF_ERROR(FromRocks(it->status(), "seal"));
    for (size_t i = 0; i < single_keys.size(); ++i) {
      ParsedEventKey k;
      if (!ParseEventKey(single_keys[i], &k)) {
        return absl::DataLossError(
            absl::StrCat("malformed event key ", HexEncode(single_keys[i])));
      }
      singles.push_back({k.time_us, k.seq, single_values[i]});
    }
    SortUnique(&singles);
  }
  if (singles.empty()) return absl::OkStatus();
  sealed->earliest_us = singles.front().time_us;

  // `bit` seeks within the entity's block prefix (prefix_same_as_start).
  const std::string tail_key = TailBlockKey(stream_id, entity);
  // Deletions before puts: a re-cut block may take the key of one it
  // replaces.
  std::vector<std::pair<std::string, std::string>> puts;
  // Whether the entity keeps blocks besides the tail this seal writes: a
  // tail says so in its format byte (event_block.h), so a reader that
  // finds a sole tail looks no further.
  bool others = false;
  auto cut = [&](std::vector<BlockEvent>& events, bool keep_tail) {
    // An event already in a block is kept once (the head, rebuilt from
    // the log at open, may hold events sealed before the stop).
    SortUnique(&events);
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
        puts.emplace_back(tail_key,
                          EncodeBlock(chunk, others ? kTailFormat
                                                    : kSoleTailFormat));
      } else {
        puts.emplace_back(BlockKey(stream_id, entity, chunk.back().time_us,
                                   chunk.back().seq),
                          EncodeBlock(chunk));
        others = true;
      }
      begin = end;
    }
  };
  auto seek_block_of = [&](const BlockEvent& e) {
    bit->Seek(ToSlice(BlockKey(stream_id, entity, e.time_us, e.seq)));
    return FromRocks(bit->status(), "seal");
  };
  // Blocks before the first single: a full block where it lands says
  // there are (it is re-cut below), a tail of format 6 says it, else
  // (a tail of an earlier format, or no block at or after the single)
  // the entity's first block tells.
  RETURN_IF_ERROR(seek_block_of(singles.front()));
  if (bit->Valid() && ToView(bit->key()) != tail_key) {
    others = true;
  } else if (!bit->Valid() ||
             !TailSaysOthers(ToView(bit->value()), &others)) {
    bit->Seek(ToSlice(BlockPrefix(stream_id, entity)));
    RETURN_IF_ERROR(FromRocks(bit->status(), "seal"));
    others = bit->Valid() && ToView(bit->key()) != tail_key;
    RETURN_IF_ERROR(seek_block_of(singles.front()));
  }
  std::vector<BlockEvent> merged;
  size_t i = 0;
  while (i < singles.size()) {
    // The first block whose last event is not before singles[i]: the
    // singles up to its last event go into it (`bit` is on the first
    // single's already).
    if (i > 0) RETURN_IF_ERROR(seek_block_of(singles[i]));
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
      batch->Delete(events_cf_, ToSlice(key));
      tail = key == tail_key;
      if (!tail) ++sealed->blocks_rewritten;
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
  // Each legacy event key was written once (its seq is its own), so
  // SingleDelete applies: the deletion and the event vanish together as
  // soon as a flush or compaction meets both.
  for (const std::string& key : single_keys) {
    batch->SingleDelete(events_cf_, ToSlice(key));
  }
  for (const auto& [key, value] : puts) {
    batch->Put(events_cf_, ToSlice(key), ToSlice(value));
  }
  return absl::OkStatus();
}

void EventStore::SealLoop() {
  uint64_t last_watermark = watermark();
  absl::Time last_change = absl::Now();
  absl::Time last_full = absl::Now();
  absl::Duration wait = absl::Milliseconds(500);
  absl::MutexLock l(&seal_state_mu_);
  while (!stop_sealer_) {
    seal_cv_.WaitWithTimeout(&seal_state_mu_, wait);
    if (stop_sealer_) break;
    const uint64_t w = watermark();
    const absl::Time now = absl::Now();
    if (w != last_watermark) {
      last_watermark = w;
      last_change = now;
    }
    // Everything is sealed once appends paused for half a second, and at
    // least once a minute under a steady trickle (so a restart reads
    // little of the log); meanwhile the entities with seal_min_events.
    const bool full = now - last_change >= absl::Milliseconds(500) ||
                      now - last_full > absl::Minutes(1);
    // A pause in appends: level 0 of what lookups read is merged down
    // until they resume (EventStoreOptions::compact_idle_ms).
    const bool idle =
        options_.compact_idle_ms > 0 &&
        now - last_change >= absl::Milliseconds(options_.compact_idle_ms);
    if (idle != tuned_for_reads_) {
      seal_state_mu_.Unlock();  // SetOptions writes an options file
      TuneForReads(idle);
      seal_state_mu_.Lock();
      if (stop_sealer_) break;
    }
    if (head_.live_events() == 0) {
      head_.Purge();  // sealed events that long reads held
      continue;
    }
    if (full) last_full = absl::Now();
    seal_state_mu_.Unlock();
    // A head past half its memory is sealed down to a quarter, the
    // entities holding the most first.
    const uint64_t excess = full ? 0 : HeadExcess();
    const absl::Status s =
        excess > 0 ? SealPass(1, excess)
                   : Seal(full ? 1 : options_.seal_min_events);
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
