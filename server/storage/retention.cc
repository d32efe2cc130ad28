#include "server/storage/retention.h"

#include <algorithm>
#include <string>
#include <utility>
#include <vector>

#include "rocksdb/compaction_filter.h"
#include "server/common/coding.h"
#include "server/storage/event_block.h"
#include "server/storage/keys.h"
#include "server/storage/log_record.h"

namespace rawfeat {

int64_t RetentionPolicy::retention(uint32_t stream_id) const {
  absl::MutexLock l(&mu_);
  auto it = streams_.find(stream_id);
  return it == streams_.end() ? 0 : it->second.retention_us;
}

namespace {
int64_t HorizonOf(int64_t retention_us, int64_t floor_us, int64_t now_us) {
  const int64_t by_retention =
      retention_us > 0 ? now_us - retention_us : kNoHorizon;
  return std::max(by_retention, floor_us);
}
}  // namespace

int64_t RetentionPolicy::Horizon(uint32_t stream_id, int64_t now_us) const {
  absl::MutexLock l(&mu_);
  auto it = streams_.find(stream_id);
  if (it == streams_.end()) return kNoHorizon;
  return HorizonOf(it->second.retention_us, it->second.floor_us, now_us);
}

void RetentionPolicy::Set(uint32_t stream_id, int64_t retention_us,
                          int64_t floor_us) {
  absl::MutexLock l(&mu_);
  Stream& s = streams_[stream_id];
  s.retention_us = retention_us;
  s.floor_us = std::max(s.floor_us, floor_us);
}

int64_t RetentionPolicy::FloorForChange(uint32_t stream_id,
                                        int64_t new_retention_us,
                                        int64_t now_us) const {
  absl::MutexLock l(&mu_);
  auto it = streams_.find(stream_id);
  if (it == streams_.end() || it->second.retention_us == 0 ||
      it->second.retention_us == new_retention_us) {
    return kNoHorizon;
  }
  return HorizonOf(it->second.retention_us, it->second.floor_us, now_us);
}

absl::flat_hash_map<uint32_t, int64_t> RetentionPolicy::Cutoffs(
    int64_t now_us) const {
  absl::flat_hash_map<uint32_t, int64_t> out;
  absl::MutexLock l(&mu_);
  for (const auto& [id, s] : streams_) {
    const int64_t horizon = HorizonOf(s.retention_us, s.floor_us, now_us);
    if (horizon > kNoHorizon + kRetentionGrace) {
      out[id] = horizon - kRetentionGrace;
    }
  }
  return out;
}

namespace {

class RetentionFilter final : public rocksdb::CompactionFilter {
 public:
  RetentionFilter(RetentionFilterKind kind,
                  absl::flat_hash_map<uint32_t, int64_t> cutoffs)
      : kind_(kind), cutoffs_(std::move(cutoffs)) {}

  const char* Name() const override { return "rawfeat.Retention"; }

  bool Filter(int /*level*/, const rocksdb::Slice& key,
              const rocksdb::Slice& value, std::string* new_value,
              bool* value_changed) const override {
    const absl::string_view k(key.data(), key.size());
    const absl::string_view v(value.data(), value.size());
    switch (kind_) {
      case RetentionFilterKind::kEvents: {
        ParsedEventKey parsed;
        if (!ParseEventKey(k, &parsed)) return false;
        if (!IsBlockValue(v)) return Below(parsed.stream_id, parsed.time_us);
        // A block (under the stream id with kBlockStreamBit): dropped when
        // all its events expired, rewritten when some did. Its key (its
        // last event, or the tail's) stays right: the last event is kept.
        const uint32_t stream = parsed.stream_id & ~kBlockStreamBit;
        uint64_t n;
        int64_t first, last;
        if (!ReadBlockHeader(v, &n, &first, &last) || !Below(stream, first)) {
          return false;  // nothing expired, or corrupt: kept for readers
        }
        if (Below(stream, last)) return true;
        std::vector<BlockEvent> events;
        if (!DecodeBlock(v, &events)) return false;
        const int64_t cutoff = cutoffs_.find(stream)->second;
        events.erase(events.begin(),
                     std::find_if(events.begin(), events.end(),
                                  [&](const BlockEvent& e) {
                                    return e.time_us >= cutoff;
                                  }));
        // A tail keeps its format byte: a sole tail stays its entity's
        // only block, and one after full blocks may outlive them (a
        // reader then looks for blocks that are gone: slower, not wrong).
        *new_value = EncodeBlock(events, v[0]);
        *value_changed = true;
        return false;
      }
      case RetentionFilterKind::kIds: {
        // be32(stream) | id -> id record (keys.h). Records without a time
        // (the oldest form) and malformed ones are kept.
        IdRecord record;
        return k.size() >= 4 && DecodeIdRecord(v, &record) &&
               record.has_time &&
               Below(DecodeBigEndian32(k.data()), record.time_us);
      }
      case RetentionFilterKind::kLog: {
        // The entry is rewritten without its expired events; its key stays
        // (the log must keep ending at the highest seq). A malformed entry
        // is kept for the reader to report.
        if (k.size() != 8) return false;
        *value_changed =
            RewriteLogEntry(
                ParseLogKey(k), v,
                [this](const StoredEvent& e) {
                  return !Below(e.stream_id, e.time_us);
                },
                new_value) == LogRewrite::kChanged;
        return false;
      }
      case RetentionFilterKind::kTiles: {
        // be32(stream) | ... | be64(day_start ^ signbit)
        if (k.size() < 12) return false;
        const int64_t day =
            SignedFromOrdered(DecodeBigEndian64(k.data() + k.size() - 8));
        return day <= std::numeric_limits<int64_t>::max() - kDayMicros &&
               Below(DecodeBigEndian32(k.data()), day + kDayMicros - 1);
      }
    }
    return false;
  }

 private:
  bool Below(uint32_t stream_id, int64_t time_us) const {
    auto it = cutoffs_.find(stream_id);
    return it != cutoffs_.end() && time_us < it->second;
  }

  const RetentionFilterKind kind_;
  const absl::flat_hash_map<uint32_t, int64_t> cutoffs_;
};

class RetentionFilterFactory final : public rocksdb::CompactionFilterFactory {
 public:
  RetentionFilterFactory(RetentionPolicy* policy, RetentionFilterKind kind)
      : policy_(policy), kind_(kind) {}

  const char* Name() const override { return "rawfeat.RetentionFactory"; }

  std::unique_ptr<rocksdb::CompactionFilter> CreateCompactionFilter(
      const rocksdb::CompactionFilter::Context& /*context*/) override {
    absl::flat_hash_map<uint32_t, int64_t> cutoffs;
    {
      absl::ReaderMutexLock l(policy_->change_mu());
      cutoffs = policy_->Cutoffs(absl::ToUnixMicros(absl::Now()));
    }
    if (cutoffs.empty()) return nullptr;  // nothing to drop
    return std::make_unique<RetentionFilter>(kind_, std::move(cutoffs));
  }

 private:
  RetentionPolicy* const policy_;
  const RetentionFilterKind kind_;
};

}  // namespace

std::shared_ptr<rocksdb::CompactionFilterFactory> NewRetentionFilterFactory(
    RetentionPolicy* policy, RetentionFilterKind kind) {
  return std::make_shared<RetentionFilterFactory>(policy, kind);
}

}  // namespace rawfeat
