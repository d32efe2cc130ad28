#include "server/storage/keys.h"

#include <algorithm>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "server/common/coding.h"

namespace rawfeat {

std::string StreamPrefix(uint32_t stream_id) {
  std::string k;
  PutBigEndian32(&k, stream_id);
  return k;
}

void SetEntityPrefix(uint32_t stream_id, absl::string_view entity,
                     std::string* out) {
  out->clear();
  out->reserve(4 + entity.size() + 1 + 16);  // room for a time and seq
  PutBigEndian32(out, stream_id);
  out->append(entity.data(), entity.size());
  out->push_back('\0');
}

std::string EntityPrefix(uint32_t stream_id, absl::string_view entity) {
  std::string k;
  SetEntityPrefix(stream_id, entity, &k);
  return k;
}

std::string EntityTimeKey(uint32_t stream_id, absl::string_view entity,
                          int64_t time_us) {
  std::string k = EntityPrefix(stream_id, entity);
  PutBigEndian64(&k, OrderedFromSigned(time_us));
  return k;
}

std::string EventKey(uint32_t stream_id, absl::string_view entity,
                     int64_t time_us, uint64_t seq) {
  std::string k = EntityTimeKey(stream_id, entity, time_us);
  PutBigEndian64(&k, seq);
  return k;
}

std::string BlockPrefix(uint32_t stream_id, absl::string_view entity) {
  return EntityPrefix(stream_id | kBlockStreamBit, entity);
}

std::string BlockKey(uint32_t stream_id, absl::string_view entity,
                     int64_t last_time_us, uint64_t last_seq) {
  return EventKey(stream_id | kBlockStreamBit, entity, last_time_us, last_seq);
}

void SetTailBlockKey(uint32_t stream_id, absl::string_view entity,
                     std::string* out) {
  SetEntityPrefix(stream_id | kBlockStreamBit, entity, out);
  out->append(16, '\xff');
}

std::string TailBlockKey(uint32_t stream_id, absl::string_view entity) {
  std::string k;
  SetTailBlockKey(stream_id, entity, &k);
  return k;
}

bool IsTailBlockKey(absl::string_view block_key) {
  // A full block ending at time INT64_MAX and seq UINT64_MAX would have
  // it, but no event has such a time (validation keeps times to years
  // 1 to 9999).
  constexpr absl::string_view kTail = "\xff\xff\xff\xff\xff\xff\xff\xff"
                                      "\xff\xff\xff\xff\xff\xff\xff\xff";
  return absl::EndsWith(block_key, kTail);
}

std::string PrefixSuccessor(absl::string_view prefix) {
  std::string s(prefix);
  while (!s.empty()) {
    auto& c = reinterpret_cast<unsigned char&>(s.back());
    if (c != 0xff) {
      ++c;
      return s;
    }
    s.pop_back();
  }
  return s;
}

absl::string_view EntityOfPrefix(absl::string_view prefix) {
  return prefix.substr(4, prefix.size() - 5);
}

bool ParseEventKey(absl::string_view key, ParsedEventKey* out) {
  // 4 (stream) + entity + 1 (NUL) + 8 (time) + 8 (seq).
  if (key.size() < 4 + 1 + 16) return false;
  const size_t entity_end = key.size() - 17;
  if (key[entity_end] != '\0') return false;
  out->stream_id = DecodeBigEndian32(key.data());
  out->entity = key.substr(4, entity_end - 4);
  out->time_us =
      SignedFromOrdered(DecodeBigEndian64(key.data() + entity_end + 1));
  out->seq = DecodeBigEndian64(key.data() + entity_end + 9);
  return true;
}

std::string IdKey(uint32_t stream_id, absl::string_view event_id) {
  std::string k;
  k.reserve(4 + event_id.size());
  AppendIdKey(stream_id, event_id, &k);
  return k;
}

void AppendIdKey(uint32_t stream_id, absl::string_view event_id,
                 std::string* out) {
  PutBigEndian32(out, stream_id);
  out->append(event_id.data(), event_id.size());
}

std::string EncodeIdRecord(uint64_t seq, absl::string_view hash,
                           int64_t time_us) {
  std::string v;
  v.reserve(kMaxIdRecordBytes);
  AppendIdRecord(seq, hash, time_us, &v);
  return v;
}

void AppendIdRecord(uint64_t seq, absl::string_view hash, int64_t time_us,
                    std::string* out) {
  PutVarint64(out, seq);
  PutVarint64(out, ZigZagEncode(time_us));
  out->append(hash.data(), std::min(hash.size(), kIdHashBytes));
  out->resize(out->size() + kIdHashBytes - std::min(hash.size(), kIdHashBytes));
}

bool DecodeIdRecord(absl::string_view value, IdRecord* out) {
  if (value.size() == 40 || value.size() == 48) {  // before format 3
    out->seq = DecodeBigEndian64(value.data());
    out->hash = value.substr(8, kIdHashBytes);
    out->has_time = value.size() == 48;
    out->time_us =
        out->has_time ? SignedFromOrdered(DecodeBigEndian64(value.data() + 40))
                      : 0;
    return true;
  }
  uint64_t zigzag_time = 0;
  if (!GetVarint64(&value, &out->seq) || !GetVarint64(&value, &zigzag_time) ||
      value.size() != kIdHashBytes) {
    return false;
  }
  out->has_time = true;
  out->time_us = ZigZagDecode(zigzag_time);
  out->hash = value;
  return true;
}

std::string LogKey(uint64_t seq) {
  std::string k;
  PutBigEndian64(&k, seq);
  return k;
}

uint64_t ParseLogKey(absl::string_view key) {
  return DecodeBigEndian64(key.data());
}

void SetTilePrefix(uint32_t stream_id, absl::string_view entity,
                   absl::string_view view, uint32_t version, std::string* out) {
  SetEntityPrefix(stream_id, entity, out);
  PutLengthPrefixed(out, view);
  PutBigEndian32(out, version);
}

std::string TilePrefix(uint32_t stream_id, absl::string_view entity,
                       absl::string_view view, uint32_t version) {
  std::string k;
  SetTilePrefix(stream_id, entity, view, version, &k);
  return k;
}

std::string TileKey(absl::string_view tile_prefix, int64_t day_start) {
  std::string k(tile_prefix);
  PutBigEndian64(&k, OrderedFromSigned(day_start));
  return k;
}

bool ParseTileKey(absl::string_view key, ParsedTileKey* out) {
  if (key.size() < 5) return false;
  const size_t nul = key.find('\0', 4);
  if (nul == absl::string_view::npos) return false;
  absl::string_view rest = key.substr(nul + 1);
  absl::string_view view;
  if (!GetLengthPrefixed(&rest, &view) || rest.size() != 12) return false;
  out->stream_id = DecodeBigEndian32(key.data());
  out->entity = key.substr(4, nul - 4);
  out->view = view;
  out->version = DecodeBigEndian32(rest.data());
  out->day_start = SignedFromOrdered(DecodeBigEndian64(rest.data() + 4));
  return true;
}

bool TileDayKey(absl::string_view key, std::string* day_key) {
  ParsedTileKey parsed;
  if (!ParseTileKey(key, &parsed)) return false;
  *day_key = EntityTimeKey(parsed.stream_id, parsed.entity, parsed.day_start);
  return true;
}

std::string MetaStreamKey(absl::string_view name) {
  return absl::StrCat(kMetaStreamPrefix, name);
}

std::string MetaViewKey(absl::string_view name, uint32_t version) {
  std::string k = absl::StrCat(kMetaViewPrefix, name, "/");
  PutBigEndian32(&k, version);
  return k;
}

std::string MetaServiceKey(absl::string_view name, uint32_t version) {
  std::string k = absl::StrCat(kMetaServicePrefix, name, "/");
  PutBigEndian32(&k, version);
  return k;
}

std::string MetaCountKey(uint32_t stream_id) {
  std::string k = kMetaCountPrefix;
  PutBigEndian32(&k, stream_id);
  return k;
}

}  // namespace rawfeat
