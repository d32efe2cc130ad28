#include "server/storage/event_block.h"

#include "server/common/coding.h"

namespace rawfeat {

std::string EncodeBlock(int64_t key_time,
                        const std::vector<BlockEvent>& events) {
  std::string out;
  size_t bytes = 16;
  for (const BlockEvent& e : events) bytes += 8 + e.value.size();
  out.reserve(bytes);
  out.push_back(kBlockFormat);
  PutVarint64(&out, events.size());
  PutVarint64(&out, static_cast<uint64_t>(events.back().time_us) -
                        static_cast<uint64_t>(key_time));
  int64_t prev_time = key_time;
  for (const BlockEvent& e : events) {
    PutVarint64(&out, static_cast<uint64_t>(e.time_us) -
                          static_cast<uint64_t>(prev_time));
    prev_time = e.time_us;
  }
  PutVarint64(&out, events.front().seq);
  for (size_t i = 1; i < events.size(); ++i) {
    PutVarint64(&out, ZigZagEncode(static_cast<int64_t>(events[i].seq -
                                                        events[i - 1].seq)));
  }
  for (const BlockEvent& e : events) PutLengthPrefixed(&out, e.value);
  return out;
}

namespace {

// Reads the format byte, n and the last time from the front of *in.
bool ReadHeader(int64_t key_time, absl::string_view* in, uint64_t* n,
                int64_t* last) {
  uint64_t span;
  if (!IsBlockValue(*in)) return false;
  in->remove_prefix(1);
  if (!GetVarint64(in, n) || *n == 0 || *n > in->size() ||
      !GetVarint64(in, &span)) {
    return false;
  }
  *last = static_cast<int64_t>(static_cast<uint64_t>(key_time) + span);
  return *last >= key_time;
}

}  // namespace

bool ReadBlockHeader(int64_t key_time, absl::string_view value,
                     uint64_t* events, int64_t* last) {
  return ReadHeader(key_time, &value, events, last);
}

bool DecodeBlock(int64_t key_time, absl::string_view value,
                 std::vector<BlockEvent>* out) {
  uint64_t n;
  int64_t last;
  out->clear();
  if (!ReadHeader(key_time, &value, &n, &last)) return false;
  out->resize(n);
  int64_t time = key_time;
  for (BlockEvent& e : *out) {
    uint64_t delta;
    if (!GetVarint64(&value, &delta)) return false;
    const int64_t next =
        static_cast<int64_t>(static_cast<uint64_t>(time) + delta);
    if (next < time) return false;  // times never decrease
    time = next;
    e.time_us = time;
  }
  if (time != last) return false;
  uint64_t seq;
  if (!GetVarint64(&value, &seq)) return false;
  (*out)[0].seq = seq;
  for (uint64_t i = 1; i < n; ++i) {
    uint64_t z;
    if (!GetVarint64(&value, &z)) return false;
    seq += static_cast<uint64_t>(ZigZagDecode(z));
    (*out)[i].seq = seq;
    // (time, seq) strictly increases.
    if ((*out)[i].time_us == (*out)[i - 1].time_us &&
        seq <= (*out)[i - 1].seq) {
      return false;
    }
  }
  for (BlockEvent& e : *out) {
    if (!GetLengthPrefixed(&value, &e.value) || e.value.empty()) return false;
  }
  return value.empty();
}

}  // namespace rawfeat
