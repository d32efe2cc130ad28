#include "server/storage/event_block.h"

#include "server/common/coding.h"

namespace rawfeat {
namespace {

uint64_t Diff(int64_t a, int64_t b) {
  return static_cast<uint64_t>(a) - static_cast<uint64_t>(b);
}
int64_t Add(int64_t a, uint64_t d) {
  return static_cast<int64_t>(static_cast<uint64_t>(a) + d);
}

// Reads the format byte, n and the first and last times from *in.
bool ReadHeader(absl::string_view* in, uint64_t* n, int64_t* first,
                int64_t* last) {
  uint64_t z, span;
  if (!IsBlockValue(*in)) return false;
  in->remove_prefix(1);
  if (!GetVarint64(in, n) || *n == 0 || *n > in->size() ||
      !GetVarint64(in, &z) || !GetVarint64(in, &span)) {
    return false;
  }
  *first = ZigZagDecode(z);
  *last = Add(*first, span);
  return *last >= *first;
}

}  // namespace

std::string EncodeBlock(const std::vector<BlockEvent>& events, char format) {
  std::string out;
  size_t bytes = 24;
  for (const BlockEvent& e : events) bytes += 8 + e.value.size();
  out.reserve(bytes);
  out.push_back(format);
  PutVarint64(&out, events.size());
  PutVarint64(&out, ZigZagEncode(events.front().time_us));
  PutVarint64(&out, Diff(events.back().time_us, events.front().time_us));
  for (size_t i = 1; i < events.size(); ++i) {
    PutVarint64(&out, Diff(events[i].time_us, events[i - 1].time_us));
  }
  PutVarint64(&out, events.front().seq);
  for (size_t i = 1; i < events.size(); ++i) {
    PutVarint64(&out, ZigZagEncode(static_cast<int64_t>(events[i].seq -
                                                        events[i - 1].seq)));
  }
  for (const BlockEvent& e : events) PutLengthPrefixed(&out, e.value);
  return out;
}

bool ReadBlockHeader(absl::string_view value, uint64_t* events, int64_t* first,
                     int64_t* last) {
  return ReadHeader(&value, events, first, last);
}

bool DecodeBlockKeys(absl::string_view value, std::vector<BlockEvent>* out,
                     absl::string_view* values) {
  uint64_t n;
  int64_t first, last;
  out->clear();
  if (!ReadHeader(&value, &n, &first, &last)) return false;
  out->resize(n);
  int64_t time = first;
  (*out)[0].time_us = first;
  for (uint64_t i = 1; i < n; ++i) {
    uint64_t delta;
    if (!GetVarint64(&value, &delta)) return false;
    const int64_t next = Add(time, delta);
    if (next < time) return false;  // times never decrease
    time = next;
    (*out)[i].time_us = time;
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
    if (!((*out)[i - 1] < (*out)[i])) return false;  // strictly increasing
  }
  *values = value;
  return true;
}

bool DecodeBlockValues(absl::string_view values,
                       std::vector<BlockEvent>* out) {
  for (BlockEvent& e : *out) {
    if (!GetLengthPrefixed(&values, &e.value) || e.value.empty()) return false;
  }
  return values.empty();
}

bool DecodeBlock(absl::string_view value, std::vector<BlockEvent>* out) {
  absl::string_view values;
  return DecodeBlockKeys(value, out, &values) &&
         DecodeBlockValues(values, out);
}

}  // namespace rawfeat
