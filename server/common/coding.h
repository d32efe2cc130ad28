#ifndef RAWFEAT_SERVER_COMMON_CODING_H_
#define RAWFEAT_SERVER_COMMON_CODING_H_

// Fixed-width big-endian and varint encodings (as leveldb's util/coding.h).
// Big-endian integers sort bytewise in numeric order, which is what RocksDB
// keys need. All functions are pure and thread-safe.

#include <cstdint>
#include <cstring>
#include <string>

#include "absl/strings/string_view.h"

namespace rawfeat {

inline void PutBigEndian32(std::string* dst, uint32_t v) {
  char buf[4] = {static_cast<char>(v >> 24), static_cast<char>(v >> 16),
                 static_cast<char>(v >> 8), static_cast<char>(v)};
  dst->append(buf, 4);
}

inline void PutBigEndian64(std::string* dst, uint64_t v) {
  char buf[8];
  for (int i = 7; i >= 0; --i) {
    buf[i] = static_cast<char>(v & 0xff);
    v >>= 8;
  }
  dst->append(buf, 8);
}

// REQUIRES: p points at >= 4 / 8 readable bytes.
inline uint32_t DecodeBigEndian32(const char* p) {
  const auto* u = reinterpret_cast<const unsigned char*>(p);
  return (uint32_t{u[0]} << 24) | (uint32_t{u[1]} << 16) |
         (uint32_t{u[2]} << 8) | uint32_t{u[3]};
}
inline uint64_t DecodeBigEndian64(const char* p) {
  const auto* u = reinterpret_cast<const unsigned char*>(p);
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v = (v << 8) | u[i];
  return v;
}

// Signed int64 mapped to uint64 so that byte order equals numeric order.
inline uint64_t OrderedFromSigned(int64_t v) {
  return static_cast<uint64_t>(v) ^ (uint64_t{1} << 63);
}
inline int64_t SignedFromOrdered(uint64_t v) {
  return static_cast<int64_t>(v ^ (uint64_t{1} << 63));
}

inline void PutVarint64(std::string* dst, uint64_t v) {
  char buf[10];
  int n = 0;
  while (v >= 0x80) {
    buf[n++] = static_cast<char>(v | 0x80);
    v >>= 7;
  }
  buf[n++] = static_cast<char>(v);
  dst->append(buf, n);
}

// Parses a varint from the front of `*in`, advancing it. False on truncation.
inline bool GetVarint64(absl::string_view* in, uint64_t* v) {
  uint64_t result = 0;
  for (int shift = 0; shift <= 63 && !in->empty(); shift += 7) {
    const auto byte = static_cast<unsigned char>(in->front());
    in->remove_prefix(1);
    result |= uint64_t{byte & 0x7fu} << shift;
    if ((byte & 0x80) == 0) {
      *v = result;
      return true;
    }
  }
  return false;
}

inline uint64_t ZigZagEncode(int64_t v) {
  return (static_cast<uint64_t>(v) << 1) ^ static_cast<uint64_t>(v >> 63);
}
inline int64_t ZigZagDecode(uint64_t v) {
  return static_cast<int64_t>((v >> 1) ^ (~(v & 1) + 1));
}

inline void PutLengthPrefixed(std::string* dst, absl::string_view s) {
  PutVarint64(dst, s.size());
  dst->append(s.data(), s.size());
}

inline bool GetLengthPrefixed(absl::string_view* in, absl::string_view* out) {
  uint64_t n;
  if (!GetVarint64(in, &n) || n > in->size()) return false;
  *out = in->substr(0, n);
  in->remove_prefix(n);
  return true;
}

inline void PutFixedDouble(std::string* dst, double d) {
  uint64_t bits;
  std::memcpy(&bits, &d, sizeof(bits));
  PutBigEndian64(dst, bits);
}

inline bool GetFixedDouble(absl::string_view* in, double* d) {
  if (in->size() < 8) return false;
  const uint64_t bits = DecodeBigEndian64(in->data());
  std::memcpy(d, &bits, sizeof(bits));
  in->remove_prefix(8);
  return true;
}

}  // namespace rawfeat

#endif  // RAWFEAT_SERVER_COMMON_CODING_H_
