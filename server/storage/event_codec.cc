#include "server/storage/event_codec.h"

#include "server/common/coding.h"

namespace rawfeat {
namespace {
constexpr char kFormat = 1;
constexpr char kIdGiven = 0;
constexpr char kIdDerived = 1;
}  // namespace

void EncodeEventValue(uint32_t schema_version, absl::string_view id,
                      const Sha256Digest* derived_id,
                      const std::vector<FieldValue>& values, std::string* out) {
  out->push_back(kFormat);
  PutVarint64(out, schema_version);
  if (derived_id != nullptr) {
    out->push_back(kIdDerived);
    out->append(reinterpret_cast<const char*>(derived_id->data()),
                derived_id->size());
  } else {
    out->push_back(kIdGiven);
    PutLengthPrefixed(out, id);
  }
  const size_t n = values.size();
  PutVarint64(out, n);
  const size_t bitmap_at = out->size();
  out->append((n + 7) / 8, '\0');
  for (size_t i = 0; i < n; ++i) {
    const FieldValue& v = values[i];
    if (!v.present()) continue;
    (*out)[bitmap_at + i / 8] |= static_cast<char>(1u << (i % 8));
    PutFieldPayload(out, v);
  }
}

void PutFieldPayload(std::string* out, const FieldValue& v) {
  switch (v.type) {
    case v1::INT64:
      PutVarint64(out, ZigZagEncode(v.i));
      break;
    case v1::DOUBLE:
      PutFixedDouble(out, v.d);
      break;
    case v1::STRING:
      PutLengthPrefixed(out, v.s);
      break;
    case v1::BOOL:
      out->push_back(v.b ? 1 : 0);
      break;
    default:
      break;
  }
}

bool EventValueReader::ParseHeader(absl::string_view* in) {
  if (in->empty() || (*in)[0] != kFormat) return false;
  in->remove_prefix(1);
  uint64_t sv;
  if (!GetVarint64(in, &sv) || in->empty()) return false;
  schema_version_ = static_cast<uint32_t>(sv);
  const char kind = (*in)[0];
  in->remove_prefix(1);
  if (kind == kIdDerived) {
    if (in->size() < 32) return false;
    derived_id_ = true;
    id_ = in->substr(0, 32);
    in->remove_prefix(32);
  } else if (kind == kIdGiven) {
    derived_id_ = false;
    if (!GetLengthPrefixed(in, &id_)) return false;
  } else {
    return false;
  }
  return true;
}

bool EventValueReader::ParseId(absl::string_view value) {
  fields_.clear();
  return ParseHeader(&value);
}

bool EventValueReader::Parse(absl::string_view in,
                             const std::vector<v1::FieldType>& types) {
  if (!ParseHeader(&in)) return false;
  uint64_t n;
  if (!GetVarint64(&in, &n) || n > types.size()) return false;
  const size_t bitmap_bytes = (n + 7) / 8;
  if (in.size() < bitmap_bytes) return false;
  const absl::string_view bitmap = in.substr(0, bitmap_bytes);
  in.remove_prefix(bitmap_bytes);
  // The vector is reused from event to event: each field is overwritten,
  // absent ones with an empty value.
  fields_.resize(n);
  for (size_t i = 0; i < n; ++i) {
    FieldValue& f = fields_[i];
    if (((static_cast<unsigned char>(bitmap[i / 8]) >> (i % 8)) & 1) == 0) {
      f = FieldValue();
      continue;
    }
    f.type = types[i];
    if (!GetFieldPayload(&in, &f)) return false;
  }
  return in.empty();
}

std::string EventValueReader::event_id() const {
  return derived_id_ ? HexEncode(id_) : std::string(id_);
}

void FieldValueToProto(const FieldValue& fv, v1::Value* out) {
  switch (fv.type) {
    case v1::INT64:
      out->set_int64_value(fv.i);
      break;
    case v1::DOUBLE:
      out->set_double_value(fv.d);
      break;
    case v1::STRING:
      out->set_string_value(std::string(fv.s));
      break;
    case v1::BOOL:
      out->set_bool_value(fv.b);
      break;
    default:
      out->Clear();
      break;
  }
}

}  // namespace rawfeat
