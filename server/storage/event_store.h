#ifndef RAWFEAT_SERVER_STORAGE_EVENT_STORE_H_
#define RAWFEAT_SERVER_STORAGE_EVENT_STORE_H_

// EventStore: the RocksDB database behind rawfeatd. It owns the column
// families of keys.h, assigns ingest sequence numbers, enforces event-id
// idempotency, and publishes the watermark. rocksdb::Status never leaves
// this directory; every method returns absl::Status.
//
// Thread-safety: all methods are safe to call concurrently.

#include <atomic>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "absl/synchronization/mutex.h"
#include "rawfeat/v1/rawfeat.pb.h"
#include "server/common/hash.h"
#include "server/storage/event_cursor.h"
#include "server/storage/event_head.h"
#include "server/storage/retention.h"

namespace rocksdb {
class WriteBatch;
class ColumnFamilyHandle;
class Env;
class DB;
class Iterator;
class Snapshot;
class Statistics;
struct ReadOptions;
}  // namespace rocksdb

namespace rawfeat {

struct EventStoreOptions {
  // Sync the write-ahead log before an append returns (an ack is durable).
  // Default: true.
  bool sync = true;
  // Memtable size per column family. Default: 64 MiB.
  size_t write_buffer_bytes = 64 << 20;
  // Shared block cache. Default: 512 MiB (a snapshot of 10M events reads
  // ~300 MiB of blocks: a smaller cache misses on every sequential pass).
  size_t block_cache_bytes = 512 << 20;
  // Lookup cursors (NewEventCursor) read an entity's tail block by a point
  // read first; false: they seek, as before storage format 6 (for
  // measuring the difference). Default: true.
  bool tail_point_reads = true;
  // Most events one group commit writes. Default: 200,000.
  size_t max_group_events = 200000;
  // The tile format this process reads and writes; tiles stored under
  // another one (or by a store that predates the marker: format 1) are
  // deleted at open. Default: kTileFormat (keys.h). Tests set older ones.
  uint32_t tile_format = kTileFormat;
  // Start even though acknowledged events are gone: the write-ahead log is
  // damaged, or holds fewer seqs than the last clean stop left. The store
  // keeps what precedes the damage, records the lost seq range (meta,
  // DataLosses()), never issues those seqs again, and refuses reads at a
  // watermark inside the range. Default: false (Open fails with DATA_LOSS
  // naming the file, the offset and the highest seq the store vouches for).
  bool accept_data_loss = false;
  // Seqs reserved per sync of the seq file (seq_file.h). Default: 2^20.
  uint64_t seq_block = uint64_t{1} << 20;
  // Appends are refused (RESOURCE_EXHAUSTED) while the data dir's disk has
  // less free space than this, so RocksDB keeps room for its flushes and
  // compactions and never meets a full disk itself; reads go on, and writes
  // resume once space is freed. Default: 128 MiB.
  uint64_t min_free_bytes = uint64_t{128} << 20;
  // The Env RocksDB runs on; nullptr = the default. Tests pass one that
  // injects I/O errors.
  rocksdb::Env* env = nullptr;
  // Collect RocksDB's tickers (block cache hits and misses, stall time)
  // for EngineStats. Default: false.
  bool statistics = false;
  // Sealing (event_block.h): a background thread writes an entity's
  // unsealed events (held in memory, event_head.h) into its blocks once it
  // has at least this many, every entity's once appends pause (or a
  // minute passed), and the biggest entities' when the head is half full.
  // 0: no background sealing (only Seal() seals, and an append seals the
  // biggest itself when the head is full). Each seal rewrites the entity's
  // tail block with the new events, so a 256-event block is written
  // 256 / n times over: at 128 twice, at 64 four times. Default: 128.
  size_t seal_min_events = 128;
  // Memory the unsealed events may hold (event_head.h). Above it an
  // append first waits for one sealing pass (seals the biggest entities
  // itself if none ends within 10 s, or without a sealer); reads that hold
  // old views keep sealed events in memory until they end. Default:
  // 256 MiB.
  size_t head_max_bytes = size_t{256} << 20;
  // Once appends have paused this long (and the background sealer runs),
  // the families lookups read (events, tiles) merge level 0 into the level
  // below: RocksDB's own leveled compaction, with its level-0 trigger
  // lowered to one file until appends resume. A lookup then seeks one
  // sorted run per level instead of one per level-0 file as well (after a
  // bulk load, 2 instead of 7, and a quarter less CPU per lookup). The
  // cost is one L0 -> base-level compaction per pause. 0: never.
  // Default: 30 s.
  int64_t compact_idle_ms = 30000;
  // A stream scan (ScanStream: a snapshot's pass over every entity) reads
  // its table files this many bytes at a time. Table files are opened for
  // random access, so the kernel reads nothing ahead, and a scan of files
  // the page cache no longer holds would wait on one 16 KiB read after
  // another (the first snapshot of a 10M-event store after dropping the
  // page cache: 0.72 s, 0.52 s with 1 MiB reads; no change once cached).
  // 0: a block at a time. Default: 1 MiB.
  size_t scan_readahead_bytes = 1 << 20;
};

// Acknowledged events the store lost and an operator accepted losing.
struct DataLoss {
  uint64_t first_seq = 0;  // seqs first_seq..last_seq may have been issued
  uint64_t last_seq = 0;   // and are gone; they are never issued again
  int64_t accepted_at_us = 0;
  std::string detail;  // what was damaged: file, offset, reason
};

// One validated, encoded event waiting to be appended.
struct PendingEvent {
  int row = 0;           // row index in the caller's batch (for errors)
  std::string event_id;  // as the caller sees it (given or hex digest)
  Sha256Digest content_hash{};
  std::string entity;  // no NUL bytes
  int64_t time_us = 0;
  std::string value;  // EncodeEventValue output
};

// The requests of one ordered sequence (an IngestStream call's batches),
// numbered 1, 2, ... (AppendRequest::chain_position): each takes its place
// in the commit order after the one before it, so their seqs follow the
// sequence, and none is written once one before it failed. The caller
// starts a request's Append only after the one before it is queued
// (AwaitQueued); the store does the rest. Thread-safe.
class AppendChain {
 public:
  // The request at `position` failed: none after it is written.
  void Break(uint64_t position) {
    uint64_t at = broken_at_.load(std::memory_order_acquire);
    while (position < at && !broken_at_.compare_exchange_weak(
                                at, position, std::memory_order_acq_rel)) {
    }
  }
  // Whether the request at `position` follows a failed one.
  bool Stops(uint64_t position) const {
    return position > broken_at_.load(std::memory_order_acquire);
  }
  bool broken() const { return Stops(kNone); }

  // Called once per request: by EventStore::Append when the request has
  // its place in the commit order or has failed without one, or, for a
  // request refused before it reaches the store, by whoever refused it
  // (after Break at its position).
  void MarkQueued() {
    absl::MutexLock l(&mu_);
    ++queued_;
    queued_cv_.SignalAll();
  }
  // Waits until `n` requests of the chain were marked queued.
  void AwaitQueued(uint64_t n) {
    absl::MutexLock l(&mu_);
    while (queued_ < n) queued_cv_.Wait(&mu_);
  }

 private:
  static constexpr uint64_t kNone = ~uint64_t{0};
  std::atomic<uint64_t> broken_at_{kNone};
  absl::Mutex mu_;
  absl::CondVar queued_cv_;
  uint64_t queued_ ABSL_GUARDED_BY(mu_) = 0;
};

struct AppendRequest {
  uint32_t stream_id = 0;
  std::vector<PendingEvent> events;
  // All-or-nothing: if any event conflicts, nothing is written.
  bool atomic = true;
  // If set, the sequence this request belongs to (AppendChain) and its
  // place in it: it is not written if one before it failed, and if it
  // fails (an error, or atomic and conflicting) none after it is.
  AppendChain* chain = nullptr;
  uint64_t chain_position = 0;
};

struct AppendConflict {
  int row = 0;
  std::string event_id;
  std::string reason;
};

struct AppendResult {
  int64_t accepted = 0;
  int64_t duplicates = 0;
  // Below the stream's retention horizon: acknowledged, not stored.
  int64_t expired = 0;
  std::vector<AppendConflict> conflicts;
  // The published watermark after this append (every seq <= it is durable
  // and visible).
  uint64_t watermark = 0;
};

// A consistent point-in-time view for reads (a RocksDB snapshot).
class ReadView {
 public:
  ReadView(const ReadView&) = delete;
  ReadView& operator=(const ReadView&) = delete;
  ~ReadView();

 private:
  friend class EventStore;
  ReadView(rocksdb::DB* db, EventHead* head, bool fill_cache)
      : db_(db), head_(head), fill_cache_(fill_cache) {}
  rocksdb::DB* db_;
  EventHead* head_;  // registered with it at read_seq_
  const bool fill_cache_;
  const rocksdb::Snapshot* snapshot_ = nullptr;
  uint64_t read_seq_ = 0;
};

class EventStore {
 public:
  // Opens (creating if needed) the database in `dir`. Recovers the next seq
  // from the log and the per-stream counters from meta. The write-ahead log
  // is replayed tolerating only an incomplete last record (a write cut
  // short, never acknowledged); damage inside it, or a log that holds fewer
  // seqs than the last clean stop left, is DATA_LOSS unless
  // options.accept_data_loss.
  // Errors: DATA_LOSS (naming the log file, offset and the highest seq the
  // store can vouch for), FAILED_PRECONDITION (the dir holds a storage
  // format this server does not read; keys.h kStoreFormat), INTERNAL /
  // UNAVAILABLE with RocksDB's message (e.g. the directory is locked by
  // another rawfeatd).
  static absl::StatusOr<std::unique_ptr<EventStore>> Open(
      const std::string& dir, const EventStoreOptions& options);

  ~EventStore();
  EventStore(const EventStore&) = delete;
  EventStore& operator=(const EventStore&) = delete;

  // Appends events with idempotency by (stream, event_id): events below the
  // stream's retention horizon are counted as expired and not stored; an id
  // already
  // stored with the same content hash, or repeated within the request with
  // the same content, counts as a duplicate and is not written; the same id
  // with another content is a conflict (the original stays). Concurrent
  // callers are grouped into one WriteBatch and one WAL sync (group commit).
  // Each written event gets the next seq; the watermark moves past it only
  // after the write is durable (with options.sync) and visible.
  // Errors: UNAVAILABLE if the write failed (nothing of the request written);
  // ABORTED if the request's chain broke before its turn (nothing written).
  absl::StatusOr<AppendResult> Append(AppendRequest* request);

  // Highest seq a read may see. Monotonic.
  uint64_t watermark() const {
    return watermark_.load(std::memory_order_acquire);
  }

  // Events stored per stream id (as of the watermark).
  absl::flat_hash_map<uint32_t, uint64_t> StreamCounts() const;

  // A view of the latest state. Reads through it keep the blocks they load
  // in the block cache unless `fill_cache` is false (background work that
  // reads much once, e.g. building tiles, leaves the cache to lookups).
  std::unique_ptr<ReadView> NewReadView(bool fill_cache = true) const;

  // A reproducible read: the watermark it uses (`requested`, or the latest
  // when 0) and a snapshot that holds every seq up to it. A scan of many
  // entities (snapshot, join, replay) passes `fill_cache` false, so the
  // blocks it reads once do not push online lookups' blocks out of the
  // block cache.
  // Errors: INVALID_ARGUMENT if `requested` is above the latest; DATA_LOSS
  // if it lies inside a lost range (its answers cannot be reproduced).
  struct PinnedRead {
    uint64_t watermark = 0;
    std::unique_ptr<ReadView> view;
  };
  absl::StatusOr<PinnedRead> PinRead(uint64_t requested,
                                     bool fill_cache = true) const;

  // An unpositioned cursor over the events of `stream_id` as of `view`
  // (nullptr = latest): EventCursor::Seek puts it on one entity's time
  // range, and it can be re-seeked to others (one cursor serves many
  // entities). With `lookups` (and a view), each Seek reads the entity's
  // tail block by key first: when that is its only block (storage format
  // 6), that read is all, and RocksDB's row cache answers it again from
  // memory without a seek into every sorted run. For online lookups of a
  // few entities at a time; scans of many entities (snapshots, joins) seek
  // and leave the cache to blocks (row cache entries copy what the block
  // cache holds).
  std::unique_ptr<EventCursor> NewEventCursor(uint32_t stream_id,
                                              const ReadView* view,
                                              bool lookups = false) const;
  // An entity cursor (as NewEventCursor without `lookups`) for readers that
  // visit entities in ascending byte order, each one's events in full or
  // from a time (snapshots): a Seek to an entity after the one sought last
  // steps the iterator over what lies between when that is at most a block
  // or so (usually: the next entity's blocks follow the last one's) instead
  // of seeking every sorted run again. Any other Seek seeks, so every
  // order of seeks reads correctly; an ascending one reads cheaper.
  std::unique_ptr<EventCursor> NewAscendingCursor(uint32_t stream_id,
                                                  const ReadView* view) const;
  // A cursor over one entity's events with from_us <= time < to_us, as of
  // `view`, positioned on the first: for one scan (it reads no further than
  // the range). SeekTime moves it forward within the range.
  std::unique_ptr<EventCursor> ScanEntity(uint32_t stream_id,
                                          absl::string_view entity,
                                          int64_t from_us, int64_t to_us,
                                          const ReadView* view) const;
  // A cursor over every event of `stream_id` as of `view`, entity by
  // entity, positioned on the first.
  std::unique_ptr<EventCursor> ScanStream(uint32_t stream_id,
                                          const ReadView* view) const;

  // The tiles of `scope` for days in [from_day, to_day) (kMinEventTime /
  // kMaxEventTime: unbounded), as of `view`.
  std::unique_ptr<TileCursor> ScanTiles(const TileScope& scope,
                                        int64_t from_day, int64_t to_day,
                                        const ReadView* view) const;
  // False if `scope` has had no tile since the store opened, so ScanTiles
  // would find none (a hash lookup; true may still find none, e.g. at an
  // older view). Thread-safe.
  bool MayHaveTiles(const TileScope& scope) const;

  // Builds tiles of `scope` for the UTC days starting at `days`: pins the
  // latest watermark and a read view at it, runs `build` on that view while
  // appends go on, then stores the (day start, payload) pairs it returns,
  // built at that watermark (the view does not fill the block cache). A
  // seal of events above that watermark into one of the days (or an
  // erasure of the entity) after the pin voids that day's tile: it is not
  // stored. A stored tile
  // holds exactly its day's events up to its watermark; events appended
  // to the day later are read beside it (TileCursor::late) until sealing
  // folds them in (SetTileFolder). Tiles are a cache: they are not synced.
  // Ingest never waits for a build.
  // Errors: those of `build`; INVALID_ARGUMENT (a tile for a day not in
  // `days`); RESOURCE_EXHAUSTED (read-only store), UNAVAILABLE (the write
  // failed). Thread-safe.
  using TileBuilder = std::function<absl::Status(
      uint64_t watermark, const ReadView* view,
      std::vector<std::pair<int64_t, std::string>>* tiles)>;
  absl::Status WriteTiles(const TileScope& scope,
                          const std::vector<int64_t>& days,
                          const TileBuilder& build);

  // Seals the unsealed events of every entity that has at least
  // `min_events` of them (1: all) into blocks (event_block.h). Safe while
  // appends, reads and erasures go on: a read sees the same events, with
  // the same times, seqs and values, before and after, and a crash leaves
  // each entity sealed or not, never half. Errors: UNAVAILABLE /
  // RESOURCE_EXHAUSTED (a write failed or the disk is low; what was sealed
  // stays sealed, the rest is retried), DATA_LOSS (a corrupt block).
  absl::Status Seal(size_t min_events = 1);
  // Events appended (or found at open) and not sealed yet.
  uint64_t UnsealedEvents() const;
  // Memory the head holds (event_head.h): unsealed events, and sealed ones
  // that reads in progress still see.
  uint64_t HeadBytes() const { return head_.bytes(); }

  // Told, by the thread that sealed them, that the events of one entity
  // of `stream_id` were sealed, the earliest at `earliest_us`: a hint that
  // its history changed (ViewEngine tiles heavy past days from it). Called
  // after the seal is written, with no store lock held but one that
  // SetSealListener takes: it must be quick and must not call back into
  // sealing.
  using SealListener = std::function<void(
      uint32_t stream_id, absl::string_view entity, int64_t earliest_us)>;
  // Installs `listener` for `owner` (replacing any other), or with nullptr
  // removes it if `owner` installed it. Returns after any call in progress
  // has ended, so an owner may be destroyed once it removed its listener.
  // Thread-safe.
  void SetSealListener(const void* owner, SealListener listener);

  // Folds sealed events into a stored tile: given the tile's scope and day,
  // its payload and the events of the day above its watermark (in (time,
  // seq) order), returns the payload of a tile holding them too. Any error
  // (e.g. NOT_FOUND: the view version is gone) makes sealing delete the
  // tile instead. Called by the sealing thread with sealing locks held: it
  // must not call into the store.
  using TileFolder = std::function<absl::StatusOr<std::string>(
      const TileScope& scope, int64_t day, absl::string_view payload,
      absl::Span<const StoredEvent> events)>;
  // Installs `folder` for `owner` (replacing any other), or with nullptr
  // removes it if `owner` installed it; returns after any fold in progress
  // has ended. Without a folder, sealing events into a tiled day deletes
  // the day's tiles. Thread-safe.
  void SetTileFolder(const void* owner, TileFolder folder);

  // Number of tiles stored.
  size_t TileCount() const;
  // Writes a consistent checkpoint of the store into `dir` (which must not
  // exist; on the data dir's disk its table files are hard links) and
  // returns its watermark W: it holds exactly the events with seq <= W and
  // the definitions of that moment. Appends wait while the files are
  // linked and the unflushed log is copied. Errors: UNAVAILABLE /
  // RESOURCE_EXHAUSTED (I/O, disk full) with RocksDB's message.
  absl::StatusOr<uint64_t> Checkpoint(const std::string& dir);
  // RocksDB's identity of this database (unique per data dir).
  std::string Identity() const;

  // Calls fn for each event of the log with after_seq < seq <= up_to_seq
  // in seq order, as of `view`, until fn returns false. Removed (expired or
  // erased) seqs are skipped. Errors: DATA_LOSS (a malformed entry, or one
  // that names a missing event).
  absl::Status ScanLog(uint64_t after_seq, uint64_t up_to_seq,
                       const ReadView* view,
                       const std::function<bool(const StoredEvent&)>& fn) const;

  // Definitions: the registry's records (serialized protos). A stream's
  // record holds all its schema versions, so its version is 0.
  enum class DefinitionKind { kStream, kView, kService };
  struct Definition {
    DefinitionKind kind = DefinitionKind::kStream;
    std::string name;
    uint32_t version = 0;
    std::string bytes;
  };
  // Calls fn(label, bytes) for each stored definition of `kind`, in name
  // (then version) order; `label` names the record in errors
  // ("stream/orders"). Errors: UNAVAILABLE / DATA_LOSS from RocksDB.
  absl::Status ScanDefinitions(
      DefinitionKind kind,
      const std::function<void(absl::string_view label,
                               absl::string_view bytes)>& fn) const;
  // The highest stream id that has an event counter (0: none), so a stream
  // whose record is unreadable never has its id given to another.
  absl::StatusOr<uint32_t> HighestCountedStreamId() const;

  // Retention (retention.h). The stream's horizon now: reads may not reach
  // below it (kNoHorizon: everything is kept).
  int64_t Horizon(uint32_t stream_id) const;
  // Sets a stream's retention (microseconds, 0 = forever) as loaded from
  // its stored definition: no floor is recorded.
  void LoadRetention(uint32_t stream_id, int64_t retention_us);
  // Writes definitions (synced: they must survive a crash) and changes the
  // retention of streams (`retention`: stream id -> microseconds, 0 =
  // forever) in one step no compaction sees half of: each stream whose
  // retention changes gets a floor (its horizon under the old retention,
  // now) written with the definitions.
  // Errors: RESOURCE_EXHAUSTED (read-only store), UNAVAILABLE.
  absl::Status PutDefinitions(
      const std::vector<Definition>& definitions,
      const std::vector<std::pair<uint32_t, int64_t>>& retention);
  // Seals every unsealed event, flushes memtables and compacts every
  // column family to the bottom, so retention and erasure leave the files
  // now rather than eventually.
  // Slow on a big store (rewrites it). Errors: UNAVAILABLE /
  // RESOURCE_EXHAUSTED.
  absl::Status CompactAll();

  // Erasure: deletes every event of `entity` in the stream -- its events,
  // id records, log entries (they become removed markers; seqs stay) and
  // tiles -- and appends an entry to the erasure log (`record`, with its
  // events and watermark filled in, keyed by time). Its seqs are found
  // from a snapshot while appends go on; one small synced write (two range
  // deletions and the list of seqs) then makes it take effect atomically,
  // holding appends back only for the events appended meanwhile. The log
  // entries and ids are emptied next, in chunks (appends wait for one
  // chunk at most); until then replay and ingest skip them, and a stop
  // before the end is finished at the next start. Returns once all is
  // done. Idempotent: erasing an entity with no events deletes nothing and
  // is still logged.
  // Errors: INVALID_ARGUMENT (empty entity or NUL), UNAVAILABLE /
  // RESOURCE_EXHAUSTED (the write failed; nothing erased), DATA_LOSS.
  struct EraseResult {
    uint64_t events = 0;
    uint64_t watermark = 0;
  };
  absl::StatusOr<EraseResult> Erase(uint32_t stream_id,
                                    absl::string_view entity,
                                    v1::Erasure record);
  // The erasure log, oldest first.
  absl::StatusOr<std::vector<v1::Erasure>> Erasures() const;

  // Losses accepted on this store (accept_data_loss), oldest first.
  std::vector<DataLoss> DataLosses() const;

  // True while RocksDB has flushes or compactions running or pending.
  bool Compacting() const;
  // RocksDB's state for metrics (summed over column families), read now.
  // The block cache and stall tickers stay 0 unless options.statistics.
  struct EngineStats {
    uint64_t pending_compaction_bytes = 0;
    uint64_t memtable_bytes = 0;
    uint64_t live_sst_bytes = 0;
    uint64_t block_cache_bytes = 0;
    uint64_t block_cache_hits = 0;
    uint64_t block_cache_misses = 0;
    uint64_t stall_micros = 0;        // writes delayed or stopped, in total
    bool write_stopped = false;       // now
    uint64_t delayed_write_rate = 0;  // bytes/s while writes are slowed
    uint64_t tiles_invalidated = 0;   // deleted by sealing, since open
    uint64_t tiles_folded = 0;        // rewritten by sealing, since open
    // Table files in level 0 of the families lookups seek (events, tiles).
    uint64_t read_level0_files = 0;
  };
  EngineStats Stats() const;

  // Bytes used by the data directory on disk.
  uint64_t DiskBytes() const;
  // Bytes free for this process on the data directory's disk.
  uint64_t DiskFreeBytes() const;
  // Empty while appends work; else why the last one failed (a full disk,
  // an I/O error), until one succeeds again.
  std::string WriteError() const;
  const std::string& dir() const { return dir_; }
  bool sync() const { return options_.sync; }

 private:
  struct Writer;
  EventStore(std::string dir, EventStoreOptions options);
  // Sets a callback slot that one owner fills (replacing any other) and
  // only the owner that filled it empties (`callback` null): the seal
  // listener and the tile folder. REQUIRES: the slot's mutex held.
  template <typename Callback>
  static void SetOwned(const void* owner, Callback callback,
                       const void** slot_owner, Callback* slot) {
    if (callback == nullptr && owner != *slot_owner) return;
    *slot_owner = callback == nullptr ? nullptr : owner;
    *slot = std::move(callback);
  }
  // OK if the data dir's storage format is kStoreFormat (recording it on
  // a store that has no marker yet); FAILED_PRECONDITION naming both
  // formats otherwise.
  absl::Status CheckFormat();
  // `wal_damage`: what Open found damaged in the log (empty: nothing).
  absl::Status Recover(const std::string& wal_damage);
  // OK if an append may write now: enough free disk, and RocksDB resumed
  // after a failed write. Leader-only.
  absl::Status CheckWritable();
  // Records a loss of seqs [first, last] in meta (synced).
  absl::Status RecordLoss(uint64_t first, uint64_t last,
                          const std::string& detail);
  // Deletes every tile if the stored tile format is not options_.tile_format
  // (tiles of format 2 are valid ones of format 3: kept), then records it.
  absl::Status DropTilesOfOtherFormats();
  // Options of a read as of `view` (nullptr: the latest, filling the cache).
  static rocksdb::ReadOptions ReadOptionsOf(const ReadView* view);
  // Sets up a cursor's stream and head source: it reads at `view`'s
  // sequence, or (nullptr) registers the latest with the head.
  void StartCursor(EventCursor::Rep* rep, uint32_t stream_id,
                   const ReadView* view) const;
  // The meta column family (keys.h). Writes are synced.
  absl::StatusOr<std::string> GetMeta(
      absl::string_view key) const;  // NOT_FOUND
  absl::Status PutMeta(
      const std::vector<std::pair<std::string, std::string>>& kvs);
  absl::Status ScanMeta(absl::string_view prefix,
                        const std::function<void(absl::string_view,
                                                 absl::string_view)>& fn) const;
  // Point reads of events by key; values[i] is empty if keys[i] is missing.
  absl::Status MultiGetEvents(const std::vector<std::string>& keys,
                              const ReadView* view,
                              std::vector<std::string>* values) const;
  // What a group written by CommitGroup still has to publish: its events
  // for the head (sorted event keys; the values stay in the writers'
  // requests) and the watermark they raise it to.
  struct Publication {
    std::vector<std::pair<std::string, const std::string*>> head_puts;
    uint64_t watermark = 0;
  };
  // Leader-only: decides and writes one group under commit_mu_. On OK it
  // returns holding publish_mu_, taken before commit_mu_ is released, so
  // groups publish in the order they were written; `*publication` is what
  // Publish must do. Returns the result status.
  absl::Status CommitGroup(const std::vector<Writer*>& group,
                           Publication* publication)
      ABSL_EXCLUSIVE_TRYLOCK_FUNCTION(true, publish_mu_);
  // Adds a written group's events to the head, then publishes its
  // watermark, while the next group is decided and written; releases
  // publish_mu_.
  void Publish(const std::vector<Writer*>& group,
               const Publication& publication)
      ABSL_UNLOCK_FUNCTION(publish_mu_);
  const std::string dir_;
  const EventStoreOptions options_;
  // Before db_: its compaction filters use it until the database closes.
  RetentionPolicy retention_;
  std::unique_ptr<rocksdb::DB> db_;
  std::vector<rocksdb::ColumnFamilyHandle*> handles_;
  rocksdb::ColumnFamilyHandle* events_cf_ = nullptr;
  rocksdb::ColumnFamilyHandle* ids_cf_ = nullptr;
  rocksdb::ColumnFamilyHandle* log_cf_ = nullptr;
  rocksdb::ColumnFamilyHandle* meta_cf_ = nullptr;
  rocksdb::ColumnFamilyHandle* tiles_cf_ = nullptr;

  std::atomic<uint64_t> watermark_{0};
  std::shared_ptr<rocksdb::Statistics> statistics_;
  std::atomic<uint64_t> tiles_invalidated_{0};
  std::atomic<uint64_t> tiles_folded_{0};

  mutable absl::Mutex mu_;
  std::deque<Writer*> writers_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<uint32_t, uint64_t> counts_ ABSL_GUARDED_BY(mu_);
  // Only the group leader touches next_seq_ and reserved_ (leadership is
  // exclusive). Every seq issued is below reserved_, which the seq file
  // holds.
  uint64_t next_seq_ = 1;
  uint64_t reserved_ = 0;
  // The last RocksDB write failed: resume RocksDB before the next one.
  bool needs_resume_ = false;
  absl::Status last_write_failure_;  // the failure needs_resume_ is for
  // Non-empty: the store was opened read-only (a full disk at start); why.
  std::string read_only_;
  // False when tiles of another format are stored and could not be dropped
  // (read-only): lookups then scan raw events only.
  bool tiles_readable_ = true;
  std::string write_error_ ABSL_GUARDED_BY(mu_);
  std::vector<DataLoss> losses_;  // set by Recover, then immutable
  absl::Mutex meta_mu_;           // serializes PutMeta
  // Held while a group is decided and written, or an exclusive section
  // runs.
  mutable absl::Mutex commit_mu_;
  // CommitGroup's write batch, cleared and reused from group to group so
  // its buffer is not grown by doubling into fresh pages each time (freed
  // memory goes back to the system within seconds, and every fresh page
  // is zeroed by the kernel on first touch); a batch that grew past 16 MiB
  // is freed after its write.
  std::unique_ptr<rocksdb::WriteBatch> commit_batch_
      ABSL_GUARDED_BY(commit_mu_);
  // The rest of what CommitGroup reuses from group to group (its id
  // lookups and duplicate checks; event_store.cc), for the same reason.
  struct CommitScratch;
  std::unique_ptr<CommitScratch> commit_scratch_ ABSL_GUARDED_BY(commit_mu_);
  // Held while a written group's events enter the head and its watermark
  // is published (the next group meanwhile holds commit_mu_). Taken after
  // commit_mu_: an exclusive section takes both, and so sees no group half
  // published. (ExclusiveLock)
  mutable absl::Mutex publish_mu_ ABSL_ACQUIRED_AFTER(commit_mu_);
  // commit_mu_ and publish_mu_: no group is being written or published.
  class ABSL_SCOPED_LOCKABLE ExclusiveLock {
   public:
    explicit ExclusiveLock(const EventStore* store)
        ABSL_EXCLUSIVE_LOCK_FUNCTION(store->commit_mu_, store->publish_mu_)
        : commit_(&store->commit_mu_), publish_(&store->publish_mu_) {}
    ~ExclusiveLock() ABSL_UNLOCK_FUNCTION() {}

   private:
    absl::MutexLock commit_;
    absl::MutexLock publish_;
  };
  // The scopes (TilePrefix) that have had a tile since open: ScanTiles of
  // any other finds nothing without asking RocksDB (most entities have no
  // tiles). Only grows; a hint, never the truth (a scope whose tiles went
  // is scanned in vain, and one a concurrent write just tiled is read
  // without its tiles, which only costs a longer scan).
  mutable absl::Mutex tiled_scopes_mu_;
  absl::flat_hash_set<std::string> tiled_scopes_
      ABSL_GUARDED_BY(tiled_scopes_mu_);
  bool MayHaveTiles(const std::string& prefix) const;  // a TilePrefix
  // Tile writes (builds, folds, erasures) and what they track. Taken after
  // seal_mu_ and commit_mu_, never before.
  mutable absl::Mutex tiles_mu_;
  // Stored tiles by the day they cover (EntityTimeKey of the day start).
  mutable absl::flat_hash_map<std::string, std::vector<std::string>> tiled_
      ABSL_GUARDED_BY(tiles_mu_);
  // A WriteTiles from before its pin to its write: the days it builds
  // (EntityTimeKey of the day start), the watermark it pinned, and the days
  // a seal or erasure voided meanwhile.
  struct TileBuild {
    std::string entity_prefix;  // EntityPrefix of the scope
    absl::flat_hash_set<std::string> days;
    bool pinned = false;  // until then every seal into a day voids it
    uint64_t watermark = 0;
    absl::flat_hash_set<std::string> voided;
  };
  std::vector<TileBuild*> tile_builds_ ABSL_GUARDED_BY(tiles_mu_);
  // WriteTiles' write: the tiles of `tiles` whose days no seal or
  // erasure voided, built at watermark `w`. Errors: INVALID_ARGUMENT (a
  // day not being built), those of the write.
  absl::Status StoreTiles(
      const TileScope& scope, uint64_t w, const TileBuild& registered,
      const std::vector<std::pair<int64_t, std::string>>& tiles)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(tiles_mu_);
  const void* tile_folder_owner_ ABSL_GUARDED_BY(tiles_mu_) = nullptr;
  TileFolder tile_folder_ ABSL_GUARDED_BY(tiles_mu_);
  // Erasures that took effect and whose log entries and ids are still
  // being emptied (EmptyErased): their seqs, sorted.
  struct PendingErase {
    std::string key;  // its record in meta
    std::vector<uint64_t> seqs;
    // Id keys of erased events that new events took since (their records
    // stay). Guarded by commit_mu_.
    absl::flat_hash_set<std::string> reclaimed;
  };
  using PendingErasures = std::vector<std::shared_ptr<PendingErase>>;
  PendingErasures pending_erasures() const;
  // The pending erasure that holds `seq`, or nullptr.
  static PendingErase* ErasedBy(const PendingErasures& pending, uint64_t seq);
  // Empties the log entries and id records (`ids`: (seq, id key); empty =
  // read them from the log) of an erasure's seqs, then drops its record.
  absl::Status EmptyErased(const std::shared_ptr<PendingErase>& erasing,
                           std::vector<std::pair<uint64_t, std::string>> ids);
  // fn(key seq, value, the seqs of `seqs` it covers) for each log entry
  // (log_record.h) that covers one of `seqs` (sorted), in order, at the
  // latest state.
  absl::Status ForEachLogEntryOf(
      const std::vector<uint64_t>& seqs,
      const std::function<absl::Status(uint64_t, absl::string_view,
                                       absl::Span<const uint64_t>)>& fn) const;
  // Finishes erasures a stop interrupted (at open).
  absl::Status ResumeErasures();

  // Sealing (event_store_seal.cc). The events not sealed yet, in memory
  // (event_head.h).
  mutable EventHead head_;
  // True if the events family may hold event keys of a format before 5
  // (one key per unsealed event): sealing an entity deletes its keys. Set
  // at open.
  bool legacy_event_keys_ = false;
  // Adds appended events (their sorted event keys and values) to the head.
  void AddToHead(
      const std::vector<std::pair<std::string, const std::string*>>& puts);
  // Rebuilds the head at open from the log after "unsealed_from",
  // sealing as it goes whenever it holds head_max_bytes.
  absl::Status LoadUnsealed();
  // What SealEntity sealed of one entity.
  struct SealedEntity {
    std::string prefix;  // EntityPrefix
    uint32_t stream_id = 0;
    std::vector<uint64_t> seqs;  // sorted; empty: nothing
    // The head events sealed, by (time, seq), and the head version whose
    // memory their values view.
    EntityHeadRef head;
    std::vector<StoredEvent> events;
    int64_t earliest_us = 0;
    size_t blocks_rewritten = 0;  // full blocks the seal re-cut
  };
  // Adds to `batch` the writes that seal `head` (the live events of the
  // entity whose EntityPrefix is `prefix`) into its blocks, read through
  // `bit` (an events iterator that seeks within a prefix).
  absl::Status SealEntity(absl::string_view prefix, const EntityHead& head,
                          rocksdb::Iterator* bit, rocksdb::WriteBatch* batch,
                          SealedEntity* sealed);
  // Before a chunk's seal is written: folds the sealed events of tiled days
  // into those tiles (or deletes them) in one durable write of their own,
  // so that a tile never lacks an event of its day that has left the head.
  absl::Status FoldTiles(const std::vector<SealedEntity>& chunk)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(tiles_mu_);
  // After it is written: voids the builds of the days it sealed events
  // into that their pinned view lacks (or any, before the pin).
  void VoidTileBuilds(const std::vector<SealedEntity>& chunk)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(tiles_mu_);
  // Writes "unsealed_from" (kUnsealedFromKey: a seq at or below every
  // live head event's) if it moved; like seals, without the write-ahead
  // log.
  absl::Status SaveUnsealedFrom() ABSL_EXCLUSIVE_LOCKS_REQUIRED(seal_pass_mu_);
  // Before an append: if the head is full, waits for sealing to make room
  // (or seals itself). Errors: those of Seal.
  absl::Status MakeHeadRoom();
  // Seal(min_events); with free_bytes > 0, only the entities holding the
  // most, until they hold that many bytes.
  absl::Status SealPass(size_t min_events, uint64_t free_bytes);
  // Past half its memory, what the head holds above a quarter; else 0.
  uint64_t HeadExcess() const;
  void SealLoop();
  // Sets the level-0 compaction trigger of the families lookups read: one
  // file while appends pause (compact_idle_ms), the usual otherwise.
  // Called by the sealer thread only (which runs on writable stores only).
  void TuneForReads(bool idle);
  bool tuned_for_reads_ = false;  // sealer thread only
  absl::Mutex seal_pass_mu_;  // one Seal pass at a time
  // Held while one entity is sealed; Erase commits under it, so no
  // sealing writes back events an erasure deleted.
  absl::Mutex seal_mu_;
  // A seal chunk's write, kept from chunk to chunk: it grows to about
  // 8 MiB, a size jemalloc hands back to the system as soon as it is freed
  // (its oversize arena), so a fresh one per chunk faulted 8-16 MiB of
  // zeroed pages in every time.
  std::unique_ptr<rocksdb::WriteBatch> seal_batch_ ABSL_GUARDED_BY(seal_mu_);
  mutable absl::Mutex seal_state_mu_;
  uint64_t unsealed_from_ ABSL_GUARDED_BY(seal_pass_mu_) = 0;  // as stored
  // Entities whose last seal re-cut many full blocks for few events (late
  // events scattered over their history): the head events they gather
  // before the half-second passes seal them again (EntityPrefix -> count).
  absl::flat_hash_map<std::string, size_t> seal_later_
      ABSL_GUARDED_BY(seal_pass_mu_);
  // While LoadUnsealed seals: the first seq of the log not loaded yet.
  uint64_t load_limit_ ABSL_GUARDED_BY(seal_pass_mu_) = 0;
  bool stop_sealer_ ABSL_GUARDED_BY(seal_state_mu_) = false;
  std::atomic<bool> stopping_{false};  // the store is closing
  absl::CondVar seal_cv_;
  // Signalled after each sealing pass (appends wait on it for head room),
  // which counts them.
  absl::CondVar sealed_cv_;
  uint64_t seal_passes_ ABSL_GUARDED_BY(seal_state_mu_) = 0;
  std::thread sealer_;
  absl::Mutex seal_listener_mu_;  // held while the listener is called
  const void* seal_listener_owner_ ABSL_GUARDED_BY(seal_listener_mu_) =
      nullptr;
  SealListener seal_listener_ ABSL_GUARDED_BY(seal_listener_mu_);
  PendingErasures pending_ ABSL_GUARDED_BY(mu_);
  absl::Mutex erase_mu_;  // serializes Erase
  std::atomic<size_t> pending_count_{0};
  // Time of the last erasure-log entry (keys stay unique).
  int64_t last_erasure_us_ ABSL_GUARDED_BY(commit_mu_) = 0;
};

}  // namespace rawfeat

#endif  // RAWFEAT_SERVER_STORAGE_EVENT_STORE_H_
