#ifndef RAWFEAT_SERVER_STORAGE_EVENT_CODEC_H_
#define RAWFEAT_SERVER_STORAGE_EVENT_CODEC_H_

// Compact encoding of a stored event's value (the `events` column family).
// Entity, event time and seq live in the key; the value holds:
//
//   byte   format (1)
//   varint schema version (index into the stream's StoredStream.versions)
//   byte   id kind: 0 = given by the writer, 1 = derived from content
//   id     kind 0: varint length + bytes; kind 1: 32 raw SHA-256 bytes
//   varint n = number of fields in that schema version
//   bitmap ceil(n/8) bytes, bit i set = field i present
//   values of present fields by position:
//          INT64 zigzag varint, DOUBLE 8 bytes, STRING varint length + bytes,
//          BOOL one byte
//
// Evolution is additive and appends fields, so a value encoded under any
// schema version decodes against the newest field list. Pure functions;
// thread-safe.

#include <cstdint>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "rawfeat/v1/rawfeat.pb.h"
#include "server/common/coding.h"
#include "server/common/field_value.h"
#include "server/common/hash.h"

namespace rawfeat {

// One value's payload for its (known) type, no tag: INT64 zigzag varint,
// DOUBLE 8 bytes, STRING varint length + bytes, BOOL one byte.
void PutFieldPayload(std::string* out, const FieldValue& v);
// Reads a payload of type out->type from the front of *in (STRING points
// into *in). False on truncation or an unknown type. Inline: it runs for
// every field of every event a read decodes.
inline bool GetFieldPayload(absl::string_view* in, FieldValue* f) {
  switch (f->type) {
    case v1::INT64: {
      uint64_t z;
      if (!GetVarint64(in, &z)) return false;
      f->i = ZigZagDecode(z);
      return true;
    }
    case v1::DOUBLE:
      return GetFixedDouble(in, &f->d);
    case v1::STRING:
      return GetLengthPrefixed(in, &f->s);
    case v1::BOOL:
      if (in->empty()) return false;
      f->b = (*in)[0] != 0;
      in->remove_prefix(1);
      return true;
    default:
      return false;
  }
}

// `id` is the writer's event id, or empty with `derived_id` set when the id
// is the content hash. `values` are by position; absent ones have type
// UNSPECIFIED. Appends to `*out`.
void EncodeEventValue(uint32_t schema_version, absl::string_view id,
                      const Sha256Digest* derived_id,
                      const std::vector<FieldValue>& values, std::string* out);

// Decodes values encoded by EncodeEventValue. `types` is the newest field
// list of the stream (it must have at least as many fields as the schema
// version the value was written under). Views into `value` stay valid while
// it does.
class EventValueReader {
 public:
  // False if the value is corrupt or has more fields than `types`.
  bool Parse(absl::string_view value, const std::vector<v1::FieldType>& types);
  // Parses only the schema version and the event id (no field list
  // needed); fields() is then empty. False if corrupt.
  bool ParseId(absl::string_view value);

  uint32_t schema_version() const { return schema_version_; }
  // The event id: the writer's, or the lower-case hex of the derived digest.
  std::string event_id() const;
  // The id as stored: the writer's bytes, or the 32 digest bytes when
  // derived_id() (event_id() is then their lower-case hex).
  absl::string_view raw_event_id() const { return id_; }
  bool derived_id() const { return derived_id_; }
  // Fields by position (size = number of fields the value was written with).
  const std::vector<FieldValue>& fields() const { return fields_; }

 private:
  // Reads the format, schema version and id from the front of *in.
  bool ParseHeader(absl::string_view* in);

  uint32_t schema_version_ = 0;
  bool derived_id_ = false;
  absl::string_view id_;
  std::vector<FieldValue> fields_;
};

// Proto conversions used at the API edge.
void FieldValueToProto(const FieldValue& fv, v1::Value* out);

}  // namespace rawfeat

#endif  // RAWFEAT_SERVER_STORAGE_EVENT_CODEC_H_
