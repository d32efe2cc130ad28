// A table file read that fails (EIO) or returns damaged bytes (blocks whose
// checksums no longer match) fails the read call that meets it with a clear
// status: UNAVAILABLE for the I/O error, DATA_LOSS for the damage. A call
// that streams (Snapshot, JoinFeatures, ReadEvents) may have sent chunks
// before, but never ends with OK after a fault; the server stays up, and
// once the disk reads right again the same calls answer exactly as before
// and writes go on. Faults are injected under RocksDB by a FileSystem
// wrapper, on a real server over real gRPC.

#include <algorithm>
#include <atomic>
#include <cstring>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "rocksdb/env.h"
#include "rocksdb/file_system.h"
#include "server/common/definitions_text.h"
#include "server/common/time_util.h"
#include "server/server.h"
#include "server/storage/event_store.h"
#include "tests/test_util.h"

namespace rawfeat {
namespace {

using testing::Canonical;
using testing::Order;
using testing::TestServer;

constexpr int64_t kHour = 3600LL * 1000000;
constexpr int64_t kDay = 24 * kHour;
constexpr int64_t kT0 = 1795478400LL * 1000000;  // a UTC midnight
constexpr int kEntities = 1500;

// Reads of table files (*.sst) fail once armed, after `reads_left` more
// reads that succeed: with an I/O error, or with every byte read changed
// (XOR 0x5a), which the blocks' checksums catch.
class ReadFaultFs final : public rocksdb::FileSystemWrapper {
 public:
  enum class Fault { kIoError, kDamage };

  explicit ReadFaultFs(std::shared_ptr<rocksdb::FileSystem> base)
      : rocksdb::FileSystemWrapper(std::move(base)) {}
  static const char* kClassName() { return "ReadFaultFs"; }
  const char* Name() const override { return kClassName(); }

  void Arm(Fault fault, int reads_left) {
    fault_ = fault;
    countdown_.Arm(reads_left);
  }
  void Disarm() { countdown_.Disarm(); }
  // Reads failed or damaged so far.
  int injected() const { return countdown_.injected(); }
  // Reads of table files so far, faults included.
  int reads() const { return reads_.load(); }

  rocksdb::IOStatus NewRandomAccessFile(
      const std::string& name, const rocksdb::FileOptions& options,
      std::unique_ptr<rocksdb::FSRandomAccessFile>* result,
      rocksdb::IODebugContext* dbg) override {
    rocksdb::IOStatus s =
        target()->NewRandomAccessFile(name, options, result, dbg);
    if (s.ok() && absl::EndsWith(name, ".sst")) {
      result->reset(new File(std::move(*result), this));
    }
    return s;
  }

 private:
  // One read that succeeded: passes it on, fails it or damages it.
  rocksdb::IOStatus After(rocksdb::IOStatus s, rocksdb::Slice* result,
                          char* scratch) {
    if (!s.ok()) return s;
    ++reads_;
    if (!countdown_.Strike()) return s;
    if (fault_ == Fault::kIoError) {
      return rocksdb::IOStatus::IOError("injected EIO");
    }
    if (result->data() != scratch) {
      memcpy(scratch, result->data(), result->size());
    }
    for (size_t i = 0; i < result->size(); ++i) scratch[i] ^= 0x5a;
    *result = rocksdb::Slice(scratch, result->size());
    return s;
  }

  class File final : public rocksdb::FSRandomAccessFileOwnerWrapper {
   public:
    File(std::unique_ptr<rocksdb::FSRandomAccessFile> f, ReadFaultFs* fs)
        : rocksdb::FSRandomAccessFileOwnerWrapper(std::move(f)), fs_(fs) {}
    rocksdb::IOStatus Read(uint64_t offset, size_t n,
                           const rocksdb::IOOptions& options,
                           rocksdb::Slice* result, char* scratch,
                           rocksdb::IODebugContext* dbg) const override {
      return fs_->After(
          target()->Read(offset, n, options, result, scratch, dbg), result,
          scratch);
    }
    rocksdb::IOStatus MultiRead(rocksdb::FSReadRequest* reqs, size_t num_reqs,
                                const rocksdb::IOOptions& options,
                                rocksdb::IODebugContext* dbg) override {
      rocksdb::IOStatus s = target()->MultiRead(reqs, num_reqs, options, dbg);
      if (!s.ok()) return s;
      for (size_t i = 0; i < num_reqs; ++i) {
        reqs[i].status =
            fs_->After(reqs[i].status, &reqs[i].result, reqs[i].scratch);
      }
      return s;
    }

   private:
    ReadFaultFs* const fs_;
  };

  std::atomic<Fault> fault_{Fault::kIoError};
  testing::FaultCountdown countdown_;
  std::atomic<int> reads_{0};
};

constexpr char kView[] = R"(
views {
  name: "rv" version: 1 stream: "orders"
  features { name: "n" aggregation: "count" window: "lifetime" }
  features { name: "amount_3d" aggregation: "sum" field: "amount" window: "3d" }
  features { name: "sd" aggregation: "stddev" field: "amount" window: "lifetime" }
  features { name: "last_cat" aggregation: "last" field: "category" window: "7d" }
}
)";

// Event n of the 10,000 the tests load: 1,500 entities over 10 days.
v1::Event Loaded(int n) {
  return Order(absl::StrCat("e", n), absl::StrCat("u", n % kEntities),
               kT0 + (n * 7919LL) % (10 * kDay), 1e9 + n % 7, 1 + n % 3,
               n % 5 == 0 ? "games" : "books");
}

// What one read call answered: its status and what it sent, as canonical
// bytes per message, row or event.
struct Answer {
  absl::Status status;
  std::vector<std::string> parts;
};

enum class Call { kSnapshot, kGetFeatures, kJoinFeatures, kReadEvents };

std::string CallName(Call call) {
  switch (call) {
    case Call::kSnapshot:
      return "Snapshot";
    case Call::kGetFeatures:
      return "GetFeatures";
    case Call::kJoinFeatures:
      return "JoinFeatures";
    case Call::kReadEvents:
      return "ReadEvents";
  }
  return "";
}

class ReadFaultTest : public ::testing::TestWithParam<ReadFaultFs::Fault> {
 protected:
  void SetUp() override {
    ServerOptions options;
    options.store.env = env_.get();
    // Small messages: a snapshot, a join and a replay come in many chunks,
    // so a fault can meet a call after it sent some.
    options.max_message_bytes = 64 << 10;
    options.join_run_rows = 300;
    options.tile_sealed_days = false;
    // The snapshot's stream scan reads ahead in 16 KiB (not 1 MiB: the
    // whole of this small store), so its reads, and the faults met
    // through its read-ahead buffer, fall at several points.
    options.store.scan_readahead_bytes = 16 << 10;
    ts_ = std::make_unique<TestServer>(dir_.Sub("data"), true, options);
    auto defs = ParseDefinitionsText(kView, "test");
    ASSERT_TRUE(defs.ok()) << defs.status();
    v1::ApplyDefinitionsRequest apply;
    *apply.mutable_definitions() = *defs;
    ASSERT_TRUE(ts_->client().ApplyDefinitions(apply).ok());
    for (int b = 0; b < 20; ++b) {
      v1::IngestRequest req;
      req.set_stream("orders");
      for (int i = 0; i < 500; ++i) *req.add_events() = Loaded(b * 500 + i);
      auto r = ts_->client().Ingest(req);
      ASSERT_TRUE(r.ok()) << r.status();
    }
    watermark_ = ts_->client().GetStatus()->watermark();
    // Every event in table files at the bottom, then a new process's view
    // of them: empty caches, so reads go to the files.
    ASSERT_TRUE(ts_->server().store()->CompactAll().ok());
    ts_->Restart();
    for (Call call : kCalls) {
      baseline_[call] = Read(call);
      ASSERT_TRUE(baseline_[call].status.ok())
          << CallName(call) << ": " << baseline_[call].status;
    }
    ASSERT_GT(baseline_[Call::kSnapshot].parts.size(), 2u);
    ASSERT_EQ(baseline_[Call::kReadEvents].parts.size(), 10000u);
  }

  // One read call at the watermark of the load.
  Answer Read(Call call) {
    Answer a;
    const int64_t as_of = kT0 + 10 * kDay;
    switch (call) {
      case Call::kSnapshot: {
        v1::SnapshotRequest snap;
        snap.set_view("rv");
        snap.set_watermark(watermark_);
        *snap.mutable_as_of() = MicrosToTimestamp(as_of);
        a.status =
            ts_->client().Snapshot(snap, [&](const v1::SnapshotChunk& c) {
              a.parts.push_back(Canonical(c));
              return true;
            });
        break;
      }
      case Call::kGetFeatures: {
        v1::GetFeaturesRequest get;
        get.set_view("rv");
        get.set_watermark(watermark_);
        *get.mutable_as_of() = MicrosToTimestamp(as_of);
        for (int u = 0; u < kEntities; u += 37) {
          get.add_entities(absl::StrCat("u", u));
        }
        auto got = ts_->client().GetFeatures(get);
        a.status = got.status();
        if (got.ok()) a.parts.push_back(Canonical(*got));
        break;
      }
      case Call::kJoinFeatures: {
        v1::JoinFeaturesRequest first;
        first.set_view("rv");
        first.set_watermark(watermark_);
        // In entity order: each run of labels reads its own part of the
        // table files, so a fault can meet a later run.
        std::vector<std::string> entities;
        for (int u = 0; u < kEntities; ++u) {
          entities.push_back(absl::StrCat("u", u));
        }
        std::sort(entities.begin(), entities.end());
        int sent = 0;
        a.status = ts_->client().JoinFeatures(
            first,
            [&](v1::JoinFeaturesRequest* m) -> absl::StatusOr<bool> {
              if (sent == kEntities) return false;
              for (int i = 0; i < 300; ++i, ++sent) {
                auto* row = m->add_rows();
                row->set_entity(entities[sent]);
                *row->mutable_time() = MicrosToTimestamp(
                    kT0 + (sent * 3571LL * 1000000) % (10 * kDay));
              }
              return true;
            },
            [&](const v1::JoinFeaturesResponse& r) {
              for (const auto& row : r.rows()) {
                a.parts.push_back(Canonical(row));
              }
              return true;
            });
        break;
      }
      case Call::kReadEvents: {
        v1::ReadEventsRequest replay;
        replay.set_stream("orders");
        replay.set_watermark(watermark_);
        a.status = testing::ForEachEvent(ts_->client(), replay,
                                         [&](const v1::Event& e) {
                                           a.parts.push_back(Canonical(e));
                                           return true;
                                         });
        break;
      }
    }
    return a;
  }

  static constexpr Call kCalls[] = {Call::kSnapshot, Call::kGetFeatures,
                                    Call::kJoinFeatures, Call::kReadEvents};
  testing::TempDir dir_;
  std::shared_ptr<ReadFaultFs> fs_ =
      std::make_shared<ReadFaultFs>(rocksdb::FileSystem::Default());
  std::unique_ptr<rocksdb::Env> env_ = rocksdb::NewCompositeEnv(fs_);
  std::unique_ptr<TestServer> ts_;
  uint64_t watermark_ = 0;
  std::map<Call, Answer> baseline_;
};

INSTANTIATE_TEST_SUITE_P(Faults, ReadFaultTest,
                         ::testing::Values(ReadFaultFs::Fault::kIoError,
                                           ReadFaultFs::Fault::kDamage),
                         [](const auto& info) {
                           return info.param == ReadFaultFs::Fault::kIoError
                                      ? "EIO"
                                      : "Damage";
                         });

TEST_P(ReadFaultTest, ReadsFailWithAClearStatusAndAnswerAgainAfterwards) {
  const bool io_error = GetParam() == ReadFaultFs::Fault::kIoError;
  for (Call call : kCalls) {
    SCOPED_TRACE(CallName(call));
    const Answer& want = baseline_[call];
    // How many table file reads the call makes (each restart empties the
    // caches, so every run of it reads about as much).
    ts_->Restart();
    const int before = fs_->reads();
    ASSERT_TRUE(Read(call).status.ok());
    const int reads = fs_->reads() - before;
    ASSERT_GE(reads, 4);
    int failed = 0;
    int failed_after_parts = 0;
    // The fault meets the call at different points: at its first read,
    // its second, and a quarter, half and three quarters of the way.
    for (int reads_left : {0, 1, reads / 4, reads / 2, reads * 3 / 4}) {
      SCOPED_TRACE(absl::StrCat("fault after ", reads_left, " reads"));
      ts_->Restart();
      const int injected = fs_->injected();
      fs_->Arm(GetParam(), reads_left);
      const Answer got = Read(call);
      fs_->Disarm();
      // What the call sent before a fault is what it sends without one.
      ASSERT_LE(got.parts.size(), want.parts.size());
      EXPECT_TRUE(
          std::equal(got.parts.begin(), got.parts.end(), want.parts.begin()));
      if (got.status.ok()) {
        // No fault met it, or it met one and failed: never both.
        EXPECT_EQ(fs_->injected(), injected) << "a fault the call hid";
        EXPECT_EQ(got.parts.size(), want.parts.size());
      } else {
        ++failed;
        if (!got.parts.empty()) ++failed_after_parts;
        EXPECT_GT(fs_->injected(), injected);
        EXPECT_EQ(got.status.code(), io_error ? absl::StatusCode::kUnavailable
                                              : absl::StatusCode::kDataLoss)
            << got.status;
        EXPECT_TRUE(absl::StrContains(
            got.status.message(),
            io_error ? "injected EIO" : "block checksum mismatch"))
            << got.status;
      }
      // The server is up and answers as before, at once.
      ASSERT_TRUE(ts_->client().GetStatus().ok());
      const Answer again = Read(call);
      EXPECT_TRUE(again.status.ok()) << again.status;
      EXPECT_EQ(again.parts, want.parts);
    }
    // A snapshot's workers take entities as they come, so the reads it
    // makes vary a little from run to run: the points near its end may
    // come after its last read.
    EXPECT_GE(failed, 3);
    if (call != Call::kGetFeatures) {
      EXPECT_GT(failed_after_parts, 0) << "a stream failed after a chunk";
    }
  }
  // Writes go on: a new event is taken, a retried one is a duplicate.
  v1::IngestRequest req;
  req.set_stream("orders");
  *req.add_events() = Order("new", "u1", kT0 + kDay, 1.0);
  *req.add_events() = Loaded(1);  // stored: a duplicate
  auto r = ts_->client().Ingest(req);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->accepted(), 1);
  EXPECT_EQ(r->duplicates(), 1);
  EXPECT_EQ(ts_->client().GetStatus()->watermark(), watermark_ + 1);
}

// Ingest looks every event id up (in table files, here): a lookup that
// fails must fail the batch, never let a stored id pass for a new one.
TEST_P(ReadFaultTest, IngestNeverTakesAStoredIdForANewOneWhileReadsFail) {
  const bool io_error = GetParam() == ReadFaultFs::Fault::kIoError;
  // Ids stored long ago, and one that is new.
  v1::IngestRequest again;
  again.set_stream("orders");
  for (int n = 0; n < 100; ++n) *again.add_events() = Loaded(n);
  *again.add_events() = Order("fresh", "u7", kT0 + kDay, 2.0);
  int failed = 0;
  int64_t accepted = 0;  // "fresh", once
  for (int reads_left : {0, 1, 2}) {
    SCOPED_TRACE(absl::StrCat("fault after ", reads_left, " reads"));
    ts_->Restart();
    const int injected = fs_->injected();
    fs_->Arm(GetParam(), reads_left);
    auto r = ts_->client().Ingest(again);
    fs_->Disarm();
    if (r.ok()) {
      EXPECT_EQ(fs_->injected(), injected) << "a fault the ingest hid";
      EXPECT_EQ(r->accepted() + r->duplicates(), 101);
      EXPECT_GE(r->duplicates(), 100);
      accepted += r->accepted();
      continue;
    }
    ++failed;
    EXPECT_GT(fs_->injected(), injected);
    EXPECT_EQ(r.status().code(), io_error ? absl::StatusCode::kUnavailable
                                          : absl::StatusCode::kDataLoss)
        << r.status();
    // Nothing of the batch is stored.
    EXPECT_EQ(ts_->client().GetStatus()->watermark(), watermark_ + accepted);
  }
  EXPECT_GT(failed, 0);
  // Once reads are right: the stored ids are duplicates.
  auto r = ts_->client().Ingest(again);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->accepted() + r->duplicates(), 101);
  accepted += r->accepted();
  EXPECT_EQ(accepted, 1);
  EXPECT_EQ(ts_->client().GetStatus()->watermark(), watermark_ + 1);
  int64_t events = 0;
  v1::ReadEventsRequest all;
  all.set_stream("orders");
  ASSERT_TRUE(testing::ForEachEvent(ts_->client(), all, [&](const v1::Event&) {
                ++events;
                return true;
              }).ok());
  EXPECT_EQ(events, 10001);
}

}  // namespace
}  // namespace rawfeat
