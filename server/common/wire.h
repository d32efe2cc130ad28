#ifndef RAWFEAT_SERVER_COMMON_WIRE_H_
#define RAWFEAT_SERVER_COMMON_WIRE_H_

// Protobuf wire format, written by hand where building and serializing
// message objects per row is the cost (replay and join responses). Field
// numbers come from the generated k*FieldNumber constants at each use.
// Pure functions; thread-safe.

#include <cstdint>
#include <cstring>
#include <string>

#include "absl/strings/string_view.h"
#include "server/common/coding.h"

namespace rawfeat {
namespace wire {

enum WireType : uint8_t { kVarint = 0, kFixed64 = 1, kLen = 2 };

constexpr uint8_t Tag(int field, WireType type) {
  return static_cast<uint8_t>(field << 3 | type);
}

inline size_t VarintSize(uint64_t v) {
  size_t n = 1;
  while (v >= 0x80) {
    v >>= 7;
    ++n;
  }
  return n;
}

// A length-delimited field of `body` bytes: tag, length, body.
inline size_t LenFieldSize(size_t body) { return 1 + VarintSize(body) + body; }

inline void PutVarintField(std::string* out, int field, uint64_t v) {
  out->push_back(static_cast<char>(Tag(field, kVarint)));
  PutVarint64(out, v);
}

inline void PutBytesField(std::string* out, int field, absl::string_view v) {
  out->push_back(static_cast<char>(Tag(field, kLen)));
  PutVarint64(out, v.size());
  out->append(v.data(), v.size());
}

// A fixed64 field (a double's bits), little-endian as the wire wants.
inline void PutFixed64Field(std::string* out, int field, uint64_t bits) {
  out->push_back(static_cast<char>(Tag(field, kFixed64)));
  for (int i = 0; i < 8; ++i) {
    out->push_back(static_cast<char>(bits >> (8 * i)));
  }
}

// google.protobuf.Timestamp of `micros`: seconds floor-divided, nanos in
// [0, 1e9), zero fields omitted.
struct TimestampParts {
  explicit TimestampParts(int64_t micros) {
    seconds = micros / 1000000;
    int64_t rem = micros % 1000000;
    if (rem < 0) {
      rem += 1000000;
      --seconds;
    }
    nanos = static_cast<uint32_t>(rem * 1000);
  }
  size_t BodySize() const {
    return (seconds != 0 ? 1 + VarintSize(static_cast<uint64_t>(seconds)) : 0) +
           (nanos != 0 ? 1 + VarintSize(nanos) : 0);
  }
  int64_t seconds;
  uint32_t nanos;
};

// A Timestamp-typed field (always written, even for the epoch).
inline void PutTimestampField(std::string* out, int field, int64_t micros) {
  const TimestampParts t(micros);
  out->push_back(static_cast<char>(Tag(field, kLen)));
  PutVarint64(out, t.BodySize());
  if (t.seconds != 0) PutVarintField(out, 1, static_cast<uint64_t>(t.seconds));
  if (t.nanos != 0) PutVarintField(out, 2, t.nanos);
}

// Writes into memory already sized for what it writes (by the *Size
// functions above), without a capacity check per byte: sum the sizes,
// resize the output once, then write.
class SizedWriter {
 public:
  explicit SizedWriter(char* at) : p_(at) {}

  void Byte(uint8_t b) { *p_++ = static_cast<char>(b); }
  void Varint(uint64_t v) {
    while (v >= 0x80) {
      *p_++ = static_cast<char>(v | 0x80);
      v >>= 7;
    }
    *p_++ = static_cast<char>(v);
  }
  void Bytes(absl::string_view s) {
    if (!s.empty()) std::memcpy(p_, s.data(), s.size());
    p_ += s.size();
  }
  // Little-endian, as the wire wants a fixed64 (a double's bits).
  void Fixed64(uint64_t v) {
    for (int i = 0; i < 8; ++i) *p_++ = static_cast<char>(v >> (8 * i));
  }
  // `raw` as lowercase hex: 2 * raw.size() bytes.
  void Hex(absl::string_view raw) {
    static constexpr char kDigits[] = "0123456789abcdef";
    for (unsigned char c : raw) {
      *p_++ = kDigits[c >> 4];
      *p_++ = kDigits[c & 15];
    }
  }

  void VarintField(int field, uint64_t v) {
    Byte(Tag(field, kVarint));
    Varint(v);
  }
  // A length-delimited field's tag and length; `len` bytes must follow.
  void LenHeader(int field, size_t len) {
    Byte(Tag(field, kLen));
    Varint(len);
  }
  void BytesField(int field, absl::string_view v) {
    LenHeader(field, v.size());
    Bytes(v);
  }
  void Fixed64Field(int field, uint64_t bits) {
    Byte(Tag(field, kFixed64));
    Fixed64(bits);
  }
  // As PutTimestampField; LenFieldSize(t.BodySize()) bytes.
  void TimestampField(int field, const TimestampParts& t) {
    LenHeader(field, t.BodySize());
    if (t.seconds != 0) VarintField(1, static_cast<uint64_t>(t.seconds));
    if (t.nanos != 0) VarintField(2, t.nanos);
  }
  char* position() const { return p_; }

 private:
  char* p_;
};

}  // namespace wire
}  // namespace rawfeat

#endif  // RAWFEAT_SERVER_COMMON_WIRE_H_
