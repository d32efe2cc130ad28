#include "server/schema/event_validator.h"

#include <array>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "server/common/coding.h"
#include "server/common/echo.h"
#include "server/common/time_util.h"

namespace rawfeat {
namespace {

constexpr char kHashDomain[] = "rawfeat.event.v1";

const char* KindName(const IngestValue& v) {
  switch (v.kind) {
    case IngestValue::kInt64:
      return "INT64";
    case IngestValue::kDouble:
      return "DOUBLE";
    case IngestValue::kString:
      return "STRING";
    case IngestValue::kBool:
      return "BOOL";
    case IngestValue::kList:
      return "a list";
    default:
      return "null";
  }
}

// Resolves the field names of a batch's events to schema positions. Every
// event names the same few fields, though not in one order (a serialized
// map's order is its hash table's), so a small table keyed by a name's
// length and end bytes remembers the position it last resolved to; a full
// hash lookup only where that misses.
class FieldResolver {
 public:
  explicit FieldResolver(const StreamSchema& schema) : schema_(schema) {
    recent_.fill(-1);
  }

  // The position of field `name`; -1 if the stream has no such field.
  int Resolve(absl::string_view name) {
    const size_t slot =
        name.empty()
            ? 0
            : (name.size() * 31 + static_cast<unsigned char>(name.front()) * 7 +
               static_cast<unsigned char>(name.back())) %
                  recent_.size();
    const int hint = recent_[slot];
    if (hint >= 0 && schema_.def().fields(hint).name() == name) return hint;
    auto it = schema_.position.find(name);
    if (it == schema_.position.end()) return -1;
    recent_[slot] = it->second;
    return it->second;
  }

 private:
  const StreamSchema& schema_;
  std::array<int, 64> recent_;
};

// Hashes the canonical content of a stream's events, keeping the bytes
// every event begins with (domain and stream) and the buffer between them.
class ContentHasher {
 public:
  explicit ContentHasher(const StreamSchema& schema) : schema_(schema) {
    PutLengthPrefixed(&buf_, kHashDomain);
    PutLengthPrefixed(&buf_, schema.name);
    prefix_ = buf_.size();
  }

  Sha256Digest Hash(absl::string_view entity, int64_t time_us,
                    const std::vector<FieldValue>& values) {
    buf_.resize(prefix_);
    PutLengthPrefixed(&buf_, entity);
    PutBigEndian64(&buf_, OrderedFromSigned(time_us));
    const v1::StreamDef& def = schema_.def();
    for (int pos : schema_.by_name) {
      const FieldValue& v = values[pos];
      if (!v.present()) continue;
      PutLengthPrefixed(&buf_, def.fields(pos).name());
      buf_.push_back(static_cast<char>(v.type));
      switch (v.type) {
        case v1::INT64:
          PutBigEndian64(&buf_, static_cast<uint64_t>(v.i));
          break;
        case v1::DOUBLE:
          PutFixedDouble(&buf_, v.d);
          break;
        case v1::STRING:
          PutLengthPrefixed(&buf_, v.s);
          break;
        case v1::BOOL:
          buf_.push_back(v.b ? 1 : 0);
          break;
        default:
          break;
      }
    }
    return Sha256(buf_);
  }

 private:
  const StreamSchema& schema_;
  std::string buf_;
  size_t prefix_ = 0;
};

}  // namespace

Sha256Digest ContentHash(const StreamSchema& schema, absl::string_view entity,
                         int64_t time_us,
                         const std::vector<FieldValue>& values) {
  return ContentHasher(schema).Hash(entity, time_us, values);
}

void PrepareEvents(const StreamSchema& schema, const IngestBatch& batch,
                   const IngestLimits& limits, std::vector<PendingEvent>* out,
                   std::vector<v1::RowError>* errors) {
  const v1::StreamDef& def = schema.def();
  const size_t nfields = schema.types.size();
  std::vector<FieldValue> values(nfields);
  // Per position, the index + 1 of the event's last entry naming it (0:
  // not named, so absent; named with a null value is absent too, but a
  // required field then is "null", not "missing").
  std::vector<size_t> named(nfields);
  std::vector<int> positions;  // of the event's entries (-1: unknown)
  FieldResolver resolver(schema);
  ContentHasher hasher(schema);
  out->reserve(out->size() + batch.events.size());
  for (int row = 0; row < static_cast<int>(batch.events.size()); ++row) {
    const IngestEvent& e = batch.events[row];
    bool ok = true;
    auto fail = [&](absl::string_view field, std::string reason) {
      v1::RowError err;
      err.set_row(row);
      err.set_event_id(std::string(e.event_id));
      err.set_field(std::string(field));
      err.set_reason(std::move(reason));
      errors->push_back(std::move(err));
      ok = false;
    };
    if (e.event_id.size() > limits.max_event_id_bytes) {
      fail("event_id",
           absl::StrCat("event_id is ", e.event_id.size(),
                        " bytes; the limit is ", limits.max_event_id_bytes));
    }
    if (e.entity.empty()) {
      fail(def.entity_field(), "entity is empty");
    } else if (e.entity.size() > limits.max_entity_bytes) {
      fail(def.entity_field(),
           absl::StrCat("entity is ", e.entity.size(), " bytes; the limit is ",
                        limits.max_entity_bytes));
    } else if (e.entity.find('\0') != absl::string_view::npos) {
      fail(def.entity_field(), "entity contains a NUL byte");
    }
    int64_t time_us = 0;
    if (!e.has_time) {
      fail(def.time_field(), "event time is missing");
    } else if (auto t = TimestampToMicros(e.seconds, e.nanos); !t.ok()) {
      fail(def.time_field(), std::string(t.status().message()));
    } else {
      time_us = *t;
    }
    std::fill(values.begin(), values.end(), FieldValue());
    std::fill(named.begin(), named.end(), 0);
    const absl::Span<const IngestEntry> entries = batch.fields(e);
    positions.resize(entries.size());
    for (size_t k = 0; k < entries.size(); ++k) {
      positions[k] = resolver.Resolve(entries[k].name);
      if (positions[k] >= 0) named[positions[k]] = k + 1;
    }
    for (size_t k = 0; k < entries.size(); ++k) {
      const absl::string_view name = entries[k].name;
      const IngestValue& value = entries[k].value;
      const int pos = positions[k];
      if (pos < 0) {
        // Named again later: the last entry of a name counts (protobuf
        // map semantics; only hand-read wire bytes repeat a name).
        bool again = false;
        for (size_t later = k + 1; later < entries.size() && !again; ++later) {
          again = positions[later] < 0 && entries[later].name == name;
        }
        if (!again) {
          fail(name, absl::StrCat("unknown field '", Echo(name),
                                  "' in stream '", schema.name, "'"));
        }
        continue;
      }
      if (named[pos] != k + 1) continue;  // named again later
      const v1::FieldType type = schema.types[pos];
      FieldValue& fv = values[pos];
      const auto kind = value.kind;
      if (kind == IngestValue::kNull) continue;  // null = absent
      auto wrong_type = [&]() {
        fail(name,
             absl::StrCat("field '", name, "' is ", v1::FieldType_Name(type),
                          ", got ", KindName(value)));
      };
      switch (type) {
        case v1::INT64:
          if (kind != IngestValue::kInt64) {
            wrong_type();
            break;
          }
          fv.type = type;
          fv.i = value.i;
          break;
        case v1::DOUBLE: {
          double d;
          if (kind == IngestValue::kDouble) {
            d = value.d;
          } else if (kind == IngestValue::kInt64) {
            d = static_cast<double>(value.i);
          } else {
            wrong_type();
            break;
          }
          if (!std::isfinite(d)) {
            fail(name, absl::StrCat("field '", name,
                                    "' is not finite (NaN and infinities "
                                    "are refused)"));
            break;
          }
          fv.type = type;
          fv.d = d;
          break;
        }
        case v1::STRING:
          if (kind != IngestValue::kString) {
            wrong_type();
            break;
          }
          if (value.s.size() > limits.max_string_bytes) {
            fail(name, absl::StrCat("field '", name, "' is ", value.s.size(),
                                    " bytes; the limit is ",
                                    limits.max_string_bytes));
            break;
          }
          fv.type = type;
          fv.s = value.s;
          break;
        case v1::BOOL:
          if (kind != IngestValue::kBool) {
            wrong_type();
            break;
          }
          fv.type = type;
          fv.b = value.b;
          break;
        default:
          wrong_type();
      }
    }
    for (size_t pos = 0; pos < nfields; ++pos) {
      const v1::FieldDef& f = def.fields(static_cast<int>(pos));
      if (!f.required() || values[pos].present()) continue;
      if (named[pos] == 0) {
        fail(f.name(),
             absl::StrCat("required field '", f.name(), "' is missing"));
      } else if (entries[named[pos] - 1].value.kind == IngestValue::kNull) {
        fail(f.name(), absl::StrCat("required field '", f.name(), "' is null"));
      }
    }
    if (!ok) continue;
    PendingEvent p;
    p.row = row;
    p.entity = std::string(e.entity);
    p.time_us = time_us;
    p.content_hash = hasher.Hash(p.entity, time_us, values);
    if (e.event_id.empty()) {
      p.event_id = DigestHex(p.content_hash);
      EncodeEventValue(schema.schema_version(), "", &p.content_hash, values,
                       &p.value);
    } else {
      p.event_id = std::string(e.event_id);
      EncodeEventValue(schema.schema_version(), p.event_id, nullptr, values,
                       &p.value);
    }
    out->push_back(std::move(p));
  }
}

void PrepareEvents(const StreamSchema& schema,
                   const google::protobuf::RepeatedPtrField<v1::Event>& events,
                   const IngestLimits& limits, std::vector<PendingEvent>* out,
                   std::vector<v1::RowError>* errors) {
  IngestBatch batch;
  IngestBatchOf(events, &batch);
  PrepareEvents(schema, batch, limits, out, errors);
}

}  // namespace rawfeat
