#ifndef RAWFEAT_SERVER_STORAGE_EVENT_BLOCK_H_
#define RAWFEAT_SERVER_STORAGE_EVENT_BLOCK_H_

// Sealed event blocks (storage format 3): many events of one (stream,
// entity) under one key of the `events` column family, so a scan reads one
// key per block instead of one per event.
//
// A block holds events of one UTC day, sorted by (event time, seq), and no
// two blocks of an entity overlap in (time, seq). Its key is the event key
// (keys.h) of its first event, or -- once retention dropped events from its
// front -- of an event before its first; events not yet sealed keep their
// own keys beside the blocks. The value:
//
//   byte   kBlockFormat
//   varint n (>= 1)
//   varint last time - key time (lets a reader skip the block undecoded)
//   times  n varints: time[0] - key time, then time[i] - time[i-1]
//   seqs   varint seq[0], then n-1 zigzag varints seq[i] - seq[i-1]
//   values n x (varint length | the event's stored value, event_codec.h)
//
// A stored event value starts with event_codec's format byte (1), so a
// value's first byte says whether a key holds one event or a block.
// Pure functions and single-thread objects; thread-compatible.

#include <cstdint>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"

namespace rawfeat {

inline constexpr char kBlockFormat = 0x42;
inline bool IsBlockValue(absl::string_view value) {
  return !value.empty() && value[0] == kBlockFormat;
}

// Sealing limits: a block holds at most this many events or (about) bytes.
inline constexpr size_t kBlockMaxEvents = 256;
inline constexpr size_t kBlockMaxBytes = 64 << 10;

struct BlockEvent {
  int64_t time_us = 0;
  uint64_t seq = 0;
  absl::string_view value;
};

// Encodes `events` (sorted by (time, seq), all >= key_time and of one
// day) as one block value. REQUIRES: !events.empty().
std::string EncodeBlock(int64_t key_time, const std::vector<BlockEvent>& events);

// Reads a block's header without decoding its events: how many it holds
// and the last one's time. False if malformed.
bool ReadBlockHeader(int64_t key_time, absl::string_view value,
                     uint64_t* events, int64_t* last);

// Decodes a block into `out` (replacing its contents); views into `value`.
// False if malformed.
bool DecodeBlock(int64_t key_time, absl::string_view value,
                 std::vector<BlockEvent>* out);

}  // namespace rawfeat

#endif  // RAWFEAT_SERVER_STORAGE_EVENT_BLOCK_H_
