// A damaged write-ahead log must never lose acknowledged events silently or
// hand their seqs out again: the open fails with DATA_LOSS naming the file,
// the offset and the highest seq the store vouches for; with
// accept_data_loss the store starts, records the lost range, refuses reads
// at a watermark inside it, and issues seqs above every seq ever issued.

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "server/storage/event_store.h"
#include "server/storage/wal_check.h"
#include "tests/test_util.h"

namespace rawfeat {
namespace {

namespace fs = std::filesystem;

constexpr int kEvents = 2000;

// The store's one write-ahead log file (the tests never flush).
std::string WalFile(const std::string& dir) {
  std::vector<std::string> logs;
  for (const auto& e : fs::directory_iterator(dir)) {
    if (e.path().extension() == ".log") logs.push_back(e.path().string());
  }
  std::sort(logs.begin(), logs.end());
  return logs.empty() ? "" : logs.back();
}

class WalDamageTest : public ::testing::Test {
 protected:
  std::string Dir() const { return dir_->Sub("db"); }

  absl::StatusOr<std::unique_ptr<EventStore>> Open(bool accept = false) {
    EventStoreOptions options;
    options.accept_data_loss = accept;
    options.seq_block = 1000;  // several reservations per test
    // The log's tail holds the appends (sealing would add its own records
    // after them, which a cut could take away harmlessly).
    options.seal_min_events = 0;
    return EventStore::Open(Dir(), options);
  }

  // Appends `n` events in batches of 100 with ids prefix0, prefix1, ...
  static void Append(EventStore* store, const std::string& prefix, int n) {
    for (int b = 0; b < n; b += 100) {
      AppendRequest req;
      req.stream_id = 1;
      for (int i = b; i < std::min(n, b + 100); ++i) {
        PendingEvent p;
        p.row = i - b;
        p.event_id = absl::StrCat(prefix, i);
        p.entity = absl::StrCat("u", i % 7);
        p.time_us = 1000 + i;
        p.content_hash.fill(static_cast<unsigned char>(i));
        p.value = std::string(40, 'v');
        req.events.push_back(std::move(p));
      }
      auto r = store->Append(&req);
      ASSERT_TRUE(r.ok()) << r.status();
    }
  }

  // A store with kEvents events, stopped cleanly.
  void Fill() {
    auto store = Open();
    ASSERT_TRUE(store.ok()) << store.status();
    Append(store->get(), "e", kEvents);
    ASSERT_EQ((*store)->watermark(), static_cast<uint64_t>(kEvents));
  }

  static void Truncate(const std::string& file, uint64_t size) {
    fs::resize_file(file, size);
  }

  static void FlipByte(const std::string& file, uint64_t offset) {
    std::fstream f(file, std::ios::in | std::ios::out | std::ios::binary);
    f.seekg(static_cast<std::streamoff>(offset));
    char c = 0;
    f.get(c);
    f.seekp(static_cast<std::streamoff>(offset));
    f.put(static_cast<char>(c ^ 0x5a));
  }

  // Opening without accepting fails with DATA_LOSS naming `what`; opening
  // with it works, records one loss covering seqs up to kEvents, and the
  // store's guarantees hold. Returns the highest seq the store kept.
  uint64_t ExpectLossThenAccept(const std::string& what) {
    auto refused = Open();
    EXPECT_EQ(refused.status().code(), absl::StatusCode::kDataLoss)
        << refused.status();
    EXPECT_TRUE(absl::StrContains(refused.status().message(), what))
        << refused.status();
    EXPECT_TRUE(
        absl::StrContains(refused.status().message(), "vouch for seqs up to"))
        << refused.status();
    // Refusing changes nothing: a second start is refused the same way.
    EXPECT_EQ(Open().status().code(), absl::StatusCode::kDataLoss);

    auto store = Open(/*accept=*/true);
    EXPECT_TRUE(store.ok()) << store.status();
    if (!store.ok()) return 0;
    const uint64_t kept = (*store)->watermark();
    EXPECT_LT(kept, static_cast<uint64_t>(kEvents));
    const auto losses = (*store)->DataLosses();
    EXPECT_EQ(losses.size(), 1u);
    if (losses.size() != 1) return kept;
    EXPECT_EQ(losses[0].first_seq, kept + 1);
    EXPECT_GE(losses[0].last_seq, static_cast<uint64_t>(kEvents));
    EXPECT_FALSE(losses[0].detail.empty());
    // A read at a watermark inside the lost range cannot be reproduced.
    EXPECT_EQ((*store)->PinRead(kept + 1).status().code(),
              absl::StatusCode::kDataLoss);
    EXPECT_TRUE((*store)->PinRead(kept).ok());
    // New events get seqs above every seq ever issued.
    Append(store->get(), "new", 10);
    EXPECT_GT((*store)->watermark(), losses[0].last_seq);
    EXPECT_EQ((*store)->watermark(), losses[0].last_seq + 10);
    store->reset();
    // The loss stays recorded across restarts, which need no flag now.
    auto again = Open();
    EXPECT_TRUE(again.ok()) << again.status();
    if (again.ok()) {
      EXPECT_EQ((*again)->DataLosses().size(), 1u);
      EXPECT_EQ((*again)->watermark(), losses[0].last_seq + 10);
    }
    return kept;
  }

  std::unique_ptr<testing::TempDir> dir_ = std::make_unique<testing::TempDir>();
};

TEST_F(WalDamageTest, CleanStoreOpensWithoutLoss) {
  Fill();
  ASSERT_TRUE(FindWalDamage(Dir()).empty());
  auto store = Open();
  ASSERT_TRUE(store.ok()) << store.status();
  EXPECT_EQ((*store)->watermark(), static_cast<uint64_t>(kEvents));
  EXPECT_TRUE((*store)->DataLosses().empty());
}

TEST_F(WalDamageTest, TailCutAfterACleanStopIsDetected) {
  for (uint64_t cut : {uint64_t{1}, uint64_t{1000}, uint64_t{0}}) {
    SCOPED_TRACE(absl::StrCat("cut ", cut));
    dir_ = std::make_unique<testing::TempDir>();
    Fill();
    const std::string wal = WalFile(Dir());
    ASSERT_FALSE(wal.empty());
    const uint64_t size = fs::file_size(wal);
    // cut 0: half the log, so the cut lands wherever it lands.
    Truncate(wal, cut == 0 ? size / 2 : size - cut);
    // Half the log may cut inside a record: RocksDB tolerates that as a
    // torn tail, and the clean-stop marker still tells.
    ExpectLossThenAccept(cut == 0 ? "" : "clean stop left seqs up to 2000");
  }
}

TEST_F(WalDamageTest, DamageInsideTheLogIsDetectedWithFileAndOffset) {
  Fill();
  const std::string wal = WalFile(Dir());
  const uint64_t size = fs::file_size(wal);
  FlipByte(wal, size / 2);
  const auto damage = FindWalDamage(Dir());
  ASSERT_EQ(damage.size(), 1u);
  EXPECT_EQ(damage[0].file, wal);
  EXPECT_LE(damage[0].offset, size / 2);
  EXPECT_GT(damage[0].offset + 32768, size / 2);
  EXPECT_EQ(damage[0].reason, "checksum mismatch");
  const uint64_t kept =
      ExpectLossThenAccept(absl::StrCat(wal, " at offset ", damage[0].offset));
  EXPECT_GT(kept, 0u);
}

// A crash leaves no clean-stop marker. Then an incomplete last record is
// what a write cut short leaves (never synced, never acknowledged) and is
// tolerated; a bad record inside the log is not.
TEST_F(WalDamageTest, AfterACrashOnlyATornLastRecordIsTolerated) {
  const std::string image = dir_->Sub("image");
  {
    auto store = Open();
    ASSERT_TRUE(store.ok()) << store.status();
    Append(store->get(), "e", kEvents);
    // The files as a crash would leave them: copied while the store runs.
    fs::copy(Dir(), image, fs::copy_options::recursive);
  }
  fs::remove_all(Dir());
  fs::copy(image, Dir(), fs::copy_options::recursive);
  const std::string wal = WalFile(Dir());
  Truncate(wal, fs::file_size(wal) - 10);  // inside the last record
  {
    auto store = Open();
    ASSERT_TRUE(store.ok()) << store.status();
    EXPECT_EQ((*store)->watermark(), static_cast<uint64_t>(kEvents - 100));
    EXPECT_TRUE((*store)->DataLosses().empty());
    Append(store->get(), "after", 1);
    EXPECT_EQ((*store)->watermark(), static_cast<uint64_t>(kEvents - 99));
  }

  fs::remove_all(Dir());
  fs::copy(image, Dir(), fs::copy_options::recursive);
  FlipByte(WalFile(Dir()), fs::file_size(WalFile(Dir())) / 3);
  auto refused = Open();
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kDataLoss);
  auto store = Open(/*accept=*/true);
  ASSERT_TRUE(store.ok()) << store.status();
  // Without a clean stop the exact last seq is unknown: the lost range
  // reaches the reservation, and no seq below it is issued again.
  ASSERT_EQ((*store)->DataLosses().size(), 1u);
  const DataLoss loss = (*store)->DataLosses()[0];
  EXPECT_GE(loss.last_seq, static_cast<uint64_t>(kEvents));
  Append(store->get(), "new", 1);
  EXPECT_EQ((*store)->watermark(), loss.last_seq + 1);
}

// RocksDB 7.8 leaves the new log of every start that wrote nothing behind
// (and skips it at the next start): a server restarted often, or in a
// crash loop, gathered one empty file per start. The store deletes the
// empty ones RocksDB no longer needs, and never a log with data in it.
TEST_F(WalDamageTest, RestartsLeaveNoEmptyLogsBehind) {
  Fill();
  auto count_logs = [this] {
    int n = 0;
    for (const auto& e : fs::directory_iterator(Dir())) {
      n += e.path().extension() == ".log";
    }
    return n;
  };
  int most = 0;
  for (int round = 0; round < 12; ++round) {
    SCOPED_TRACE(absl::StrCat("round ", round));
    auto store = Open();
    ASSERT_TRUE(store.ok()) << store.status();
    most = std::max(most, count_logs());
    // Now and then a start that writes: its log holds data at the next
    // start (round 7), or is flushed before the store closes (round 3).
    if (round % 4 == 3) {
      Append(store->get(), absl::StrCat("r", round, "-"), 100);
      if (round == 3) {
        ASSERT_TRUE((*store)->CompactAll().ok());
      }
    }
  }
  // The live log, and after round 7 the one holding its appends until the
  // next start has replayed them.
  EXPECT_LE(most, 2);
  auto store = Open();
  ASSERT_TRUE(store.ok()) << store.status();
  EXPECT_EQ((*store)->watermark(), static_cast<uint64_t>(kEvents + 300));
  EXPECT_TRUE((*store)->DataLosses().empty());
}

TEST(Crc32cTest, KnownValues) {
  // RFC 3720 B.4 test vectors.
  const std::string zeros(32, '\0');
  EXPECT_EQ(Crc32c(0, zeros.data(), zeros.size()), 0x8a9136aau);
  const std::string ones(32, '\xff');
  EXPECT_EQ(Crc32c(0, ones.data(), ones.size()), 0x62a8ab43u);
  EXPECT_EQ(Crc32c(0, "123456789", 9), 0xe3069283u);
}

}  // namespace
}  // namespace rawfeat
