#ifndef RAWFEAT_SERVER_STORAGE_LOG_RECORD_H_
#define RAWFEAT_SERVER_STORAGE_LOG_RECORD_H_

// The entries of the `log` column family: every stored event in seq
// order, so replay is one sequential read. An entry's key is be64 of the
// highest seq it covers (keys.h LogKey); its value, by its first byte:
//
//   0x03  storage format 2: the events of (part of) one committed group,
//         in seq order, encoded once:
//           0x03 | varint(base seq)
//           per event: varint(seq - previous seq; the first: seq - base)
//                      varint(stream id) | varint(|entity|) entity
//                      varint(zigzag(event time, us))
//                      varint(|value|) value (event_codec.h)
//         A group of N events costs one key instead of N. Expiry and
//         erasure rewrite the entry without the events they remove.
//   0x01  format 1, one event: 0x01 | varint(|event key|) | event key |
//         event value.
//   0x00  format 1, before the log carried values: the bare event key
//         (it starts with be32(stream id)); the value is read from
//         `events`.
//   0x02  removed: every event the entry held expired or was erased. The
//         key stays, so the log still ends at the highest seq ever issued.
//
// Pure functions and single-thread objects; thread-compatible.

#include <cstdint>
#include <functional>
#include <string>

#include "absl/strings/string_view.h"
#include "server/storage/event_cursor.h"  // StoredEvent

namespace rawfeat {

inline constexpr char kLogRemoved[] = "\x02";
inline bool IsRemovedLogValue(absl::string_view log_value) {
  return log_value == absl::string_view(kLogRemoved, 1);
}

// Builds one format-2 log entry from events added in increasing seq order.
class LogGroupWriter {
 public:
  // `base`: at most the first seq added.
  explicit LogGroupWriter(uint64_t base);
  // REQUIRES: e.seq > every seq added before, and >= base.
  void Add(const StoredEvent& e);
  size_t events() const { return events_; }
  size_t bytes() const { return value_.size(); }
  uint64_t last_seq() const { return last_; }
  // The entry's value. The writer may be reused after Reset.
  const std::string& value() const { return value_; }
  void Reset(uint64_t base);

 private:
  std::string value_;
  uint64_t last_ = 0;
  size_t events_ = 0;
};

// The format-1 value of one event (kept for tests that write old stores).
std::string LogValueV1(absl::string_view event_key,
                       absl::string_view event_value);

// Reads one log entry's events in seq order.
class LogEntryReader {
 public:
  // `key_seq`: the seq of the entry's key. False if the value is malformed
  // (a removed entry is well formed and holds no event).
  bool Reset(uint64_t key_seq, absl::string_view value);
  // The next event (views into the value passed to Reset). False at the
  // end, or if the entry is malformed: then ok() is false. A format-1
  // entry without its value yields an event whose `value` is empty: the
  // caller reads it from `events`.
  bool Next(StoredEvent* e);
  bool ok() const { return ok_; }

 private:
  enum class Kind { kNone, kSingle, kKeyOnly, kGroup };
  Kind kind_ = Kind::kNone;
  bool ok_ = true;
  uint64_t seq_ = 0;  // the key's seq (single) or the last seq read (group)
  absl::string_view event_key_, event_value_;  // single entries
  absl::string_view rest_;                     // group: what is left
  bool first_ = true;  // group: no event read yet (seqs strictly increase)
};

enum class LogRewrite { kUnchanged, kChanged, kMalformed };
// Rewrites a log entry to keep only the events for which keep(e) is true:
// kChanged with the new value in *out (kLogRemoved if none is kept),
// kUnchanged if all are kept, kMalformed if the entry cannot be read.
LogRewrite RewriteLogEntry(uint64_t key_seq, absl::string_view value,
                           const std::function<bool(const StoredEvent&)>& keep,
                           std::string* out);

}  // namespace rawfeat

#endif  // RAWFEAT_SERVER_STORAGE_LOG_RECORD_H_
