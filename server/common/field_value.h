#ifndef RAWFEAT_SERVER_COMMON_FIELD_VALUE_H_
#define RAWFEAT_SERVER_COMMON_FIELD_VALUE_H_

// One typed field value without protobuf overhead, and its v1::Value wire
// form (written by the replay encoder and the CLI's one-pass readers).
// Pure functions; thread-safe.

#include <cstdint>
#include <cstring>

#include "absl/strings/string_view.h"
#include "rawfeat/v1/rawfeat.pb.h"
#include "server/common/wire.h"

namespace rawfeat {

// For STRING, `s` points into memory owned elsewhere (the encoded value,
// the request, the input file's buffer).
struct FieldValue {
  v1::FieldType type = v1::FIELD_TYPE_UNSPECIFIED;  // UNSPECIFIED = absent
  int64_t i = 0;
  double d = 0;
  bool b = false;
  absl::string_view s;

  bool present() const { return type != v1::FIELD_TYPE_UNSPECIFIED; }
};

namespace wire {

// The size of the body of a v1::Value holding `v`: its one oneof member
// (written even when zero), nothing for an absent value.
inline size_t ValueBodySize(const FieldValue& v) {
  switch (v.type) {
    case v1::INT64:
      return 1 + VarintSize(static_cast<uint64_t>(v.i));
    case v1::DOUBLE:
      return 1 + 8;
    case v1::STRING:
      return LenFieldSize(v.s.size());
    case v1::BOOL:
      return 2;
    default:
      return 0;
  }
}

// Writes that body: ValueBodySize(v) bytes, byte for byte protobuf's.
inline void WriteValueBody(const FieldValue& v, SizedWriter* w) {
  switch (v.type) {
    case v1::INT64:
      w->VarintField(v1::Value::kInt64ValueFieldNumber,
                     static_cast<uint64_t>(v.i));
      break;
    case v1::DOUBLE: {
      uint64_t bits;
      std::memcpy(&bits, &v.d, sizeof(bits));
      w->Fixed64Field(v1::Value::kDoubleValueFieldNumber, bits);
      break;
    }
    case v1::STRING:
      w->BytesField(v1::Value::kStringValueFieldNumber, v.s);
      break;
    case v1::BOOL:
      w->VarintField(v1::Value::kBoolValueFieldNumber, v.b ? 1 : 0);
      break;
    default:
      break;
  }
}

}  // namespace wire
}  // namespace rawfeat

#endif  // RAWFEAT_SERVER_COMMON_FIELD_VALUE_H_
