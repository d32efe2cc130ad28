#ifndef RAWFEAT_SERVER_STORAGE_KEYS_H_
#define RAWFEAT_SERVER_STORAGE_KEYS_H_

// Column family names and key encodings, in one place. Integers are
// big-endian (signed ones with the sign bit flipped) so byte order is numeric
// order. Entities must not contain NUL: the entity is terminated by one 0x00
// byte, which keeps entity byte order and makes "a" and "ab" distinct
// prefixes. All functions are pure and thread-safe.

#include <cstdint>
#include <string>

#include "absl/strings/string_view.h"
#include "server/common/time_util.h"      // DayStart: tiles are per UTC day
#include "server/storage/event_cursor.h"  // kTileFormat

namespace rawfeat {

inline constexpr char kEventsColumnFamily[] = "events";
inline constexpr char kIdsColumnFamily[] = "ids";
inline constexpr char kLogColumnFamily[] = "log";
inline constexpr char kMetaColumnFamily[] = "meta";
inline constexpr char kTilesColumnFamily[] = "tiles";

// Event keys: be32(stream_id) | entity | 0x00 | be64(time_us ^ signbit) |
// be64(seq). Stores before format 5 held one per event not sealed yet in
// `events` (-> its stored value, event_codec.h); they are still read there
// and deleted as those events are sealed. The head (event_head.h) orders
// its events by the same key.
// Sealed blocks (event_block.h) of the stream live under the stream id with
// kBlockStreamBit set: BlockKey. Stream ids never have that bit.
inline constexpr uint32_t kBlockStreamBit = 0x80000000u;
std::string EventKey(uint32_t stream_id, absl::string_view entity,
                     int64_t time_us, uint64_t seq);
// be32(stream_id): every event of a stream.
std::string StreamPrefix(uint32_t stream_id);
// be32(stream_id) | entity | 0x00: one entity's history.
std::string EntityPrefix(uint32_t stream_id, absl::string_view entity);
// Replaces `*out` with EntityPrefix(stream_id, entity), reusing its memory
// (a lookup makes one per entity).
void SetEntityPrefix(uint32_t stream_id, absl::string_view entity,
                     std::string* out);
// The entity of an EntityPrefix (a view into it). REQUIRES: `prefix` is
// one.
absl::string_view EntityOfPrefix(absl::string_view prefix);
// Appends be64(time_us ^ signbit) to an entity prefix: seek target for
// "events of the entity at or after time_us".
std::string EntityTimeKey(uint32_t stream_id, absl::string_view entity,
                          int64_t time_us);
// be32(stream_id | kBlockStreamBit) | entity | 0x00: an entity's blocks.
std::string BlockPrefix(uint32_t stream_id, absl::string_view entity);
// A full block of the entity, by its last event; a seek to
// BlockKey(stream, entity, t, 0) lands on the block that can hold the first
// sealed event at or after t (or on the tail).
std::string BlockKey(uint32_t stream_id, absl::string_view entity,
                     int64_t last_time_us, uint64_t last_seq);
// The entity's tail block: after all its full blocks.
std::string TailBlockKey(uint32_t stream_id, absl::string_view entity);
// Replaces `*out` with TailBlockKey(stream_id, entity), reusing its memory.
void SetTailBlockKey(uint32_t stream_id, absl::string_view entity,
                     std::string* out);
// True if `block_key` (a key of a block) is its entity's tail block's: no
// block of the entity follows it.
bool IsTailBlockKey(absl::string_view block_key);

// In `events`, after every block key (stream ids stay below 2^31 - 1):
// be64(seq), a seq at or below every unsealed event's. Sealing writes it,
// like its blocks, without the write-ahead log (event_store_seal.cc).
inline constexpr char kUnsealedFromKey[] = "\xff\xff\xff\xffunsealed_from";

// The smallest key greater than every key starting with `prefix`
// (an exclusive upper bound); empty if none exists (all 0xff).
std::string PrefixSuccessor(absl::string_view prefix);

struct ParsedEventKey {
  uint32_t stream_id = 0;
  absl::string_view entity;  // points into the parsed key
  int64_t time_us = 0;
  uint64_t seq = 0;
};
// False if `key` is not a well-formed event key.
bool ParseEventKey(absl::string_view key, ParsedEventKey* out);

// ids: be32(stream_id) | event_id  ->  id record
std::string IdKey(uint32_t stream_id, absl::string_view event_id);
// The same, appended to `*out`.
void AppendIdKey(uint32_t stream_id, absl::string_view event_id,
                 std::string* out);

// An id record: the event's seq, its time (for retention) and the first
// kIdHashBytes bytes of its content hash (SHA-256), which decide duplicate
// (equal) or conflict (different). Format 4 writes
//   varint(seq) | varint(zigzag(time)) | hash[0, 16)   (18 to 36 bytes);
// earlier formats wrote be64(seq) | 32-byte hash, with be64(time ^ 2^63)
// appended since retention (40 or 48 bytes). Every form is read.
inline constexpr size_t kIdHashBytes = 16;
struct IdRecord {
  uint64_t seq = 0;
  bool has_time = false;  // false: an old 40-byte record
  int64_t time_us = 0;
  absl::string_view hash;  // kIdHashBytes bytes, points into the value
};
std::string EncodeIdRecord(uint64_t seq, absl::string_view hash,
                           int64_t time_us);
// The same, appended to `*out` (at most kMaxIdRecordBytes).
void AppendIdRecord(uint64_t seq, absl::string_view hash, int64_t time_us,
                    std::string* out);
inline constexpr size_t kMaxIdRecordBytes = 20 + kIdHashBytes;
// False if `value` is none of the forms above.
bool DecodeIdRecord(absl::string_view value, IdRecord* out);

// log: be64(seq) -> an entry of log_record.h: the key is the highest seq
// the entry covers.
std::string LogKey(uint64_t seq);
// REQUIRES: key.size() == 8.
uint64_t ParseLogKey(absl::string_view key);

// tiles: be32(stream_id) | entity | 0x00 | lp(view name) | be32(version) |
// be64(day_start ^ signbit)  ->  tile (see views/tiles.h). One view's tiles
// of one entity are contiguous and in day order.
std::string TilePrefix(uint32_t stream_id, absl::string_view entity,
                       absl::string_view view, uint32_t version);
// Replaces `*out` with TilePrefix(...), reusing its memory.
void SetTilePrefix(uint32_t stream_id, absl::string_view entity,
                   absl::string_view view, uint32_t version, std::string* out);
std::string TileKey(absl::string_view tile_prefix, int64_t day_start);
// What a tile key names (views into the key).
struct ParsedTileKey {
  uint32_t stream_id = 0;
  absl::string_view entity;
  absl::string_view view;
  uint32_t version = 0;
  int64_t day_start = 0;
};
// False if malformed.
bool ParseTileKey(absl::string_view tile_key, ParsedTileKey* out);
// The (stream, entity, day) a tile key covers, as EntityTimeKey(stream,
// entity, day_start): the key sealing uses to find the tiles of the days
// it seals events into. False if malformed.
bool TileDayKey(absl::string_view tile_key, std::string* day_key);

// The storage layout of the data dir (meta "format", be32), written when a
// store is created or first opened by a server that knows it; a store of
// a layout this server does not know is refused at open.
//   1: events, ids and log one key per event.
//   2: the log holds one entry per committed group (log_record.h).
//   3: events are sealed into blocks (event_block.h) beside the event
//      keys not sealed yet.
//   4: id records are short (IdRecord below; a format-3 server would take
//      them for corrupt).
//   5: no event keys: an event not sealed yet is only in the log, and in
//      memory (event_head.h), rebuilt from the log at open (a format-4
//      server would not see those events).
//   6: a tail block says whether its entity has other blocks
//      (event_block.h kSoleTailFormat, kTailFormat; a format-5 server
//      would take those blocks for corrupt).
// A store of an earlier format is read as it is and marked with this one
// when opened: old log entries and id records stay readable, and its
// unsealed events (event keys) are loaded into the head from the log and
// sealed, their keys deleted as they are.
inline constexpr uint32_t kStoreFormat = 6;

// meta keys.
inline constexpr char kMetaFormatKey[] = "format";           // be32
inline constexpr char kMetaTileFormatKey[] = "tile_format";  // be32
inline constexpr char kMetaStreamPrefix[] = "stream/";       // + name
inline constexpr char kMetaViewPrefix[] = "view/";           // + name/be32(ver)
inline constexpr char kMetaServicePrefix[] = "service/";     // + name/be32(ver)
inline constexpr char kMetaCountPrefix[] = "count/";  // + be32(stream_id)
// + be64(first seq) -> be64(last seq) | be64(accepted at, us) | detail
inline constexpr char kMetaLossPrefix[] = "loss/";
// + be32(stream_id) -> be64(time_us ^ signbit): the stream's retention
// horizon may never go below this (events under it may be dropped).
inline constexpr char kMetaHorizonPrefix[] = "horizon/";
// + be64(at, us) -> v1::Erasure: the erasure log.
inline constexpr char kMetaErasurePrefix[] = "erasure/";
// + be64(at, us) -> be32(stream_id) | varint seq deltas: an erasure that
// took effect and whose log entries and ids are not all emptied yet.
inline constexpr char kMetaErasingPrefix[] = "erasing/";
std::string MetaStreamKey(absl::string_view name);
std::string MetaViewKey(absl::string_view name, uint32_t version);
std::string MetaServiceKey(absl::string_view name, uint32_t version);
std::string MetaCountKey(uint32_t stream_id);

}  // namespace rawfeat

#endif  // RAWFEAT_SERVER_STORAGE_KEYS_H_
