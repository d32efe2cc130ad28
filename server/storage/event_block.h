#ifndef RAWFEAT_SERVER_STORAGE_EVENT_BLOCK_H_
#define RAWFEAT_SERVER_STORAGE_EVENT_BLOCK_H_

// Sealed event blocks (storage format 3): many events of one (stream,
// entity) under one key of the `events` column family, so a scan reads one
// key per block instead of one per event.
//
// Blocks live apart from the events not sealed yet, under the stream id
// with kBlockStreamBit set (keys.h BlockKey): full blocks keyed by their
// last event's (time, seq), then at most one tail block (keyed after every
// other) holding the entity's latest sealed events. An entity's blocks
// never overlap and hold events sorted by (event time, seq), so reading
// them in key order reads its sealed events in order, and a seek to (t, 0)
// lands on the one block that can hold the first event at or after t.
//
// The value:
//   byte   kBlockFormat, or for a tail block written since storage format
//          6 whether its entity has other blocks: kSoleTailFormat (none:
//          a reader that finds it has all of the entity's sealed events)
//          or kTailFormat (full blocks precede it)
//   varint n (>= 1)
//   zigzag varint first time; varint last time - first time
//   times  n - 1 varints time[i] - time[i-1]
//   seqs   varint seq[0], then n - 1 zigzag varints seq[i] - seq[i-1]
//   values n x (varint length | the event's stored value, event_codec.h)
//
// Pure functions; thread-safe.

#include <cstdint>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"

namespace rawfeat {

// Full blocks, and tail blocks written before storage format 6 (which do
// not say whether other blocks precede them).
inline constexpr char kBlockFormat = 0x42;
// A tail block that is its entity's only block.
inline constexpr char kSoleTailFormat = 0x43;
// A tail block after one or more full blocks.
inline constexpr char kTailFormat = 0x44;
inline bool IsBlockValue(absl::string_view value) {
  return !value.empty() && value[0] >= kBlockFormat && value[0] <= kTailFormat;
}
// True if `value` is a tail block that says it is its entity's only block.
inline bool IsSoleTail(absl::string_view value) {
  return !value.empty() && value[0] == kSoleTailFormat;
}
// For a tail block's value: false if it does not say whether other blocks
// precede it (a tail of an earlier format); else true, with `*others` set.
inline bool TailSaysOthers(absl::string_view value, bool* others) {
  if (value.empty() ||
      (value[0] != kSoleTailFormat && value[0] != kTailFormat)) {
    return false;
  }
  *others = value[0] == kTailFormat;
  return true;
}

// Sealing cuts blocks of at most this many events or (about) bytes.
inline constexpr size_t kBlockMaxEvents = 256;
inline constexpr size_t kBlockMaxBytes = 64 << 10;

struct BlockEvent {
  int64_t time_us = 0;
  uint64_t seq = 0;
  absl::string_view value;
  bool operator<(const BlockEvent& o) const {
    return time_us != o.time_us ? time_us < o.time_us : seq < o.seq;
  }
};

// Encodes `events` (sorted by (time, seq)) as one block value whose first
// byte is `format` (one of the three above).
// REQUIRES: !events.empty().
std::string EncodeBlock(const std::vector<BlockEvent>& events,
                        char format = kBlockFormat);

// Reads a block's header without decoding its events: how many it holds
// and the first and last one's times. False if malformed.
bool ReadBlockHeader(absl::string_view value, uint64_t* events, int64_t* first,
                     int64_t* last);

// Decodes a block into `out` (replacing its contents); views into `value`.
// False if malformed (or not sorted by (time, seq)).
bool DecodeBlock(absl::string_view value, std::vector<BlockEvent>* out);

// DecodeBlock in two steps, for readers that may need no value: the times
// and seqs into `out` (values left empty), with `*values` set to the
// block's value column; then, when a value is needed, the values from that
// column. Each is false if its part is malformed (DecodeBlock's checks).
bool DecodeBlockKeys(absl::string_view value, std::vector<BlockEvent>* out,
                     absl::string_view* values);
bool DecodeBlockValues(absl::string_view values, std::vector<BlockEvent>* out);

}  // namespace rawfeat

#endif  // RAWFEAT_SERVER_STORAGE_EVENT_BLOCK_H_
