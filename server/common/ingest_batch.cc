#include "server/common/ingest_batch.h"

#include <cstring>

#include "google/protobuf/stubs/common.h"
#include "server/common/wire.h"

namespace rawfeat {
namespace {

// Field numbers, as generated.
using Req = v1::IngestRequest;
using Resp = v1::ReadEventsResponse;
using Ev = v1::Event;
using Val = v1::Value;
using Ts = google::protobuf::Timestamp;

using wire::kFixed64;
using wire::kLen;
using wire::kVarint;

bool ValidUtf8(absl::string_view s) {
  // ASCII, the common case, without the general check.
  size_t i = 0;
  for (; i < s.size(); ++i) {
    if (static_cast<unsigned char>(s[i]) >= 0x80) break;
  }
  return i == s.size() || google::protobuf::internal::IsStructurallyValidUTF8(
                              s.data() + i, static_cast<int>(s.size() - i));
}

// Reads one message's fields in order. Every read fails (false) where the
// bytes are not in the serializers' form; the caller then fails too.
class WireReader {
 public:
  explicit WireReader(absl::string_view in)
      : p_(in.data()), end_(in.data() + in.size()) {}

  bool done() const { return p_ == end_; }

  // A one-byte tag: every field of the messages read here has a number
  // below 16.
  bool Tag(int* field, uint32_t* type) {
    if (p_ == end_) return false;
    const auto byte = static_cast<unsigned char>(*p_);
    if (byte >= 0x80) return false;
    ++p_;
    *field = byte >> 3;
    *type = byte & 7;
    return true;
  }

  // At most 10 bytes, the last of them 0 or 1: the varints protobuf reads
  // to the same 64 bits.
  bool Varint(uint64_t* v) {
    uint64_t result = 0;
    for (int i = 0; i < 10 && p_ != end_; ++i) {
      const auto byte = static_cast<unsigned char>(*p_++);
      if (i == 9 && byte > 1) return false;
      result |= uint64_t{byte & 0x7fu} << (7 * i);
      if (byte < 0x80) {
        *v = result;
        return true;
      }
    }
    return false;
  }

  bool Fixed64(uint64_t* v) {
    if (end_ - p_ < 8) return false;
    uint64_t r = 0;
    for (int i = 7; i >= 0; --i) {
      r = r << 8 | static_cast<unsigned char>(p_[i]);
    }
    p_ += 8;
    *v = r;
    return true;
  }

  // A length (at most 5 bytes and below 2^31, as protobuf reads sizes)
  // and that many bytes.
  bool Bytes(absl::string_view* v) {
    uint64_t n = 0;
    const char* start = p_;
    if (!Varint(&n) || p_ - start > 5 || n > 0x7fffffff ||
        n > static_cast<uint64_t>(end_ - p_)) {
      return false;
    }
    *v = absl::string_view(p_, n);
    p_ += n;
    return true;
  }

  bool String(absl::string_view* v) { return Bytes(v) && ValidUtf8(*v); }

 private:
  const char* p_;
  const char* end_;
};

// Marks `field` seen in `*seen`; false if it was already.
bool Once(uint32_t* seen, int field) {
  const uint32_t bit = uint32_t{1} << field;
  if ((*seen & bit) != 0) return false;
  *seen |= bit;
  return true;
}

bool ReadValue(absl::string_view bytes, IngestValue* out) {
  WireReader r(bytes);
  *out = IngestValue();
  // A oneof: one member at most (two is legal protobuf, the last winning,
  // but no serializer writes it).
  bool set = false;
  while (!r.done()) {
    int field;
    uint32_t type;
    uint64_t v;
    if (!r.Tag(&field, &type) || set) return false;
    set = true;
    switch (field) {
      case Val::kInt64ValueFieldNumber:
        if (type != kVarint || !r.Varint(&v)) return false;
        out->kind = IngestValue::kInt64;
        out->i = static_cast<int64_t>(v);
        break;
      case Val::kDoubleValueFieldNumber:
        if (type != kFixed64 || !r.Fixed64(&v)) return false;
        out->kind = IngestValue::kDouble;
        std::memcpy(&out->d, &v, sizeof(v));
        break;
      case Val::kStringValueFieldNumber:
        if (type != kLen || !r.String(&out->s)) return false;
        out->kind = IngestValue::kString;
        break;
      case Val::kBoolValueFieldNumber:
        if (type != kVarint || !r.Varint(&v)) return false;
        out->kind = IngestValue::kBool;
        out->b = v != 0;
        break;
      default:  // lists, and fields this server does not know
        return false;
    }
  }
  return true;
}

bool ReadEntry(absl::string_view bytes, IngestEntry* out) {
  WireReader r(bytes);
  uint32_t seen = 0;
  *out = IngestEntry();
  while (!r.done()) {
    int field;
    uint32_t type;
    if (!r.Tag(&field, &type) || type != kLen || !Once(&seen, field)) {
      return false;
    }
    absl::string_view body;
    if (field == 1) {  // the map entry's key
      if (!r.String(&out->name)) return false;
    } else if (field == 2) {  // its value
      if (!r.Bytes(&body) || !ReadValue(body, &out->value)) return false;
    } else {
      return false;
    }
  }
  return true;
}

bool ReadTimestamp(absl::string_view bytes, IngestEvent* out) {
  WireReader r(bytes);
  uint32_t seen = 0;
  while (!r.done()) {
    int field;
    uint32_t type;
    uint64_t v;
    if (!r.Tag(&field, &type) || type != kVarint || !Once(&seen, field) ||
        !r.Varint(&v)) {
      return false;
    }
    if (field == Ts::kSecondsFieldNumber) {
      out->seconds = static_cast<int64_t>(v);
    } else if (field == Ts::kNanosFieldNumber) {
      out->nanos = static_cast<int32_t>(v);  // int32: the low 32 bits
    } else {
      return false;
    }
  }
  return true;
}

bool ReadEvent(absl::string_view bytes, IngestBatch* batch) {
  WireReader r(bytes);
  IngestEvent& e = batch->events.emplace_back();
  e.first_entry = batch->entries.size();
  e.bytes = bytes;
  uint32_t seen = 0;
  while (!r.done()) {
    int field;
    uint32_t type;
    if (!r.Tag(&field, &type)) return false;
    if (field != Ev::kFieldsFieldNumber && !Once(&seen, field)) return false;
    absl::string_view body;
    switch (field) {
      case Ev::kEventIdFieldNumber:
        if (type != kLen || !r.String(&e.event_id)) return false;
        break;
      case Ev::kEntityFieldNumber:
        if (type != kLen || !r.String(&e.entity)) return false;
        break;
      case Ev::kEventTimeFieldNumber:
        if (type != kLen || !r.Bytes(&body) || !ReadTimestamp(body, &e)) {
          return false;
        }
        e.has_time = true;
        break;
      case Ev::kFieldsFieldNumber:
        if (type != kLen || !r.Bytes(&body) ||
            !ReadEntry(body, &batch->entries.emplace_back())) {
          return false;
        }
        ++e.entries;
        break;
      case Ev::kSeqFieldNumber:  // set by the server; ignored on ingest
        if (type != kVarint || !r.Varint(&e.seq)) return false;
        break;
      default:
        return false;
    }
  }
  return true;
}

void AppendEvents(const google::protobuf::RepeatedPtrField<v1::Event>& events,
                  IngestBatch* out) {
  out->events.reserve(out->events.size() + events.size());
  for (const v1::Event& pe : events) {
    IngestEvent& e = out->events.emplace_back();
    e.event_id = pe.event_id();
    e.entity = pe.entity();
    e.has_time = pe.has_event_time();
    e.seq = pe.seq();
    e.seconds = pe.event_time().seconds();
    e.nanos = pe.event_time().nanos();
    e.first_entry = out->entries.size();
    e.entries = pe.fields().size();
    for (const auto& [name, pv] : pe.fields()) {
      IngestEntry& entry = out->entries.emplace_back();
      entry.name = name;
      IngestValue& v = entry.value;
      switch (pv.kind_case()) {
        case Val::kInt64Value:
          v.kind = IngestValue::kInt64;
          v.i = pv.int64_value();
          break;
        case Val::kDoubleValue:
          v.kind = IngestValue::kDouble;
          v.d = pv.double_value();
          break;
        case Val::kStringValue:
          v.kind = IngestValue::kString;
          v.s = pv.string_value();
          break;
        case Val::kBoolValue:
          v.kind = IngestValue::kBool;
          v.b = pv.bool_value();
          break;
        case Val::kListValue:
          v.kind = IngestValue::kList;
          break;
        default:
          break;
      }
    }
  }
}

}  // namespace

void IngestBatch::Clear() {
  stream = {};
  on_invalid = v1::ON_INVALID_UNSPECIFIED;
  events.clear();
  entries.clear();
}

bool ReadIngestBatch(absl::string_view bytes, IngestBatch* out) {
  out->Clear();
  WireReader r(bytes);
  uint32_t seen = 0;
  while (!r.done()) {
    int field;
    uint32_t type;
    if (!r.Tag(&field, &type)) return false;
    if (field != Req::kEventsFieldNumber && !Once(&seen, field)) return false;
    absl::string_view body;
    uint64_t v;
    switch (field) {
      case Req::kStreamFieldNumber:
        if (type != kLen || !r.String(&out->stream)) return false;
        break;
      case Req::kEventsFieldNumber:
        if (type != kLen || !r.Bytes(&body) || !ReadEvent(body, out)) {
          return false;
        }
        break;
      case Req::kOnInvalidFieldNumber:
        if (type != kVarint || !r.Varint(&v)) return false;
        // An open enum: any int32 is kept.
        out->on_invalid = static_cast<v1::OnInvalid>(static_cast<int32_t>(v));
        break;
      default:
        return false;
    }
  }
  return true;
}

bool ReadEventsChunk(absl::string_view bytes, IngestBatch* out,
                     uint64_t* watermark) {
  out->Clear();
  *watermark = 0;
  WireReader r(bytes);
  uint32_t seen = 0;
  while (!r.done()) {
    int field;
    uint32_t type;
    if (!r.Tag(&field, &type)) return false;
    if (field != Resp::kEventsFieldNumber && !Once(&seen, field)) return false;
    absl::string_view body;
    switch (field) {
      case Resp::kEventsFieldNumber:
        if (type != kLen || !r.Bytes(&body) || !ReadEvent(body, out)) {
          return false;
        }
        break;
      case Resp::kWatermarkFieldNumber:
        if (type != kVarint || !r.Varint(watermark)) return false;
        break;
      default:
        return false;
    }
  }
  return true;
}

void IngestBatchOf(const v1::IngestRequest& request, IngestBatch* out) {
  out->Clear();
  out->stream = request.stream();
  out->on_invalid = request.on_invalid();
  AppendEvents(request.events(), out);
}

void IngestBatchOf(const google::protobuf::RepeatedPtrField<v1::Event>& events,
                   IngestBatch* out) {
  out->Clear();
  AppendEvents(events, out);
}

}  // namespace rawfeat
