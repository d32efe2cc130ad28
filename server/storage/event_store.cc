#include "server/storage/event_store.h"

#include <fcntl.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <limits>
#include <system_error>

#include "absl/hash/hash.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "rocksdb/cache.h"
#include "rocksdb/db.h"
#include "rocksdb/env.h"
#include "rocksdb/filter_policy.h"
#include "rocksdb/memtablerep.h"
#include "rocksdb/options.h"
#include "rocksdb/slice.h"
#include "rocksdb/slice_transform.h"
#include "rocksdb/statistics.h"
#include "rocksdb/table.h"
#include "rocksdb/transaction_log.h"
#include "rocksdb/utilities/checkpoint.h"
#include "rocksdb/utilities/table_properties_collectors.h"
#include "rocksdb/write_batch.h"
#include "server/common/coding.h"
#include "server/common/echo.h"
#include "server/common/log.h"
#include "server/common/status_macros.h"
#include "server/common/thread_name.h"
#include "server/common/time_util.h"
#include "server/storage/event_codec.h"
#include "server/storage/keys.h"
#include "server/storage/log_record.h"
#include "server/storage/rocks_util.h"
#include "server/storage/seq_file.h"
#include "server/storage/wal_check.h"

namespace rawfeat {
namespace {

// A committed group goes to the log in entries of at most this many events
// or (about) bytes: one key per entry instead of one per event, while a
// reader starting inside an entry skips little, and an erasure or expiry
// rewrites little.
constexpr size_t kLogEntryMaxEvents = 1024;
constexpr size_t kLogEntryMaxBytes = 256 << 10;

// Level-0 files that start a compaction into the level below while
// appends run (EventStore::TuneForReads lowers it to 1 while they pause).
constexpr int kLevel0CompactionTrigger = 8;

// What a chained request (AppendChain) gets when one before it failed.
absl::Status ChainBroken() {
  return absl::AbortedError(
      "not written: a batch before it in the same call failed");
}

absl::Status MalformedLogEntry(uint64_t key_seq) {
  return absl::DataLossError(
      absl::StrCat("malformed log entry at seq ", key_seq));
}

// RocksDB's info log (`LOG` in the data dir), written with plain write(2)
// whose failures drop the line. RocksDB's own file logger asserts on the
// next line after a failed write, so on a full disk it took the server
// down; a log line is never worth that. The previous log is kept as
// LOG.old.
class DataDirLogger final : public rocksdb::Logger {
 public:
  explicit DataDirLogger(const std::string& dir)
      : rocksdb::Logger(rocksdb::InfoLogLevel::INFO_LEVEL) {
    const std::string path = dir + "/LOG";
    ::rename(path.c_str(), (path + ".old").c_str());
    fd_ = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  }
  ~DataDirLogger() override {
    if (fd_ >= 0) ::close(fd_);
  }

  using rocksdb::Logger::Logv;
  void Logv(const char* format, va_list ap) override {
    if (fd_ < 0) return;
    char line[4096];
    const absl::Time now = absl::Now();
    size_t n =
        absl::FormatTime("%Y/%m/%d-%H:%M:%E6S ", now, absl::UTCTimeZone())
            .copy(line, 64);
    va_list copy;
    va_copy(copy, ap);
    const int written =
        std::vsnprintf(line + n, sizeof(line) - n - 1, format, copy);
    va_end(copy);
    if (written > 0) {
      n = std::min(n + static_cast<size_t>(written), sizeof(line) - 2);
    }
    line[n++] = '\n';
    (void)!::write(fd_, line, n);  // a full disk drops the line
  }

 private:
  int fd_ = -1;
};

// The highest seq in the log column family (0 if empty).
absl::StatusOr<uint64_t> LastLogSeq(rocksdb::DB* db,
                                    rocksdb::ColumnFamilyHandle* log_cf) {
  std::unique_ptr<rocksdb::Iterator> it(
      db->NewIterator(rocksdb::ReadOptions(), log_cf));
  it->SeekToLast();
  uint64_t last = 0;
  if (it->Valid()) {
    if (it->key().size() != 8) {
      return absl::DataLossError("log column family holds a malformed key");
    }
    last = ParseLogKey(ToView(it->key()));
  }
  if (!it->status().ok()) return FromRocks(it->status(), "recover log");
  return last;
}

std::string DescribeWalDamage(const std::vector<WalDamage>& damage) {
  std::string out;
  for (const WalDamage& d : damage) {
    absl::StrAppend(&out, out.empty() ? "" : "; ", d.file, " at offset ",
                    d.offset, " of ", d.size, ": ", d.reason,
                    d.at_tail ? " (the last record)" : "");
  }
  return out;
}

// The highest seq a point-in-time recovery of the log (up to its first
// damage) holds, from a read-only open; "unknown" if that fails.
std::string VouchedSeq(
    rocksdb::DBOptions options, const std::string& dir,
    const std::vector<rocksdb::ColumnFamilyDescriptor>& cfs) {
  options.wal_recovery_mode = rocksdb::WALRecoveryMode::kPointInTimeRecovery;
  std::vector<rocksdb::ColumnFamilyHandle*> handles;
  rocksdb::DB* raw = nullptr;
  if (!rocksdb::DB::OpenForReadOnly(options, dir, cfs, &handles, &raw).ok()) {
    return "(unknown: a read-only recovery failed too)";
  }
  std::unique_ptr<rocksdb::DB> db(raw);
  auto last = LastLogSeq(db.get(), handles[3]);
  for (auto* h : handles) db->DestroyColumnFamilyHandle(h);
  return last.ok() ? absl::StrCat(*last) : "(unknown)";
}

// The part of a content hash an id record keeps (keys.h).
absl::string_view IdHash(const Sha256Digest& hash) {
  return absl::string_view(reinterpret_cast<const char*>(hash.data()),
                           kIdHashBytes);
}

// Id keys of one group or one request, for duplicates within it: open
// addressing (linear probing) over `entries_`. Reset keeps the memory, so
// an index reused from group to group allocates nothing once grown.
template <typename Value>
class IdIndex {
 public:
  // Empties the index, with room for `n` ids.
  void Reset(size_t n) {
    size_t slots = 16;
    while (slots < 2 * n) slots <<= 1;
    slots_.assign(slots, 0);
    mask_ = slots - 1;
    entries_.clear();
    entries_.reserve(n);
  }
  // The value inserted for `key`, or nullptr.
  const Value* Find(absl::string_view key) const {
    for (size_t i = Home(key);; i = (i + 1) & mask_) {
      const uint32_t e = slots_[i];
      if (e == 0) return nullptr;
      if (entries_[e - 1].first == key) return &entries_[e - 1].second;
    }
  }
  // REQUIRES: `key` is not in the index, fewer than `n` ids (of the last
  // Reset) are, and `key`'s bytes outlive its use here.
  void Insert(absl::string_view key, Value value) {
    size_t i = Home(key);
    while (slots_[i] != 0) i = (i + 1) & mask_;
    entries_.emplace_back(key, value);
    slots_[i] = static_cast<uint32_t>(entries_.size());
  }

 private:
  size_t Home(absl::string_view key) const {
    return absl::Hash<absl::string_view>()(key) & mask_;
  }
  std::vector<uint32_t> slots_;  // index in entries_ + 1; 0 = empty
  size_t mask_ = 0;
  std::vector<std::pair<absl::string_view, Value>> entries_;
};

// The entity prefix of an events key: be32(stream_id) | entity | 0x00.
// Entities hold no NUL, so the first NUL after the stream id ends it.
class EntityPrefixTransform final : public rocksdb::SliceTransform {
 public:
  const char* Name() const override { return "rawfeat.EntityPrefix.v1"; }
  rocksdb::Slice Transform(const rocksdb::Slice& key) const override {
    return rocksdb::Slice(key.data(), PrefixLength(key));
  }
  bool InDomain(const rocksdb::Slice& key) const override {
    return PrefixLength(key) > 0;
  }
  // 0 if the key has no entity terminator.
  static size_t PrefixLength(const rocksdb::Slice& key) {
    if (key.size() <= 4) return 0;
    const void* nul = std::memchr(key.data() + 4, '\0', key.size() - 4);
    if (nul == nullptr) return 0;
    return static_cast<const char*>(nul) - key.data() + 1;
  }
};

}  // namespace

struct EventStore::CommitScratch {
  // The group's id keys, end to end (reserved for all of them first, so
  // the views below stay put), and their id records.
  std::string key_bytes;
  std::string record_bytes;
  // One request's id keys, looked up MultiGet by MultiGet.
  std::vector<absl::string_view> keys;
  std::vector<rocksdb::PinnableSlice> found;
  std::vector<rocksdb::Status> statuses;
  // Ids first seen in this request -> the event's index in it, and ids
  // the group writes -> the event's content hash.
  IdIndex<size_t> local;
  IdIndex<const Sha256Digest*> group;
};

// ------------------------------------------------------------- ReadView

ReadView::~ReadView() {
  db_->ReleaseSnapshot(snapshot_);
  head_->Unregister(read_seq_);
}

rocksdb::ReadOptions EventStore::ReadOptionsOf(const ReadView* view) {
  rocksdb::ReadOptions ro;
  if (view != nullptr) {
    ro.snapshot = view->snapshot_;
    ro.fill_cache = view->fill_cache_;
  }
  return ro;
}

// ----------------------------------------------------------- EventStore

struct EventStore::Writer {
  explicit Writer(AppendRequest* r) : request(r) {}
  AppendRequest* request;
  AppendResult result;
  absl::Status status;
  bool done = false;
  absl::CondVar cv;
};

EventStore::EventStore(std::string dir, EventStoreOptions options)
    : dir_(std::move(dir)), options_(options) {}

EventStore::~EventStore() {
  stopping_.store(true, std::memory_order_release);
  if (sealer_.joinable()) {
    {
      absl::MutexLock l(&seal_state_mu_);
      stop_sealer_ = true;
      seal_cv_.Signal();
    }
    sealer_.join();
  }
  for (auto* h : handles_) db_->DestroyColumnFamilyHandle(h);
  handles_.clear();
  if (db_ == nullptr) return;
  const rocksdb::Status s = db_->Close();
  if (!s.ok() || reserved_ == 0) return;  // not opened, or not cleanly
  // A clean stop: the next open checks that every seq is still there.
  SeqFile clean;
  clean.reserved = reserved_;
  clean.clean_next = watermark() + 1;
  const absl::Status ws = clean.Write(dir_);
  if (!ws.ok())
    LogWarning(absl::StrCat("seq file not updated: ", ws.message()));
}

std::vector<DataLoss> EventStore::DataLosses() const { return losses_; }

absl::Status EventStore::RecordLoss(uint64_t first, uint64_t last,
                                    const std::string& detail) {
  const int64_t now = absl::ToUnixMicros(absl::Now());
  std::string key = kMetaLossPrefix;
  PutBigEndian64(&key, first);
  std::string value;
  PutBigEndian64(&value, last);
  PutBigEndian64(&value, static_cast<uint64_t>(now));
  value += detail;
  LogError(absl::StrCat("accepting the loss of seqs ", first, "..", last,
                        " (--accept_data_loss): ", detail));
  return PutMeta({{key, value}});
}

absl::StatusOr<std::unique_ptr<EventStore>> EventStore::Open(
    const std::string& dir, const EventStoreOptions& options) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) {
    return absl::InternalError(
        absl::StrCat("cannot create data dir ", dir, ": ", ec.message()));
  }
  std::unique_ptr<EventStore> store(new EventStore(dir, options));

  rocksdb::DBOptions db_options;
  db_options.create_if_missing = true;
  db_options.create_missing_column_families = true;
  db_options.IncreaseParallelism(2);
  db_options.max_background_jobs = 2;
  db_options.bytes_per_sync = 1 << 20;
  db_options.keep_log_file_num = 5;
  db_options.info_log = std::make_shared<DataDirLogger>(dir);
  if (options.env != nullptr) db_options.env = options.env;
  if (options.statistics) {
    // Tickers only (no histograms or timers): the cheap level.
    db_options.statistics = rocksdb::CreateDBStatistics();
    db_options.statistics->set_stats_level(
        rocksdb::StatsLevel::kExceptHistogramOrTimers);
  }
  store->statistics_ = db_options.statistics;
  // Our own group commit makes each append one RocksDB write, so parallel
  // memtable inserts never happen (and memtable insert hints need this).
  db_options.allow_concurrent_memtable_write = false;
  // A write-ahead log file can go once every family holding data from it
  // has flushed, and `meta` (a counter per group commit) fills slowly: by
  // default the logs could grow to 4x all memtables (several GiB) before
  // RocksDB flushes it, on disk and replayed at every restart. Past this
  // much log the families holding the oldest file flush.
  db_options.max_total_wal_size = 4 * options.write_buffer_bytes;

  auto cache = rocksdb::NewLRUCache(options.block_cache_bytes);
  // Lookups read an entity's tail block by a point read first
  // (event_cursor.cc): the row cache answers a repeated one from a hash
  // table instead of a filter, index and data block search in every level.
  // Its entries share the block cache's memory (and LRU order).
  db_options.row_cache = cache;
  enum class Bloom { kNone, kWholeKey, kPrefix };
  // With `pin`: every lookup seeks `events` and `tiles` in each level, so
  // their table files keep index and filter blocks pinned (held by the
  // table reader, still charged to the cache) and a seek skips two cache
  // lookups per file. Their filters are per entity prefix: they grow with
  // entities per file, not with events (ids, whose filters grow with
  // events, does not pin).
  auto make_cf = [&](Bloom bloom, bool pin = false) {
    rocksdb::ColumnFamilyOptions cf;
    cf.write_buffer_size = options.write_buffer_bytes;
    cf.max_write_buffer_number = 3;
    cf.level_compaction_dynamic_level_bytes = true;
    cf.compression = rocksdb::kLZ4Compression;
    // Ingest competes with compaction for 2 cores: fewer, larger
    // compactions and cheap compression keep the write path fed.
    cf.level0_file_num_compaction_trigger = kLevel0CompactionTrigger;
    cf.level0_slowdown_writes_trigger = 40;
    cf.level0_stop_writes_trigger = 56;
    cf.max_bytes_for_level_base = 512 << 20;
    cf.target_file_size_base = 64 << 20;
    rocksdb::BlockBasedTableOptions table;
    table.block_cache = cache;
    table.block_size = 16 << 10;
    table.cache_index_and_filter_blocks = true;
    table.pin_l0_filter_and_index_blocks_in_cache = true;
    if (pin) {
      table.metadata_cache_options.unpartitioned_pinning =
          rocksdb::PinningTier::kAll;
    }
    table.format_version = 5;
    if (bloom != Bloom::kNone) {
      table.filter_policy.reset(rocksdb::NewBloomFilterPolicy(10));
      table.whole_key_filtering = bloom == Bloom::kWholeKey;
    }
    cf.table_factory.reset(rocksdb::NewBlockBasedTableFactory(table));
    return cf;
  };
  // ids is only ever read by point lookups (whole-key Bloom filters). Its
  // memtable is a plain skiplist: a hash of skiplists inserted in O(1) but
  // rebuilt the whole memtable as one sorted skiplist at every flush (17% of
  // the server's CPU during ingest). Ids of one stream often arrive in
  // increasing order (counters, timestamps): inserts with a hint per stream
  // then skip the search.
  rocksdb::ColumnFamilyOptions ids_cf = make_cf(Bloom::kWholeKey);
  ids_cf.memtable_insert_with_hint_prefix_extractor.reset(
      rocksdb::NewFixedPrefixTransform(4));
  // Every appended event looks its id up, and new ids are absent: a whole
  // key Bloom filter per memtable answers those without a skiplist search
  // (which took 14% of the server's CPU in a CSV ingest).
  ids_cf.memtable_prefix_bloom_size_ratio = 0.02;
  ids_cf.memtable_whole_key_filtering = true;
  // events holds blocks (storage format 5 writes no key per event), a few
  // keys per sealed entity: the default skiplist memtable. Entity scans
  // (the read path) are prefix seeks; whole-stream scans ask for total
  // order (event_cursor.cc). Prefix blooms (per SST file and per memtable)
  // let an entity lookup skip every file and memtable that holds none of
  // its blocks.
  rocksdb::ColumnFamilyOptions events_cf = make_cf(Bloom::kPrefix, true);
  events_cf.prefix_extractor = std::make_shared<EntityPrefixTransform>();
  events_cf.memtable_prefix_bloom_size_ratio = 0.05;
  // Sealing deletes the keys of the events it moves into blocks: table
  // files dense with those deletions are compacted early, so seeks stop
  // skipping them.
  events_cf.table_properties_collector_factories.push_back(
      rocksdb::NewCompactOnDeletionCollectorFactory(1024, 512));
  // Retention drops old events, ids and tiles, and empties log entries,
  // as compactions rewrite them.
  RetentionPolicy* retention = &store->retention_;
  events_cf.compaction_filter_factory =
      NewRetentionFilterFactory(retention, RetentionFilterKind::kEvents);
  ids_cf.compaction_filter_factory =
      NewRetentionFilterFactory(retention, RetentionFilterKind::kIds);
  // A family whose keys arrive in no order has every level-0 file (a
  // flushed memtable) read and rewritten by the next compaction: written
  // uncompressed, its bytes are compressed once on their way down instead
  // of compressed, decompressed and compressed again (LZ4 was 42% of a
  // flush's CPU during ingest). Not `log`: its keys only grow, so its
  // files move down whole, as they were written, and must be compressed
  // then (RocksDB rewrites a file rather than move it to a level of
  // another compression).
  for (rocksdb::ColumnFamilyOptions* cf : {&ids_cf, &events_cf}) {
    cf->compression_per_level.assign(cf->num_levels, rocksdb::kLZ4Compression);
    cf->compression_per_level[0] = rocksdb::kNoCompression;
  }
  rocksdb::ColumnFamilyOptions log_cf = make_cf(Bloom::kNone);
  log_cf.compaction_filter_factory =
      NewRetentionFilterFactory(retention, RetentionFilterKind::kLog);
  // Tile keys begin with the same entity prefix as event keys. Most
  // entities have no tiles: a lookup's tile seek is then answered by the
  // prefix Bloom filters instead of a seek into every level. Scans of all
  // tiles ask for total order.
  rocksdb::ColumnFamilyOptions tiles_cf = make_cf(Bloom::kPrefix, true);
  tiles_cf.prefix_extractor = events_cf.prefix_extractor;
  tiles_cf.memtable_prefix_bloom_size_ratio = 0.05;
  tiles_cf.compaction_filter_factory =
      NewRetentionFilterFactory(retention, RetentionFilterKind::kTiles);
  std::vector<rocksdb::ColumnFamilyDescriptor> cfs = {
      {rocksdb::kDefaultColumnFamilyName, make_cf(Bloom::kNone)},
      {kEventsColumnFamily, events_cf},
      {kIdsColumnFamily, ids_cf},
      {kLogColumnFamily, log_cf},
      {kMetaColumnFamily, make_cf(Bloom::kNone)},
      {kTilesColumnFamily, tiles_cf},
  };
  // Replay the log tolerating only an incomplete last record: a write cut
  // short by a crash was never synced, so never acknowledged. Anything
  // else (a bad record inside the log) stops the start: RocksDB's default
  // would silently drop everything after it and hand its seqs out again.
  db_options.wal_recovery_mode =
      rocksdb::WALRecoveryMode::kTolerateCorruptedTailRecords;
  rocksdb::DB* raw = nullptr;
  rocksdb::Status s =
      rocksdb::DB::Open(db_options, dir, cfs, &store->handles_, &raw);
  std::string wal_damage;
  if (s.IsCorruption()) {
    const std::vector<WalDamage> damage = FindWalDamage(dir);
    if (damage.empty()) {
      return FromRocks(s, absl::StrCat("open ", dir));  // not the log
    }
    wal_damage = absl::StrCat(DescribeWalDamage(damage),
                              " (RocksDB: ", s.ToString(), ")");
    if (!options.accept_data_loss) {
      return absl::DataLossError(absl::StrCat(
          "the write-ahead log of ", dir, " is damaged: ", wal_damage,
          ". The store can vouch for seqs up to ",
          VouchedSeq(db_options, dir, cfs),
          "; acknowledged events after that are lost. Restore the data dir "
          "from a backup, or start with --accept_data_loss to serve what "
          "precedes the damage (the loss is recorded and its seqs are never "
          "issued again)"));
    }
    // Recover the log up to the damage.
    store->handles_.clear();
    db_options.wal_recovery_mode =
        rocksdb::WALRecoveryMode::kPointInTimeRecovery;
    s = rocksdb::DB::Open(db_options, dir, cfs, &store->handles_, &raw);
  }
  if (s.IsNoSpace()) {
    // Opening writes (a new log, a manifest, flushed memtables): on a full
    // disk serve reads only, from what is stored.
    LogWarning(absl::StrCat("disk full while opening ", dir, " (", s.ToString(),
                            "): serving reads only; free space and restart "
                            "to write again"));
    store->handles_.clear();
    s = rocksdb::DB::OpenForReadOnly(db_options, dir, cfs, &store->handles_,
                                     &raw);
    store->read_only_ = absl::StrCat(
        "disk full: this server opened ", dir,
        " read-only because its disk was full at start; free space and "
        "restart rawfeatd to write");
  }
  if (!s.ok()) return FromRocks(s, absl::StrCat("open ", dir));
  store->db_.reset(raw);
  store->events_cf_ = store->handles_[1];
  store->ids_cf_ = store->handles_[2];
  store->log_cf_ = store->handles_[3];
  store->meta_cf_ = store->handles_[4];
  store->tiles_cf_ = store->handles_[5];
  std::unique_ptr<rocksdb::LogFile> live_log;
  if (store->read_only_.empty() && raw->GetCurrentWalFile(&live_log).ok() &&
      live_log != nullptr) {
    const int removed = RemoveEmptyWals(dir, live_log->LogNumber());
    if (removed > 0) {
      LogInfo(absl::StrCat(dir, ": deleted ", removed,
                           " empty write-ahead log file(s) left by earlier "
                           "starts"));
    }
  }
  absl::Status rs = store->Recover(wal_damage);
  if (!rs.ok()) return rs;
  rs = store->LoadUnsealed();
  if (!rs.ok()) return rs;
  if (store->read_only_.empty()) {
    if (options.seal_min_events > 0) {
      EventStore* raw_store = store.get();
      store->sealer_ = std::thread([raw_store] {
        NameThisThread("rf-seal");
        raw_store->SealLoop();
      });
    }
  }
  return store;
}

absl::Status EventStore::CheckFormat() {
  std::string stored;
  const rocksdb::Status s =
      db_->Get(rocksdb::ReadOptions(), meta_cf_, kMetaFormatKey, &stored);
  if (s.ok()) {
    if (stored.size() != 4) {
      return absl::DataLossError(
          absl::StrCat("the storage format marker of ", dir_, " is corrupt"));
    }
    const uint32_t format = DecodeBigEndian32(stored.data());
    if (format == kStoreFormat) return absl::OkStatus();
    if (format < 1 || format > kStoreFormat) {
      return absl::FailedPreconditionError(absl::StrCat(
          dir_, " holds storage format ", format,
          "; this rawfeatd reads formats 1 to ", kStoreFormat,
          ". Start the rawfeatd release that wrote it (or a newer "
          "one); nothing was changed"));
    }
  } else if (!s.IsNotFound()) {
    return FromRocks(s, "read the storage format");
  }
  // A new store, or one of an earlier format (marked, or written before
  // the marker: format 1), which reads as it is. It is marked with this
  // format before anything of it is written, so an older server refuses
  // it from then on.
  if (!read_only_.empty()) return absl::OkStatus();
  if (s.ok()) {
    LogInfo(absl::StrCat(dir_, ": storage format ",
                         DecodeBigEndian32(stored.data()), " -> ",
                         kStoreFormat,
                         " (its stored events are read as they are; those "
                         "not sealed into blocks yet are loaded from the log "
                         "and sealed)"));
  }
  std::string marker;
  PutBigEndian32(&marker, kStoreFormat);
  return PutMeta({{kMetaFormatKey, marker}});
}

absl::Status EventStore::Recover(const std::string& wal_damage) {
  RETURN_IF_ERROR(CheckFormat());
  auto last = LastLogSeq(db_.get(), log_cf_);
  if (!last.ok()) return last.status();
  next_seq_ = *last + 1;
  watermark_.store(*last, std::memory_order_release);

  // What the seq file knows that the log may not.
  auto seq_file = SeqFile::Read(dir_);
  if (!seq_file.ok() && !absl::IsNotFound(seq_file.status())) {
    return seq_file.status();
  }
  const SeqFile known = seq_file.ok() ? *seq_file : SeqFile();
  std::string detail = wal_damage;
  if (known.clean_next > next_seq_) {
    // A clean stop left more seqs than the log now holds: its tail is gone
    // (cut at a record boundary, so RocksDB saw nothing wrong).
    absl::StrAppend(&detail, detail.empty() ? "" : "; ",
                    "the last clean stop left seqs up to ",
                    known.clean_next - 1, " but the store holds seqs up to ",
                    *last);
  } else if (known.clean_next != 0 && known.clean_next < next_seq_) {
    LogWarning(absl::StrCat("seq file of ", dir_,
                            " says the last clean stop "
                            "left seqs up to ",
                            known.clean_next - 1,
                            ", the store holds more (up to ", *last, ")"));
  }
  if (!detail.empty()) {
    // Every seq up to this one may have been issued.
    const uint64_t issued = known.clean_next > 0 ? known.clean_next - 1
                            : known.reserved > 0 ? known.reserved - 1
                                                 : *last;
    if (!options_.accept_data_loss) {
      return absl::DataLossError(absl::StrCat(
          "acknowledged events of ", dir_, " are lost: ", detail,
          ". The store can vouch for seqs up to ", *last,
          issued > *last ? absl::StrCat("; seqs up to ", issued,
                                        " may have been acknowledged")
                         : "",
          ". Restore the data dir from a backup, or start with "
          "--accept_data_loss to serve what is left (the loss is recorded "
          "and its seqs are never issued again)"));
    }
    RETURN_IF_ERROR(RecordLoss(*last + 1, std::max(issued, *last), detail));
    next_seq_ = std::max(next_seq_, issued + 1);
  }
  RETURN_IF_ERROR(ScanMeta(kMetaLossPrefix, [this](absl::string_view k,
                                                   absl::string_view v) {
    if (k.size() != strlen(kMetaLossPrefix) + 8 || v.size() < 16) return;
    DataLoss loss;
    loss.first_seq = DecodeBigEndian64(k.data() + strlen(kMetaLossPrefix));
    loss.last_seq = DecodeBigEndian64(v.data());
    loss.accepted_at_us = static_cast<int64_t>(DecodeBigEndian64(v.data() + 8));
    loss.detail = std::string(v.substr(16));
    losses_.push_back(std::move(loss));
  }));
  for (const DataLoss& loss : losses_) {
    next_seq_ = std::max(next_seq_, loss.last_seq + 1);
  }
  // Running: no clean marker until a clean stop; a block of seqs reserved.
  SeqFile running;
  running.reserved = std::max(known.reserved, next_seq_ + options_.seq_block);
  if (read_only_.empty()) {
    RETURN_IF_ERROR(running.Write(dir_));
    reserved_ = running.reserved;
  }
  {
    ExclusiveLock cl(this);
    absl::MutexLock tl(&tiles_mu_);
    RETURN_IF_ERROR(DropTilesOfOtherFormats());
    rocksdb::ReadOptions all;
    all.total_order_seek = true;
    std::unique_ptr<rocksdb::Iterator> tiles(db_->NewIterator(all, tiles_cf_));
    std::string day_key;
    for (tiles->SeekToFirst(); tiles->Valid(); tiles->Next()) {
      if (TileDayKey(ToView(tiles->key()), &day_key)) {
        tiled_[day_key].emplace_back(ToView(tiles->key()));
        absl::MutexLock sl(&tiled_scopes_mu_);
        const absl::string_view key = ToView(tiles->key());
        tiled_scopes_.emplace(key.substr(0, key.size() - 8));
      }
    }
    if (!tiles->status().ok()) return FromRocks(tiles->status(), "load tiles");
  }
  RETURN_IF_ERROR(ResumeErasures());
  RETURN_IF_ERROR(ScanMeta(
      kMetaHorizonPrefix, [this](absl::string_view k, absl::string_view v) {
        const absl::string_view id = k.substr(strlen(kMetaHorizonPrefix));
        if (id.size() == 4 && v.size() == 8) {
          retention_.Set(DecodeBigEndian32(id.data()), 0,
                         SignedFromOrdered(DecodeBigEndian64(v.data())));
        }
      }));
  absl::MutexLock l(&mu_);
  return ScanMeta(
      kMetaCountPrefix, [this](absl::string_view k, absl::string_view v) {
        mu_.AssertHeld();
        const absl::string_view id = k.substr(strlen(kMetaCountPrefix));
        if (id.size() == 4 && v.size() == 8) {
          counts_[DecodeBigEndian32(id.data())] = DecodeBigEndian64(v.data());
        }
      });
}

absl::Status EventStore::DropTilesOfOtherFormats() {
  std::string stored;
  const rocksdb::Status gs =
      db_->Get(rocksdb::ReadOptions(), meta_cf_, kMetaTileFormatKey, &stored);
  if (!gs.ok() && !gs.IsNotFound()) return FromRocks(gs, "read tile format");
  // A store without the marker predates it: its tiles are format 1.
  const uint32_t format = gs.IsNotFound() ? 1
                          : stored.size() == 4
                              ? DecodeBigEndian32(stored.data())
                              : 0;
  if (format == options_.tile_format) return absl::OkStatus();
  // Format 3 changed when a tile changes, not what it holds: a format-2
  // server deleted a day's tiles with every append to the day, so each of
  // its tiles holds exactly its day's events, none above its watermark --
  // a valid format-3 tile. The marker alone is rewritten.
  const bool valid = format == 2 && options_.tile_format == 3;
  if (!read_only_.empty()) {
    // Tiles it cannot drop are not read.
    tiles_readable_ = valid;
    return absl::OkStatus();
  }
  std::string marker;
  PutBigEndian32(&marker, options_.tile_format);
  rocksdb::WriteOptions wo;
  wo.sync = true;
  if (valid) {
    return FromRocks(db_->Put(wo, meta_cf_, kMetaTileFormatKey, marker),
                     "write tile format");
  }
  rocksdb::WriteBatch batch;
  int64_t dropped = 0;
  rocksdb::ReadOptions all;
  all.total_order_seek = true;
  std::unique_ptr<rocksdb::Iterator> tiles(db_->NewIterator(all, tiles_cf_));
  for (tiles->SeekToFirst(); tiles->Valid(); tiles->Next()) {
    batch.Delete(tiles_cf_, tiles->key());
    ++dropped;
  }
  if (!tiles->status().ok()) return FromRocks(tiles->status(), "read tiles");
  batch.Put(meta_cf_, kMetaTileFormatKey, ToSlice(marker));
  RETURN_IF_ERROR(FromRocks(db_->Write(wo, &batch), "drop old tiles"));
  if (dropped > 0) {
    LogInfo(absl::StrCat("dropped ", dropped, " tiles of format ", format,
                         " (this server writes format ", options_.tile_format,
                         "); they are rebuilt on demand"));
  }
  return absl::OkStatus();
}

absl::StatusOr<AppendResult> EventStore::Append(AppendRequest* request) {
  AppendChain* const chain = request->chain;
  const uint64_t position = request->chain_position;
  // Marks the request queued if it fails before it is.
  struct QueuedOnExit {
    AppendChain* chain;
    ~QueuedOnExit() {
      if (chain != nullptr) chain->MarkQueued();
    }
  } queued_on_exit{chain};
  // A chained request that fails breaks its chain before the next one of
  // the chain can be committed.
  auto failed = [chain, position](absl::Status s) {
    if (chain != nullptr) chain->Break(position);
    return s;
  };
  if (chain != nullptr && chain->Stops(position)) return ChainBroken();
  if (absl::Status s = MakeHeadRoom(); !s.ok()) return failed(s);
  Writer w(request);
  const int64_t horizon = Horizon(request->stream_id);
  if (horizon != kNoHorizon) {
    auto& events = request->events;
    const size_t before = events.size();
    events.erase(std::remove_if(events.begin(), events.end(),
                                [horizon](const PendingEvent& e) {
                                  return e.time_us < horizon;
                                }),
                 events.end());
    w.result.expired = static_cast<int64_t>(before - events.size());
  }
  mu_.Lock();
  writers_.push_back(&w);
  if (chain != nullptr) {
    // Its place in the commit order is taken: the next of its chain may
    // queue behind it.
    queued_on_exit.chain = nullptr;
    chain->MarkQueued();
  }
  // A writer of a group being published is off the queue but not done.
  while (!w.done && (writers_.empty() || writers_.front() != &w)) {
    w.cv.Wait(&mu_);
  }
  if (w.done) {
    mu_.Unlock();
    if (!w.status.ok()) return failed(w.status);
    return std::move(w.result);
  }
  // This writer leads: take a group from the front of the queue.
  std::vector<Writer*> group;
  size_t events = 0;
  for (Writer* other : writers_) {
    const size_t n = other->request->events.size();
    if (!group.empty() && events + n > options_.max_group_events) break;
    group.push_back(other);
    events += n;
  }
  mu_.Unlock();

  Publication publication;
  const absl::Status status = CommitGroup(group, &publication);

  // The next group may be decided and written while this one publishes.
  mu_.Lock();
  for (Writer* done : group) {
    writers_.pop_front();
    if (!status.ok()) {
      done->status = status;
      // Before the next group: no later request of the chain is written.
      if (done->request->chain != nullptr) {
        done->request->chain->Break(done->request->chain_position);
      }
    }
  }
  if (!writers_.empty()) writers_.front()->cv.Signal();
  mu_.Unlock();
  if (status.ok()) Publish(group, publication);
  mu_.Lock();
  for (Writer* done : group) {
    if (done != &w) {
      done->done = true;
      done->cv.Signal();
    }
  }
  mu_.Unlock();
  if (!status.ok()) return status;
  if (!w.status.ok()) return w.status;  // its chain broke before its turn
  return std::move(w.result);
}

void EventStore::Publish(const std::vector<Writer*>& group,
                         const Publication& publication) {
  AddToHead(publication.head_puts);
  {
    absl::MutexLock l(&mu_);
    watermark_.store(publication.watermark, std::memory_order_release);
  }
  for (Writer* w : group) w->result.watermark = publication.watermark;
  publish_mu_.Unlock();
}

absl::Status EventStore::CommitGroup(const std::vector<Writer*>& group,
                                     Publication* publication) {
  absl::MutexLock commit_lock(&commit_mu_);
  // A group's batch keeps its buffer for the next group unless it grew
  // past 16 MiB (a burst's groups do not keep their memory).
  ReusedWriteBatch reused(&commit_batch_, 0, size_t{16} << 20);
  rocksdb::WriteBatch& batch = *reused;
  uint64_t seq = next_seq_;
  size_t group_events = 0;
  size_t group_key_bytes = 0;
  for (const Writer* w : group) {
    group_events += w->request->events.size();
    for (const PendingEvent& e : w->request->events) {
      group_key_bytes += 4 + e.event_id.size();
    }
  }
  if (commit_scratch_ == nullptr) {
    commit_scratch_ = std::make_unique<CommitScratch>();
  }
  CommitScratch& scratch = *commit_scratch_;
  // Like the batch: what a burst's large group grew is not kept (about
  // 200 bytes an event).
  struct FreeLarge {
    std::unique_ptr<CommitScratch>* scratch;
    bool large;
    ~FreeLarge() {
      if (large) scratch->reset();
    }
  } free_large{&commit_scratch_, group_events > 32768};
  scratch.key_bytes.clear();
  scratch.key_bytes.reserve(group_key_bytes);
  // Reserved for the most the group's records can take: the views of
  // id_puts stay put too.
  scratch.record_bytes.clear();
  scratch.record_bytes.reserve(group_events * kMaxIdRecordBytes);
  scratch.group.Reset(group_events);
  absl::flat_hash_map<uint32_t, uint64_t> added;
  std::vector<std::pair<std::string, const std::string*>> event_puts;
  event_puts.reserve(group_events);
  // (id key, id record)
  std::vector<std::pair<absl::string_view, absl::string_view>> id_puts;
  id_puts.reserve(group_events);
  // Ids of erased events written again (by new events): once written,
  // the emptying of the erasure must leave their new records.
  std::vector<std::pair<PendingErase*, std::string>> reclaims;
  // The group's events go to the log as entries of up to
  // kLogEntryMaxEvents events, each keyed by its last seq.
  LogGroupWriter log(seq);

  for (Writer* w : group) {
    AppendRequest& req = *w->request;
    AppendResult& res = w->result;
    if (req.chain != nullptr && req.chain->Stops(req.chain_position)) {
      w->status = ChainBroken();  // a request before it failed
      continue;
    }
    const size_t n = req.events.size();
    std::vector<absl::string_view>& keys = scratch.keys;
    keys.resize(n);
    for (size_t i = 0; i < n; ++i) {
      const size_t at = scratch.key_bytes.size();
      AppendIdKey(req.stream_id, req.events[i].event_id, &scratch.key_bytes);
      keys[i] = absl::string_view(scratch.key_bytes).substr(at);
    }
    std::vector<rocksdb::PinnableSlice>& found = scratch.found;
    std::vector<rocksdb::Status>& statuses = scratch.statuses;
    found.resize(n);
    statuses.resize(n);
    // Values read from table blocks pin them: unpinned before the next
    // request, so no block stays held after the group (nor at close).
    struct Unpin {
      std::vector<rocksdb::PinnableSlice>* found;
      ~Unpin() {
        for (rocksdb::PinnableSlice& f : *found) f.Reset();
      }
    } unpin{&found};
    // At most 32 keys a call: RocksDB keeps that many lookups on the stack
    // (MultiGetContext::MAX_BATCH_SIZE) and grows a vector for more.
    constexpr size_t kMultiGetKeys = 32;
    for (size_t from = 0; from < n; from += kMultiGetKeys) {
      const size_t count = std::min(kMultiGetKeys, n - from);
      rocksdb::Slice slices[kMultiGetKeys];
      for (size_t i = 0; i < count; ++i) slices[i] = ToSlice(keys[from + i]);
      db_->MultiGet(rocksdb::ReadOptions(), ids_cf_, count, slices,
                    &found[from], &statuses[from]);
    }
    // An id whose event was erased (its record not yet emptied) is free.
    const PendingErasures pending = pending_erasures();
    std::vector<PendingErase*> reclaiming(pending.empty() ? 0 : n, nullptr);
    // Ids first seen in this request, by key -> index of the event.
    IdIndex<size_t>& local = scratch.local;
    local.Reset(n);
    std::vector<size_t> to_write;
    int64_t duplicates = 0;
    for (size_t i = 0; i < n; ++i) {
      const PendingEvent& e = req.events[i];
      // What decides duplicate or conflict: the stored id's hash.
      absl::string_view existing;
      IdRecord stored;
      std::string where;
      if (const size_t* earlier = local.Find(keys[i]); earlier != nullptr) {
        existing = IdHash(req.events[*earlier].content_hash);
        where =
            absl::StrCat("row ", req.events[*earlier].row, " of this batch");
      } else if (const Sha256Digest* const* written =
                     scratch.group.Find(keys[i]);
                 written != nullptr) {
        existing = IdHash(**written);
        where = "a concurrent batch";
      } else if (statuses[i].ok()) {
        if (!DecodeIdRecord(ToView(found[i]), &stored)) {
          return absl::DataLossError(
              absl::StrCat("corrupt id record for event_id ", e.event_id));
        }
        PendingErase* erased =
            pending.empty() ? nullptr : ErasedBy(pending, stored.seq);
        if (erased == nullptr) {
          existing = stored.hash;
          where = absl::StrCat("seq ", stored.seq);
        } else {
          reclaiming[i] = erased;  // free: the id is new again
        }
      } else if (!statuses[i].IsNotFound()) {
        return FromRocks(statuses[i], "id lookup");
      }
      if (existing.empty()) {
        local.Insert(keys[i], i);
        to_write.push_back(i);
      } else if (existing == IdHash(e.content_hash)) {
        ++duplicates;
      } else {
        res.conflicts.push_back(
            {e.row, e.event_id,
             absl::StrCat("conflict: event_id '", Echo(e.event_id),
                          "' is already stored (", where,
                          ") with different content; the original is kept")});
      }
    }
    if (req.atomic && !res.conflicts.empty()) {
      // Nothing written; nor any later request of its chain.
      if (req.chain != nullptr) req.chain->Break(req.chain_position);
      continue;
    }
    res.duplicates = duplicates;
    res.accepted = static_cast<int64_t>(to_write.size());
    for (size_t i : to_write) {
      const PendingEvent& e = req.events[i];
      const uint64_t s = seq++;
      std::string event_key = EventKey(req.stream_id, e.entity, e.time_us, s);
      log.Add(StoredEvent{s, req.stream_id, e.entity, e.time_us, e.value});
      if (log.events() >= kLogEntryMaxEvents ||
          log.bytes() >= kLogEntryMaxBytes) {
        batch.Put(log_cf_, ToSlice(LogKey(s)), ToSlice(log.value()));
        log.Reset(seq);
      }
      if (!reclaiming.empty() && reclaiming[i] != nullptr) {
        reclaims.emplace_back(reclaiming[i], std::string(keys[i]));
      }
      event_puts.push_back({std::move(event_key), &e.value});
      const size_t record_at = scratch.record_bytes.size();
      AppendIdRecord(s, IdHash(e.content_hash), e.time_us,
                     &scratch.record_bytes);
      id_puts.emplace_back(
          keys[i], absl::string_view(scratch.record_bytes).substr(record_at));
      scratch.group.Insert(keys[i], &e.content_hash);
    }
    added[req.stream_id] += to_write.size();
  }
  if (log.events() > 0) {
    batch.Put(log_cf_, ToSlice(LogKey(seq - 1)), ToSlice(log.value()));
  }
  // Memtable inserts dominate the write path. Inserting each column
  // family's keys in sorted order lets the skiplist reuse its last splice
  // instead of searching from the top for every key. (The event keys are
  // sorted for the head, which takes them entity by entity.)
  std::sort(event_puts.begin(), event_puts.end());
  std::sort(id_puts.begin(), id_puts.end());
  // The events themselves are written once, in the log entries above;
  // the head (event_head.h) indexes them by entity until they are sealed.
  for (const auto& [key, record] : id_puts) {
    batch.Put(ids_cf_, ToSlice(key), ToSlice(record));
  }

  absl::flat_hash_map<uint32_t, uint64_t> new_counts;
  {
    absl::MutexLock l(&mu_);
    for (const auto& [stream, n] : added) {
      if (n == 0) continue;
      const uint64_t total = counts_[stream] + n;
      new_counts[stream] = total;
      std::string v;
      PutBigEndian64(&v, total);
      batch.Put(meta_cf_, ToSlice(MetaCountKey(stream)), ToSlice(v));
    }
  }
  if (batch.Count() > 0) {
    RETURN_IF_ERROR(CheckWritable());
  }
  if (seq > reserved_) {
    // Reserve the next block of seqs before any of it is written, so that
    // no seq is issued twice even if the log is lost.
    SeqFile reserve;
    reserve.reserved = seq + options_.seq_block;
    absl::Status rs = reserve.Write(dir_);
    if (!rs.ok()) {
      return absl::UnavailableError(
          absl::StrCat("cannot reserve seqs: ", rs.message()));
    }
    reserved_ = reserve.reserved;
  }
  if (batch.Count() > 0) {
    rocksdb::WriteOptions wo;
    wo.sync = options_.sync;
    const rocksdb::Status s = db_->Write(wo, &batch);
    if (!s.ok()) {
      // Nothing of the group is visible and the watermark stays. The log
      // may hold part of it: before the next write, CheckWritable resumes
      // RocksDB and flushes, which retires that log, so these seqs are
      // issued again to what comes next. (Should the process die first,
      // a restart replays whatever of the group the log holds: events the
      // client was told failed, now present once, retries deduplicated.)
      needs_resume_ = true;
      const absl::Status error = FromRocks(s, "write events");
      last_write_failure_ = error;
      LogError(absl::StrCat("event write failed: ", error.message()));
      absl::MutexLock l(&mu_);
      write_error_ = std::string(error.message());
      return error;
    }
    if (needs_resume_) {
      needs_resume_ = false;
      LogInfo("event writes work again");
    }
  }
  next_seq_ = seq;
  for (auto& [erasing, key] : reclaims) {
    erasing->reclaimed.insert(std::move(key));
  }
  {
    absl::MutexLock l(&mu_);
    for (const auto& [stream, total] : new_counts) counts_[stream] = total;
    write_error_.clear();
  }
  publication->head_puts = std::move(event_puts);
  publication->watermark = seq - 1;
  publish_mu_.Lock();  // before commit_mu_ is released: groups publish in order
  return absl::OkStatus();
}

absl::flat_hash_map<uint32_t, uint64_t> EventStore::StreamCounts() const {
  absl::MutexLock l(&mu_);
  return counts_;
}

std::unique_ptr<ReadView> EventStore::NewReadView(bool fill_cache) const {
  std::unique_ptr<ReadView> view(new ReadView(db_.get(), &head_, fill_cache));
  // Registered with the head at the snapshot's sequence: the head keeps
  // every event this view must show until the view is gone.
  view->read_seq_ = head_.Register([&] {
    view->snapshot_ = db_->GetSnapshot();
    return view->snapshot_->GetSequenceNumber();
  });
  return view;
}

absl::StatusOr<EventStore::PinnedRead> EventStore::PinRead(
    uint64_t requested, bool fill_cache) const {
  for (const DataLoss& loss : losses_) {
    if (requested >= loss.first_seq && requested <= loss.last_seq) {
      return absl::DataLossError(absl::StrCat(
          "watermark ", requested, " lies in seqs ", loss.first_seq, "..",
          loss.last_seq, ", lost at ",
          absl::FormatTime(absl::RFC3339_sec,
                           absl::FromUnixMicros(loss.accepted_at_us),
                           absl::UTCTimeZone()),
          " (", loss.detail, "): its answers cannot be reproduced"));
    }
  }
  // The watermark first, then the snapshot: every seq <= the watermark was
  // durable and visible before it was published, so the snapshot holds it.
  const uint64_t latest = watermark();
  if (requested > latest) {
    return absl::InvalidArgumentError(absl::StrCat(
        "watermark ", requested, " is above the latest (", latest, ")"));
  }
  PinnedRead pinned;
  pinned.watermark = requested == 0 ? latest : requested;
  pinned.view = NewReadView(fill_cache);
  return pinned;
}

absl::Status EventStore::WriteTiles(const TileScope& scope,
                                    const std::vector<int64_t>& days,
                                    const TileBuilder& build) {
  if (!read_only_.empty()) return absl::ResourceExhaustedError(read_only_);
  TileBuild registered;
  registered.entity_prefix = EntityPrefix(scope.stream_id, scope.entity);
  for (int64_t day : days) {
    registered.days.insert(
        EntityTimeKey(scope.stream_id, scope.entity, DayStart(day)));
  }
  {
    // Registered before the pin: a seal written after the pin finds the
    // build and voids the days it seals into (the build's view lacks
    // them, and they leave the head, where reads of the tile look).
    absl::MutexLock tiles_lock(&tiles_mu_);
    tile_builds_.push_back(&registered);
  }
  uint64_t w = 0;
  std::unique_ptr<ReadView> view;
  {
    // No group is half committed under the lock: the view holds exactly
    // the events up to the watermark.
    ExclusiveLock commit_lock(this);
    w = watermark();
    // A day is read once to be tiled; lookups then read the tile instead.
    view = NewReadView(/*fill_cache=*/false);
  }
  {
    // From now on a seal voids a day only if it seals an event the view
    // lacks: those up to w are in it (and stay in the tile built from it).
    absl::MutexLock tiles_lock(&tiles_mu_);
    registered.pinned = true;
    registered.watermark = w;
  }
  std::vector<std::pair<int64_t, std::string>> tiles;
  absl::Status s = build(w, view.get(), &tiles);
  view.reset();
  // Under the lock a seal holds from its folds to its write: a tile is
  // stored either before a seal folds (and the seal folds it) or after it
  // voided the build.
  tiles_mu_.Lock();
  tile_builds_.erase(
      std::find(tile_builds_.begin(), tile_builds_.end(), &registered));
  if (s.ok()) s = StoreTiles(scope, w, registered, tiles);
  tiles_mu_.Unlock();
  if (s.ok() || s.code() == absl::StatusCode::kInvalidArgument) return s;
  // RocksDB stopped writes: the next append resumes it first
  // (CheckWritable) instead of failing on the stop.
  ExclusiveLock commit_lock(this);
  needs_resume_ = true;
  last_write_failure_ = s;
  LogWarning(absl::StrCat("tile write failed: ", s.message()));
  return s;
}

absl::Status EventStore::StoreTiles(
    const TileScope& scope, uint64_t w, const TileBuild& registered,
    const std::vector<std::pair<int64_t, std::string>>& tiles) {
  const std::string prefix =
      TilePrefix(scope.stream_id, scope.entity, scope.view, scope.version);
  std::vector<std::string> keys;
  std::vector<std::string> day_keys;
  rocksdb::WriteBatch batch;
  std::string value;
  for (const auto& [day, payload] : tiles) {
    std::string day_key = EntityTimeKey(scope.stream_id, scope.entity, day);
    if (!registered.days.contains(day_key)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "a tile for ", FormatMicros(day), ", not a day being built"));
    }
    if (registered.voided.contains(day_key)) continue;  // changed since
    keys.push_back(TileKey(prefix, day));
    day_keys.push_back(std::move(day_key));
    value.clear();
    PutBigEndian64(&value, w);
    value += payload;
    batch.Put(tiles_cf_, ToSlice(keys.back()), ToSlice(value));
  }
  if (keys.empty()) return absl::OkStatus();
  RETURN_IF_ERROR(
      FromRocks(db_->Write(rocksdb::WriteOptions(), &batch), "write tiles"));
  {
    absl::MutexLock sl(&tiled_scopes_mu_);
    tiled_scopes_.insert(prefix);
  }
  for (size_t i = 0; i < keys.size(); ++i) {
    auto& stored = tiled_[day_keys[i]];
    if (std::find(stored.begin(), stored.end(), keys[i]) == stored.end()) {
      stored.push_back(std::move(keys[i]));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<uint64_t> EventStore::Checkpoint(const std::string& dir) {
  rocksdb::Checkpoint* raw = nullptr;
  RETURN_IF_ERROR(
      FromRocks(rocksdb::Checkpoint::Create(db_.get(), &raw), "checkpoint"));
  std::unique_ptr<rocksdb::Checkpoint> checkpoint(raw);
  // Flushed first, while appends go on, so the log copied below (with
  // appends waiting) is only what arrived since.
  rocksdb::FlushOptions flush;
  flush.allow_write_stall = true;
  RETURN_IF_ERROR(FromRocks(db_->Flush(flush, handles_), "flush"));
  // No group commits meanwhile: the log holds whole groups up to W.
  ExclusiveLock commit_lock(this);
  const uint64_t w = watermark();
  RETURN_IF_ERROR(FromRocks(
      checkpoint->CreateCheckpoint(dir, std::numeric_limits<uint64_t>::max()),
      "checkpoint"));
  return w;
}

std::string EventStore::Identity() const {
  std::string identity;
  if (!db_->GetDbIdentity(identity).ok()) return "";
  return identity;
}

void EventStore::SetTileFolder(const void* owner, TileFolder folder) {
  absl::MutexLock l(&tiles_mu_);
  SetOwned(owner, std::move(folder), &tile_folder_owner_, &tile_folder_);
}

size_t EventStore::TileCount() const {
  absl::MutexLock l(&tiles_mu_);
  // Tiles of days retention drops (or has dropped) are not counted, nor
  // remembered: no read or append can reach those days any more.
  const auto cutoffs = retention_.Cutoffs(absl::ToUnixMicros(absl::Now()));
  if (!cutoffs.empty()) {
    for (auto it = tiled_.begin(); it != tiled_.end();) {
      // The key is EntityTimeKey(stream, entity, day start).
      const absl::string_view day_key = it->first;
      auto cut = cutoffs.find(DecodeBigEndian32(day_key.data()));
      const int64_t day = SignedFromOrdered(
          DecodeBigEndian64(day_key.data() + day_key.size() - 8));
      if (cut != cutoffs.end() && day < cut->second - kDayMicros) {
        tiled_.erase(it++);
      } else {
        ++it;
      }
    }
  }
  size_t n = 0;
  for (const auto& [day, keys] : tiled_) n += keys.size();
  return n;
}

absl::Status EventStore::ScanLog(
    uint64_t after_seq, uint64_t up_to_seq, const ReadView* view,
    const std::function<bool(const StoredEvent&)>& fn) const {
  if (up_to_seq <= after_seq) return absl::OkStatus();
  rocksdb::ReadOptions ro = ReadOptionsOf(view);
  // No upper bound: the entry holding up_to_seq may be keyed above it.
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(ro, log_cf_));
  const PendingErasures pending = pending_erasures();
  bool stop = false;
  // Format-1 entries written before the log carried values hold only the
  // event's key: their events are read in batches, keeping seq order.
  constexpr size_t kFetch = 1024;
  std::vector<std::string> keys, values;
  auto drain = [&]() {
    if (keys.empty()) return absl::OkStatus();
    RETURN_IF_ERROR(MultiGetEvents(keys, view, &values));
    for (size_t i = 0; i < keys.size() && !stop; ++i) {
      if (values[i].empty()) {
        return absl::DataLossError(absl::StrCat(
            "the log entry at seq ", DecodeBigEndian64(
                keys[i].data() + keys[i].size() - 8),
            " names a missing event (key ", HexEncode(keys[i]), ")"));
      }
      ParsedEventKey k;
      ParseEventKey(keys[i], &k);  // it parsed when the entry was read
      stop = !fn(StoredEvent{k.seq, k.stream_id, k.entity, k.time_us,
                             values[i]});
    }
    keys.clear();
    return absl::OkStatus();
  };
  LogEntryReader reader;
  StoredEvent e;
  for (it->Seek(ToSlice(LogKey(after_seq + 1))); it->Valid() && !stop;
       it->Next()) {
    const uint64_t key_seq = ParseLogKey(ToView(it->key()));
    if (!reader.Reset(key_seq, ToView(it->value()))) {
      return MalformedLogEntry(key_seq);
    }
    while (!stop && reader.Next(&e)) {
      if (e.seq <= after_seq) continue;
      if (e.seq > up_to_seq) {
        stop = true;
        break;
      }
      if (!pending.empty() && ErasedBy(pending, e.seq) != nullptr) {
        continue;  // erased; its entry is being emptied
      }
      if (e.value.empty()) {
        keys.push_back(EventKey(e.stream_id, e.entity, e.time_us, e.seq));
        if (keys.size() >= kFetch) RETURN_IF_ERROR(drain());
        continue;
      }
      RETURN_IF_ERROR(drain());
      if (!stop) stop = !fn(e);
    }
    if (!reader.ok()) {
      return MalformedLogEntry(key_seq);
    }
    if (key_seq >= up_to_seq) break;
  }
  RETURN_IF_ERROR(FromRocks(it->status(), "scan log"));
  return drain();
}

absl::Status EventStore::MultiGetEvents(
    const std::vector<std::string>& keys, const ReadView* view,
    std::vector<std::string>* values) const {
  const size_t n = keys.size();
  values->assign(n, std::string());
  if (n == 0) return absl::OkStatus();
  std::vector<rocksdb::Slice> slices(n);
  for (size_t i = 0; i < n; ++i) slices[i] = ToSlice(keys[i]);
  std::vector<rocksdb::PinnableSlice> found(n);
  std::vector<rocksdb::Status> statuses(n);
  rocksdb::ReadOptions ro = ReadOptionsOf(view);
  db_->MultiGet(ro, events_cf_, n, slices.data(), found.data(),
                statuses.data());
  for (size_t i = 0; i < n; ++i) {
    if (statuses[i].ok()) {
      (*values)[i].assign(found[i].data(), found[i].size());
    } else if (!statuses[i].IsNotFound()) {
      return FromRocks(statuses[i], "read events");
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> EventStore::GetMeta(absl::string_view key) const {
  std::string value;
  const rocksdb::Status s =
      db_->Get(rocksdb::ReadOptions(), meta_cf_, ToSlice(key), &value);
  if (!s.ok()) return FromRocks(s, absl::StrCat("meta ", key));
  return value;
}

absl::Status EventStore::PutMeta(
    const std::vector<std::pair<std::string, std::string>>& kvs) {
  if (!read_only_.empty()) return absl::ResourceExhaustedError(read_only_);
  absl::MutexLock l(&meta_mu_);
  rocksdb::WriteBatch batch;
  for (const auto& [k, v] : kvs) batch.Put(meta_cf_, ToSlice(k), ToSlice(v));
  rocksdb::WriteOptions wo;
  wo.sync = true;
  return FromRocks(db_->Write(wo, &batch), "write definitions");
}

absl::Status EventStore::ScanMeta(
    absl::string_view prefix,
    const std::function<void(absl::string_view, absl::string_view)>& fn) const {
  const std::string upper = PrefixSuccessor(prefix);
  const rocksdb::Slice upper_slice = ToSlice(upper);
  rocksdb::ReadOptions ro;
  if (!upper.empty()) ro.iterate_upper_bound = &upper_slice;
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(ro, meta_cf_));
  for (it->Seek(ToSlice(prefix)); it->Valid(); it->Next()) {
    fn(ToView(it->key()), ToView(it->value()));
  }
  return FromRocks(it->status(), "scan meta");
}

EventStore::EngineStats EventStore::Stats() const {
  EngineStats stats;
  auto sum = [&](const char* property) {
    uint64_t total = 0;
    for (auto* cf : handles_) {
      uint64_t n = 0;
      if (db_->GetIntProperty(cf, property, &n)) total += n;
    }
    return total;
  };
  stats.pending_compaction_bytes =
      sum("rocksdb.estimate-pending-compaction-bytes");
  stats.memtable_bytes = sum("rocksdb.cur-size-all-mem-tables");
  stats.live_sst_bytes = sum("rocksdb.live-sst-files-size");
  uint64_t n = 0;
  // One cache shared by every column family.
  if (db_->GetIntProperty(events_cf_, "rocksdb.block-cache-usage", &n)) {
    stats.block_cache_bytes = n;
  }
  stats.write_stopped =
      db_->GetIntProperty("rocksdb.is-write-stopped", &n) && n > 0;
  stats.delayed_write_rate =
      db_->GetIntProperty("rocksdb.actual-delayed-write-rate", &n) ? n : 0;
  if (statistics_ != nullptr) {
    stats.block_cache_hits =
        statistics_->getTickerCount(rocksdb::BLOCK_CACHE_HIT);
    stats.block_cache_misses =
        statistics_->getTickerCount(rocksdb::BLOCK_CACHE_MISS);
    stats.stall_micros = statistics_->getTickerCount(rocksdb::STALL_MICROS);
  }
  stats.tiles_invalidated = tiles_invalidated_.load(std::memory_order_relaxed);
  stats.tiles_folded = tiles_folded_.load(std::memory_order_relaxed);
  for (auto* cf : {events_cf_, tiles_cf_}) {
    std::string files;  // a string property, not an int one
    uint64_t count = 0;
    if (db_->GetProperty(cf, "rocksdb.num-files-at-level0", &files) &&
        absl::SimpleAtoi(files, &count)) {
      stats.read_level0_files += count;
    }
  }
  return stats;
}

void EventStore::TuneForReads(bool idle) {
  if (idle == tuned_for_reads_) return;
  const std::string trigger =
      std::to_string(idle ? 1 : kLevel0CompactionTrigger);
  for (auto* cf : {events_cf_, tiles_cf_}) {
    const rocksdb::Status s =
        db_->SetOptions(cf, {{"level0_file_num_compaction_trigger", trigger}});
    if (!s.ok()) {
      // Not retried until appends pause or resume again (no warning every
      // half second while, say, the disk is full).
      LogWarning(absl::StrCat("level-0 compaction trigger of ",
                              cf->GetName(), " not set: ", s.ToString()));
    }
  }
  tuned_for_reads_ = idle;
}

bool EventStore::Compacting() const {
  for (auto* cf : handles_) {
    for (const char* property :
         {"rocksdb.num-running-compactions", "rocksdb.compaction-pending",
          "rocksdb.num-running-flushes", "rocksdb.mem-table-flush-pending"}) {
      uint64_t n = 0;
      if (db_->GetIntProperty(cf, property, &n) && n > 0) return true;
    }
  }
  return false;
}

uint64_t EventStore::DiskFreeBytes() const {
  struct statvfs fs;
  if (::statvfs(dir_.c_str(), &fs) != 0) return 0;
  return static_cast<uint64_t>(fs.f_bavail) * fs.f_frsize;
}

std::string EventStore::WriteError() const {
  if (!read_only_.empty()) return read_only_;
  absl::MutexLock l(&mu_);
  return write_error_;
}

absl::Status EventStore::CheckWritable() {
  const uint64_t free = DiskFreeBytes();
  absl::Status refused;
  if (!read_only_.empty()) {
    refused = absl::ResourceExhaustedError(read_only_);
  } else if (free < options_.min_free_bytes) {
    refused = absl::ResourceExhaustedError(absl::StrCat(
        "disk full: the disk of ", dir_, " has ", free >> 20,
        " MiB free, below the reserve of ", options_.min_free_bytes >> 20,
        " MiB (--min_free_disk_mb); writes are refused until space is freed, "
        "reads go on"));
  } else if (needs_resume_) {
    // The last write failed (RocksDB stopped writes): resume RocksDB, and
    // flush what it holds, so the log that saw the failure is never
    // replayed (a half-written batch stays gone).
    rocksdb::Status s = db_->Resume();
    if (s.ok()) {
      rocksdb::FlushOptions fo;
      s = db_->Flush(fo, handles_);
    }
    if (s.IsBusy()) {
      // RocksDB's own recovery runs (it waits for free space).
      refused = absl::Status(
          last_write_failure_.code(),
          absl::StrCat("writes are paused while the store recovers from: ",
                       last_write_failure_.message(), "; retry"));
    } else if (!s.ok()) {
      // RocksDB stops for good after some I/O errors (a failed log or
      // manifest write it cannot retry): only reopening the store helps.
      refused = absl::Status(
          last_write_failure_.code(),
          absl::StrCat("writes are stopped after an I/O error the store "
                       "cannot resume from (",
                       last_write_failure_.message(),
                       "; resume: ", s.ToString(),
                       "); reads go on; restart rawfeatd once the disk is "
                       "healthy"));
    }
  }
  if (!refused.ok()) {
    absl::MutexLock l(&mu_);
    write_error_ = std::string(refused.message());
  }
  return refused;
}

uint64_t EventStore::DiskBytes() const {
  uint64_t total = 0;
  std::error_code ec;
  for (auto it = std::filesystem::recursive_directory_iterator(dir_, ec);
       !ec && it != std::filesystem::recursive_directory_iterator();
       it.increment(ec)) {
    std::error_code size_ec;
    if (it->is_regular_file(size_ec)) {
      const auto size = it->file_size(size_ec);
      if (!size_ec) total += size;
    }
  }
  return total;
}

int64_t EventStore::Horizon(uint32_t stream_id) const {
  return retention_.Horizon(stream_id, absl::ToUnixMicros(absl::Now()));
}

void EventStore::LoadRetention(uint32_t stream_id, int64_t retention_us) {
  retention_.Set(stream_id, retention_us, kNoHorizon);
}

namespace {

const char* DefinitionPrefix(EventStore::DefinitionKind kind) {
  switch (kind) {
    case EventStore::DefinitionKind::kStream:
      return kMetaStreamPrefix;
    case EventStore::DefinitionKind::kView:
      return kMetaViewPrefix;
    case EventStore::DefinitionKind::kService:
      return kMetaServicePrefix;
  }
  return "";
}

}  // namespace

absl::Status EventStore::ScanDefinitions(
    DefinitionKind kind,
    const std::function<void(absl::string_view, absl::string_view)>& fn) const {
  return ScanMeta(DefinitionPrefix(kind),
                  [&](absl::string_view key, absl::string_view value) {
                    fn(absl::CHexEscape(key), value);
                  });
}

absl::StatusOr<uint32_t> EventStore::HighestCountedStreamId() const {
  uint32_t highest = 0;
  RETURN_IF_ERROR(
      ScanMeta(kMetaCountPrefix, [&](absl::string_view key, absl::string_view) {
        const size_t p = strlen(kMetaCountPrefix);
        if (key.size() == p + 4) {
          highest = std::max(highest, DecodeBigEndian32(key.data() + p));
        }
      }));
  return highest;
}

absl::Status EventStore::PutDefinitions(
    const std::vector<Definition>& definitions,
    const std::vector<std::pair<uint32_t, int64_t>>& retention) {
  std::vector<std::pair<std::string, std::string>> kvs;
  for (const Definition& d : definitions) {
    std::string key;
    switch (d.kind) {
      case DefinitionKind::kStream:
        key = MetaStreamKey(d.name);
        break;
      case DefinitionKind::kView:
        key = MetaViewKey(d.name, d.version);
        break;
      case DefinitionKind::kService:
        key = MetaServiceKey(d.name, d.version);
        break;
    }
    kvs.emplace_back(std::move(key), d.bytes);
  }
  if (retention.empty()) return PutMeta(kvs);
  // No compaction filter is made while the change is written: each one
  // snapshots the cutoffs, which must never pass a floor written here.
  absl::WriterMutexLock change(retention_.change_mu());
  const int64_t now = absl::ToUnixMicros(absl::Now());
  std::vector<std::pair<std::string, std::string>> writes = kvs;
  std::vector<int64_t> floors;
  for (const auto& [stream, retention_us] : retention) {
    const int64_t floor = retention_.FloorForChange(stream, retention_us, now);
    floors.push_back(floor);
    if (floor == kNoHorizon) continue;
    std::string key = kMetaHorizonPrefix;
    PutBigEndian32(&key, stream);
    std::string value;
    PutBigEndian64(&value, OrderedFromSigned(floor));
    writes.emplace_back(std::move(key), std::move(value));
  }
  RETURN_IF_ERROR(PutMeta(writes));
  for (size_t i = 0; i < retention.size(); ++i) {
    retention_.Set(retention[i].first, retention[i].second, floors[i]);
  }
  return absl::OkStatus();
}

absl::Status EventStore::CompactAll() {
  if (!read_only_.empty()) return absl::ResourceExhaustedError(read_only_);
  // Unsealed events first, so retention meets them in their blocks.
  RETURN_IF_ERROR(Seal(1));
  rocksdb::FlushOptions flush;
  RETURN_IF_ERROR(FromRocks(db_->Flush(flush, handles_), "flush"));
  rocksdb::CompactRangeOptions compact;
  compact.bottommost_level_compaction =
      rocksdb::BottommostLevelCompaction::kForce;
  for (auto* cf : handles_) {
    RETURN_IF_ERROR(
        FromRocks(db_->CompactRange(compact, cf, nullptr, nullptr), "compact"));
  }
  return absl::OkStatus();
}

namespace {

// The record of an erasure whose events are deleted and whose log entries
// and ids are still being emptied: be32(stream) | varint seq deltas.
std::string EncodePendingErase(uint32_t stream_id,
                               const std::vector<uint64_t>& seqs) {
  std::string v;
  PutBigEndian32(&v, stream_id);
  uint64_t last = 0;
  for (uint64_t seq : seqs) {
    PutVarint64(&v, seq - last);
    last = seq;
  }
  return v;
}

bool DecodePendingErase(absl::string_view v, std::vector<uint64_t>* seqs) {
  if (v.size() < 4) return false;
  v.remove_prefix(4);
  uint64_t last = 0, delta = 0;
  while (!v.empty()) {
    if (!GetVarint64(&v, &delta)) return false;
    last += delta;
    seqs->push_back(last);
  }
  return true;
}

}  // namespace

EventStore::PendingErase* EventStore::ErasedBy(const PendingErasures& pending,
                                               uint64_t seq) {
  for (const auto& p : pending) {
    if (std::binary_search(p->seqs.begin(), p->seqs.end(), seq)) return p.get();
  }
  return nullptr;
}

EventStore::PendingErasures EventStore::pending_erasures() const {
  if (pending_count_.load(std::memory_order_acquire) == 0) return {};
  absl::MutexLock l(&mu_);
  return pending_;
}

absl::StatusOr<EventStore::EraseResult> EventStore::Erase(
    uint32_t stream_id, absl::string_view entity, v1::Erasure record) {
  if (entity.empty() || entity.find('\0') != absl::string_view::npos) {
    return absl::InvalidArgumentError(
        "entity must be non-empty and hold no NUL byte");
  }
  if (!read_only_.empty()) return absl::ResourceExhaustedError(read_only_);
  // One erasure at a time: a second one of the same entity finds what the
  // first left (nothing), never the same events again.
  absl::MutexLock erase_lock(&erase_mu_);
  const std::string prefix = EntityPrefix(stream_id, entity);
  const std::string upper = PrefixSuccessor(prefix);
  auto erasing = std::make_shared<PendingErase>();
  std::vector<uint64_t>& seqs = erasing->seqs;
  // (seq, id key) of every event found.
  std::vector<std::pair<uint64_t, std::string>> found;
  EventValueReader reader;
  auto take = [&](uint64_t seq, absl::string_view value) {
    if (!reader.ParseId(value)) {
      return absl::DataLossError(absl::StrCat(
          "corrupt stored event of the entity being erased (seq ", seq, ")"));
    }
    found.emplace_back(seq, IdKey(stream_id, reader.event_id()));
    return absl::OkStatus();
  };
  // The entity's seqs, from a snapshot while appends go on.
  auto pinned = PinRead(0);
  if (!pinned.ok()) return pinned.status();
  {
    auto cursor = ScanEntity(stream_id, entity, kMinEventTime, kMaxEventTime,
                             pinned->view.get());
    for (; cursor->Valid(); cursor->Next()) {
      // Later seqs (the head shows them) are the log scan's, below.
      if (cursor->seq() > pinned->watermark) continue;
      RETURN_IF_ERROR(take(cursor->seq(), cursor->value()));
    }
    RETURN_IF_ERROR(cursor->status());
  }
  pinned->view.reset();

  // The commit is small whatever the entity's size: its events and tiles
  // go as two range deletions, with a record of its seqs; the log entries
  // and ids of those seqs are emptied afterwards (EmptyErased), and until
  // then readers and ingest skip them.
  uint64_t watermark = 0;
  {
    // No sealing writes the entity's events back after the deletion.
    absl::MutexLock seal_lock(&seal_mu_);
    ExclusiveLock commit_lock(this);
    // Events appended since the snapshot: the log names them.
    watermark = this->watermark();
    absl::Status inner;
    RETURN_IF_ERROR(ScanLog(
        pinned->watermark, watermark, nullptr, [&](const StoredEvent& e) {
          if (e.stream_id != stream_id || e.entity != entity) {
            return true;
          }
          inner = take(e.seq, e.value);
          return inner.ok();
        }));
    RETURN_IF_ERROR(inner);
    std::sort(found.begin(), found.end());
    seqs.reserve(found.size());
    for (const auto& f : found) seqs.push_back(f.first);
    const uint64_t events = seqs.size();
    rocksdb::WriteBatch batch;
    batch.DeleteRange(events_cf_, ToSlice(prefix), ToSlice(upper));
    const std::string blocks = BlockPrefix(stream_id, entity);
    batch.DeleteRange(events_cf_, ToSlice(blocks),
                      ToSlice(PrefixSuccessor(blocks)));
    // And the tail block's key by itself: lookups read it by key, and
    // RocksDB's row cache (this version's) replays an entry without the
    // range deletions of the table file it came from, so a file holding
    // both the tail (kept for an older view) and the range deletion would
    // serve the tail again. A point deletion is part of that entry.
    batch.Delete(events_cf_, ToSlice(TailBlockKey(stream_id, entity)));
    batch.DeleteRange(tiles_cf_, ToSlice(prefix), ToSlice(upper));
    {
      absl::MutexLock l(&mu_);
      const uint64_t count = counts_[stream_id];
      std::string v;
      PutBigEndian64(&v, count - std::min(count, events));
      batch.Put(meta_cf_, ToSlice(MetaCountKey(stream_id)), ToSlice(v));
    }
    const int64_t now = absl::ToUnixMicros(absl::Now());
    last_erasure_us_ = std::max(now, last_erasure_us_ + 1);
    record.set_events(events);
    record.set_watermark(watermark);
    *record.mutable_at() = MicrosToTimestamp(last_erasure_us_);
    std::string log_key = kMetaErasurePrefix;
    PutBigEndian64(&log_key, OrderedFromSigned(last_erasure_us_));
    batch.Put(meta_cf_, ToSlice(log_key), record.SerializeAsString());
    if (events > 0) {
      erasing->key = kMetaErasingPrefix;
      PutBigEndian64(&erasing->key, OrderedFromSigned(last_erasure_us_));
      batch.Put(meta_cf_, ToSlice(erasing->key),
                EncodePendingErase(stream_id, seqs));
    }
    RETURN_IF_ERROR(CheckWritable());
    rocksdb::WriteOptions wo;
    wo.sync = true;
    RETURN_IF_ERROR(FromRocks(db_->Write(wo, &batch), "erase"));
    // Its unsealed events leave the head for every read from now on
    // (appends wait on commit_mu_, so none of the entity came meanwhile).
    head_.MarkGone(prefix, {}, db_->GetLatestSequenceNumber());
    {
      absl::MutexLock l(&mu_);
      uint64_t& count = counts_[stream_id];
      count -= std::min(count, events);
      if (events > 0) {
        pending_.push_back(erasing);
        pending_count_.store(pending_.size(), std::memory_order_release);
      }
    }
    absl::MutexLock tiles_lock(&tiles_mu_);
    for (auto it = tiled_.begin(); it != tiled_.end();) {
      if (absl::StartsWith(it->first, prefix)) {
        tiled_.erase(it++);
      } else {
        ++it;
      }
    }
    // Tiles being built of the entity's days were read before: void them.
    for (TileBuild* build : tile_builds_) {
      if (build->entity_prefix == prefix) {
        build->voided = build->days;
      }
    }
  }
  if (!seqs.empty()) {
    absl::Status s = EmptyErased(erasing, std::move(found));
    if (!s.ok()) {
      // The erasure took effect; its log entries and ids are emptied at
      // the next start.
      LogError(
          absl::StrCat("erasure committed, emptying its log entries "
                       "and ids failed (retried at the next start): ",
                       s.message()));
    }
  }
  // Its unsealed events leave memory too, unless a read from before the
  // erasure still sees them (they go when it ends).
  head_.Purge();
  return EraseResult{seqs.size(), watermark};
}

absl::Status EventStore::EmptyErased(
    const std::shared_ptr<PendingErase>& erasing,
    std::vector<std::pair<uint64_t, std::string>> ids) {
  const std::vector<uint64_t>& seqs = erasing->seqs;
  if (ids.empty()) {
    // After a restart: the ids come from the log entries (their events
    // are gone). Format-1 entries from before the log carried values have
    // none at hand; such old ids stay.
    EventValueReader reader;
    RETURN_IF_ERROR(ForEachLogEntryOf(
        seqs, [&](uint64_t key_seq, absl::string_view value,
                  absl::Span<const uint64_t> wanted) {
          LogEntryReader entry;
          if (!entry.Reset(key_seq, value)) {
            return MalformedLogEntry(key_seq);
          }
          StoredEvent e;
          while (entry.Next(&e)) {
            if (!e.value.empty() &&
                std::binary_search(wanted.begin(), wanted.end(), e.seq) &&
                reader.ParseId(e.value)) {
              ids.emplace_back(e.seq, IdKey(e.stream_id, reader.event_id()));
            }
          }
          return entry.ok() ? absl::OkStatus() : MalformedLogEntry(key_seq);
        }));
  }
  constexpr size_t kChunk = 20000;
  for (size_t begin = 0; begin < std::max(seqs.size(), ids.size());
       begin += kChunk) {
    // The ids first: a restart finds the ids still to delete through the
    // log entries not yet emptied (writes land in order). The ids are a
    // subset of the seqs in the same order, so the first k ids cover the
    // erased events of the first k seqs.
    {
      // Under the commit lock: an id re-ingested since the erasure (a new
      // event) keeps its new record.
      rocksdb::WriteBatch id_batch;
      ExclusiveLock commit_lock(this);
      for (size_t i = begin; i < std::min(ids.size(), begin + kChunk); ++i) {
        if (!erasing->reclaimed.contains(ids[i].second)) {
          id_batch.Delete(ids_cf_, ToSlice(ids[i].second));
        }
      }
      RETURN_IF_ERROR(CheckWritable());
      RETURN_IF_ERROR(
          FromRocks(db_->Write(rocksdb::WriteOptions(), &id_batch), "erase"));
    }
    // The log entries, rewritten without the chunk's seqs, without holding
    // appends back: appends write new entries only, and erasures run one
    // at a time.
    if (begin >= seqs.size()) continue;
    const std::vector<uint64_t> chunk(
        seqs.begin() + begin,
        seqs.begin() + std::min(seqs.size(), begin + kChunk));
    rocksdb::WriteBatch log;
    std::string rewritten;
    RETURN_IF_ERROR(ForEachLogEntryOf(
        chunk, [&](uint64_t key_seq, absl::string_view value,
                   absl::Span<const uint64_t> wanted) {
          const LogRewrite r = RewriteLogEntry(
              key_seq, value,
              [&](const StoredEvent& e) {
                return !std::binary_search(wanted.begin(), wanted.end(),
                                           e.seq);
              },
              &rewritten);
          if (r == LogRewrite::kMalformed) {
            return MalformedLogEntry(key_seq);
          }
          if (r == LogRewrite::kChanged) {
            log.Put(log_cf_, ToSlice(LogKey(key_seq)), ToSlice(rewritten));
          }
          if (log.GetDataSize() < (8 << 20)) return absl::OkStatus();
          absl::Status s =
              FromRocks(db_->Write(rocksdb::WriteOptions(), &log), "erase");
          log.Clear();
          return s;
        }));
    RETURN_IF_ERROR(
        FromRocks(db_->Write(rocksdb::WriteOptions(), &log), "erase"));
  }
  ExclusiveLock commit_lock(this);
  rocksdb::WriteBatch done;
  done.Delete(meta_cf_, ToSlice(erasing->key));
  rocksdb::WriteOptions wo;
  wo.sync = true;
  RETURN_IF_ERROR(FromRocks(db_->Write(wo, &done), "erase"));
  absl::MutexLock l(&mu_);
  pending_.erase(std::remove(pending_.begin(), pending_.end(), erasing),
                 pending_.end());
  pending_count_.store(pending_.size(), std::memory_order_release);
  return absl::OkStatus();
}

absl::Status EventStore::ForEachLogEntryOf(
    const std::vector<uint64_t>& seqs,
    const std::function<absl::Status(uint64_t, absl::string_view,
                                     absl::Span<const uint64_t>)>& fn) const {
  std::unique_ptr<rocksdb::Iterator> it(
      db_->NewIterator(rocksdb::ReadOptions(), log_cf_));
  size_t i = 0;
  while (i < seqs.size()) {
    it->Seek(ToSlice(LogKey(seqs[i])));
    if (!it->Valid()) break;  // above the log's end: nothing stored
    const uint64_t key_seq = ParseLogKey(ToView(it->key()));
    size_t j = i;
    while (j < seqs.size() && seqs[j] <= key_seq) ++j;
    RETURN_IF_ERROR(fn(key_seq, ToView(it->value()),
                       absl::MakeConstSpan(seqs.data() + i, j - i)));
    i = j;
  }
  return FromRocks(it->status(), "read log");
}

absl::Status EventStore::ResumeErasures() {
  std::vector<std::shared_ptr<PendingErase>> found;
  bool corrupt = false;
  RETURN_IF_ERROR(ScanMeta(kMetaErasingPrefix,
                           [&](absl::string_view k, absl::string_view v) {
                             auto p = std::make_shared<PendingErase>();
                             p->key = std::string(k);
                             if (!DecodePendingErase(v, &p->seqs))
                               corrupt = true;
                             found.push_back(std::move(p));
                           }));
  if (corrupt) return absl::DataLossError("corrupt pending erasure record");
  if (found.empty()) return absl::OkStatus();
  {
    absl::MutexLock l(&mu_);
    for (const auto& p : found) pending_.push_back(p);
    pending_count_.store(pending_.size(), std::memory_order_release);
  }
  if (!read_only_.empty()) return absl::OkStatus();  // skipped until writable
  for (const auto& p : found) {
    LogInfo(absl::StrCat("finishing an erasure interrupted by a stop: ",
                         p->seqs.size(), " log entries and ids to empty"));
    RETURN_IF_ERROR(EmptyErased(p, {}));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<v1::Erasure>> EventStore::Erasures() const {
  std::vector<v1::Erasure> out;
  bool corrupt = false;
  RETURN_IF_ERROR(
      ScanMeta(kMetaErasurePrefix, [&](absl::string_view, absl::string_view v) {
        out.emplace_back();
        if (!out.back().ParseFromArray(v.data(), static_cast<int>(v.size()))) {
          corrupt = true;
        }
      }));
  if (corrupt) return absl::DataLossError("corrupt erasure log entry");
  return out;
}

}  // namespace rawfeat
