#ifndef RAWFEAT_SERVER_STORAGE_RETENTION_H_
#define RAWFEAT_SERVER_STORAGE_RETENTION_H_

// Per-stream retention by event time, and the RocksDB compaction filters
// that drop what it no longer keeps.
//
// A stream's horizon at time `now` is max(now - retention, floor): reads
// may not reach below it, ingest stores nothing below it, and compactions
// drop events (and their ids and tiles; their log entries become removed
// markers) more than kRetentionGrace below it. The floor is where an
// earlier, shorter-lived retention left off: once events may have been
// dropped, a longer retention (or none) cannot bring the horizon back.
// The grace keeps events a reader pinned a moment ago still needs (RocksDB
// runs compaction filters whatever snapshots are held).
//
// Thread-safety: all methods are safe to call concurrently.

#include <cstdint>
#include <limits>
#include <memory>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"

namespace rocksdb {
class CompactionFilterFactory;
}  // namespace rocksdb

namespace rawfeat {

inline constexpr int64_t kNoHorizon = std::numeric_limits<int64_t>::min();
// How far below the horizon an event must be before compaction drops it.
inline constexpr int64_t kRetentionGrace = 86400LL * 1000000;  // 1 day

class RetentionPolicy {
 public:
  // The stream's retention in microseconds (0 = forever).
  int64_t retention(uint32_t stream_id) const;
  // The stream's horizon at `now_us` (kNoHorizon: everything is kept).
  int64_t Horizon(uint32_t stream_id, int64_t now_us) const;

  // Sets a stream's retention (0 = forever) and raises its floor to
  // `floor_us` (kNoHorizon: unchanged). Filters created afterwards use it.
  void Set(uint32_t stream_id, int64_t retention_us, int64_t floor_us);
  // The floor a change of the stream's retention at `now_us` must record:
  // where the retention in force so far has its horizon now (kNoHorizon
  // when it keeps everything or does not change).
  int64_t FloorForChange(uint32_t stream_id, int64_t new_retention_us,
                         int64_t now_us) const;

  // Held while a retention change is written and applied: no compaction
  // filter is created meanwhile (they snapshot the horizons).
  absl::Mutex* change_mu() { return &change_mu_; }

  // Per stream: events with event time below it may be dropped now.
  absl::flat_hash_map<uint32_t, int64_t> Cutoffs(int64_t now_us) const;

 private:
  struct Stream {
    int64_t retention_us = 0;
    int64_t floor_us = kNoHorizon;
  };
  absl::Mutex change_mu_;
  mutable absl::Mutex mu_;
  absl::flat_hash_map<uint32_t, Stream> streams_ ABSL_GUARDED_BY(mu_);
};

// What a filter drops in its column family (keys.h layouts).
enum class RetentionFilterKind {
  kEvents,  // events below the cutoff
  kIds,     // id records carrying an event time below it
  kLog,     // such events leave their log entries (log_record.h)
  kTiles,   // tiles of days that end at or below it
};

// A factory whose filters read the policy's cutoffs when each compaction
// starts. REQUIRES: `policy` outlives the database.
std::shared_ptr<rocksdb::CompactionFilterFactory> NewRetentionFilterFactory(
    RetentionPolicy* policy, RetentionFilterKind kind);

}  // namespace rawfeat

#endif  // RAWFEAT_SERVER_STORAGE_RETENTION_H_
