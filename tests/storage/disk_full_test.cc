// A full disk or an I/O error turns appends away with a clear status, never
// takes the store down, keeps reads working, and writes resume once the
// fault clears, without a restart; every acknowledged event is then present
// exactly once and seqs have no gap. Faults are injected under RocksDB by a
// FileSystem wrapper (after RocksDB's own FaultInjectionTestFS); a second
// test fills a real tmpfs where mounting is permitted.

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "rocksdb/env.h"
#include "rocksdb/file_system.h"
#include "server/storage/event_store.h"
#include "server/storage/keys.h"
#include "tests/test_util.h"

namespace rawfeat {
namespace {

// Fails every write, flush and sync of every file once armed: after
// `writes_left` more successful write calls (ENOSPC or EIO).
class FaultFs final : public rocksdb::FileSystemWrapper {
 public:
  explicit FaultFs(std::shared_ptr<rocksdb::FileSystem> base)
      : rocksdb::FileSystemWrapper(std::move(base)) {}
  static const char* kClassName() { return "FaultFs"; }
  const char* Name() const override { return kClassName(); }

  void Arm(int writes_left, bool no_space) {
    no_space_ = no_space;
    countdown_.Arm(writes_left);
  }
  void Disarm() { countdown_.Disarm(); }

  // Errors injected so far.
  int injected() const { return countdown_.injected(); }

  // The injected error, or OK (counting one write while armed).
  rocksdb::IOStatus Check() {
    if (!countdown_.Strike()) return rocksdb::IOStatus::OK();
    return no_space_ ? rocksdb::IOStatus::NoSpace("injected ENOSPC")
                     : rocksdb::IOStatus::IOError("injected EIO");
  }

  // A full disk says so: RocksDB's own recovery waits for free space.
  rocksdb::IOStatus GetFreeSpace(const std::string& path,
                                 const rocksdb::IOOptions& options,
                                 uint64_t* free,
                                 rocksdb::IODebugContext* dbg) override {
    if (no_space_ && countdown_.striking()) {
      *free = 0;
      return rocksdb::IOStatus::OK();
    }
    return target()->GetFreeSpace(path, options, free, dbg);
  }

  rocksdb::IOStatus NewWritableFile(
      const std::string& name, const rocksdb::FileOptions& options,
      std::unique_ptr<rocksdb::FSWritableFile>* result,
      rocksdb::IODebugContext* dbg) override {
    rocksdb::IOStatus s = Check();
    if (!s.ok()) return s;
    std::unique_ptr<rocksdb::FSWritableFile> file;
    s = target()->NewWritableFile(name, options, &file, dbg);
    if (s.ok()) result->reset(new File(std::move(file), this));
    return s;
  }

 private:
  class File final : public rocksdb::FSWritableFileOwnerWrapper {
   public:
    File(std::unique_ptr<rocksdb::FSWritableFile> f, FaultFs* fs)
        : rocksdb::FSWritableFileOwnerWrapper(std::move(f)), fs_(fs) {}
    rocksdb::IOStatus Append(const rocksdb::Slice& data,
                             const rocksdb::IOOptions& options,
                             rocksdb::IODebugContext* dbg) override {
      rocksdb::IOStatus s = fs_->Check();
      return s.ok() ? target()->Append(data, options, dbg) : s;
    }
    rocksdb::IOStatus Append(const rocksdb::Slice& data,
                             const rocksdb::IOOptions& options,
                             const rocksdb::DataVerificationInfo& info,
                             rocksdb::IODebugContext* dbg) override {
      rocksdb::IOStatus s = fs_->Check();
      return s.ok() ? target()->Append(data, options, info, dbg) : s;
    }
    rocksdb::IOStatus Flush(const rocksdb::IOOptions& options,
                            rocksdb::IODebugContext* dbg) override {
      rocksdb::IOStatus s = fs_->Check();
      return s.ok() ? target()->Flush(options, dbg) : s;
    }
    rocksdb::IOStatus Sync(const rocksdb::IOOptions& options,
                           rocksdb::IODebugContext* dbg) override {
      rocksdb::IOStatus s = fs_->Check();
      return s.ok() ? target()->Sync(options, dbg) : s;
    }
    rocksdb::IOStatus Fsync(const rocksdb::IOOptions& options,
                            rocksdb::IODebugContext* dbg) override {
      rocksdb::IOStatus s = fs_->Check();
      return s.ok() ? target()->Fsync(options, dbg) : s;
    }

   private:
    FaultFs* const fs_;
  };

  testing::FaultCountdown countdown_;
  std::atomic<bool> no_space_{true};
};

// A FaultFs, the Env over it, and store options that use that Env with no
// free-space floor (the faults, not the floor, stop the writes).
struct FaultyDisk {
  std::shared_ptr<FaultFs> fs =
      std::make_shared<FaultFs>(rocksdb::FileSystem::Default());
  std::unique_ptr<rocksdb::Env> env = rocksdb::NewCompositeEnv(fs);
  EventStoreOptions Options() const {
    EventStoreOptions options;
    options.env = env.get();
    options.min_free_bytes = 0;
    return options;
  }
};

AppendRequest Batch(int b) {
  AppendRequest req;
  req.stream_id = 1;
  for (int i = 0; i < 50; ++i) {
    PendingEvent p;
    p.row = i;
    p.event_id = absl::StrCat("b", b, "-", i);
    p.entity = absl::StrCat("u", i % 5);
    p.time_us = 1000 * b + i;
    p.content_hash.fill(static_cast<unsigned char>(b * 50 + i));
    p.value = std::string(100, 'v');
    req.events.push_back(std::move(p));
  }
  return req;
}

// Every event id in the log, and the log's seqs.
void ReadLog(EventStore* store, std::vector<uint64_t>* seqs) {
  seqs->clear();
  ASSERT_TRUE(store
                  ->ScanLog(0, store->watermark(), nullptr,
                            [&](const StoredEvent& e) {
                              seqs->push_back(e.seq);
                              return true;
                            })
                  .ok());
}

// Retries `batch` until it is accepted; the store may need a moment to
// recover (RocksDB's own recovery polls). Bounded.
absl::StatusOr<AppendResult> AppendEventually(EventStore* store, int b) {
  absl::StatusOr<AppendResult> r;
  for (int attempt = 0; attempt < 600; ++attempt) {
    AppendRequest req = Batch(b);
    r = store->Append(&req);
    if (r.ok()) return r;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return r;
}

struct Fault {
  int after_writes;
  bool no_space;
};

class DiskFaultTest : public ::testing::TestWithParam<Fault> {};

TEST_P(DiskFaultTest, AppendsFailCleanlyReadsGoOnWritesResume) {
  const Fault fault = GetParam();
  testing::TempDir dir;
  FaultyDisk disk;
  FaultFs* fs = disk.fs.get();
  const EventStoreOptions options = disk.Options();
  std::set<int> acked;
  {
    auto store = EventStore::Open(dir.Sub("db"), options);
    ASSERT_TRUE(store.ok()) << store.status();
    for (int b = 0; b < 5; ++b) {
      AppendRequest req = Batch(b);
      ASSERT_TRUE((*store)->Append(&req).ok());
      acked.insert(b);
    }
    fs->Arm(fault.after_writes, fault.no_space);
    int failed = 0;
    for (int b = 5; b < 10; ++b) {
      AppendRequest req = Batch(b);
      auto r = (*store)->Append(&req);
      if (r.ok()) {
        acked.insert(b);
        continue;
      }
      ++failed;
      EXPECT_EQ(r.status().code(), fault.no_space
                                       ? absl::StatusCode::kResourceExhausted
                                       : absl::StatusCode::kUnavailable)
          << r.status();
      EXPECT_TRUE(absl::StrContains(r.status().message(),
                                    fault.no_space ? "disk full" : "injected"))
          << r.status();
      EXPECT_FALSE((*store)->WriteError().empty());
    }
    EXPECT_GT(failed, 0);
    // Reads go on at the published watermark.
    std::vector<uint64_t> seqs;
    ReadLog(store->get(), &seqs);
    EXPECT_EQ(seqs.size(), acked.size() * 50);
    EXPECT_TRUE((*store)->PinRead(0).ok());

    fs->Disarm();
    if (!fault.no_space) {
      // After an I/O error RocksDB cannot retry, writes stay stopped with a
      // clear status until the store is reopened; reads go on.
      AppendRequest again = Batch(5);
      auto r = (*store)->Append(&again);
      if (!r.ok()) {
        EXPECT_TRUE(absl::StrContains(r.status().message(), "restart"))
            << r.status();
        EXPECT_TRUE((*store)->PinRead(0).ok());
        store->reset();
        store = EventStore::Open(dir.Sub("db"), options);
        ASSERT_TRUE(store.ok()) << store.status();
        // Every acked event is back; a batch whose sync failed may be too
        // (its client was told it failed: a retry is a counted duplicate).
        EXPECT_GE((*store)->watermark(), acked.size() * 50);
        EXPECT_LE((*store)->watermark(), 500u);
      } else {
        acked.insert(5);
      }
    }
    // The batches that failed go in once the fault clears, exactly once
    // (after a full disk, without a restart).
    for (int b = 5; b < 10; ++b) {
      auto r = AppendEventually(store->get(), b);
      ASSERT_TRUE(r.ok()) << r.status();
      EXPECT_EQ(r->accepted + r->duplicates, 50);
      if (acked.count(b)) {
        EXPECT_EQ(r->duplicates, 50);
      }
      acked.insert(b);
    }
    EXPECT_TRUE((*store)->WriteError().empty()) << (*store)->WriteError();
    ReadLog(store->get(), &seqs);
    ASSERT_EQ(seqs.size(), 500u);
    for (size_t i = 0; i < seqs.size(); ++i) EXPECT_EQ(seqs[i], i + 1);
  }
  // And after a restart: each acked event once, no gap, nothing extra.
  auto store = EventStore::Open(dir.Sub("db"), options);
  ASSERT_TRUE(store.ok()) << store.status();
  EXPECT_EQ((*store)->watermark(), 500u);
  std::vector<uint64_t> seqs;
  ReadLog(store->get(), &seqs);
  ASSERT_EQ(seqs.size(), 500u);
  for (size_t i = 0; i < seqs.size(); ++i) EXPECT_EQ(seqs[i], i + 1);
  for (int b = 0; b < 10; ++b) {
    AppendRequest req = Batch(b);
    auto r = (*store)->Append(&req);
    ASSERT_TRUE(r.ok());
    EXPECT_EQ(r->duplicates, 50) << "batch " << b;
  }
}

INSTANTIATE_TEST_SUITE_P(Points, DiskFaultTest,
                         ::testing::Values(Fault{0, true}, Fault{1, true},
                                           Fault{2, true}, Fault{7, true},
                                           Fault{0, false}, Fault{3, false}),
                         [](const ::testing::TestParamInfo<Fault>& info) {
                           return absl::StrCat(
                               info.param.no_space ? "ENOSPC" : "EIO",
                               "_after_", info.param.after_writes);
                         });

// Every event of u0..u4 as (entity, time, seq, value), through the
// entity cursors (sealed blocks and unsealed events).
std::vector<std::string> ReadEntities(EventStore* store) {
  std::vector<std::string> out;
  for (int u = 0; u < 5; ++u) {
    auto c = store->ScanEntity(1, absl::StrCat("u", u), kMinEventTime,
                               kMaxEventTime, nullptr);
    for (; c->Valid(); c->Next()) {
      out.push_back(absl::StrCat(c->entity(), "/", c->time_us(), "/",
                                 c->seq(), "/", c->value()));
    }
    EXPECT_TRUE(c->status().ok()) << c->status();
  }
  return out;
}

// A background write (a seal, a tile) failing with ENOSPC (the
// parameter) or EIO, on a store that seals only when the test says.
class BackgroundWriteFaultTest : public ::testing::TestWithParam<bool> {
 protected:
  BackgroundWriteFaultTest() { options_.seal_min_events = 0; }
  // Closes `*store` and opens its directory again: an I/O error stops
  // RocksDB's writes until a restart.
  void Reopen(absl::StatusOr<std::unique_ptr<EventStore>>* store) {
    store->value().reset();
    *store = EventStore::Open(dir_.Sub("db"), options_);
    ASSERT_TRUE(store->ok()) << store->status();
  }
  const bool no_space_ = GetParam();
  testing::TempDir dir_;
  FaultyDisk disk_;
  FaultFs* const fs_ = disk_.fs.get();
  EventStoreOptions options_ = disk_.Options();
};

INSTANTIATE_TEST_SUITE_P(Faults, BackgroundWriteFaultTest, ::testing::Bool(),
                         [](const ::testing::TestParamInfo<bool>& info) {
                           return info.param ? "ENOSPC" : "EIO";
                         });

// Seals write no file themselves (they skip the write-ahead log), so the
// disk fails them two ways, and neither changes a read:
// - a store whose writes stopped (an append failed) refuses the seal: the
//   events stay in the head;
// - sealed blocks whose flush fails stay in the memtable, read as before,
//   and a restart (the fault gone) finds their events unsealed in the log
//   again and seals them anew.
TEST_P(BackgroundWriteFaultTest, AFailedSealLeavesEveryEventReadable) {
  std::vector<std::string> want;
  {
    auto store = EventStore::Open(dir_.Sub("db"), options_);
    ASSERT_TRUE(store.ok()) << store.status();
    for (int b = 0; b < 5; ++b) {
      AppendRequest req = Batch(b);
      ASSERT_TRUE((*store)->Append(&req).ok());
    }
    want = ReadEntities(store->get());
    ASSERT_EQ(want.size(), 250u);
    fs_->Arm(0, no_space_);
    AppendRequest more = Batch(5);
    EXPECT_FALSE((*store)->Append(&more).ok());
    EXPECT_FALSE((*store)->Seal(1).ok());
    EXPECT_EQ((*store)->UnsealedEvents(), 250u);
    EXPECT_EQ(ReadEntities(store->get()), want);
    fs_->Disarm();
  }
  {
    auto store = EventStore::Open(dir_.Sub("db"), options_);
    ASSERT_TRUE(store.ok()) << store.status();
    EXPECT_EQ((*store)->UnsealedEvents(), 250u);
    ASSERT_TRUE((*store)->Seal(1).ok());
    EXPECT_EQ((*store)->UnsealedEvents(), 0u);
    EXPECT_EQ(ReadEntities(store->get()), want);
    // The blocks' flush (a checkpoint flushes first) fails, and so does
    // the one at close: the disk is still failing when the store closes.
    fs_->Arm(0, no_space_);
    EXPECT_FALSE((*store)->Checkpoint(dir_.Sub("cp")).ok());
    EXPECT_EQ(ReadEntities(store->get()), want);
  }
  fs_->Disarm();
  auto store = EventStore::Open(dir_.Sub("db"), options_);
  ASSERT_TRUE(store.ok()) << store.status();
  EXPECT_EQ((*store)->UnsealedEvents(), 250u);
  EXPECT_EQ(ReadEntities(store->get()), want);
  ASSERT_TRUE((*store)->Seal(1).ok());
  EXPECT_EQ((*store)->UnsealedEvents(), 0u);
  EXPECT_EQ(ReadEntities(store->get()), want);
}

// The idle merge of level 0 (EventStoreOptions::compact_idle_ms) meets a
// disk that takes no writes: the options file SetOptions writes and the
// compaction's output fail. Nothing is lost and nothing stops for good:
// reads go on meanwhile, appends resume once writes work (after an I/O
// error, at a restart, as after a failed append), and the next pause
// merges level 0.
TEST_P(BackgroundWriteFaultTest, AFailedIdleMergeLosesNothingAndMergesLater) {
  // Three sealed rounds, each flushed by a checkpoint: level 0 files.
  options_.compact_idle_ms = 0;
  auto store = EventStore::Open(dir_.Sub("db"), options_);
  ASSERT_TRUE(store.ok()) << store.status();
  for (int b = 0; b < 3; ++b) {
    AppendRequest req = Batch(b);
    ASSERT_TRUE((*store)->Append(&req).ok());
    ASSERT_TRUE((*store)->Seal(1).ok());
    ASSERT_TRUE(
        (*store)->Checkpoint(dir_.Sub(absl::StrCat("cp", b))).ok());
  }
  const std::vector<std::string> want = ReadEntities(store->get());
  ASSERT_EQ(want.size(), 150u);
  const uint64_t files = (*store)->Stats().read_level0_files;
  ASSERT_GE(files, 2u);
  store->reset();

  // Reopened with a sealer that goes idle after 100 ms, on a disk that
  // fails every write from now on.
  options_.seal_min_events = 64;
  options_.compact_idle_ms = 100;
  store = EventStore::Open(dir_.Sub("db"), options_);
  ASSERT_TRUE(store.ok()) << store.status();
  fs_->Arm(0, no_space_);
  // Bounded: the sealer tries within a second on any machine.
  const absl::Time deadline = absl::Now() + absl::Seconds(60);
  while (fs_->injected() == 0 && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(20));
  }
  ASSERT_GT(fs_->injected(), 0) << "the idle merge never wrote";
  EXPECT_EQ(ReadEntities(store->get()), want);
  fs_->Disarm();

  // Appends resume: at once after a full disk, after a restart after EIO.
  if (!no_space_) {
    ASSERT_NO_FATAL_FAILURE(Reopen(&store));
  }
  auto r = AppendEventually(store->get(), 3);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->accepted, 50);
  // The pause after it merges level 0 (bounded wait).
  const absl::Time merged_by = absl::Now() + absl::Seconds(120);
  while ((*store)->Stats().read_level0_files > 0 && absl::Now() < merged_by) {
    absl::SleepFor(absl::Milliseconds(50));
  }
  EXPECT_EQ((*store)->Stats().read_level0_files, 0u) << "was " << files;
  EXPECT_EQ(ReadEntities(store->get()).size(), 200u);
}

// A tile write that fails stores nothing and changes no read. It stops
// RocksDB's writes as a failed append does, and the next append resumes
// them as after a failed append: after a full disk_ they go on, after an
// I/O error they say to restart (DiskFaultTest). Then tiles are stored
// again. The background tile builder only drops a failed build: a later
// lookup or seal asks for it again.
TEST_P(BackgroundWriteFaultTest, AFailedTileWriteStoresNothingAndTilesResume) {
  auto store = EventStore::Open(dir_.Sub("db"), options_);
  ASSERT_TRUE(store.ok()) << store.status();
  for (int b = 0; b < 3; ++b) {
    AppendRequest req = Batch(b);
    ASSERT_TRUE((*store)->Append(&req).ok());
  }
  const std::vector<std::string> want = ReadEntities(store->get());
  const TileScope scope{1, "u1", "v", 1};
  auto write_tile = [&] {
    return (*store)->WriteTiles(
        scope, {0}, [](uint64_t, const ReadView*, auto* tiles) {
          tiles->emplace_back(0, "payload");
          return absl::OkStatus();
        });
  };
  auto stored = [&] {
    auto t = (*store)->ScanTiles(scope, kMinEventTime, kMaxEventTime,
                                 nullptr);
    int n = 0;
    for (; t->Valid(); t->Next()) ++n;
    EXPECT_TRUE(t->status().ok()) << t->status();
    return n;
  };
  fs_->Arm(0, no_space_);
  const absl::Status failed = write_tile();
  EXPECT_TRUE(absl::IsUnavailable(failed) ||
              absl::IsResourceExhausted(failed))
      << failed;
  EXPECT_EQ((*store)->TileCount(), 0u);
  EXPECT_EQ(stored(), 0);
  EXPECT_EQ(ReadEntities(store->get()), want);
  fs_->Disarm();
  if (!no_space_) {
    AppendRequest req = Batch(3);
    auto r = (*store)->Append(&req);
    ASSERT_FALSE(r.ok());
    EXPECT_TRUE(absl::StrContains(r.status().message(), "restart"))
        << r.status();
    EXPECT_EQ(ReadEntities(store->get()), want);
    ASSERT_NO_FATAL_FAILURE(Reopen(&store));
    EXPECT_EQ(ReadEntities(store->get()), want);
  }
  ASSERT_TRUE(AppendEventually(store->get(), 3).ok());
  ASSERT_TRUE(write_tile().ok());
  EXPECT_EQ((*store)->TileCount(), 1u);
  EXPECT_EQ(stored(), 1);
}

// Sealing folds a tiled day's new events into its tile in a write of its
// own, before the blocks. When that write fails, nothing is sealed: the
// tile is as it was, its day's events stay beside it, every event reads
// the same, and a later seal folds them.
TEST_P(BackgroundWriteFaultTest, AFailedFoldLeavesTheTileAndTheEventsBesideIt) {
  auto store = EventStore::Open(dir_.Sub("db"), options_);
  ASSERT_TRUE(store.ok()) << store.status();
  AppendRequest first = Batch(0);
  ASSERT_TRUE((*store)->Append(&first).ok());
  ASSERT_TRUE((*store)->Seal(1).ok());
  const TileScope scope{1, "u1", "v", 1};
  ASSERT_TRUE((*store)
                  ->WriteTiles(scope, {0},
                               [](uint64_t, const ReadView*, auto* tiles) {
                                 tiles->emplace_back(0, "p");
                                 return absl::OkStatus();
                               })
                  .ok());
  auto fold = [](const TileScope&, int64_t, absl::string_view payload,
                 absl::Span<const StoredEvent> events)
      -> absl::StatusOr<std::string> {
    std::string folded(payload);
    for (const StoredEvent& e : events) absl::StrAppend(&folded, "+", e.seq);
    return folded;
  };
  (*store)->SetTileFolder(this, fold);
  AppendRequest late = Batch(1);  // the same day: beside the tile
  ASSERT_TRUE((*store)->Append(&late).ok());
  const std::vector<std::string> want = ReadEntities(store->get());
  // (watermark, payload, the seqs beside it) of the one tile.
  auto tile = [&] {
    auto t =
        (*store)->ScanTiles(scope, kMinEventTime, kMaxEventTime, nullptr);
    std::string seen;
    for (; t->Valid(); t->Next()) {
      seen += absl::StrCat(t->watermark(), " ", t->payload(), " |");
      for (const StoredEvent& e : t->late()) absl::StrAppend(&seen, " ", e.seq);
    }
    EXPECT_TRUE(t->status().ok()) << t->status();
    return seen;
  };
  const std::string before = tile();
  ASSERT_EQ(before, "50 p | 52 57 62 67 72 77 82 87 92 97");

  fs_->Arm(0, no_space_);
  EXPECT_FALSE((*store)->Seal(1).ok());
  EXPECT_EQ((*store)->UnsealedEvents(), 50u);
  EXPECT_EQ(tile(), before);
  EXPECT_EQ((*store)->Stats().tiles_folded, 0u);
  EXPECT_EQ(ReadEntities(store->get()), want);
  fs_->Disarm();
  if (!no_space_) {
    // An I/O error stops RocksDB's writes for good: reopened.
    ASSERT_NO_FATAL_FAILURE(Reopen(&store));
    (*store)->SetTileFolder(this, fold);
    EXPECT_EQ(tile(), before);
    EXPECT_EQ(ReadEntities(store->get()), want);
  }
  for (int i = 0; i < 100 && !(*store)->Seal(1).ok(); ++i) {
    absl::SleepFor(absl::Milliseconds(100));  // RocksDB resumes by itself
  }
  EXPECT_EQ((*store)->UnsealedEvents(), 0u);
  EXPECT_EQ(tile(), "97 p+52+57+62+67+72+77+82+87+92+97 |");
  EXPECT_EQ(ReadEntities(store->get()), want);
}

// The reserve: appends are refused before the disk is full, so RocksDB
// never meets a full disk itself.
TEST(DiskReserveTest, AppendsAreRefusedBelowTheReserve) {
  testing::TempDir dir;
  EventStoreOptions options;
  auto probe = EventStore::Open(dir.Sub("db"), options);
  ASSERT_TRUE(probe.ok());
  const uint64_t free = (*probe)->DiskFreeBytes();
  probe->reset();
  ASSERT_GT(free, 0u);
  options.min_free_bytes = free + (uint64_t{1} << 40);  // more than there is
  auto store = EventStore::Open(dir.Sub("db"), options);
  ASSERT_TRUE(store.ok()) << store.status();
  AppendRequest req = Batch(0);
  auto r = (*store)->Append(&req);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_TRUE(absl::StrContains(r.status().message(), "--min_free_disk_mb"))
      << r.status();
  EXPECT_EQ((*store)->watermark(), 0u);
}

// A real full disk: a small tmpfs. Needs the right to mount (root in a
// container that allows it); skipped with the reason otherwise.
TEST(RealDiskFullTest, TmpfsFillsUpTheStoreStaysUpAndResumes) {
  testing::TempDir dir;
  const std::string mnt = dir.Sub("mnt");
  testing::Tmpfs tmpfs(mnt, "160m");
  if (!tmpfs.mounted()) {
    GTEST_SKIP() << tmpfs.why()
                 << "; the injected faults above cover the same paths";
  }
  // Ballast to free later: RocksDB's own recovery waits for 64 MiB free.
  {
    std::ofstream ballast(mnt + "/ballast", std::ios::binary);
    const std::string mb(1 << 20, 'b');
    for (int i = 0; i < 96; ++i) ballast << mb;
  }
  EventStoreOptions options;
  options.min_free_bytes = 0;  // let RocksDB meet the full disk itself
  auto store = EventStore::Open(mnt + "/db", options);
  ASSERT_TRUE(store.ok()) << store.status();
  int b = 0;
  absl::Status full;
  for (; b < 100000; ++b) {
    AppendRequest req = Batch(b);
    for (auto& e : req.events) e.value = std::string(20000, 'x');
    auto r = (*store)->Append(&req);
    if (!r.ok()) {
      full = r.status();
      break;
    }
  }
  ASSERT_FALSE(full.ok());
  EXPECT_EQ(full.code(), absl::StatusCode::kResourceExhausted) << full;
  const uint64_t acked = (*store)->watermark();
  EXPECT_EQ(acked, static_cast<uint64_t>(b) * 50);
  EXPECT_TRUE((*store)->PinRead(0).ok());
  std::filesystem::remove(mnt + "/ballast");
  AppendRequest req = Batch(b);
  absl::StatusOr<AppendResult> r;
  for (int attempt = 0; attempt < 600 && !r.ok(); ++attempt) {
    req = Batch(b);
    r = (*store)->Append(&req);
    if (!r.ok()) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ((*store)->watermark(), acked + 50);
  store->reset();
  auto reopened = EventStore::Open(mnt + "/db", options);
  ASSERT_TRUE(reopened.ok()) << reopened.status();
  EXPECT_EQ((*reopened)->watermark(), acked + 50);
}

}  // namespace
}  // namespace rawfeat
